//! Async byte streams on tokio: a [`Listener`] and a [`Stream`] with the
//! semantics of the blocking [`crate::Listener`] and [`crate::Stream`].
//!
//! Available with the `tokio` feature. They are built on tokio's own types —
//! `NamedPipeServer`/`NamedPipeClient` on Windows, `UnixListener`/`UnixStream` on
//! Unix, `TcpListener`/`TcpStream` for `tcp:` addresses — and so must be used
//! inside a tokio runtime with I/O and time enabled (`#[tokio::main]`, or a
//! `Builder` with `enable_all`).
//!
//! ```no_run
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = ipckit::tokio::Listener::bind("pipe:hello")?;
//! tokio::spawn(async move {
//!     let mut s = listener.accept().await?;
//!     let mut buf = [0; 5];
//!     s.read_exact(&mut buf).await?;
//!     s.write_all(&buf).await?;
//!     Ok::<_, std::io::Error>(())
//! });
//! let mut client = ipckit::tokio::Stream::connect("pipe:hello").await?;
//! client.write_all(b"hello").await?;
//! let mut back = [0; 5];
//! client.read_exact(&mut back).await?;
//! assert_eq!(&back, b"hello");
//! # Ok(()) }
//! ```
//!
//! # Options
//!
//! The blocking builders finish into the async types too:
//! [`ListenerOptions::bind_tokio`] and [`ConnectOptions::connect_tokio`].
//!
//! # Cancel safety
//!
//! - [`Listener::accept`] is cancel safe: a dropped accept future (a lost
//!   `select!` branch, an expired `tokio::time::timeout`) loses no client, and the
//!   next `accept` returns the client that connected meanwhile.
//! - Reading and writing are cancel safe as tokio's own streams are: a dropped
//!   `read` consumed no bytes and a dropped `write` wrote none. (Composite
//!   operations such as `read_exact` and `write_all` are not, as in tokio.)
//! - [`Stream::connect`] may be dropped at any await: the attempt is abandoned and
//!   a connection it had already made is closed, so the server may see a client
//!   that connects and closes at once.
//!
//! # Timeouts and deadlines
//!
//! Reads and writes can be bounded by a per-operation timeout
//! ([`Stream::set_read_timeout`]) and by an absolute deadline
//! ([`Stream::set_read_deadline`], Go's `SetReadDeadline`). They are enforced
//! inside `poll_read` / `poll_write` with a tokio `Sleep`, so every `AsyncRead` /
//! `AsyncWrite` user (`read_exact`, `copy`, codecs) is bounded too. An operation
//! that runs out of time fails with [`io::ErrorKind::TimedOut`], loses no data,
//! and the stream stays usable: move the deadline (or just call again, for a
//! timeout) and go on.
//!
//! A timeout counts from the first poll of an operation to the poll that finishes
//! it. A read (or write) future dropped before it finishes leaves that clock
//! running, and the next read continues it; so in a `select!` loop a read timeout
//! bounds the time without data, not each loop turn. Setting a timeout or a
//! deadline restarts the clock.

pub mod child;
pub(crate) mod child_json;
mod framed;
mod limit;
mod mailslot;
pub(crate) mod message;
pub(crate) mod message_shm;
pub mod shm;
mod timed;
#[cfg(feature = "tonic")]
pub mod tonic;

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ::tokio::net::{TcpListener, TcpStream, tcp};

use self::limit::timed_out;
use self::timed::{Timed, forward_async_io};
use crate::address::{Address, Endpoint, ToAddress};
use crate::error::{Error, ErrorKind, Result};
use crate::options::applies::Kind;
use crate::options::{ConnectOptions, ListenerOptions};
use crate::plain::{ConnectConfig, RetrySchedule, deadline};
use crate::security::{self, PeerCredentials, ServerUser};
use crate::sys;
use crate::transport::{self, Either, Serving, TcpBind};

pub use framed::Framed;
pub use mailslot::MailslotReceiver;
pub use message::{MessageListener, MessageStream};

/// Refuses to go on outside a tokio runtime (where tokio's types would panic).
fn in_runtime(what: impl fmt::Display) -> Result<()> {
    match ::tokio::runtime::Handle::try_current() {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::new(
            ErrorKind::Unsupported,
            format!("{what}: ipckit::tokio types need a tokio runtime, and none is running here"),
        )),
    }
}

