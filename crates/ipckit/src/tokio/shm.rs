//! The shared-memory message channel on tokio: [`ShmListener`] and
//! [`ShmChannel`], the async forms of [`crate::shm::ShmListener`] and
//! [`crate::shm::ShmChannel`], with their semantics (whole messages, a sender
//! that waits while the ring is full, a dead peer reported, split halves).
//!
//! The region, the rings and the wake-up protocol are the blocking channel's,
//! so either end may be blocking and the other async, in any two processes.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), ipckit::Error> {
//! use ipckit::tokio::shm::{ShmChannel, ShmListener};
//!
//! let mut listener = ShmListener::bind("shm:fast")?;
//! tokio::spawn(async move {
//!     let server = listener.accept().await?;
//!     while let Some(msg) = server.recv().await? {
//!         server.send(&msg).await?; // echo
//!     }
//!     Ok::<_, ipckit::Error>(())
//! });
//! let client = ShmChannel::connect("shm:fast").await?;
//! client.send(b"ping").await?;
//! assert_eq!(client.recv().await?.as_deref(), Some(&b"ping"[..]));
//! # Ok(()) }
//! ```
//!
//! # How a task waits
//!
//! Without a thread per channel and without polling. A task that finds
//! nothing to read (or no room to write) spins for 10 µs, then announces
//! itself in the region as a blocking end does, and sleeps until the peer's
//! notification:
//!
//! - Linux: a waker thread per process (one more per 127 sleeping tasks)
//!   sleeps in `futex_waitv` on the futex words of every sleeping task at once
//!   and wakes the task whose word moved. The peer's exit comes through its
//!   pidfd in tokio's reactor. Linux before 5.16 lacks `futex_waitv`: the
//!   waker thread then looks at its words every millisecond. Other Unix
//!   systems likewise.
//! - Windows: the channel's named events are waited for by the system thread
//!   pool (`RegisterWaitForSingleObject`), and so is the peer's process
//!   handle.
//!
//! A sleeping task costs no CPU.
//!
//! # Cancel safety
//!
//! - [`ShmListener::accept`] is cancel safe: a dropped accept loses no peer; the
//!   next accept returns it.
//! - [`ShmChannel::recv`] and [`ShmChannel::recv_into`] (and the receiving
//!   half's) are cancel safe: a dropped receive loses no message. The part of a
//!   long message read so far stays in the channel, and the next receive goes
//!   on with it.
//! - [`ShmChannel::send`] (and the sending half's) sends the whole message or
//!   nothing, when dropped: a message of up to half the ring goes in at once,
//!   or not at all. A longer one goes in chunks: once its first chunk is in the
//!   ring, it is *committed*, and if the send is dropped the rest of it waits
//!   in the channel and goes out, before anything else, at the next `send` or
//!   [`flush`](ShmChannel::flush). [`ShmSender::messages_committed`] tells the
//!   two cases apart. Dropping the channel with a committed message not flushed
//!   leaves the peer a message cut short, which it reports as an error.
//!
//! # Timeouts
//!
//! [`ShmChannel::set_read_timeout`] and
//! [`set_write_timeout`](ShmChannel::set_write_timeout) bound each operation,
//! as `tokio::time::timeout` would (with the cancel safety above), and fail it
//! with [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut).

use std::future::Future;
use std::time::Duration;

use ::tokio::sync::Mutex;

use super::in_runtime;
use crate::address::{Address, ToAddress};
use crate::error::Result;
use crate::options::{ConnectOptions, ListenerOptions};
use crate::plain::timed_out;
use crate::shm::core;
use crate::sys;
use crate::sys::shm_tokio::{AsyncReceiver, AsyncSender};

/// Runs `op` within `timeout`, if any.
async fn bounded<T>(
    timeout: Option<Duration>,
    what: &str,
    op: impl Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    match timeout {
        None => op.await,
        Some(t) => ::tokio::time::timeout(t, op)
            .await
            .unwrap_or_else(|_| Err(timed_out(what))),
    }
}

/// The creating end of a shared-memory channel, waiting for its one peer:
/// the async form of [`crate::shm::ShmListener`].
pub struct ShmListener {
    inner: sys::shm_join::ShmListener,
    addr: Address,
}

