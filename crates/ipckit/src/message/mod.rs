//! Message channels: [`MessageListener`] and [`MessageStream`] carry whole
//! messages, boundaries kept, over the native message transport of each OS.
//!
//! | address | Windows | Linux | elsewhere |
//! |---|---|---|---|
//! | `pipe:NAME`, `\\.\pipe\NAME`, `unix:/path`, `@NAME` | named pipe in message mode (`PIPE_TYPE_MESSAGE` + `PIPE_READMODE_MESSAGE`) | `SOCK_SEQPACKET` Unix socket | `SOCK_SEQPACKET` where the OS has it |
//! | `tcp:HOST:PORT` | length-prefixed frames | length-prefixed frames | length-prefixed frames |
//!
//! The frames are those of Python's `multiprocessing.connection`: a 4-byte
//! big-endian length, or −1 and an 8-byte length for a message over 2^31 − 1
//! bytes, then the message. [`Framed`] puts the same frames on any byte stream
//! you hand it.
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
//! - **Frames (TCP, [`Framed`])**: a frame of length 0, as Python's
//!   `send_bytes(b"")` writes it.
//!
//! # Large messages
//!
//! Messages of any size up to the receiver's limit go whole. A named pipe
//! reassembles a message larger than its read buffer across `ERROR_MORE_DATA`.
//! A Linux `SOCK_SEQPACKET` record cannot exceed the socket's send buffer (about
//! 208 KiB by default, at most twice `net.core.wmem_max`); a larger message is
//! written to a sealed `memfd` and passed whole as one record carrying the file
//! descriptor, which the receiving ipckit reads back. (A non-ipckit
//! `SOCK_SEQPACKET` peer cannot send or receive records that large either.)
//!
//! # The maximum message size
//!
//! Each receiver has a limit ([`MessageStream::set_max_message_size`], default
//! 64 MiB). An incoming message over it fails `recv` with
//! [`ErrorKind::FrameTooLarge`], naming both
//! sizes; no part of it is delivered. The channel then **receives no more**:
//! every later `recv` on it (and on its clones) fails with
//! [`ErrorKind::Disconnected`]. Sending goes on, so the receiver can tell the
//! peer why before it drops the channel (as Python's `recv_bytes(maxlength)`
//! leaves a connection writable); the peer sees the end when the receiver's
//! last handle is dropped (on Unix its sends fail from the refusal on).

pub(crate) mod frame;
mod framed;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use framed::Framed;

use self::frame::{FrameReader, FrameWriter};
use crate::address::{Address, Endpoint, ToAddress};
use crate::error::{Error, ErrorKind, Result, breaks_channel};
use crate::limits::Deadlines;
use crate::limits::{AcceptBackoff, accept_through, check_max_message_size};
use crate::security::{self, PeerCredentials};
use crate::stream::core::{self, Either};
use crate::stream::{ConnectOptions, Listener, ListenerOptions, Stream};
use crate::sync::lock;
use crate::sys;

enum ListenerKind {
    Local(sys::MsgListener),
    Framed(Listener),
}

/// A server endpoint that accepts message channels.
///
/// This is a named pipe server in message mode on Windows, a listening
/// `SOCK_SEQPACKET` Unix socket on Linux, and a TCP listener whose streams carry
/// length-prefixed frames for `tcp:` addresses. A name is served by a byte
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
    inner: ListenerKind,
    addr: Address,
    max: usize,
    current_user_only: bool,
}

impl fmt::Debug for MessageListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageListener")
            .field("addr", &self.addr)
            .field("max_message_size", &self.max)
            .finish_non_exhaustive()
    }
}

impl MessageListener {
    /// Binds a message listener at `addr` with the default [`ListenerOptions`].
    ///
    /// # Errors
    ///
    /// The errors of [`Listener::bind`].
    pub fn bind(addr: impl ToAddress) -> Result<MessageListener> {
        ListenerOptions::new().bind_message(addr)
    }