type ListenerKind = Either<sys::tokio::Listener, TcpListener>;

/// An async server endpoint that accepts byte-stream connections: the async
/// form of [`crate::Listener`].
///
/// This corresponds to tokio's `NamedPipeServer` (`CreateNamedPipeW` +
/// `ConnectNamedPipe`) on Windows, `UnixListener` on Unix, and `TcpListener` for
/// `tcp:` addresses.
///
/// # Examples
///
/// ```no_run
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main] async fn main() -> Result<(), ipckit::Error> {
/// let listener = ipckit::tokio::Listener::bind("pipe:echo")?;
/// loop {
///     let mut stream = listener.accept().await?;
///     tokio::spawn(async move {
///         let mut buf = vec![0; 4096];
///         loop {
///             let n = stream.read(&mut buf).await?;
///             if n == 0 {
///                 return Ok::<_, std::io::Error>(());
///             }
///             stream.write_all(&buf[..n]).await?;
///         }
///     });
/// }
/// # }
/// ```
///
/// # Platform-specific behavior
///
/// ### Unix
///
/// Binding is done by the blocking layer, so everything said under
/// [`crate::Listener`] holds: a portable name is a socket file (mode 0600) in a
/// private directory (mode 0700), a stale file is replaced, a live listener's
/// file is [`ErrorKind::AddrInUse`], and dropping the listener removes its file.
///
/// ### Windows
///
/// The first pipe instance is created with `FILE_FLAG_FIRST_PIPE_INSTANCE`,
/// remote clients are rejected, and one instance always waits for a client,
/// including between two calls to `accept`.
#[doc(alias = "CreateNamedPipeW")]
pub struct Listener {
    /// Read by the OS handle impls of [`os`](crate::os) too.
    pub(crate) inner: ListenerKind,
    serving: Serving,
}

transport::listener_face! {
    /// Binds an async listener at `addr` with the default [`ListenerOptions`].
    ///
    /// Binding does not wait, so this is not `async`; it must be called inside a
    /// tokio runtime, where the listener registers with the reactor. For options,
    /// use [`ListenerOptions::bind_tokio`].
    ///
    /// # Errors
    ///
    /// The errors of [`crate::Listener::bind`], and [`ErrorKind::Unsupported`]
    /// when no tokio runtime is running on this thread.
    ///
    /// # Panics
    ///
    /// Inside a tokio runtime whose I/O driver is disabled, as tokio's own
    /// `from_std` constructors do.
    Listener, bind_tokio
}

impl TcpBind for TcpListener {
    fn bind_tcp(host: &str, port: u16) -> io::Result<TcpListener> {
        let std = std::net::TcpListener::bind((host, port))?;
        std.set_nonblocking(true)?;
        TcpListener::from_std(std)
    }

    fn bound_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.local_addr()
    }
}

impl Listener {
    fn bind_with(addr: Address, opts: &ListenerOptions) -> Result<Listener> {
        in_runtime(format!("bind {addr}"))?;
        let transport::Bound { inner, serving } =
            transport::bind::<_, TcpListener>(addr, opts, sys::tokio::Listener::bind)?;
        Ok(Listener { inner, serving })
    }

    /// Waits for the next client and returns the connected stream.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe. If the future is dropped before it completes
    /// (another `select!` branch won, a `tokio::time::timeout` expired), no client
    /// is lost and the listener stays usable: a client that connected meanwhile is
    /// returned by the next call. On Windows the waiting pipe instance and its
    /// pending `ConnectNamedPipe` stay in place; concurrent calls take turns on it.
    ///
    /// # Errors
    ///
    /// The OS error, with the address in the message; with
    /// [`ListenerOptions::current_user_only`], [`ErrorKind::PermissionDenied`]
    /// for a client of another user, as [`crate::Listener::accept`].
    #[doc(alias = "ConnectNamedPipe")]
    pub async fn accept(&self) -> Result<Stream> {
        let io = self.serving.accepted(match &self.inner {
            ListenerKind::Local(l) => l.accept().await.map(StreamIo::Local),
            ListenerKind::Tcp(l) => l.accept().await.map(|(s, _)| StreamIo::Tcp(s)),
        })?;
        if let StreamIo::Local(s) = &io {
            self.serving.verify(|| sys::tokio::peer_credentials(s))?;
        }
        Ok(Stream::new(io, self.serving.addr().clone()))
    }
}

