//! Async named pipes on tokio's `NamedPipeServer` and `NamedPipeClient`.
//!
//! The server mirrors the blocking one: the first instance is created with
//! `FILE_FLAG_FIRST_PIPE_INSTANCE`, remote clients are rejected, and one instance
//! always waits for the next client — the next one is created before a connected
//! one is handed out. Clients retry a busy pipe (`ERROR_PIPE_BUSY`) with short
//! sleeps in the runtime instead of the blocking `WaitNamedPipeW`.

use std::io;
use std::os::windows::io::AsHandle;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ::tokio::net::windows::named_pipe::{
    ClientOptions, NamedPipeClient, NamedPipeServer, ServerOptions,
};
use ::tokio::sync::Mutex;
use ::tokio::time::{Instant, sleep};
use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_PIPE_BUSY};

use super::first_instance::create_first;
use super::security::SecurityAttributes;
pub(crate) use super::tokio_mailslot::MailslotReceiver;
pub(crate) use super::tokio_message::{MsgListener, MsgStream, connect_message};
use crate::sys::peer::PeerCredentials;
use crate::sys::plain::Endpoint;
use crate::sys::plain::{ConnectConfig, ListenConfig};

/// The first pause of a client that finds every instance busy; it doubles on
/// each try up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const MAX_PAUSE: Duration = Duration::from_millis(50);

fn pipe_path(ep: &Endpoint) -> io::Result<&str> {
    match ep {
        Endpoint::Pipe(path) => Ok(path),
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "not a named-pipe endpoint",
        )),
    }
}

/// A named-pipe server that always keeps one instance waiting for a client.
#[derive(Debug)]
pub(crate) struct Listener {
    path: String,
    /// The options of every instance after the first.
    options: ServerOptions,
    /// The descriptor every instance is created with.
    security: SecurityAttributes,
    /// The instance clients connect to next; `None` only after creating the next
    /// instance failed (for example at the instance limit). An async mutex, held
    /// across the wait for a client, so one accept at a time drives the instance.
    waiting: Mutex<Option<NamedPipeServer>>,
}

impl Listener {
    /// Creates the first instance. Panics outside a tokio runtime (registering the
    /// handle with the reactor).
    pub(crate) fn bind(ep: &Endpoint, opts: &ListenConfig) -> io::Result<Listener> {
        let path = pipe_path(ep)?.to_owned();
        let security = SecurityAttributes::new(opts.sddl.as_deref())?;
        let mut options = ServerOptions::new();
        options
            .reject_remote_clients(!opts.accept_remote)
            .in_buffer_size(opts.in_buffer)
            .out_buffer_size(opts.out_buffer);
        if let Some(n) = opts.max_instances {
            // `ListenConfig` refuses 0 and 255; tokio panics above 254.
            options.max_instances(usize::from(n.min(254)));
        }
        let first = create_first(&super::handle::wide(&path), || {
            create(options.clone().first_pipe_instance(true), &path, &security)
        })?;
        Ok(Listener {
            path,
            options,
            security,
            waiting: Mutex::new(Some(first)),
        })
    }

    /// A new instance after the first.
    fn create(&self) -> io::Result<NamedPipeServer> {
        create(&self.options, &self.path, &self.security)
    }

    /// Waits for a client on the waiting instance.
    ///
    /// Cancel safe: the instance stays in `waiting` while its `ConnectNamedPipe`
    /// is pending, and tokio's `connect` is itself cancel safe, so a client that
    /// connects while no accept is running is returned by the next one.
    pub(crate) async fn accept(&self) -> io::Result<Stream> {
        let mut waiting = self.waiting.lock().await;
        let server = match waiting.take() {
            Some(server) => server,
            None => self.create()?,
        };
        // Back in its place before the first await: dropping this future leaves
        // the instance (and a client that connects to it) for the next accept.
        let server = waiting.insert(server);
        if let Err(e) = server.connect().await {
            // This instance is of no more use; put a fresh one in its place.
            *waiting = self.create().ok();
            return Err(e);
        }
        // Put the next instance in place before handing this one out, so the name
        // never disappears between accepts. At the instance limit there is none
        // to create yet; the next accept creates it.
        let next = self.create().ok();
        match std::mem::replace(&mut *waiting, next) {
            Some(connected) => Ok(Stream::new(Pipe::Server(connected))),
            None => unreachable!("the lock is held and the slot was filled above"),
        }
    }
}

/// Creates a pipe instance with `options` and the descriptor of `security`.
fn create(
    options: &ServerOptions,
    path: &str,
    security: &SecurityAttributes,
) -> io::Result<NamedPipeServer> {
    security.with_void(|sa| {
        // SAFETY: `sa` points to a valid SECURITY_ATTRIBUTES whose descriptor
        // `security` owns, for the whole call (`with_void`), as tokio requires.
        unsafe { options.create_with_security_attributes_raw(path, sa) }
    })
}

