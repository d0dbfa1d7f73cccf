//! Message channels: [`MessageListener`] and [`MessageStream`] carry whole
//! messages, boundaries kept, over the native message transport of each OS.
//!
//! | address | Windows | Linux, FreeBSD | macOS |
//! |---|---|---|---|
//! | `pipe:NAME`, `\\.\pipe\NAME`, `unix:/path`, `@NAME` (Linux) | named pipe in message mode (`PIPE_TYPE_MESSAGE` + `PIPE_READMODE_MESSAGE`) | `SOCK_SEQPACKET` Unix socket | length-prefixed frames over a `SOCK_STREAM` Unix socket (macOS has no `SOCK_SEQPACKET` for Unix sockets) |
//! | `tcp:HOST:PORT` | length-prefixed frames | length-prefixed frames | length-prefixed frames |
//! | `shm:NAME` | a shared-memory channel per client (named events) | a shared-memory channel per client (futex) | the same |
//!
//! The frames are those of Python's `multiprocessing.connection`: a 4-byte
//! big-endian length, or −1 and an 8-byte length for a message over 2^31 − 1
//! bytes, then the message. [`Framed`] puts the same frames on any byte stream
//! you hand it. On macOS a local message channel carries exactly these frames
//! too, so a Python `multiprocessing.connection` peer on its `AF_UNIX` socket
//! reads them; a byte-stream client that connects to a message listener there
//! is not refused (a stream socket cannot tell the two apart) but sees frames.
//! macOS and FreeBSD are built and linted in CI; their channels have not run
//! here.
//!
//! ```no_run
//! let listener = ipckit::MessageListener::bind("pipe:msgs")?;
//! std::thread::spawn(move || -> ipckit::Result<()> {
//!     let server = listener.accept()?;
//!     while let Some(msg) = server.recv()? {
//!         server.send(&msg)?; // echo each message back whole
//!     }
//!     Ok(())
//! });
//! let client = ipckit::MessageStream::connect("pipe:msgs")?;
//! client.send(b"")?;
//! client.send(&vec![7; 1 << 20])?;
//! assert_eq!(client.recv()?, Some(vec![]));
//! assert_eq!(client.recv()?.map(|m| m.len()), Some(1 << 20));
//! # Ok::<(), ipckit::Error>(())
//! ```
//!
//! # One contract
//!
//! Whatever the transport, a channel keeps the same promises: a message
//! arrives whole or not at all, in order; an empty message is a message and
//! the end is `None`; an incoming message over the receiver's limit fails
//! with [`ErrorKind::FrameTooLarge`](crate::ErrorKind::FrameTooLarge) (see below); a timeout loses nothing;
//! a peer that goes away is the end (`None`), or [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected)
//! in the middle of a message. `shutdown` and `peer_credentials` are
//! [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) where the transport has no such thing.
//!
//! # Shared memory (`shm:NAME`)
//!
//! A shared-memory channel joins two processes, so a [`MessageListener`] at
//! `shm:NAME` hands each client a channel of its own through a rendezvous: a
//! message socket (Unix) or pipe (Windows) at the portable name `NAME.shm`,
//! owner-only and checked as every listener's ([`ListenerOptions::current_user_only`]
//! applies to it, and its peer's credentials are the channel's). For each
//! client it creates a region `NAME.<64 random bits>` (rings of
//! [`ListenerOptions::shm_capacity`] bytes), offers it, and waits up to 10 s
//! for the client to join; the client checks the region's owner as it checks
//! a server's user. From then on the messages go through the region, with
//! the wake-ups of [`ShmChannel`](crate::shm::ShmChannel); the rendezvous is
//! dropped. Differences from the other transports:
//!
//! - the channel knows the receiver's limit, so an oversized message is
//!   refused to its *sender* (nothing is sent) and the channel goes on;
//! - there is no half-close: `shutdown` is [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported); drop
//!   every handle to end the channel;
//! - the accept of a client that connects but never joins its region waits
//!   for it (up to 10 s) before the next client is accepted;
//! - the tokio face (`ipckit::tokio::MessageListener`, with the `tokio`
//!   feature) serves and joins `shm:` the same way, so either end may be
//!   blocking and the other async.
//!
//! A one-peer [`ShmListener`](crate::shm::ShmListener) at `shm:NAME` is
//! another thing (the region itself at that name): join it with
//! [`ShmChannel::connect`](crate::shm::ShmChannel::connect), not with a
//! `MessageStream`.
//!
//! # Empty messages
//!
//! An empty message is a message: `send(b"")` is delivered as `Some(vec![])`,
//! and the end of the channel is `None`. Per transport:
//!
//! - **Named pipes (Windows)**: a zero-length write is a message of its own, and
//!   ipckit delivers it. (go-winio reads one as EOF; .NET cannot send one.)
//! - **`SOCK_SEQPACKET` (Linux)**: an empty record is an empty message, from any
//!   peer. A read gives an empty record and the end of the channel the same form
//!   (0 bytes), so ipckit turns on `SO_PASSCRED`: every record then arrives with
//!   the sender's credentials attached, and the end with none. (On other Unix
//!   systems a 0-byte read counts as an empty message while the peer is
//!   connected, so an empty message sent just before the peer closes may read
//!   as the end.)
//! - **Frames (macOS)**: as for TCP below; the end of the channel is the end
//!   of the stream between two frames.
//! - **Frames (TCP, [`Framed`])**: a frame of length 0, as Python's
//!   `send_bytes(b"")` writes it.
//!
//! # Large messages
//!
//! Messages of any size up to the receiver's limit go whole. A named pipe
//! reassembles a message larger than its read buffer across `ERROR_MORE_DATA`.
//! A Linux `SOCK_SEQPACKET` record cannot exceed the socket's send buffer (208
//! KiB by default): the first time a message does not fit, ipckit raises the
//! buffer as far as `net.core.wmem_max` lets it, so records up to the kernel's
//! limit (about 4 MiB here) go as plain records that any peer (Python, Go,
//! socat) reads. A larger message goes to an ipckit peer through a sealed
//! `memfd` passed in one record; to a peer that is not ipckit, `send` fails
//! with [`ErrorKind::FrameTooLarge`](crate::ErrorKind::FrameTooLarge), naming the limit and the sysctl, and sends
//! nothing. The ends recognise each other without showing a foreign peer
//! anything; see `docs/PEERS.md` ("Large records and plain `SOCK_SEQPACKET`
//! peers") for the wire and for the wait a client makes before it knows its
//! server.
//! FreeBSD has `SOCK_SEQPACKET` too and passes large messages the same way
//! (its own `memfd_create`); on macOS, which has no `SOCK_SEQPACKET` for Unix
//! sockets, message channels are length-prefixed frames on a stream socket and
//! carry a message of any size up to the limit.
//!
//! # The maximum message size
//!
//! Each receiver has a limit ([`MessageStream::set_max_message_size`], default
//! 64 MiB). An incoming message over it fails `recv` with
//! [`ErrorKind::FrameTooLarge`](crate::ErrorKind::FrameTooLarge), naming both
//! sizes; no part of it is delivered. The channel then **receives no more**:
//! every later `recv` on it (and on its clones) fails with
//! [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected). Sending goes on, so the receiver can tell the
//! peer why before it drops the channel (as Python's `recv_bytes(maxlength)`
//! leaves a connection writable); the peer sees the end when the receiver's
//! last handle is dropped (on Unix its sends fail from the refusal on).
//!
//! # Timeouts on `SOCK_SEQPACKET`
//!
//! A receive with a read timeout or deadline 50 ms or more away waits in the
//! kernel's receive call, bounded by the socket's `SO_RCVTIMEO`, and the last
//! 20 ms in `poll` (whose timer is precise): ipckit sets the socket's
//! `SO_RCVTIMEO` a little below the nearest deadline it has met, once for a
//! fixed read timeout; a receive without a deadline that meets it just waits
//! again. Waiting in `poll` first (a `recvmsg` that finds nothing, then `poll`)
//! cost two system calls per message more (docs/BENCHMARKS.md).