impl ListenerOptions {
    /// Binds an async [`ipckit::tokio::Listener`](Listener) at `addr` with these
    /// options (the `tokio` feature). Like [`Listener::bind`], it must be called
    /// inside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), ipckit::Error> {
    /// let listener = ipckit::ListenerOptions::new()
    ///     .current_user_only(true)
    ///     .bind_tokio("pipe:app")?;
    /// let stream = listener.accept().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// See [`ListenerOptions::bind`] and [`Listener::bind`].
    ///
    /// # Panics
    ///
    /// See [`Listener::bind`].
    pub fn bind_tokio(&self, addr: impl ToAddress) -> Result<Listener> {
        let addr = addr.to_address()?;
        self.check_for(Kind::stream(&addr), &addr)?;
        Listener::bind_with(addr, self)
    }
}

impl ConnectOptions {
    /// Connects an async [`ipckit::tokio::Stream`](Stream) to `addr` with these
    /// options (the `tokio` feature): the timeout bounds the whole connect,
    /// retries included, and `retry_not_found` keeps trying while nobody listens.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # #[tokio::main] async fn main() -> Result<(), ipckit::Error> {
    /// let stream = ipckit::ConnectOptions::new()
    ///     .timeout(Duration::from_secs(2))
    ///     .retry_not_found(true)
    ///     .connect_tokio("pipe:app")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the attempt; a connection it had already made
    /// is closed.
    ///
    /// # Errors
    ///
    /// See [`Stream::connect`].
    pub async fn connect_tokio(&self, addr: impl ToAddress) -> Result<Stream> {
        let addr = addr.to_address()?;
        self.check_for(Kind::stream(&addr), &addr)?;
        in_runtime(format!("connect to {addr}"))?;
        crate::registry::tokio::connect_each(addr, self, async |addr, opts| {
            let (io, addr, _) = connect_one(
                addr,
                opts,
                transport::resolve,
                sys::tokio::connect,
                sys::tokio::peer_credentials,
            )
            .await?;
            Ok(Stream::new(io, addr))
        })
        .await
    }
}

/// Connects to one address (not a `service:` name) as both tokio faces do:
/// to the endpoint `resolve` finds for it, over TCP or with `local`; a local
/// server's user is checked with `creds`. Also gives the rule the server's
/// user was checked with (for what the caller opens next).
pub(super) async fn connect_one<L>(
    addr: Address,
    opts: &ConnectOptions,
    resolve: fn(&Address) -> Result<Endpoint>,
    local: impl AsyncFnOnce(&Endpoint, &ConnectConfig) -> io::Result<L>,
    creds: impl FnOnce(&L) -> io::Result<PeerCredentials>,
) -> Result<(Either<L, TcpStream>, Address, ServerUser)> {
    let connecting = transport::connecting_with(addr, opts, resolve)?;
    let rule = connecting.server_user.clone();
    let made = match &connecting.ep {
        Endpoint::Tcp { host, port } => connect_tcp(host, *port, opts.config())
            .await
            .map(Either::Tcp),
        ep => local(ep, opts.config()).await.map(Either::Local),
    };
    let (conn, addr) = connecting.finish(made, creds)?;
    Ok((conn, addr, rule))
}

/// Connects over TCP, trying each address the host resolves to, all within the
/// connect timeout; with `retry_not_found`, again while nobody listens, as the
/// blocking face does (the rule and the pauses are the core's).
async fn connect_tcp(host: &str, port: u16, opts: &ConnectConfig) -> io::Result<TcpStream> {
    let limit = deadline(opts.timeout);
    let mut pauses = RetrySchedule::until(limit);
    loop {
        let attempt = connect_tcp_once(host, port);
        let tried = match limit {
            None => attempt.await,
            Some(limit) => ::tokio::time::timeout_at(limit.into(), attempt)
                .await
                .unwrap_or_else(|_| Err(timed_out("connect"))),
        };
        match tried {
            Err(e) if transport::retry_tcp(opts, &e) => match pauses.next() {
                Some(pause) => ::tokio::time::sleep(pause).await,
                None => return Err(transport::tcp_gave_up()),
            },
            other => return other,
        }
    }
}

