//! Async Unix sockets on tokio's `UnixListener` and `UnixStream`.
//!
//! Nothing about binding is done twice: a listener is bound by the blocking layer
//! (runtime directory 0700, socket file 0600, stale-file replacement, abstract
//! names) and its socket is then handed to tokio, together with the guard that
//! removes the file on drop. Clients build their socket the same way (so abstract
//! names work), non-blocking, and wait in the runtime rather than in the kernel.

use std::io;
use std::os::unix::net as std_net;

use ::tokio::io::unix::AsyncFd;
use ::tokio::net::{UnixListener, UnixStream};
use ::tokio::time::{Instant, sleep, timeout_at};
use rustix::io::Errno;
use rustix::net::{SocketAddrUnix, SocketType};

use super::fdio::timed_out;
#[cfg(not(target_vendor = "apple"))]
use super::seqpacket;
use super::socket::{new_socket_of, set_up_accepted};
use super::stream::{self, OwnFile, check_private_dir, is_absent, socket_addr, wrong_kind};
use super::{MsgListener as BlockingMsgListener, MsgStream as BlockingMsgStream, dgram};
use crate::sys::plain::Endpoint;
use crate::sys::plain::RetrySchedule;
use crate::sys::plain::{ConnectConfig, ListenConfig};

/// A connected stream: tokio's own type.
pub(crate) type Stream = UnixStream;
/// The read half of [`Stream::into_split`].
pub(crate) type ReadHalf = ::tokio::net::unix::OwnedReadHalf;
/// The write half of [`Stream::into_split`]; dropping it shuts down writing.
pub(crate) type WriteHalf = ::tokio::net::unix::OwnedWriteHalf;

/// A listening Unix socket registered with the tokio reactor.
#[derive(Debug)]
pub(crate) struct Listener {
    // Declared first, so the file is removed before the socket closes (as the
    // blocking listener does).
    _file: Option<OwnFile>,
    sock: UnixListener,
}

impl std::os::fd::AsFd for Listener {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl Listener {
    /// Binds through the blocking layer, then adopts the socket.
    ///
    /// Panics outside a tokio runtime (`UnixListener::from_std`).
    pub(crate) fn bind(ep: &Endpoint, opts: &ListenConfig) -> io::Result<Listener> {
        let (sock, file) = stream::Listener::bind(ep, opts)?.into_parts();
        // Should adoption fail, `file` is dropped here and removes the socket file.
        sock.set_nonblocking(true)?;
        let sock = UnixListener::from_std(sock)?;
        Ok(Listener { _file: file, sock })
    }