    fn bind_with(addr: Address, opts: &ListenerOptions) -> Result<MessageListener> {
        let bound = core::bind::<_, std::net::TcpListener>(addr, opts, sys::MsgListener::bind)?;
        let inner = match bound.inner {
            Either::Local(l) => ListenerKind::Local(l),
            Either::Tcp(l) => ListenerKind::Framed(Listener::from_tcp(l, bound.addr.clone())),
        };
        Ok(MessageListener {
            inner,
            addr: bound.addr,
            max: opts.sys.max_message_size,
            current_user_only: bound.current_user_only,
        })
    }

    /// Waits for the next client and returns its message channel.
    ///
    /// # Errors
    ///
    /// The OS error, with the address in the message; with
    /// [`ListenerOptions::current_user_only`], [`ErrorKind::PermissionDenied`]
    /// for a client of another user, as [`Listener::accept`].
    pub fn accept(&self) -> Result<MessageStream> {
        let conn = match &self.inner {
            ListenerKind::Local(l) => {
                let s = l
                    .accept()
                    .map_err(|e| Error::io(format!("accept on {}", self.addr), e))?;
                security::verify_client(self.current_user_only, &self.addr, || {
                    s.peer_credentials()
                })?;
                Conn::Local(s)
            }
            ListenerKind::Framed(l) => Conn::framed(l.accept()?),
        };
        Ok(MessageStream::new(conn, self.addr.clone(), self.max))
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

    /// The address this listener serves; for `tcp:` with port 0, the port the OS
    /// chose.
    pub fn local_addr(&self) -> &Address {
        &self.addr
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

/// A byte stream carrying length-prefixed frames, and the state of the frame
/// each direction is in the middle of.
struct FramedConn {
    stream: Stream,
    reader: Mutex<FrameReader>,
    writer: Mutex<FrameWriter>,
}

enum Conn {
    Local(sys::MsgStream),
    Framed(Box<FramedConn>),
}

impl Conn {
    fn framed(stream: Stream) -> Conn {
        Conn::Framed(Box::new(FramedConn {
            stream,
            reader: Mutex::default(),
            writer: Mutex::default(),
        }))
    }
}

/// One call's view of a byte stream: every read and write gives up at `limit`.
struct Bounded<'a> {
    stream: &'a Stream,
    limit: Option<Instant>,
}

impl Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read_limited(buf, self.limit)
    }
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write_limited(buf, self.limit)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The connection every clone of a [`MessageStream`] shares.
struct Shared {
    conn: Conn,
    /// Why the channel was closed (an oversized message), once it was.
    closed: OnceLock<String>,
}

impl Shared {
    fn send(&self, msg: &[u8], limit: Option<Instant>) -> io::Result<()> {
        match &self.conn {
            Conn::Local(s) => s.send(msg, limit),
            Conn::Framed(f) => lock(&f.writer).write_to(
                &mut Bounded {
                    stream: &f.stream,
                    limit,
                },
                msg,
            ),
        }
    }

    fn recv(&self, out: &mut Vec<u8>, max: usize, limit: Option<Instant>) -> io::Result<bool> {
        match &self.conn {
            Conn::Local(s) => s.recv(out, max, limit),
            Conn::Framed(f) => lock(&f.reader).read_from(
                &mut Bounded {
                    stream: &f.stream,
                    limit,
                },
                max,
                out,
            ),
        }
    }

    /// Receives no more after a message that put the channel out of step
    /// (an oversized one); sending goes on, so the receiver can tell the peer
    /// why before it drops the channel.
    fn close(&self, why: String) {
        let _ = self.closed.set(why);
        match &self.conn {
            Conn::Local(s) => drop(s.shutdown(Shutdown::Read)),
            Conn::Framed(f) => drop(f.stream.shutdown(Shutdown::Read)),
        }
    }