/// One try at every address the host resolves to.
async fn connect_tcp_once(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = None;
    for sa in ::tokio::net::lookup_host((host, port)).await? {
        match TcpStream::connect(sa).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(transport::no_address))
}

type StreamIo = Either<sys::tokio::Stream, TcpStream>;

/// A connected async byte stream: the async form of [`crate::Stream`].
///
/// It implements tokio's [`AsyncRead`](::tokio::io::AsyncRead) and
/// [`AsyncWrite`](::tokio::io::AsyncWrite). Reads and writes can
/// be bounded by a per-operation timeout and by Go-style deadlines (see the
/// [module docs](self#timeouts-and-deadlines)); an operation that runs out of
/// time fails with [`io::ErrorKind::TimedOut`], loses no data, and the stream
/// stays usable. [`into_split`](Stream::into_split) gives owned halves for
/// reading in one task while writing in another.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut stream = ipckit::tokio::Stream::connect("pipe:echo").await?;
/// stream.set_read_timeout(Some(Duration::from_secs(5)))?;
/// stream.write_all(b"hello").await?;
/// let mut buf = [0; 5];
/// stream.read_exact(&mut buf).await?;
/// # Ok(()) }
/// ```
///
/// # Platform-specific behavior
///
/// ### Unix
///
/// `AsyncWriteExt::shutdown` half-closes the stream (`shutdown(SHUT_WR)`): the
/// peer reads EOF, and this side can still read.
///
/// ### Windows
///
/// Named pipes have no half-close: `shutdown` fails with
/// [`io::ErrorKind::Unsupported`] (as [`crate::Stream::shutdown`] does) and the
/// stream stays usable. Drop the stream — every half of it — to give the peer EOF.
/// TCP streams half-close on every OS.
pub struct Stream {
    /// Read by the OS handle impls of [`os`](crate::os) too.
    pub(crate) inner: Timed<StreamIo>,
    peer: Address,
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("peer", &self.peer)
            .field("read", &self.inner.read)
            .field("write", &self.inner.write)
            .finish_non_exhaustive()
    }
}

impl Stream {
    fn new(io: StreamIo, peer: Address) -> Stream {
        Stream {
            inner: Timed::new(io),
            peer,
        }
    }

    /// Connects to `addr` with the default [`ConnectOptions`]; for a timeout or
    /// retries use [`ConnectOptions::connect_tokio`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the attempt; a connection it had already made
    /// is closed.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when nobody listens at the address,
    /// [`ErrorKind::TimedOut`] when the connect timeout passes (a busy Windows
    /// pipe is retried until then; without a timeout, until an instance is free),
    /// [`ErrorKind::Unsupported`] outside a tokio runtime, and the address errors
    /// of [`crate::Listener::bind`].
    pub async fn connect(addr: impl ToAddress) -> Result<Stream> {
        ConnectOptions::new().connect_tokio(addr).await
    }

    /// The address this stream was connected to, or accepted on.
    pub fn peer_addr(&self) -> &Address {
        &self.peer
    }

    /// Which process and user is on the other end, as
    /// [`crate::Stream::peer_credentials`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] on `tcp:` streams; otherwise the OS error.
    #[doc(alias = "SO_PEERCRED")]
    pub fn peer_credentials(&self) -> Result<PeerCredentials> {
        match &self.inner.io {
            StreamIo::Local(s) => {
                security::credentials(sys::tokio::peer_credentials(s), &self.peer)
            }
            StreamIo::Tcp(_) => Err(crate::transport::tcp::no_credentials(&self.peer)),
        }
    }