impl ShmListener {
    /// Creates the channel region `addr` (`shm:NAME`) with the default
    /// options ([`ListenerOptions::bind_shm_tokio`] for others).
    ///
    /// # Errors
    ///
    /// As [`crate::shm::ShmListener::bind`].
    pub fn bind(addr: impl ToAddress) -> Result<ShmListener> {
        ListenerOptions::new().bind_shm_tokio(addr)
    }

    /// Waits for the peer.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a peer that joins while no accept runs is returned by the
    /// next one.
    ///
    /// # Errors
    ///
    /// An error when the peer was accepted already, or outside a tokio runtime.
    pub async fn accept(&mut self) -> Result<ShmChannel> {
        in_runtime(format!("accept on {}", self.addr))?;
        let inner = sys::shm_tokio::accept(&mut self.inner)
            .await
            .map_err(|e| core::accept_error(&self.addr, e))?;
        Ok(ShmChannel::new(inner, self.addr.clone()))
    }

    core::listener_accessors!();
}

/// One end of a shared-memory message channel on tokio: the async form of
/// [`crate::shm::ShmChannel`]. Sends take turns and receives take turns (an
/// async lock each); [`split`](ShmChannel::split) gives the halves without
/// locks.
pub struct ShmChannel {
    tx: Mutex<ShmSender>,
    rx: Mutex<ShmReceiver>,
    addr: Address,
    capacity: usize,
    max_in: usize,
}

core::channel_accessors!(ShmChannel);
core::end_debug!(ShmListener, ShmSender, ShmReceiver);

impl ShmChannel {
    /// The ring capacity and this end's maximum message size, read before
    /// the channel was split into its halves (for
    /// `core::channel_accessors!`).
    fn sizes(&self) -> (usize, usize) {
        (self.capacity, self.max_in)
    }

    fn new(inner: sys::shm_channel::ShmChannel, addr: Address) -> ShmChannel {
        let (capacity, max_in) = (inner.capacity(), inner.max_message_size());
        let (tx, rx) = inner.split();
        ShmChannel {
            tx: Mutex::new(ShmSender {
                inner: AsyncSender::new(tx),
                addr: addr.clone(),
                timeout: None,
            }),
            rx: Mutex::new(ShmReceiver {
                inner: AsyncReceiver::new(rx),
                addr: addr.clone(),
                timeout: None,
            }),
            addr,
            capacity,
            max_in,
        }
    }

    /// Joins the channel a listener (blocking or async) created at `addr`,
    /// with the default options ([`ConnectOptions::connect_shm_tokio`] for
    /// others).
    ///
    /// # Cancel safety
    ///
    /// Dropped while it waits to retry, it has joined nothing.
    ///
    /// # Errors
    ///
    /// As [`crate::shm::ShmChannel::connect`].
    pub async fn connect(addr: impl ToAddress) -> Result<ShmChannel> {
        ConnectOptions::new().connect_shm_tokio(addr).await
    }

    /// Sends `msg` whole, waiting while the ring is full (up to the write
    /// timeout).
    ///
    /// # Cancel safety
    ///
    /// Whole or nothing: see the [module docs](self#cancel-safety).
    ///
    /// # Errors
    ///
    /// As [`crate::shm::ShmChannel::send`].
    pub async fn send(&self, msg: &[u8]) -> Result<()> {
        self.tx.lock().await.send(msg).await
    }

    /// Sends the rest of a long message whose send was dropped after it began
    /// (nothing to do otherwise).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: what is left stays for the next `flush` or `send`.
    ///
    /// # Errors
    ///
    /// As [`send`](ShmChannel::send).
    pub async fn flush(&self) -> Result<()> {
        self.tx.lock().await.flush().await
    }

    /// Receives the next message; `None` when the peer closed its end and
    /// every message was received.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped receive loses no message.
    ///
    /// # Errors
    ///
    /// As [`crate::shm::ShmChannel::recv_into`].
    pub async fn recv(&self) -> Result<Option<Vec<u8>>> {
        self.rx.lock().await.recv().await
    }

    /// Receives the next message into `buf` (replacing its contents); `false`
    /// at the end of the channel.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped receive loses no message (`buf` may have been
    /// cleared).
    ///
    /// # Errors
    ///
    /// As [`crate::shm::ShmChannel::recv_into`].
    pub async fn recv_into(&self, buf: &mut Vec<u8>) -> Result<bool> {
        self.rx.lock().await.recv_into(buf).await
    }