    /// Cancel safe: tokio's `UnixListener::accept` takes a connection off the
    /// backlog only in the poll that returns it.
    pub(crate) async fn accept(&self) -> io::Result<Stream> {
        let (sock, _) = self.sock.accept().await?;
        set_up_accepted(&sock)?;
        Ok(sock)
    }
}

/// Connects to a Unix socket, retrying while nobody listens (with
/// `retry_not_found`) and while the listener's backlog is full, until the connect
/// timeout.
pub(crate) async fn connect(ep: &Endpoint, opts: &ConnectConfig) -> io::Result<Stream> {
    let addr = socket_addr(ep)?;
    let limit = opts.timeout.and_then(|t| Instant::now().checked_add(t));
    let mut pauses = RetrySchedule::until(limit.map(Instant::into_std));
    loop {
        let tried = match (check_private_dir(ep), limit) {
            (Err(e), _) => Err(e),
            (Ok(()), None) => connect_once(&addr).await,
            (Ok(()), Some(limit)) => timeout_at(limit, connect_once(&addr))
                .await
                .unwrap_or_else(|_| Err(timed_out("connect"))),
        };
        let why = match tried {
            Err(e) if opts.retry_not_found && is_absent(&e) => "connect (nobody listening yet)",
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => "connect (listener backlog full)",
            other => return other,
        };
        match pauses.next() {
            Some(pause) => sleep(pause).await,
            None => return Err(timed_out(why)),
        }
    }
}

/// One non-blocking connection attempt. A full backlog is `WouldBlock` (Linux
/// refuses at once with `EAGAIN` rather than queueing a non-blocking connect).
async fn connect_once(addr: &SocketAddrUnix) -> io::Result<Stream> {
    let fd = new_socket_of(SocketType::STREAM, true)?;
    let in_progress = match rustix::net::connect(&fd, addr) {
        Ok(()) => false,
        Err(Errno::INPROGRESS | Errno::INTR) => true,
        Err(Errno::PROTOTYPE) => return Err(wrong_kind(SocketType::STREAM)),
        Err(Errno::AGAIN) => {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the listener's backlog is full",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let stream = UnixStream::from_std(std_net::UnixStream::from(fd))?;
    if in_progress {
        stream.writable().await?;
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
    }
    Ok(stream)
}

/// The credentials of the peer of a connected stream (`SO_PEERCRED`).
pub(crate) fn peer_credentials(stream: &Stream) -> io::Result<crate::sys::peer::PeerCredentials> {
    use std::os::fd::AsFd;
    stream::peer_credentials(stream.as_fd())
}

/// Registers a socket the blocking layer owns with the reactor.
#[allow(unsafe_code)]
fn watch<T: std::os::fd::AsRawFd>(sock: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: `T` is one of the blocking layer's socket types, which own their
    // `OwnedFd` for their whole life and return that same descriptor from every
    // `as_raw_fd` call; the `AsyncFd` owns `sock`, so the descriptor stays open
    // until the registration is dropped.
    unsafe { AsyncFd::register(sock) }.map_err(io::Error::from)
}

/// An async message channel: the blocking layer's message socket
/// (`SOCK_SEQPACKET`; frames over `SOCK_STREAM` on macOS), watched by the
/// reactor. Every call on it is non-blocking (`MSG_DONTWAIT`), so
/// the socket itself stays in blocking mode.
#[derive(Debug)]
pub(crate) struct MsgStream {
    io: AsyncFd<BlockingMsgStream>,
}

impl MsgStream {
    fn new(sock: BlockingMsgStream) -> io::Result<MsgStream> {
        Ok(MsgStream { io: watch(sock)? })
    }

    /// Adopts a blocking channel (a child-process channel's end).
    pub(crate) fn from_blocking(sock: BlockingMsgStream) -> io::Result<MsgStream> {
        MsgStream::new(sock)
    }

    /// Cancel safe: a record is taken only by the poll that returns it.
    pub(crate) async fn recv(&self, out: &mut Vec<u8>, max: usize) -> io::Result<bool> {
        loop {
            let mut ready = self.io.readable().await?;
            if let Ok(result) = ready.try_io(|s| s.get_ref().try_recv(out, max)) {
                return result;
            }
        }
    }

    /// Cancel safe: a record goes out whole in the poll that returns, or not at
    /// all. (macOS: once part of a frame is out the message is committed; a
    /// dropped future leaves the rest to go out, whole, before the next
    /// frame.) The caller bounds the call; `_limit` is for the Windows layer.
    pub(crate) async fn send(
        &self,
        msg: &[u8],
        _limit: Option<std::time::Instant>,
    ) -> io::Result<()> {
        loop {
            let mut ready = self.io.writable().await?;
            match ready.try_io(|s| s.get_ref().try_send(msg)) {
                #[cfg(not(target_vendor = "apple"))]
                Ok(Err(e)) if seqpacket::awaits_greeting(&e) => {
                    drop(ready);
                    self.learn_peer().await?;
                }
                Ok(result) => {
                    result?;
                    break;
                }
                Err(_would_block) => {}
            }
        }
        self.flush().await
    }

    /// Writes the rest of a committed frame (macOS).
    #[cfg(target_vendor = "apple")]
    async fn flush(&self) -> io::Result<()> {
        loop {
            let mut ready = self.io.writable().await?;
            if let Ok(result) = ready.try_io(|s| s.get_ref().try_flush()) {
                return result;
            }
        }
    }

    /// Waits until the peer's first record says whether it is ipckit, or the
    /// greeting deadline passes (a message over the kernel's record limit
    /// waits for this; see `large_records`).
    #[cfg(not(target_vendor = "apple"))]
    async fn learn_peer(&self) -> io::Result<()> {
        let sock = self.io.get_ref();
        let learn = async {
            loop {
                let mut ready = self.io.readable().await?;
                if sock.learn_from_first_record()? {
                    return Ok(());
                }
                ready.clear_ready();
            }
        };
        let until = Instant::from_std(sock.greeting_deadline());
        timeout_at(until, learn).await.unwrap_or(Ok(()))
    }

    /// A record goes out whole or not at all: nothing is ever left to write.
    #[cfg(not(target_vendor = "apple"))]
    async fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    pub(crate) fn close(&self) {
        self.io.get_ref().close();
    }

    /// Receives no more: the peer's sends fail from now on.
    pub(crate) fn close_receiving(&self) {
        let _ = self.io.get_ref().shutdown(std::net::Shutdown::Read);
    }

    pub(crate) fn peer_credentials(&self) -> io::Result<crate::sys::peer::PeerCredentials> {
        self.io.get_ref().peer_credentials()
    }
}

/// A listening message socket, bound by the blocking layer.
#[derive(Debug)]
pub(crate) struct MsgListener {
    io: AsyncFd<BlockingMsgListener>,
}

impl MsgListener {
    pub(crate) fn bind(ep: &Endpoint, opts: &ListenConfig) -> io::Result<MsgListener> {
        let sock = BlockingMsgListener::bind(ep, opts)?;
        sock.set_nonblocking()?;
        Ok(MsgListener { io: watch(sock)? })
    }

    /// Cancel safe: a connection leaves the backlog only in the poll that
    /// returns it.
    pub(crate) async fn accept(&self) -> io::Result<MsgStream> {
        loop {
            let mut ready = self.io.readable().await?;
            if let Ok(result) = ready.try_io(|l| l.get_ref().accept()) {
                return MsgStream::new(result?);
            }
        }
    }
}

impl std::os::fd::AsFd for MsgListener {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl std::os::fd::AsFd for MsgStream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl std::os::fd::AsFd for MailslotReceiver {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

/// Connects a message channel. A Unix connect does not wait for the server to
/// accept, so it runs on the blocking pool (where retries and the timeout work
/// as in the blocking layer); dropping the future closes what it connected.
pub(crate) async fn connect_message(ep: &Endpoint, opts: &ConnectConfig) -> io::Result<MsgStream> {
    let (ep, opts) = (ep.clone(), opts.clone());
    let sock = ::tokio::task::spawn_blocking(move || BlockingMsgStream::connect(&ep, &opts))
        .await
        .map_err(io::Error::other)??;
    MsgStream::new(sock)
}

/// An async mailslot receiver: the blocking layer's datagram socket, watched by
/// the reactor (every call on it is non-blocking).
#[derive(Debug)]
pub(crate) struct MailslotReceiver {
    io: AsyncFd<dgram::MailslotReceiver>,
}

impl MailslotReceiver {
    pub(crate) fn new(inner: dgram::MailslotReceiver) -> io::Result<MailslotReceiver> {
        Ok(MailslotReceiver { io: watch(inner)? })
    }

    /// Cancel safe: a datagram is taken only by the poll that returns it.
    pub(crate) async fn recv(&self, out: &mut Vec<u8>) -> io::Result<()> {
        loop {
            let mut ready = self.io.readable().await?;
            if let Ok(result) = ready.try_io(|r| r.get_ref().try_recv(out)) {
                return result;
            }
        }
    }

    pub(crate) fn pending(&self) -> io::Result<(Option<usize>, Option<usize>)> {
        self.io.get_ref().pending()
    }
}