/// The process id and user SID of the other end of `stream`.
pub(crate) fn peer_credentials(stream: &Stream) -> io::Result<PeerCredentials> {
    match &*stream.pipe {
        Pipe::Server(p) => super::security::peer_credentials(p.as_handle()),
        Pipe::Client(p) => super::security::peer_credentials(p.as_handle()),
    }
}

/// Connects to a pipe, retrying while every instance is busy (and, with
/// `retry_not_found`, while there is no server) until the connect timeout.
pub(crate) async fn connect(ep: &Endpoint, opts: &ConnectConfig) -> io::Result<Stream> {
    let path = pipe_path(ep)?;
    let limit = opts.timeout.and_then(|t| Instant::now().checked_add(t));
    let mut pause = FIRST_PAUSE;
    loop {
        let err = match ClientOptions::new().open(path) {
            Ok(client) => return Ok(Stream::new(Pipe::Client(client))),
            Err(e) => e,
        };
        let why = match err.raw_os_error().map(|c| c as u32) {
            Some(ERROR_PIPE_BUSY) => "every pipe instance stayed busy until the connect timeout",
            Some(ERROR_FILE_NOT_FOUND) if opts.retry_not_found => {
                "connect (no server yet) did not finish before its deadline"
            }
            _ => return Err(err),
        };
        if let Some(limit) = limit {
            let left = limit.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, why));
            }
            pause = pause.min(left);
        }
        sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Either end of a named pipe.
#[derive(Debug)]
enum Pipe {
    Server(NamedPipeServer),
    Client(NamedPipeClient),
}

impl Pipe {
    /// Reads through `&self` (readiness, then `try_read_buf`), so that both
    /// halves of a split stream can share the pipe without a lock.
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            let ready = match self {
                Pipe::Server(p) => p.poll_read_ready(cx),
                Pipe::Client(p) => p.poll_read_ready(cx),
            };
            ready!(ready)?;
            let tried = match self {
                Pipe::Server(p) => p.try_read_buf(buf),
                Pipe::Client(p) => p.try_read_buf(buf),
            };
            match tried {
                Ok(_) => return Poll::Ready(Ok(())),
                // Readiness was stale and is now cleared: wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let ready = match self {
                Pipe::Server(p) => p.poll_write_ready(cx),
                Pipe::Client(p) => p.poll_write_ready(cx),
            };
            ready!(ready)?;
            let tried = match self {
                Pipe::Server(p) => p.try_write(buf),
                Pipe::Client(p) => p.try_write(buf),
            };
            match tried {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }
}

/// Named pipes have no half-close.
fn no_half_close() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "named pipes have no half-close; drop the stream (every half) to close it",
    )
}

/// A connected named pipe.
#[derive(Debug)]
pub(crate) struct Stream {
    pipe: Arc<Pipe>,
}

impl Stream {
    fn new(pipe: Pipe) -> Stream {
        Stream {
            pipe: Arc::new(pipe),
        }
    }

    /// Two halves sharing the pipe; it closes when both are dropped.
    /// The pipe handle (for the OS handle impls of `os`).
    pub(crate) fn handle(&self) -> std::os::windows::io::BorrowedHandle<'_> {
        use std::os::windows::io::AsHandle;
        match &*self.pipe {
            Pipe::Server(p) => p.as_handle(),
            Pipe::Client(p) => p.as_handle(),
        }
    }

    pub(crate) fn into_split(self) -> (ReadHalf, WriteHalf) {
        (
            ReadHalf {
                pipe: Arc::clone(&self.pipe),
            },
            WriteHalf { pipe: self.pipe },
        )
    }
}

/// The read half of [`Stream::into_split`].
#[derive(Debug)]
pub(crate) struct ReadHalf {
    pipe: Arc<Pipe>,
}

/// The write half of [`Stream::into_split`].
#[derive(Debug)]
pub(crate) struct WriteHalf {
    pipe: Arc<Pipe>,
}

/// `AsyncRead` and `AsyncWrite` of the pipe ends that hold a `pipe` (the
/// whole stream and its halves): reads and writes go to the pipe, writes are
/// handed to the pipe as they are made (there is nothing to flush), and a
/// pipe has no half-close.
macro_rules! pipe_io {
    (read: $($r:ident),+; write: $($w:ident),+) => {
        $(impl AsyncRead for $r {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                self.pipe.poll_read(cx, buf)
            }
        })+
        $(impl AsyncWrite for $w {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.pipe.poll_write(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(
                self: Pin<&mut Self>,
                _cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                Poll::Ready(Err(no_half_close()))
            }
        })+
    };
}

pipe_io!(read: Stream, ReadHalf; write: Stream, WriteHalf);