pub(crate) mod conn;
pub(crate) mod frame;
mod framed;
mod options;
pub(crate) mod shm;
pub(crate) mod state;

use std::net::Shutdown;

pub use framed::Framed;

use self::conn::Conn;
use self::shm::ShmConn;
use self::state::State;
use crate::address::{Address, Endpoint, ToAddress};
use crate::error::{Error, Result};
use crate::limits::{AcceptBackoff, accept_through};
use crate::security::PeerCredentials;
use crate::stream::{ConnectOptions, Listener, ListenerOptions, Stream};
use crate::sys;
use crate::transport::{self, Either, Serving};

pub(crate) enum ListenerKind {
    Local(sys::MsgListener),
    Framed(Listener),
    /// `shm:NAME`: the rendezvous, the name, and the ring capacity of the
    /// channels it hands out (see `shm`).
    Shm {
        rendezvous: sys::MsgListener,
        name: String,
        capacity: usize,
    },
}

/// A server endpoint that accepts message channels.
///
/// This is a named pipe server in message mode on Windows, a listening
/// `SOCK_SEQPACKET` Unix socket on Linux and FreeBSD, a listening `SOCK_STREAM`
/// Unix socket whose connections carry length-prefixed frames on macOS, and a
/// TCP listener whose streams carry the same frames for `tcp:` addresses. A name is served by a byte
/// [`Listener`] or a `MessageListener`, not both: a client of the other kind is
/// refused.
///
/// # Examples
///
/// ```no_run
/// let mut opts = ipckit::ListenerOptions::new();
/// opts.max_message_size(1 << 20);
/// let listener = opts.bind_message("pipe:jobs")?;
/// for channel in listener.incoming() {
///     let channel = channel?;
///     std::thread::spawn(move || -> ipckit::Result<()> {
///         while let Some(job) = channel.recv()? {
///             channel.send(format!("{} bytes", job.len()).as_bytes())?;
///         }
///         Ok(())
///     });
/// }
/// # Ok::<(), ipckit::Error>(())
/// ```
///
/// # Platform-specific behavior
///
/// Binding follows [`Listener::bind`]: the same private directory and socket
/// file rules on Unix, and on Windows one instance always waiting for a client.
#[doc(alias = "PIPE_TYPE_MESSAGE")]
#[doc(alias = "SOCK_SEQPACKET")]
pub struct MessageListener {
    /// Read by the OS handle impls of [`os`](crate::os) too.
    pub(crate) inner: ListenerKind,
    serving: Serving,
    max: usize,
}

