//! `AsFd`/`AsRawFd` on each type that is one socket, and `From<OwnedFd>` for
//! [`Stream`] and [`MessageStream`], as std's `UnixStream` and `TcpStream`
//! have them; [`MessageStreamExt`] for a message channel, which is one
//! socket unless it is a shared-memory one.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::MessageStreamExt;
use crate::address::Address;
use crate::child::Conn as ChildConn;
use crate::limits::DEFAULT_MAX_MESSAGE_SIZE;
use crate::message::ListenerKind;
use crate::message::conn::Conn;
use crate::sys::handles::{Adopted, UnixName, adopt_message, adopt_stream};
use crate::transport::Either;
use crate::{Listener, MailslotReceiver, MailslotSender, MessageListener, MessageStream, Stream};

/// Either arm's descriptor.
impl<L: AsFd, T: AsFd> AsFd for Either<L, T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Either::Local(l) => l.as_fd(),
            Either::Tcp(t) => t.as_fd(),
        }
    }
}

/// `AsRawFd` of each type, by its `AsFd`.
macro_rules! raw_fd {
    ($($(#[$attr:meta])* $ty:ty;)*) => {$(
        $(#[$attr])*
        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.as_fd().as_raw_fd()
            }
        }
    )*};
}

raw_fd! {
    Stream;
    Listener;
    MailslotReceiver;
    MailslotSender;
    MessageListener;
    #[cfg(feature = "tokio")]
    crate::tokio::Stream;
    #[cfg(feature = "tokio")]
    crate::tokio::Listener;
    #[cfg(feature = "tokio")]
    crate::tokio::MessageListener;
    #[cfg(feature = "tokio")]
    crate::tokio::MailslotReceiver;
    crate::child::ChildChannel;
    #[cfg(feature = "tokio")]
    crate::tokio::child::ChildChannel;
}

/// The socket of the connection: a Unix socket or a TCP one.
impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

/// The listening socket (readable when a client waits to be accepted).
impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

/// The datagram socket the messages arrive on.
impl AsFd for MailslotReceiver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

/// The datagram socket connected to the receiver.
impl AsFd for MailslotSender {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

/// Adopts a connected stream socket: a TCP stream if `fd` is an Internet
/// socket, else a Unix stream socket. As with std's `From<OwnedFd>`, the
/// caller vouches that `fd` is a connected stream socket. The stream's
/// [`peer_addr`](Stream::peer_addr) is the peer's name where the OS tells it
/// (`unix:/path`, `@NAME`, `tcp:HOST:PORT`), else the socket's own, else
/// `unix:` (a `socketpair` end has no name).
impl From<OwnedFd> for Stream {
    fn from(fd: OwnedFd) -> Stream {
        match adopt_stream(fd) {
            Adopted::Tcp(s, peer) => {
                let addr = match peer {
                    Some(sa) => Address::Tcp {
                        host: sa.ip().to_string(),
                        port: sa.port(),
                    },
                    None => Address::Tcp {
                        host: String::new(),
                        port: 0,
                    },
                };
                Stream::new(Either::Tcp(s), addr)
            }
            Adopted::Unix(s, name) => Stream::new(Either::Local(s), address_of(name)),
        }
    }
}

/// The address a handle adopted from a Unix socket shows: the socket's name,
/// or `unix:` for none.
fn address_of(name: UnixName) -> Address {
    match name {
        UnixName::Path(p) => Address::UnixPath(p),
        UnixName::Abstract(n) => Address::Abstract(n),
        UnixName::Unnamed => Address::UnixPath(Default::default()),
    }
}

/// The listening socket: the message socket, the TCP socket of `tcp:`, or
/// for `shm:NAME` the rendezvous socket the clients connect to (readable, in
/// every case, when a client waits to be accepted).
impl AsFd for MessageListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.inner {
            ListenerKind::Local(l) => l.as_fd(),
            ListenerKind::Framed(l) => l.as_fd(),
            ListenerKind::Shm { rendezvous, .. } => rendezvous.as_fd(),
        }
    }
}

impl MessageStreamExt for MessageStream {
    fn try_as_fd(&self) -> Option<BorrowedFd<'_>> {
        match self.state.conn() {
            Conn::Local(s) => Some(s.as_fd()),
            Conn::Framed(f) => Some(f.stream.as_fd()),
            Conn::Shm(_) => None,
        }
    }
}

/// Adopts a connected message socket of this OS's kind: `SOCK_SEQPACKET`
/// (on macOS, `SOCK_STREAM` carrying ipckit's frames, as its message
/// channels do). As with std's `From<OwnedFd>`, the caller vouches for the
/// kind. The peer is taken for a foreign program: it is never sent an
/// ipckit-private record (a message too large for one record fails with
/// `FrameTooLarge`). [`peer_addr`](MessageStream::peer_addr) is the peer's
/// socket name, else this end's, else `unix:`; the maximum incoming message
/// is the default (64 MiB).
impl From<OwnedFd> for MessageStream {
    fn from(fd: OwnedFd) -> MessageStream {
        let (s, name) = adopt_message(fd);
        MessageStream::new(Conn::Local(s), address_of(name), DEFAULT_MAX_MESSAGE_SIZE)
    }
}

/// The socket of the connection (tokio's `UnixStream` or `TcpStream`).
#[cfg(feature = "tokio")]
impl AsFd for crate::tokio::Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.io.as_fd()
    }
}

/// The listening socket (tokio's `UnixListener` or `TcpListener`).
#[cfg(feature = "tokio")]
impl AsFd for crate::tokio::Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

/// The listening socket (the message socket, or tokio's `TcpListener`).
#[cfg(feature = "tokio")]
impl AsFd for crate::tokio::MessageListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

/// The datagram socket the messages arrive on, watched by tokio's reactor.
#[cfg(feature = "tokio")]
impl AsFd for crate::tokio::MailslotReceiver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

/// The socket of the channel: a message socket, or tcp:'s socket; `None`
/// for a shared-memory channel.
#[cfg(feature = "tokio")]
impl MessageStreamExt for crate::tokio::MessageStream {
    fn try_as_fd(&self) -> Option<BorrowedFd<'_>> {
        use crate::tokio::message::Conn;
        match self.state.conn() {
            Conn::Local(s) => Some(s.as_fd()),
            Conn::Framed(f) => Some(f.stream.as_fd()),
            Conn::Shm(_) => None,
        }
    }
}

/// The socket to the other process: a message socket (ipckit's messages)
/// or a stream socket (Node's JSON lines). Poll it for readiness; do not read
/// it (the channel's framing and its buffered bytes are the channel's).
impl AsFd for crate::child::ChildChannel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.shared.conn {
            ChildConn::Messages(s) => s.as_fd(),
            ChildConn::Json(l) => l.stream().as_fd(),
        }
    }
}

/// The socket to the other process, as the blocking channel's.
#[cfg(feature = "tokio")]
impl AsFd for crate::tokio::child::ChildChannel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.shared.conn {
            ChildConn::Messages(s) => s.as_fd(),
            ChildConn::Json(l) => l.lines().stream().as_fd(),
        }
    }
}
