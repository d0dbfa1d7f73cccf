//! Async message channels: the async form of [`crate::MessageListener`] and
//! [`crate::MessageStream`].

use std::future::Future;
use std::io;
use std::time::Instant;

use ::tokio::net::{TcpListener, TcpStream};
use ::tokio::sync::Mutex;

use super::framed::{TcpRef, read_frame, write_frame};
use super::message_shm::{ShmConn, offer_channel, take_channel};
use super::{connect_one, in_runtime};
use crate::address::{Address, ToAddress};
use crate::error::Result;
use crate::limits::check_max_message_size;
use crate::message::frame::{FrameReader, FrameWriter};
use crate::message::shm;
use crate::message::state::{self, CloseReceiving, State};
use crate::options::applies::Kind;
use crate::options::{ConnectOptions, ListenerOptions};
use crate::plain::timed_out;
use crate::security::{self, PeerCredentials};
use crate::sys;
use crate::transport::{self, Either, Serving};

pub(crate) type ListenerKind = Either<sys::tokio::MsgListener, TcpListener>;

/// An async server endpoint that accepts message channels: the async form of
/// [`crate::MessageListener`], with the same transports.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), ipckit::Error> {
/// let listener = ipckit::tokio::MessageListener::bind("pipe:jobs")?;
/// loop {
///     let channel = listener.accept().await?;
///     tokio::spawn(async move {
///         while let Some(msg) = channel.recv().await? {
///             channel.send(&msg).await?;
///         }
///         Ok::<_, ipckit::Error>(())
///     });
/// }
/// # }
/// ```
pub struct MessageListener {
    /// Read by the OS handle impls of [`os`](crate::os) too; for `shm:NAME`,
    /// the rendezvous.
    pub(crate) inner: ListenerKind,
    /// For `shm:NAME`: the name and the ring capacity of the channels it
    /// hands out.
    shm: Option<(String, usize)>,
    serving: Serving,
    max: usize,
}

transport::listener_face! {
    /// Binds an async message listener at `addr` with the default
    /// [`ListenerOptions`]. It must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// The errors of [`crate::Listener::bind`], and [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
    /// outside a tokio runtime.
    MessageListener, bind_message_tokio, max
}

impl MessageListener {
    fn bind_with(addr: Address, opts: &ListenerOptions) -> Result<MessageListener> {
        in_runtime(format!("bind {addr}"))?;
        let (ep, shm) = shm::listening(&addr, opts)?;
        let bound =
            transport::bind_at::<_, TcpListener>(addr, ep, opts, sys::tokio::MsgListener::bind)?;
        Ok(MessageListener {
            inner: bound.inner,
            shm,
            serving: bound.serving,
            max: opts.sys.max_message_size,
        })
    }

    /// Waits for the next client and returns its message channel.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a client that connects while no `accept` is running is
    /// returned by the next one. On `shm:NAME`, though, an `accept` dropped
    /// during the hand-over of a client's region (after the rendezvous
    /// accepted it) loses that client, which sees the rendezvous close.
    ///
    /// # Errors
    ///
    /// The OS error, with the address in the message.
    pub async fn accept(&self) -> Result<MessageStream> {
        let accepted = self.serving.accepted(match &self.inner {
            ListenerKind::Local(l) => l.accept().await.map(Either::Local),
            ListenerKind::Tcp(l) => l.accept().await.map(|(s, _)| Either::Tcp(s)),
        })?;
        let conn = match (accepted, &self.shm) {
            (Either::Local(s), shm) => {
                self.serving.verify(|| s.peer_credentials())?;
                match shm {
                    None => Conn::Local(s),
                    Some((name, capacity)) => Conn::Shm(Box::new(self.serving.context(
                        "hand a channel to a client of",
                        offer_channel(&s, name, *capacity, self.max).await,
                    )?)),
                }
            }
            (Either::Tcp(s), _) => Conn::framed(s),
        };
        Ok(MessageStream::new(
            conn,
            self.serving.addr().clone(),
            self.max,
        ))
    }
}

