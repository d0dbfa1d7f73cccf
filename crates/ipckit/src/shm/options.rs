//! The shared-memory channel's option and finishers:
//! [`ListenerOptions::shm_capacity`], [`ListenerOptions::bind_shm`] and
//! [`ConnectOptions::connect_shm`] (their tokio forms are in
//! `crate::tokio::shm`, with the `tokio` feature).

use crate::address::ToAddress;
use crate::error::Result;
use crate::options::applies::Opt;
use crate::options::{ConnectOptions, ListenerOptions};
use crate::shm::{ShmChannel, ShmListener};

impl ListenerOptions {
    /// The bytes of each ring of a shared-memory channel (default 1 MiB, at
    /// least 4 KiB, rounded up to a multiple of 64).
    pub fn shm_capacity(&mut self, bytes: usize) -> &mut Self {
        self.mark(Opt::ShmCapacity);
        self.shm_capacity = bytes;
        self
    }

    /// Creates a shared-memory channel at `addr` with these options' ring
    /// capacity and maximum message size.
    ///
    /// # Errors
    ///
    /// See [`ShmListener::bind`]; [`ErrorKind::InvalidOption`](crate::ErrorKind::InvalidOption) for a capacity
    /// under 4 KiB.
    pub fn bind_shm(&self, addr: impl ToAddress) -> Result<ShmListener> {
        crate::shm::channel::bind_with(self, addr)
    }
}

impl ConnectOptions {
    /// Joins the shared-memory channel at `addr`, accepting messages up to
    /// these options' maximum message size; with
    /// [`retry_not_found`](ConnectOptions::retry_not_found), keeps trying
    /// while nobody listens there, up to the [`timeout`](ConnectOptions::timeout).
    ///
    /// # Errors
    ///
    /// See [`ShmChannel::connect`]; with `retry_not_found`,
    /// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) when the timeout passes with nobody listening
    /// (as for every transport).
    pub fn connect_shm(&self, addr: impl ToAddress) -> Result<ShmChannel> {
        crate::shm::channel::connect_with(addr, self)
    }
}
