//! Byte streams: [`Listener`] and [`Stream`] over named pipes (Windows), Unix
//! sockets (Unix) and TCP (everywhere), with timeouts and Go-style deadlines.

mod options;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Instant;

pub use crate::limits::{AcceptBackoff, ConnectionLimit, ConnectionSlot};
pub use crate::options::{ConnectOptions, ListenerOptions};

use crate::address::{Address, Endpoint, ToAddress};
use crate::error::{Error, ErrorKind, Result};
use crate::limits::Deadlines;
use crate::limits::accept_through;
use crate::transport::{self, Either, Serving, tcp};

use crate::security::{self, PeerCredentials};
use crate::sys;

type ListenerKind = Either<sys::Listener, TcpListener>;

/// A server endpoint that accepts byte-stream connections.
///
/// This corresponds to a named pipe server (`CreateNamedPipeW` +
/// `ConnectNamedPipe`) on Windows, a listening `SOCK_STREAM` Unix socket on Unix,
/// and a `TcpListener` for `tcp:` addresses.
///
/// # Examples
///
/// ```no_run
/// use std::io::{Read, Write};
/// let listener = ipckit::Listener::bind("pipe:echo")?;
/// for stream in listener.incoming() {
///     let mut stream = stream?;
///     let mut buf = [0; 1024];
///     let n = stream.read(&mut buf)?;
///     stream.write_all(&buf[..n])?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Platform-specific behavior
///
/// ### Unix
///
/// A portable name becomes a socket file `NAME.sock` (mode 0600) in a private
/// directory (mode 0700). A stale file that nobody listens on is replaced; a live
/// listener's file makes `bind` fail with [`ErrorKind::AddrInUse`]. Dropping the
/// listener removes the file if it is still its own.
///
/// ### Windows
///
/// The server always keeps one pipe instance waiting, including between two calls
/// to `accept`, so a client never finds the name missing while the server runs.
/// Every instance gets a DACL that grants only the current user and SYSTEM
/// (unless `os::windows::ListenerOptionsExt::security_descriptor` says
/// otherwise) and rejects
/// remote clients; `bind` fails with [`ErrorKind::AddrInUse`] when the name
/// already has instances (`FILE_FLAG_FIRST_PIPE_INSTANCE`), which is how a
/// squatter that took the name first is noticed. See [`crate::security`].
#[doc(alias = "CreateNamedPipeW")]
pub struct Listener {
    /// Read by the OS handle impls of [`os`](crate::os) too.
    pub(crate) inner: ListenerKind,
    serving: Serving,
}

transport::listener_face! {
    /// Binds a listener at `addr` with the default [`ListenerOptions`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidAddress`] or [`ErrorKind::Unsupported`] for an address
    /// this OS cannot serve; [`ErrorKind::AddrInUse`] when a live listener already
    /// serves it (the message names its pid where the OS lets it be read: Linux
    /// `SO_PEERCRED`, Windows `GetNamedPipeServerProcessId`); otherwise the OS
    /// error with the address in the message. Of several binds of one name at
    /// the same instant, in one process or many, exactly one succeeds.
    Listener, bind
}

impl Listener {
    pub(crate) fn bind_with(addr: Address, opts: &ListenerOptions) -> Result<Listener> {
        let transport::Bound { inner, serving } =
            transport::bind::<_, TcpListener>(addr, opts, sys::Listener::bind)?;
        Ok(Listener { inner, serving })
    }

    /// A listener over a TCP listener the core bound at `addr` (a message
    /// listener's framed TCP).
    pub(crate) fn from_tcp(l: TcpListener, addr: Address) -> Listener {
        Listener {
            inner: Either::Tcp(l),
            serving: Serving::new(addr, false),
        }
    }

    /// Waits for the next client and returns the connected stream.
    ///
    /// # Errors
    ///
    /// The OS error, with the address in the message; with
    /// [`ListenerOptions::current_user_only`], [`ErrorKind::PermissionDenied`]
    /// for a client of another user (its connection is closed, the listener
    /// stays usable).
    pub fn accept(&self) -> Result<Stream> {
        let kind = self.serving.accepted(match &self.inner {
            ListenerKind::Local(l) => l.accept().map(StreamKind::Local),
            ListenerKind::Tcp(l) => l.accept().map(|(s, _)| StreamKind::Tcp(s)),
        })?;
        if let StreamKind::Local(s) = &kind {
            self.serving.verify(|| s.peer_credentials())?;
        }
        Ok(Stream::new(kind, self.serving.addr().clone()))
    }