/// A framed TCP stream and the frame each direction is in the middle of.
/// The stream is not split: each direction reaches it through `&TcpStream`
/// ([`TcpRef`]) under its own lock, so `os` lends the socket (a plain borrow
/// of `stream`) while a `recv` or `send` holds its lock.
pub(crate) struct FramedConn {
    /// Read by the OS handle impls of [`os`](crate::os) too.
    pub(crate) stream: TcpStream,
    reader: Mutex<FrameReader>,
    writer: Mutex<FrameWriter>,
}

/// Sends the peer the end of the stream (FIN) before the socket closes, as
/// tokio's `OwnedWriteHalf` does when dropped: a peer that reads it sees the
/// end of the channel, not a reset, even when bytes it sent were left unread
/// here (a message over the limit).
impl Drop for FramedConn {
    fn drop(&mut self) {
        use ::tokio::io::AsyncWrite;
        // A `TcpStream`'s `poll_shutdown` is `shutdown(Write)` at once, never
        // `Pending`: no waker is needed.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let _ = std::pin::Pin::new(&mut self.stream).poll_shutdown(&mut cx);
    }
}

pub(crate) enum Conn {
    Local(sys::tokio::MsgStream),
    Framed(Box<FramedConn>),
    Shm(Box<ShmConn>),
}

impl Conn {
    fn framed(stream: TcpStream) -> Conn {
        Conn::Framed(Box::new(FramedConn {
            stream,
            reader: Mutex::new(FrameReader::default()),
            writer: Mutex::new(FrameWriter::default()),
        }))
    }
}

impl CloseReceiving for Conn {
    fn close_receiving(&self) {
        match self {
            Conn::Local(s) => s.close_receiving(),
            // The socket closes when the last handle drops; nothing reads it
            // again meanwhile (the state's `check_open`).
            Conn::Framed(_) | Conn::Shm(_) => {}
        }
    }
}

/// A connected async message channel: the async form of [`crate::MessageStream`].
///
/// `send` and `recv` take `&self`: share the stream (`Arc`) or
/// [`try_clone`](MessageStream::try_clone) it to receive in one task while
/// sending in another.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// # #[tokio::main] async fn main() -> Result<(), ipckit::Error> {
/// let mut channel = ipckit::tokio::MessageStream::connect("pipe:jobs").await?;
/// channel.set_read_timeout(Some(Duration::from_secs(5)))?;
/// channel.send(b"job 1").await?;
/// let reply = channel.recv().await?; // None: the server closed the channel
/// # Ok(()) }
/// ```
///
/// # Cancel safety
///
/// - `recv` is cancel safe: a dropped `recv` (a lost `select!` branch, a
///   timeout) loses no message; the next `recv` returns it.
/// - A dropped `send` may still deliver its message, whole, but never a part of
///   it: on a Unix socket a record goes out whole or not at all; on a framed
///   stream a frame once queued is finished by the next `send`; on a Windows pipe
///   the write runs on the blocking pool and completes.
///
/// # Timeouts
///
/// A read or write timeout or deadline bounds each `recv` or `send` as a whole;
/// one that runs out fails with [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) and, as above, loses
/// nothing.
pub struct MessageStream {
    /// Read by the OS handle impls of [`os`](crate::os) too.
    pub(crate) state: State<Conn>,
}

state::message_face!(MessageStream);

/// Runs `op` until `limit`, if any.
pub(super) async fn bounded<T>(
    limit: Option<Instant>,
    what: &str,
    op: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match limit {
        None => op.await,
        Some(limit) => {
            if limit <= Instant::now() {
                return Err(timed_out(what));
            }
            ::tokio::time::timeout_at(limit.into(), op)
                .await
                .unwrap_or_else(|_| Err(timed_out(what)))
        }
    }
}

impl MessageStream {
    fn new(conn: Conn, peer: Address, max: usize) -> MessageStream {
        MessageStream {
            state: State::new(conn, peer, max),
        }
    }