transport::listener_face! {
    /// Binds a message listener at `addr` with the default [`ListenerOptions`].
    ///
    /// # Errors
    ///
    /// The errors of [`Listener::bind`].
    MessageListener, bind_message, max
}

impl MessageListener {
    pub(crate) fn bind_with(addr: Address, opts: &ListenerOptions) -> Result<MessageListener> {
        let (ep, shm) = shm::listening(&addr, opts)?;
        let bound =
            transport::bind_at::<_, std::net::TcpListener>(addr, ep, opts, sys::MsgListener::bind)?;
        let inner = match (bound.inner, shm) {
            (Either::Local(rendezvous), Some((name, capacity))) => ListenerKind::Shm {
                rendezvous,
                name,
                capacity,
            },
            (Either::Local(l), None) => ListenerKind::Local(l),
            (Either::Tcp(l), _) => {
                ListenerKind::Framed(Listener::from_tcp(l, bound.serving.addr().clone()))
            }
        };
        Ok(MessageListener {
            inner,
            serving: bound.serving,
            max: opts.sys.max_message_size,
        })
    }

    /// Waits for the next client and returns its message channel.
    ///
    /// # Errors
    ///
    /// The OS error, with the address in the message; with
    /// [`ListenerOptions::current_user_only`], [`ErrorKind::PermissionDenied`](crate::ErrorKind::PermissionDenied)
    /// for a client of another user, as [`Listener::accept`].
    pub fn accept(&self) -> Result<MessageStream> {
        let local = |l: &sys::MsgListener| {
            let s = self.serving.accepted(l.accept())?;
            self.serving.verify(|| s.peer_credentials())?;
            Ok::<_, Error>(s)
        };
        let conn = match &self.inner {
            ListenerKind::Local(l) => Conn::Local(local(l)?),
            ListenerKind::Framed(l) => Conn::framed(l.accept()?),
            ListenerKind::Shm {
                rendezvous,
                name,
                capacity,
            } => {
                let s = local(rendezvous)?;
                let channel = self.serving.context(
                    "hand a channel to a client of",
                    shm::offer_channel(&s, name, *capacity, self.max),
                )?;
                Conn::Shm(Box::new(ShmConn {
                    channel,
                    peer: s.peer_credentials().ok(),
                }))
            }
        };
        Ok(MessageStream::new(
            conn,
            self.serving.addr().clone(),
            self.max,
        ))
    }

    /// An endless iterator over incoming message channels that rides out
    /// resource errors (out of file descriptors, say) with a pause, as
    /// [`Listener::incoming`] does; every other error is yielded.
    pub fn incoming(&self) -> IncomingMessages<'_> {
        IncomingMessages {
            listener: self,
            backoff: AcceptBackoff::new(),
        }
    }
}