    /// Bounds every later read to `timeout` (None: no bound).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] for a zero duration.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.inner.set_read_timeout(timeout)
    }

    /// Bounds every later write to `timeout` (None: no bound).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] for a zero duration.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.inner.set_write_timeout(timeout)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.inner.read.timeout()
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.inner.write.timeout()
    }

    /// Sets both the read and the write deadline (Go's `SetDeadline`).
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.inner.set_deadline(deadline);
    }

    /// An absolute time after which reads fail with `TimedOut` until the deadline
    /// is moved (Go's `SetReadDeadline`). A deadline in the past fails reads at
    /// once; a read already waiting fails when the deadline passes.
    pub fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        self.inner.read.set_deadline(deadline);
    }

    /// An absolute time after which writes fail with `TimedOut` (Go's
    /// `SetWriteDeadline`). A write returns the bytes it wrote before the
    /// deadline; it never reports a timeout after writing some.
    pub fn set_write_deadline(&mut self, deadline: Option<Instant>) {
        self.inner.write.set_deadline(deadline);
    }

    /// Splits the stream into a read half and a write half that can move to
    /// different tasks. Each half keeps its direction's timeout and deadline.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let stream = ipckit::tokio::Stream::connect("pipe:echo").await?;
    /// let (mut reader, mut writer) = stream.into_split();
    /// let sender = tokio::spawn(async move { writer.write_all(&[7; 1 << 20]).await });
    /// let mut back = vec![0; 1 << 20];
    /// reader.read_exact(&mut back).await?;
    /// sender.await??;
    /// # Ok(()) }
    /// ```
    ///
    /// # Platform-specific behavior
    ///
    /// On Unix sockets and TCP, dropping the write half shuts down writing (the
    /// peer reads EOF), as tokio's own halves do. A Windows pipe closes when both
    /// halves are dropped.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let Timed { io, read, write } = self.inner;
        let (r, w) = match io {
            StreamIo::Local(s) => {
                let (r, w) = s.into_split();
                (Either::Local(r), Either::Local(w))
            }
            StreamIo::Tcp(s) => {
                let (r, w) = s.into_split();
                (Either::Tcp(r), Either::Tcp(w))
            }
        };
        let mut reader = Timed::new(r);
        reader.read = read;
        let mut writer = Timed::new(w);
        writer.write = write;
        (
            OwnedReadHalf {
                inner: reader,
                peer: self.peer.clone(),
            },
            OwnedWriteHalf {
                inner: writer,
                peer: self.peer,
            },
        )
    }
}

forward_async_io!(read Stream);
forward_async_io!(write Stream);

type ReadIo = Either<sys::tokio::ReadHalf, tcp::OwnedReadHalf>;
type WriteIo = Either<sys::tokio::WriteHalf, tcp::OwnedWriteHalf>;

/// The read half of a [`Stream`], from [`Stream::into_split`]; it implements
/// [`AsyncRead`](::tokio::io::AsyncRead) with the stream's read timeout and
/// deadline.
pub struct OwnedReadHalf {
    inner: Timed<ReadIo>,
    peer: Address,
}

/// The write half of a [`Stream`], from [`Stream::into_split`]; it implements
/// [`AsyncWrite`](::tokio::io::AsyncWrite) with the stream's write timeout and
/// deadline.
///
/// `AsyncWriteExt::shutdown` behaves as on the whole [`Stream`].
pub struct OwnedWriteHalf {
    inner: Timed<WriteIo>,
    peer: Address,
}

impl fmt::Debug for OwnedReadHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedReadHalf")
            .field("peer", &self.peer)
            .field("limit", &self.inner.read)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for OwnedWriteHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedWriteHalf")
            .field("peer", &self.peer)
            .field("limit", &self.inner.write)
            .finish_non_exhaustive()
    }
}

impl OwnedReadHalf {
    /// The address the stream was connected to, or accepted on.
    pub fn peer_addr(&self) -> &Address {
        &self.peer
    }

    /// Bounds every later read to `timeout`, as [`Stream::set_read_timeout`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] for a zero duration.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.inner.set_read_timeout(timeout)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.inner.read.timeout()
    }

    /// Sets the read deadline, as [`Stream::set_read_deadline`].
    pub fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        self.inner.read.set_deadline(deadline);
    }
}

impl OwnedWriteHalf {
    /// The address the stream was connected to, or accepted on.
    pub fn peer_addr(&self) -> &Address {
        &self.peer
    }

    /// Bounds every later write to `timeout`, as [`Stream::set_write_timeout`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] for a zero duration.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.inner.set_write_timeout(timeout)
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.inner.write.timeout()
    }

    /// Sets the write deadline, as [`Stream::set_write_deadline`].
    pub fn set_write_deadline(&mut self, deadline: Option<Instant>) {
        self.inner.write.set_deadline(deadline);
    }
}

forward_async_io!(read OwnedReadHalf);
forward_async_io!(write OwnedWriteHalf);
