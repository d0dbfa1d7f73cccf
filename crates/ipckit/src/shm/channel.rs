//! A message channel between two processes through shared memory
//! (`shm:NAME`): two ring buffers in one region, one per direction, with
//! wake-ups instead of polling.
//!
//! ```no_run
//! use ipckit::shm::{ShmChannel, ShmListener};
//!
//! // In one process:
//! let mut listener = ShmListener::bind("shm:fast")?;
//! let server = listener.accept()?;
//! while let Some(msg) = server.recv()? {
//!     server.send(&msg)?; // echo
//! }
//! # Ok::<(), ipckit::Error>(())
//! ```
//!
//! ```no_run
//! // In the other:
//! let client = ipckit::shm::ShmChannel::connect("shm:fast")?;
//! client.send(b"ping")?;
//! assert_eq!(client.recv()?.as_deref(), Some(&b"ping"[..]));
//! # Ok::<(), ipckit::Error>(())
//! ```
//!
//! # How it works
//!
//! The listener creates the region: a `#[repr(C)]` header (magic `ipckitch`,
//! layout version, ring capacity, each side's maximum message size, the two
//! process ids) and two rings of [`ListenerOptions::shm_capacity`] bytes each
//! (default 1 MiB). A peer that opens it checks the header and refuses a
//! region that is not a channel of this version, or whose sizes do not add up.
//! After `accept` the name is removed (Unix), so nothing is left behind.
//!
//! Messages of any size up to the receiver's maximum (default 64 MiB) travel
//! whole, in chunks of up to half a ring. A receiver that finds nothing spins
//! for 50 µs, yields its CPU for up to 500 µs (so that a peer waiting for a
//! CPU gets one), then sleeps until the sender wakes it (a futex on Linux, a named
//! event on Windows); a sender that finds the ring full waits for room the
//! same way, so nothing is ever dropped. While it sleeps, each side checks
//! every 100 ms that the other process still runs: a peer that dies gives
//! [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected) instead of a hang.
//!
//! One listener serves one peer: a shared-memory channel joins exactly two
//! processes. Within each process, sends take turns and receives take turns
//! (a lock each); [`ShmChannel::split`] gives the two halves without locks,
//! the fastest form (a 64-byte round trip of about 0.2 µs on the machine of
//! docs/BENCHMARKS.md, against about 48 µs over a Unix socket).
//!
//! The same channel on tokio is `ipckit::tokio::shm` (feature `tokio`): either
//! end may be blocking and the other async.

use std::time::{Duration, Instant};

use super::core;
use crate::address::{Address, ToAddress};
use crate::error::Result;
use crate::options::{ConnectOptions, ListenerOptions};
use crate::plain::deadline;
use crate::sys;

/// The creating end of a shared-memory channel, waiting for its one peer.
pub struct ShmListener {
    inner: sys::shm_join::ShmListener,
    addr: Address,
}

impl ShmListener {
    /// Creates the channel region `addr` (`shm:NAME`) with the default
    /// options.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AddrInUse`](crate::ErrorKind::AddrInUse) when a live process holds the name (a region
    /// left by a process that exited is replaced), and the OS error otherwise.
    pub fn bind(addr: impl ToAddress) -> Result<ShmListener> {
        ListenerOptions::new().bind_shm(addr)
    }

    /// Waits for the peer, for ever.
    ///
    /// # Errors
    ///
    /// An error when the peer was accepted already.
    pub fn accept(&mut self) -> Result<ShmChannel> {
        self.accept_until(None)
    }

    /// Waits up to `timeout` for the peer.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) when none came, and the errors of
    /// [`accept`](ShmListener::accept).
    pub fn accept_timeout(&mut self, timeout: Duration) -> Result<ShmChannel> {
        self.accept_until(deadline(Some(timeout)))
    }

    fn accept_until(&mut self, limit: Option<Instant>) -> Result<ShmChannel> {
        let inner = self
            .inner
            .accept(limit)
            .map_err(|e| core::accept_error(&self.addr, e))?;
        Ok(ShmChannel::new(inner, self.addr.clone()))
    }

    core::listener_accessors!();
}

/// One end of a shared-memory message channel.
pub struct ShmChannel {
    inner: sys::shm_channel::ShmChannel,
    addr: Address,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

core::channel_accessors!(ShmChannel);
core::end_debug!(ShmListener, ShmSender, ShmReceiver);

impl ShmChannel {
    /// The ring capacity and this end's maximum message size, as the region
    /// holds them (for `core::channel_accessors!`).
    fn sizes(&self) -> (usize, usize) {
        (self.inner.capacity(), self.inner.max_message_size())
    }

    fn new(inner: sys::shm_channel::ShmChannel, addr: Address) -> ShmChannel {
        ShmChannel {
            inner,
            addr,
            read_timeout: None,
            write_timeout: None,
        }
    }