/// The iterator returned by [`MessageListener::incoming`].
#[derive(Debug)]
pub struct IncomingMessages<'a> {
    listener: &'a MessageListener,
    backoff: AcceptBackoff,
}

impl Iterator for IncomingMessages<'_> {
    type Item = Result<MessageStream>;

    fn next(&mut self) -> Option<Result<MessageStream>> {
        let listener = self.listener;
        Some(accept_through(&mut self.backoff, || listener.accept()))
    }
}

/// A connected message channel: each [`send`](MessageStream::send) arrives as one
/// [`recv`](MessageStream::recv), whole, in order.
///
/// `send` and `recv` take `&self`, so one thread can receive while another sends.
/// [`try_clone`](MessageStream::try_clone) gives another handle to the same
/// channel with its own timeouts; receivers on several handles take turns, and
/// each message goes to exactly one of them, whole.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// let mut channel = ipckit::MessageStream::connect("pipe:jobs")?;
/// channel.set_read_timeout(Some(Duration::from_secs(5)))?;
/// channel.send(b"job 1")?;
/// match channel.recv()? {
///     Some(reply) => println!("{}", String::from_utf8_lossy(&reply)),
///     None => println!("the server closed the channel"),
/// }
/// # Ok::<(), ipckit::Error>(())
/// ```
///
/// # Timeouts and deadlines
///
/// As for [`Stream`]: a per-call timeout and a Go-style deadline for each
/// direction, bounding the whole message. A `recv` that runs out of time fails
/// with [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) and loses nothing: the part of a message that had
/// arrived is kept and the next `recv` finishes it. A `send` that runs out of time
/// has sent nothing — except on a framed byte stream (`tcp:`), where part of the
/// frame may already be out: then the message is committed, its rest goes out
/// first on the next `send`, and the peer never sees a torn message.
///
/// On Windows a message larger than the pipe's buffer is taken by the reader
/// while the write is still pending. A send timeout that cancels such a write
/// after the reader took its first part withdraws the rest: the reader's `recv`
/// then fails with [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) and closes the channel rather than
/// deliver a part (a message queued behind it of exactly the withdrawn size
/// cannot be told from the rest). Give large sends generous timeouts.
///
/// See the [module documentation](self) for empty messages, large messages and
/// the maximum message size.
pub struct MessageStream {
    /// Read by the OS handle impls of [`os`](crate::os) too.
    pub(crate) state: State<Conn>,
}

state::message_face!(MessageStream);

impl MessageStream {
    pub(crate) fn new(conn: Conn, peer: Address, max: usize) -> MessageStream {
        MessageStream {
            state: State::new(conn, peer, max),
        }
    }

    /// Connects a message channel to `addr` with the default [`ConnectOptions`].
    ///
    /// # Errors
    ///
    /// The errors of [`Stream::connect`]. Connecting to a name that a byte
    /// [`Listener`] serves fails with [`ErrorKind::Protocol`](crate::ErrorKind::Protocol), saying so.
    pub fn connect(addr: impl ToAddress) -> Result<MessageStream> {
        ConnectOptions::new().connect_message(addr)
    }

    pub(crate) fn connect_with(addr: Address, opts: &ConnectOptions) -> Result<MessageStream> {
        crate::registry::connect::connect_each(addr, opts, MessageStream::connect_one)
    }

    /// Connects to one address (not a `service:` name).
    fn connect_one(addr: Address, opts: &ConnectOptions) -> Result<MessageStream> {
        let connecting = transport::connecting_with(addr, opts, shm::endpoint)?;
        let rule = connecting.server_user.clone();
        let made = match &connecting.ep {
            Endpoint::Tcp { host, port } => {
                crate::transport::tcp::connect(host, *port, opts.config()).map(Either::Tcp)
            }
            ep => sys::MsgStream::connect(ep, opts.config()).map(Either::Local),
        };
        let (conn, addr) = connecting.finish(made, sys::MsgStream::peer_credentials)?;
        let conn = match (conn, &addr) {
            (Either::Local(s), Address::Shm(name)) => {
                let channel = shm::take_channel(&s, &addr, name, opts.max_message_size, &rule)?;
                Conn::Shm(Box::new(ShmConn {
                    channel,
                    peer: s.peer_credentials().ok(),
                }))
            }
            (Either::Local(s), _) => Conn::Local(s),
            (Either::Tcp(s), _) => Conn::framed(Stream::from_tcp(s, addr.clone())),
        };
        Ok(MessageStream::new(conn, addr, opts.max_message_size))
    }