    fn check_open(&self, peer: &Address) -> Result<()> {
        match self.closed.get() {
            None => Ok(()),
            Some(why) => Err(Error::new(
                ErrorKind::Disconnected,
                format!("the message channel to {peer} is closed: {why}"),
            )),
        }
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
/// with [`ErrorKind::TimedOut`] and loses nothing: the part of a message that had
/// arrived is kept and the next `recv` finishes it. A `send` that runs out of time
/// has sent nothing — except on a framed byte stream (`tcp:`), where part of the
/// frame may already be out: then the message is committed, its rest goes out
/// first on the next `send`, and the peer never sees a torn message.
///
/// On Windows a message larger than the pipe's buffer is taken by the reader
/// while the write is still pending. A send timeout that cancels such a write
/// after the reader took its first part withdraws the rest: the reader's `recv`
/// then fails with [`ErrorKind::Protocol`] and closes the channel rather than
/// deliver a part (a message queued behind it of exactly the withdrawn size
/// cannot be told from the rest). Give large sends generous timeouts.
///
/// See the [module documentation](self) for empty messages, large messages and
/// the maximum message size.
pub struct MessageStream {
    shared: Arc<Shared>,
    peer: Address,
    lim: Deadlines,
    max: usize,
}

impl fmt::Debug for MessageStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageStream")
            .field("peer", &self.peer)
            .field("read", &self.lim.read)
            .field("write", &self.lim.write)
            .field("max_message_size", &self.max)
            .finish_non_exhaustive()
    }
}

impl MessageStream {
    fn new(conn: Conn, peer: Address, max: usize) -> MessageStream {
        MessageStream {
            shared: Arc::new(Shared {
                conn,
                closed: OnceLock::new(),
            }),
            peer,
            lim: Deadlines::default(),
            max,
        }
    }

    /// Connects a message channel to `addr` with the default [`ConnectOptions`].
    ///
    /// # Errors
    ///
    /// The errors of [`Stream::connect`]. Connecting to a name that a byte
    /// [`Listener`] serves fails with [`ErrorKind::Protocol`], saying so.
    pub fn connect(addr: impl ToAddress) -> Result<MessageStream> {
        ConnectOptions::new().connect_message(addr)
    }

    fn connect_with(addr: Address, opts: &ConnectOptions) -> Result<MessageStream> {
        let connecting = core::connecting(addr, opts)?;
        let made = match &connecting.ep {
            Endpoint::Tcp { host, port } => {
                crate::stream::connect_tcp(host, *port, opts.config()).map(Either::Tcp)
            }
            ep => sys::MsgStream::connect(ep, opts.config()).map(Either::Local),
        };
        let (conn, addr) = connecting.finish(made, sys::MsgStream::peer_credentials)?;
        let conn = match conn {
            Either::Local(s) => Conn::Local(s),
            Either::Tcp(s) => Conn::framed(Stream::from_tcp(s, addr.clone())),
        };
        Ok(MessageStream::new(conn, addr, opts.max_message_size))
    }

    /// Which process and user is on the other end, as
    /// [`Stream::peer_credentials`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] on `tcp:` channels; otherwise the OS error.
    #[doc(alias = "SO_PEERCRED")]
    pub fn peer_credentials(&self) -> Result<PeerCredentials> {
        match &self.shared.conn {
            Conn::Local(s) => security::credentials(s.peer_credentials(), &self.peer),
            Conn::Framed(f) => f.stream.peer_credentials(),
        }
    }

    /// Sends `msg` as one message.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TimedOut`] when the write timeout or deadline passes (see the
    /// type's docs for what was sent), [`ErrorKind::Disconnected`] when the peer
    /// has gone or the channel was closed, and the OS error otherwise.
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        self.shared
            .send(msg, self.lim.write.until())
            .map_err(|e| Error::io(format!("send a message to {}", self.peer), e))
    }