    /// Who the operating system lets open this listener's endpoint, as text, read
    /// back from the OS (not from the options): for checking and logging what
    /// the defaults and options produced.
    ///
    /// # Platform-specific behavior
    ///
    /// ### Unix
    ///
    /// The socket file's mode, owner and group, e.g. `mode 0600, owner uid 1000,
    /// group gid 1000`.
    ///
    /// ### Windows
    ///
    /// The pipe's owner and DACL in SDDL, read with `GetSecurityInfo` from the
    /// waiting instance, e.g. `O:S-1-5-21-...D:P(A;;FA;;;SY)(A;;FA;;;S-1-5-21-...)`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] for `tcp:` and abstract sockets (no file, no
    /// descriptor); otherwise the OS error.
    #[doc(alias = "GetSecurityInfo")]
    pub fn access_control(&self) -> Result<String> {
        match &self.inner {
            ListenerKind::Local(l) => self
                .serving
                .context("read the access control of", l.describe_access()),
            ListenerKind::Tcp(_) => Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{} is a TCP listener: the OS keeps no access control for it",
                    self.serving.addr()
                ),
            )),
        }
    }

    /// An endless iterator over incoming connections, like std's `incoming`,
    /// that rides out resource errors.
    ///
    /// An accept that fails because the process or the machine ran out of
    /// something ([`Error::is_resource_exhausted`]: out of file descriptors,
    /// say) is not yielded: the iterator pauses as [`AcceptBackoff`] says (5 ms
    /// doubling to 1 s) and accepts again, so a loop that stops at the first
    /// `Err` does not end the server when clients use up its descriptors.
    /// Every other error is yielded, as from [`accept`](Self::accept).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            listener: self,
            backoff: AcceptBackoff::new(),
        }
    }
}

/// The iterator returned by [`Listener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a Listener,
    backoff: AcceptBackoff,
}

impl Iterator for Incoming<'_> {
    type Item = Result<Stream>;

    fn next(&mut self) -> Option<Result<Stream>> {
        let listener = self.listener;
        Some(accept_through(&mut self.backoff, || listener.accept()))
    }
}

type StreamKind = Either<sys::Stream, TcpStream>;

/// A connected byte stream.
///
/// `Read` and `Write` are implemented for `Stream` and `&Stream`. Reads and writes
/// can be bounded by a per-call timeout ([`set_read_timeout`](Stream::set_read_timeout))
/// or an absolute deadline ([`set_read_deadline`](Stream::set_read_deadline), Go's
/// `SetReadDeadline`); a call that runs out of time fails with
/// [`io::ErrorKind::TimedOut`], loses no data, and the stream stays usable: move the
/// deadline and call again.
///
/// # Examples
///
/// ```no_run
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// let mut stream = ipckit::Stream::connect("pipe:echo")?;
/// stream.set_read_timeout(Some(Duration::from_secs(5)))?;
/// stream.write_all(b"hello")?;
/// let mut buf = [0; 5];
/// stream.read_exact(&mut buf)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Platform-specific behavior
///
/// Timeouts and deadlines are kept by this handle: a [`try_clone`](Stream::try_clone)
/// starts with the same limits and then keeps its own. A deadline bounds calls that
/// start after it is set; it does not interrupt a call already blocked in another
/// thread.
pub struct Stream {
    /// Read by the OS handle impls of [`os`](crate::os) too.
    pub(crate) inner: StreamKind,
    peer: Address,
    lim: Deadlines,
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("peer", &self.peer)
            .field("read", &self.lim.read)
            .field("write", &self.lim.write)
            .finish_non_exhaustive()
    }
}

impl Stream {
    /// A stream over `inner`, connected to `peer` (also the OS handle
    /// conversions of [`os`](crate::os)).
    pub(crate) fn new(inner: StreamKind, peer: Address) -> Stream {
        Stream {
            inner,
            peer,
            lim: Deadlines::default(),
        }
    }

    /// A stream over a TCP connection the core made to `peer`.
    pub(crate) fn from_tcp(s: TcpStream, peer: Address) -> Stream {
        Stream::new(Either::Tcp(s), peer)
    }

    /// Connects to `addr` with the default [`ConnectOptions`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when nobody listens at the address,
    /// [`ErrorKind::Busy`] when every pipe instance stays busy (Windows),
    /// [`ErrorKind::TimedOut`] when the connect timeout passes,
    /// [`ErrorKind::PermissionDenied`] when the server of a portable name runs
    /// as another user, or (Unix) its runtime directory is not the user's own
    /// (see [`ConnectOptions::new`]), and the address errors of
    /// [`Listener::bind`].
    pub fn connect(addr: impl ToAddress) -> Result<Stream> {
        ConnectOptions::new().connect(addr)
    }