    /// Joins the channel a [`ShmListener`] created at `addr`, accepting
    /// messages up to 64 MiB.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) when nobody listens there,
    /// [`ErrorKind::Busy`](crate::ErrorKind::Busy) when the channel has its peer already,
    /// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) for a region that is not an ipckit channel (or
    /// not of this version), and the OS error otherwise.
    pub fn connect(addr: impl ToAddress) -> Result<ShmChannel> {
        connect_with(addr, &ConnectOptions::new())
    }

    /// Sends `msg` whole, waiting while the ring is full (up to the write
    /// timeout).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::FrameTooLarge`](crate::ErrorKind::FrameTooLarge) for a message over the peer's maximum
    /// (nothing is sent), [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected) when the peer closed its
    /// end or its process died, [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut).
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        self.inner
            .send(msg, deadline(self.write_timeout))
            .map_err(|e| core::send_error(&self.addr, msg.len(), e))
    }

    /// Receives the next message; `None` when the peer closed its end and
    /// every message was received.
    ///
    /// # Errors
    ///
    /// As [`recv_into`](ShmChannel::recv_into).
    pub fn recv(&self) -> Result<Option<Vec<u8>>> {
        let mut msg = Vec::new();
        Ok(self.recv_into(&mut msg)?.then_some(msg))
    }

    /// Receives the next message into `buf` (replacing its contents); `false`
    /// at the end of the channel. A timeout in the middle of a long message
    /// loses nothing: the next call goes on with it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) past the read timeout,
    /// [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected) when the peer's process died (or closed in
    /// the middle of a message), [`ErrorKind::FrameTooLarge`](crate::ErrorKind::FrameTooLarge)/[`ErrorKind::Protocol`](crate::ErrorKind::Protocol)
    /// when the peer broke the protocol (the incoming direction is closed).
    pub fn recv_into(&self, buf: &mut Vec<u8>) -> Result<bool> {
        self.inner
            .recv(buf, deadline(self.read_timeout))
            .map_err(|e| core::recv_error(&self.addr, e))
    }

    /// Sets how long a `recv` may wait (`None`: for ever).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// Sets how long a `send` may wait for room (`None`: for ever).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// Splits the channel into its sending and receiving halves, for two
    /// threads. The halves take `&mut self` and no lock, so a send or receive
    /// that finds the ring ready costs no atomic read-modify-write: the fastest
    /// way to use the channel. Each keeps this channel's timeout for its
    /// direction; dropping one closes its direction.
    pub fn split(self) -> (ShmSender, ShmReceiver) {
        let (tx, rx) = self.inner.split();
        (
            ShmSender {
                inner: tx,
                addr: self.addr.clone(),
                timeout: self.write_timeout,
            },
            ShmReceiver {
                inner: rx,
                addr: self.addr,
                timeout: self.read_timeout,
            },
        )
    }
}

/// The sending half of a [`ShmChannel`] ([`ShmChannel::split`]).
pub struct ShmSender {
    inner: sys::shm_channel::ShmSender,
    addr: Address,
    timeout: Option<Duration>,
}

impl ShmSender {
    /// As [`ShmChannel::send`].
    ///
    /// # Errors
    ///
    /// As [`ShmChannel::send`].
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.inner
            .send(msg, deadline(self.timeout))
            .map_err(|e| core::send_error(&self.addr, msg.len(), e))
    }

    core::sender_accessors!();
}

/// The receiving half of a [`ShmChannel`] ([`ShmChannel::split`]).
pub struct ShmReceiver {
    inner: sys::shm_channel::ShmReceiver,
    addr: Address,
    timeout: Option<Duration>,
}

impl ShmReceiver {
    /// As [`ShmChannel::recv`].
    ///
    /// # Errors
    ///
    /// As [`ShmChannel::recv_into`].
    pub fn recv(&mut self) -> Result<Option<Vec<u8>>> {
        let mut msg = Vec::new();
        Ok(self.recv_into(&mut msg)?.then_some(msg))
    }

    /// As [`ShmChannel::recv_into`].
    ///
    /// # Errors
    ///
    /// As [`ShmChannel::recv_into`].
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<bool> {
        self.inner
            .recv(buf, deadline(self.timeout))
            .map_err(|e| core::recv_error(&self.addr, e))
    }

    core::receiver_accessors!();
}

/// Creates the channel region `addr` with `opts` ([`ListenerOptions::bind_shm`]).
pub(crate) fn bind_with(opts: &ListenerOptions, addr: impl ToAddress) -> Result<ShmListener> {
    let (inner, addr) = core::bind(opts, addr)?;
    Ok(ShmListener { inner, addr })
}

pub(crate) fn connect_with(addr: impl ToAddress, opts: &ConnectOptions) -> Result<ShmChannel> {
    let mut connecting = core::Connecting::new(addr, opts)?;
    loop {
        match connecting.attempt()? {
            core::Attempt::Joined(inner) => return Ok(ShmChannel::new(*inner, connecting.addr)),
            core::Attempt::Retry(pause) => std::thread::sleep(pause),
        }
    }
}