    /// Receives the next message; `None` when the peer has closed the channel.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TimedOut`] when the read timeout or deadline passes (nothing
    /// is lost), [`ErrorKind::FrameTooLarge`] for a message over the maximum
    /// message size (the channel is then closed), [`ErrorKind::Protocol`] when a
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
        self.shared.check_open(&self.peer)?;
        match self.shared.recv(buf, self.max, self.lim.read.until()) {
            Ok(more) => Ok(more),
            Err(e) => {
                buf.clear();
                let broken = breaks_channel(&e);
                let err = Error::io(format!("receive a message from {}", self.peer), e);
                // Out of step with the peer from here on: close, never go on.
                if broken {
                    self.shared.close(err.to_string());
                }
                Err(err)
            }
        }
    }

    /// The address this channel was connected to, or accepted on.
    pub fn peer_addr(&self) -> &Address {
        &self.peer
    }

    /// The largest incoming message this handle accepts.
    pub fn max_message_size(&self) -> usize {
        self.max
    }

    /// Sets the largest incoming message this handle accepts (default 64 MiB, or
    /// the option the listener or connection was made with).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] for 0.
    pub fn set_max_message_size(&mut self, bytes: usize) -> Result<()> {
        check_max_message_size(bytes)?;
        self.max = bytes;
        Ok(())
    }

    /// Bounds every later `recv` to `timeout` (None: no bound).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] for a zero duration.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.lim.set_read_timeout(timeout)
    }

    /// Bounds every later `send` to `timeout` (None: no bound).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] for a zero duration.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.lim.set_write_timeout(timeout)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.lim.read.timeout
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.lim.write.timeout
    }

    /// Sets both the read and the write deadline (Go's `SetDeadline`).
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.lim.set_deadline(deadline);
    }

    /// An absolute time after which `recv` fails with `TimedOut` until the
    /// deadline is moved. A deadline in the past fails at once.
    pub fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        self.lim.read.deadline = deadline;
    }

    /// An absolute time after which `send` fails with `TimedOut`.
    pub fn set_write_deadline(&mut self, deadline: Option<Instant>) {
        self.lim.write.deadline = deadline;
    }

    /// Shuts down the receiving half, the sending half, or both, for this
    /// handle and every clone of it. After `Shutdown::Read` every `recv`, the
    /// one waiting now included, returns `None` (the end): one thread can
    /// wake another that waits in `recv`, with no read timeout to poll.
    ///
    /// # Errors
    ///
    /// The OS error, and [`ErrorKind::Unsupported`] where the channel has no
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
    /// with [`ErrorKind::Unsupported`]: drop every handle to close the channel.
    /// Over `tcp:` this is Winsock's `shutdown`, which does not end a receive
    /// that is already waiting.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        match &self.shared.conn {
            Conn::Local(s) => s.shutdown(how),
            Conn::Framed(f) => return f.stream.shutdown(how),
        }
        .map_err(|e| Error::io(format!("shut down the message channel to {}", self.peer), e))
    }

    /// Another handle to the same channel, with this one's timeouts, deadlines
    /// and maximum message size to start with.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for transports that must duplicate
    /// an OS handle.
    pub fn try_clone(&self) -> Result<MessageStream> {
        Ok(MessageStream {
            shared: Arc::clone(&self.shared),
            peer: self.peer.clone(),
            lim: self.lim,
            max: self.max,
        })
    }
}

impl ListenerOptions {
    /// Binds a [`MessageListener`] at `addr` with these options.
    ///
    /// # Errors
    ///
    /// See [`ListenerOptions::bind`]; also [`ErrorKind::InvalidOption`] for a
    /// maximum message size of 0.
    pub fn bind_message(&self, addr: impl ToAddress) -> Result<MessageListener> {
        self.check()?;
        MessageListener::bind_with(addr.to_address()?, self)
    }
}

impl ConnectOptions {
    /// Connects a [`MessageStream`] to `addr` with these options.
    ///
    /// # Errors
    ///
    /// See [`MessageStream::connect`]; also [`ErrorKind::InvalidOption`] for a
    /// maximum message size of 0.
    pub fn connect_message(&self, addr: impl ToAddress) -> Result<MessageStream> {
        check_max_message_size(self.max_message_size)?;
        MessageStream::connect_with(addr.to_address()?, self)
    }
}
