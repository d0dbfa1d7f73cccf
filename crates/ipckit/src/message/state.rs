//! What every handle to a message channel keeps, on either face: the
//! connection its clones share (and why the channel was closed, once it
//! was), the address of the peer, the handle's deadlines and its maximum
//! message size; with the error context of a send and a receive and the rule
//! that a receive that puts the channel out of step closes it. The blocking
//! [`MessageStream`](crate::MessageStream) holds a `State<conn::Conn>`, the
//! tokio one a `State` of its own async connection: the two faces differ
//! only in how they wait. `message_face!` gives both the same `Debug`,
//! accessors, deadline setters and `try_clone`.

use std::io;
use std::sync::{Arc, OnceLock};

use crate::address::Address;
use crate::error::{Error, ErrorKind, Result, breaks_channel};
use crate::limits::Deadlines;

/// How a face's connection stops receiving after a message that put the
/// channel out of step (an oversized one); sending goes on, so the receiver
/// can tell the peer why before it drops the channel.
pub(crate) trait CloseReceiving {
    fn close_receiving(&self);
}

/// The connection every clone of a message channel shares.
pub(crate) struct Shared<C> {
    pub(crate) conn: C,
    /// Why the channel was closed (an oversized message), once it was.
    closed: OnceLock<String>,
}

/// One handle to a message channel (either face).
pub(crate) struct State<C> {
    pub(crate) shared: Arc<Shared<C>>,
    pub(crate) peer: Address,
    pub(crate) lim: Deadlines,
    pub(crate) max: usize,
}

impl<C> Clone for State<C> {
    /// Another handle to the same connection, with this one's limits.
    fn clone(&self) -> State<C> {
        State {
            shared: Arc::clone(&self.shared),
            peer: self.peer.clone(),
            lim: self.lim,
            max: self.max,
        }
    }
}

impl<C: CloseReceiving> State<C> {
    pub(crate) fn new(conn: C, peer: Address, max: usize) -> State<C> {
        State {
            shared: Arc::new(Shared {
                conn,
                closed: OnceLock::new(),
            }),
            peer,
            lim: Deadlines::default(),
            max,
        }
    }

    /// The shared connection.
    pub(crate) fn conn(&self) -> &C {
        &self.shared.conn
    }

    /// `Disconnected`, saying why, once a receive closed the channel.
    pub(crate) fn check_open(&self) -> Result<()> {
        match self.shared.closed.get() {
            None => Ok(()),
            Some(why) => Err(Error::new(
                ErrorKind::Disconnected,
                format!("the message channel to {} is closed: {why}", self.peer),
            )),
        }
    }

    /// The outcome of a send, with the peer in its error.
    pub(crate) fn sent(&self, sent: io::Result<()>) -> Result<()> {
        sent.map_err(|e| Error::io(format!("send a message to {}", self.peer), e))
    }

    /// The outcome of a receive, with the peer in its error. An error that
    /// leaves the channel out of step with the peer (an oversized message,
    /// broken framing) closes its receiving direction for every clone: the
    /// channel never goes on from there.
    pub(crate) fn received<T>(&self, got: io::Result<T>) -> Result<T> {
        got.map_err(|e| {
            let broken = breaks_channel(&e);
            let err = Error::io(format!("receive a message from {}", self.peer), e);
            if broken {
                let _ = self.shared.closed.set(err.to_string());
                self.shared.conn.close_receiving();
            }
            err
        })
    }
}

/// What both faces' `MessageStream` have the same way (each keeps its
/// [`State`] in `self.state`): the `Debug`, `peer_addr`, the maximum
/// message size, the deadline setters and `try_clone`.
macro_rules! message_face {
    ($ty:ident) => {
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("peer", &self.state.peer)
                    .field("read", &self.state.lim.read)
                    .field("write", &self.state.lim.write)
                    .field("max_message_size", &self.state.max)
                    .finish_non_exhaustive()
            }
        }

        impl $ty {
            /// The address this channel was connected to, or accepted on.
            pub fn peer_addr(&self) -> &$crate::Address {
                &self.state.peer
            }

            /// The largest incoming message this handle accepts.
            pub fn max_message_size(&self) -> usize {
                self.state.max
            }

            /// Sets the largest incoming message this handle accepts (default 64
            /// MiB, or the option the listener or connection was made with).
            ///
            /// # Errors
            ///
            /// [`ErrorKind::InvalidOption`](crate::ErrorKind::InvalidOption) for 0.
            pub fn set_max_message_size(&mut self, bytes: usize) -> $crate::Result<()> {
                $crate::limits::check_max_message_size(bytes)?;
                self.state.max = bytes;
                Ok(())
            }

            /// Another handle to the same channel, with this one's timeouts,
            /// deadlines and maximum message size to start with.
            ///
            /// # Errors
            ///
            /// None today; the `Result` leaves room for transports that must
            /// duplicate an OS handle.
            pub fn try_clone(&self) -> $crate::Result<Self> {
                Ok(Self {
                    state: self.state.clone(),
                })
            }

            $crate::limits::deadline_setters!(state.lim, "`recv`", "`send`");
        }
    };
}
pub(crate) use message_face;