    /// Connects an async message channel to `addr` with the default
    /// [`ConnectOptions`].
    ///
    /// # Errors
    ///
    /// The errors of [`crate::MessageStream::connect`], and
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) outside a tokio runtime.
    pub async fn connect(addr: impl ToAddress) -> Result<MessageStream> {
        ConnectOptions::new().connect_message_tokio(addr).await
    }

    /// Which process and user is on the other end, as
    /// [`crate::Stream::peer_credentials`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) on `tcp:` channels; otherwise the OS error.
    #[doc(alias = "SO_PEERCRED")]
    pub fn peer_credentials(&self) -> Result<PeerCredentials> {
        let peer = &self.state.peer;
        match self.state.conn() {
            Conn::Local(s) => security::credentials(s.peer_credentials(), peer),
            Conn::Framed(_) => Err(crate::transport::tcp::no_credentials(peer)),
            Conn::Shm(c) => shm::credentials(c.peer.as_ref(), peer),
        }
    }

    /// Sends `msg` as one message.
    ///
    /// # Errors
    ///
    /// As for [`crate::MessageStream::send`].
    pub async fn send(&self, msg: &[u8]) -> Result<()> {
        let limit = self.state.lim.write.until();
        let op = async {
            match self.state.conn() {
                Conn::Local(s) => s.send(msg, limit).await,
                // Boxed: the shm future is large, and inline it would grow
                // every idle connection's task (10,000 idle clients: 43 -> 146 MiB).
                Conn::Shm(c) => Box::pin(c.send(msg)).await,
                Conn::Framed(f) => {
                    let mut writer = f.writer.lock().await;
                    write_frame(&mut TcpRef(&f.stream), &mut writer, msg).await
                }
            }
        };
        self.state.sent(bounded(limit, "send", op).await)
    }

    /// Receives the next message; `None` when the peer has closed the channel.
    ///
    /// # Errors
    ///
    /// As for [`crate::MessageStream::recv`]; after
    /// [`ErrorKind::FrameTooLarge`](crate::ErrorKind::FrameTooLarge) the channel receives no more (sending
    /// goes on).
    pub async fn recv(&self) -> Result<Option<Vec<u8>>> {
        self.state.check_open()?;
        let mut out = Vec::new();
        let max = self.state.max;
        let op = async {
            match self.state.conn() {
                Conn::Local(s) => s.recv(&mut out, max).await,
                // Boxed, as in `send`.
                Conn::Shm(c) => Box::pin(c.recv(&mut out, max)).await,
                Conn::Framed(f) => {
                    let mut reader = f.reader.lock().await;
                    read_frame(&mut TcpRef(&f.stream), &mut reader, max, &mut out).await
                }
            }
        };
        let got = bounded(self.state.lim.read.until(), "receive", op).await;
        Ok(self.state.received(got)?.then_some(out))
    }
}

impl ListenerOptions {
    /// Binds an async [`ipckit::tokio::MessageListener`](MessageListener) at
    /// `addr` with these options (the `tokio` feature), inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// See [`ListenerOptions::bind_message`].
    pub fn bind_message_tokio(&self, addr: impl ToAddress) -> Result<MessageListener> {
        let addr = addr.to_address()?;
        self.check_for(Kind::message(&addr), &addr)?;
        MessageListener::bind_with(addr, self)
    }
}

impl ConnectOptions {
    /// Connects an async [`ipckit::tokio::MessageStream`](MessageStream) to
    /// `addr` with these options (the `tokio` feature).
    ///
    /// # Errors
    ///
    /// See [`ConnectOptions::connect_message`].
    pub async fn connect_message_tokio(&self, addr: impl ToAddress) -> Result<MessageStream> {
        check_max_message_size(self.max_message_size)?;
        let addr = addr.to_address()?;
        self.check_for(Kind::message(&addr), &addr)?;
        in_runtime(format!("connect to {addr}"))?;
        crate::registry::tokio::connect_each(addr, self, async |addr, opts| {
            let (conn, addr, rule) = connect_one(
                addr,
                opts,
                shm::endpoint,
                sys::tokio::connect_message,
                sys::tokio::MsgStream::peer_credentials,
            )
            .await?;
            let conn = match (conn, &addr) {
                (Either::Local(s), Address::Shm(name)) => Conn::Shm(Box::new(
                    take_channel(&s, &addr, name, opts.max_message_size, &rule).await?,
                )),
                (Either::Local(s), _) => Conn::Local(s),
                (Either::Tcp(s), _) => Conn::framed(s),
            };
            Ok(MessageStream::new(conn, addr, opts.max_message_size))
        })
        .await
    }
}
