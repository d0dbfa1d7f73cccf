//! Async named pipes on tokio's `NamedPipeServer` and `NamedPipeClient`.
//!
//! The server mirrors the blocking one (its instances made by the same
//! `pipe_instances` recipe): the first instance is created with
//! `FILE_FLAG_FIRST_PIPE_INSTANCE`, remote clients are rejected, and one instance
//! always waits for the next client — the next one is created before a connected
//! one is handed out. The waiting instance is tokio's only once connected
//! (`pipe_waiting`). Clients retry a busy pipe (`ERROR_PIPE_BUSY`) with short
//! sleeps in the runtime instead of the blocking `WaitNamedPipeW`.

use std::io;
use std::os::windows::io::{AsHandle, IntoRawHandle};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ::tokio::net::windows::named_pipe::{ClientOptions, NamedPipeClient, NamedPipeServer};
use ::tokio::sync::Mutex;
use ::tokio::time::{Instant, sleep};
use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_PIPE_BUSY};

use super::pipe_instances::{Instances, PipeKind};
use super::pipe_waiting::Waiting;
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
/// The waiting instance is ours, not tokio's, until a client has connected
/// (see `pipe_waiting`): dropping the listener closes it at once.
#[derive(Debug)]
pub(crate) struct Listener {
    instances: Instances,
    /// The instance clients connect to next; `None` only after creating the next
    /// instance failed (for example at the instance limit). An async mutex, held
    /// across the wait for a client, so one accept at a time drives the instance.
    waiting: Mutex<Option<Waiting>>,
}

impl Listener {
    pub(crate) fn bind(ep: &Endpoint, opts: &ListenConfig) -> io::Result<Listener> {
        let (instances, first) = Instances::first(ep, opts, PipeKind::Bytes)?;
        Ok(Listener {
            instances,
            waiting: Mutex::new(Some(Waiting::new(first)?)),
        })
    }

    /// A new instance after the first.
    fn next(&self) -> io::Result<Waiting> {
        Waiting::new(self.instances.next()?)
    }

    /// Waits for a client on the waiting instance. Panics outside a tokio
    /// runtime (registering the connected instance with the reactor).
    ///
    /// Cancel safe: the instance stays in `waiting` while its connect is in
    /// flight, and `Waiting::connected` is itself cancel safe, so a client
    /// that connects while no accept is running is returned by the next one.
    pub(crate) async fn accept(&self) -> io::Result<Stream> {
        let mut waiting = self.waiting.lock().await;
        let instance = match waiting.take() {
            Some(instance) => instance,
            None => self.next()?,
        };
        // Back in its place before the first await: dropping this future leaves
        // the instance (and a client that connects to it) for the next accept.
        let instance = waiting.insert(instance);
        if let Err(e) = instance.connected().await {
            // This instance is of no more use; put a fresh one in its place.
            *waiting = self.next().ok();
            return Err(e);
        }
        // Put the next instance in place before handing this one out, so the name
        // never disappears between accepts. At the instance limit there is none
        // to create yet; the next accept creates it.
        let next = self.next().ok();
        let Some(connected) = std::mem::replace(&mut *waiting, next) else {
            unreachable!("the lock is held and the slot was filled above")
        };
        let handle = connected.into_connected().into_raw_handle();
        // SAFETY: `handle` is a connected, overlapped server instance that this
        // listener owned alone (`into_raw_handle` gave that up) and that no
        // completion port knows yet; tokio takes it over, closing it on error.
        let server = unsafe { NamedPipeServer::from_raw_handle(handle) }?;
        Ok(Stream::new(Pipe::Server(server)))
    }
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