    /// A message channel over a connected byte stream: each message a
    /// length-prefixed frame, as over `tcp:` (and as Python's
    /// `multiprocessing.connection` frames its messages on any pipe or
    /// socket), with the promises of every message channel: whole messages,
    /// the maximum message size (64 MiB to start with), timeouts that lose
    /// nothing, a frame cut short by a timed-out send finished first on the
    /// next. The stream's own timeouts are not used: set the channel's.
    ///
    /// ```no_run
    /// // A Python `multiprocessing.connection.Listener` on a Unix socket.
    /// let stream = ipckit::Stream::connect("unix:/tmp/py.sock")?;
    /// let channel = ipckit::MessageStream::from_stream(stream);
    /// channel.send(b"hello")?;
    /// # Ok::<(), ipckit::Error>(())
    /// ```
    pub fn from_stream(stream: Stream) -> MessageStream {
        let peer = stream.peer_addr().clone();
        MessageStream::new(
            Conn::framed(stream),
            peer,
            crate::limits::DEFAULT_MAX_MESSAGE_SIZE,
        )
    }

    /// Which process and user is on the other end, as
    /// [`Stream::peer_credentials`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) on `tcp:` channels; otherwise the OS error.
    #[doc(alias = "SO_PEERCRED")]
    pub fn peer_credentials(&self) -> Result<PeerCredentials> {
        self.state.conn().peer_credentials(&self.state.peer)
    }

    /// Sends `msg` as one message.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) when the write timeout or deadline passes (see the
    /// type's docs for what was sent), [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected) when the peer
    /// has gone or the channel was closed, [`ErrorKind::FrameTooLarge`](crate::ErrorKind::FrameTooLarge) for a
    /// message over the kernel's `SOCK_SEQPACKET` record limit to a peer that is
    /// not ipckit (nothing is sent; see "Large messages" in the module docs),
    /// and the OS error otherwise.
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        let state = &self.state;
        state.sent(state.conn().send(msg, state.lim.write.until()))
    }

    /// Receives the next message; `None` when the peer has closed the channel.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) when the read timeout or deadline passes (nothing
    /// is lost), [`ErrorKind::FrameTooLarge`](crate::ErrorKind::FrameTooLarge) for a message over the maximum
    /// message size (the channel is then closed), [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) when a
    /// framed peer breaks the framing, and the OS error otherwise.
    pub fn recv(&self) -> Result<Option<Vec<u8>>> {
        let mut msg = Vec::new();
        Ok(self.recv_into(&mut msg)?.then_some(msg))
    }

    /// Receives the next message into `buf`, replacing its contents and reusing
    /// its allocation; `false` when the peer has closed the channel.
    ///
    /// # Errors
    ///
    /// As for [`recv`](MessageStream::recv). On an error `buf` is left empty.
    pub fn recv_into(&self, buf: &mut Vec<u8>) -> Result<bool> {
        buf.clear();
        let state = &self.state;
        state.check_open()?;
        let got = state.conn().recv(buf, state.max, state.lim.read.until());
        if got.is_err() {
            buf.clear();
        }
        state.received(got)
    }

    /// Shuts down the receiving half, the sending half, or both, for this
    /// handle and every clone of it. After `Shutdown::Read` every `recv`, the
    /// one waiting now included, returns `None` (the end): one thread can
    /// wake another that waits in `recv`, with no read timeout to poll.
    ///
    /// # Errors
    ///
    /// The OS error, and [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) where the channel has no
    /// such half-close.
    ///
    /// # Platform-specific behavior
    ///
    /// ### Unix
    ///
    /// `shutdown(2)` on the socket: after `Write` the peer's `recv` finds the
    /// end once it has taken what was sent; after `Read` the peer's sends fail
    /// on a Unix socket (not on TCP).
    ///
    /// ### Windows
    ///
    /// A named pipe has no half-close: `Read` ends the receives of this
    /// process's handles only (the peer is not told); `Write` and `Both` fail
    /// with [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported): drop every handle to close the channel.
    /// Over `tcp:` this is Winsock's `shutdown`, which does not end a receive
    /// that is already waiting.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        self.state.conn().shutdown(how, &self.state.peer)
    }
}