    pub(crate) fn connect_with(addr: Address, opts: &ConnectOptions) -> Result<Stream> {
        crate::registry::connect::connect_each(addr, opts, |addr, opts| {
            let connecting = transport::connecting(addr, opts)?;
            let made = match &connecting.ep {
                Endpoint::Tcp { host, port } => {
                    tcp::connect(host, *port, opts.config()).map(Either::Tcp)
                }
                ep => sys::Stream::connect(ep, opts.config()).map(Either::Local),
            };
            let (inner, addr) = connecting.finish(made, sys::Stream::peer_credentials)?;
            Ok(Stream::new(inner, addr))
        })
    }

    /// The address this stream was connected to, or accepted on.
    pub fn peer_addr(&self) -> &Address {
        &self.peer
    }

    /// Which process and user is on the other end: the client for a stream a
    /// listener accepted, the server for a stream that connected.
    ///
    /// This corresponds to `SO_PEERCRED` on Linux, and to
    /// `GetNamedPipeClientProcessId` / `GetNamedPipeServerProcessId` plus the
    /// peer process's token on Windows. See [`PeerCredentials`] for which fields
    /// each OS fills in.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] on `tcp:` streams; otherwise the OS error.
    #[doc(alias = "SO_PEERCRED")]
    #[doc(alias = "GetNamedPipeClientProcessId")]
    pub fn peer_credentials(&self) -> Result<PeerCredentials> {
        match &self.inner {
            StreamKind::Local(s) => security::credentials(s.peer_credentials(), &self.peer),
            StreamKind::Tcp(_) => Err(tcp::no_credentials(&self.peer)),
        }
    }

    crate::limits::deadline_setters!(
        lim,
        "read",
        "write",
        "A write cut short by the deadline may have written part of the buffer; `write` reports how much."
    );

    /// A second handle to the same connection, for reading in one thread while
    /// writing in another.
    ///
    /// # Errors
    ///
    /// The OS error from duplicating the handle.
    pub fn try_clone(&self) -> Result<Stream> {
        let inner = match &self.inner {
            StreamKind::Local(s) => s.try_clone().map(StreamKind::Local),
            StreamKind::Tcp(s) => s.try_clone().map(StreamKind::Tcp),
        }
        .map_err(|e| Error::io(format!("clone the stream to {}", self.peer), e))?;
        Ok(Stream {
            inner,
            peer: self.peer.clone(),
            lim: self.lim,
        })
    }

    /// Shuts down the read half, the write half, or both, for this handle and
    /// every clone of it. After `Shutdown::Read` every read, the one waiting
    /// now included, returns 0 bytes (the end): one thread can wake another
    /// that waits in `read`, with no read timeout to poll.
    ///
    /// # Errors
    ///
    /// The OS error; [`ErrorKind::Unsupported`] as below.
    ///
    /// # Platform-specific behavior
    ///
    /// ### Windows
    ///
    /// Named pipes have no half-close: `Read` ends the reads of this process's
    /// handles only (the peer is not told), and `Write` and `Both` fail with
    /// [`ErrorKind::Unsupported`]: drop every handle to the stream to close it.
    /// Over `tcp:` this is Winsock's `shutdown`, which does not end a read that
    /// is already waiting.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        match &self.inner {
            StreamKind::Local(s) => s.shutdown(how),
            StreamKind::Tcp(s) => s.shutdown(how),
        }
        .map_err(|e| Error::io(format!("shut down the stream to {}", self.peer), e))
    }

    fn do_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_limited(buf, self.lim.read.until())
    }

    /// One read that gives up at `limit`, whatever this handle's own limits are.
    pub(crate) fn read_limited(&self, buf: &mut [u8], limit: Option<Instant>) -> io::Result<usize> {
        match &self.inner {
            StreamKind::Local(s) => s.read(buf, limit),
            StreamKind::Tcp(s) => sys::tcp_read(s, buf, limit),
        }
    }

    fn do_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.write_limited(buf, self.lim.write.until())
    }

    /// One write that gives up at `limit`, whatever this handle's own limits are.
    pub(crate) fn write_limited(&self, buf: &[u8], limit: Option<Instant>) -> io::Result<usize> {
        match &self.inner {
            StreamKind::Local(s) => s.write(buf, limit),
            StreamKind::Tcp(s) => sys::tcp_write(s, buf, limit),
        }
    }

    fn do_flush(&self) -> io::Result<()> {
        match &self.inner {
            StreamKind::Local(s) => s.flush(),
            StreamKind::Tcp(s) => (&*s).flush(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.do_read(buf)
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.do_read(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.do_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.do_flush()
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.do_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.do_flush()
    }
}