    /// Sets how long a `recv` may wait (`None`: for ever).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.rx.get_mut().timeout = timeout;
    }

    /// Sets how long a `send` may wait for room (`None`: for ever).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.tx.get_mut().timeout = timeout;
    }

    /// Splits the channel into its sending and receiving halves, for two
    /// tasks; each keeps this channel's timeout for its direction, and
    /// dropping one closes its direction.
    pub fn split(self) -> (ShmSender, ShmReceiver) {
        (self.tx.into_inner(), self.rx.into_inner())
    }
}

/// The sending half of a [`ShmChannel`] ([`ShmChannel::split`]).
pub struct ShmSender {
    inner: AsyncSender,
    addr: Address,
    timeout: Option<Duration>,
}

impl ShmSender {
    /// As [`ShmChannel::send`].
    ///
    /// # Cancel safety
    ///
    /// As [`ShmChannel::send`].
    ///
    /// # Errors
    ///
    /// As [`ShmChannel::send`].
    pub async fn send(&mut self, msg: &[u8]) -> Result<()> {
        in_runtime(format!("send on {}", self.addr))?;
        bounded(self.timeout, "send", self.inner.send(msg))
            .await
            .map_err(|e| core::send_error(&self.addr, msg.len(), e))
    }

    /// As [`ShmChannel::flush`].
    ///
    /// # Cancel safety
    ///
    /// As [`ShmChannel::flush`].
    ///
    /// # Errors
    ///
    /// As [`ShmChannel::send`].
    pub async fn flush(&mut self) -> Result<()> {
        bounded(self.timeout, "send", self.inner.flush())
            .await
            .map_err(|e| core::send_error(&self.addr, 0, e))
    }

    /// How many messages this half has committed: put in the ring whole, or
    /// (a long one) begun, with its rest going out before anything else. After
    /// a dropped `send`, the count tells whether that message was committed.
    pub fn messages_committed(&self) -> u64 {
        self.inner.committed()
    }

    core::sender_accessors!();
}

/// The receiving half of a [`ShmChannel`] ([`ShmChannel::split`]).
pub struct ShmReceiver {
    inner: AsyncReceiver,
    addr: Address,
    timeout: Option<Duration>,
}

impl ShmReceiver {
    /// As [`ShmChannel::recv`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped receive loses no message.
    ///
    /// # Errors
    ///
    /// As [`ShmChannel::recv_into`].
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>> {
        let mut msg = Vec::new();
        Ok(self.recv_into(&mut msg).await?.then_some(msg))
    }

    /// As [`ShmChannel::recv_into`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped receive loses no message.
    ///
    /// # Errors
    ///
    /// As [`ShmChannel::recv_into`].
    pub async fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<bool> {
        in_runtime(format!("receive on {}", self.addr))?;
        bounded(self.timeout, "receive", self.inner.recv(buf))
            .await
            .map_err(|e| core::recv_error(&self.addr, e))
    }

    core::receiver_accessors!();
}

impl ListenerOptions {
    /// As [`bind_shm`](ListenerOptions::bind_shm), for a
    /// [`tokio::shm::ShmListener`](ShmListener).
    ///
    /// # Errors
    ///
    /// As [`bind_shm`](ListenerOptions::bind_shm).
    pub fn bind_shm_tokio(&self, addr: impl ToAddress) -> Result<ShmListener> {
        let (inner, addr) = core::bind(self, addr)?;
        Ok(ShmListener { inner, addr })
    }
}

impl ConnectOptions {
    /// As [`connect_shm`](ConnectOptions::connect_shm), for a
    /// [`tokio::shm::ShmChannel`](ShmChannel): the retry while nobody listens
    /// sleeps on tokio's timer.
    ///
    /// # Cancel safety
    ///
    /// Dropped while it waits to retry, it has joined nothing; the joining
    /// itself does not wait.
    ///
    /// # Errors
    ///
    /// As [`connect_shm`](ConnectOptions::connect_shm); also outside a tokio
    /// runtime.
    pub async fn connect_shm_tokio(&self, addr: impl ToAddress) -> Result<ShmChannel> {
        let mut connecting = core::Connecting::new(addr, self)?;
        in_runtime(format!("connect to {}", connecting.addr))?;
        loop {
            match connecting.attempt()? {
                core::Attempt::Joined(inner) => {
                    return Ok(ShmChannel::new(*inner, connecting.addr));
                }
                core::Attempt::Retry(pause) => ::tokio::time::sleep(pause).await,
            }
        }
    }
}
