//! The finishers of byte streams: [`ListenerOptions::bind`] and
//! [`ConnectOptions::connect`] (their tokio forms are in `crate::tokio`, with
//! the `tokio` feature).

use super::{Listener, Stream};
use crate::address::ToAddress;
use crate::error::Result;
use crate::options::applies::Kind;
use crate::options::{ConnectOptions, ListenerOptions};

impl ListenerOptions {
    /// Binds a listener at `addr` with these options.
    ///
    /// # Errors
    ///
    /// See [`Listener::bind`]; also [`ErrorKind::InvalidOption`](crate::ErrorKind::InvalidOption) for a
    /// `max_instances` of 0 or 255, a bad `mode` or `security_descriptor`,
    /// [`current_user_only`](Self::current_user_only) on `tcp:`, and an option
    /// a byte stream (or TCP) cannot use.
    pub fn bind(&self, addr: impl ToAddress) -> Result<Listener> {
        let addr = addr.to_address()?;
        self.check_for(Kind::stream(&addr), &addr)?;
        Listener::bind_with(addr, self)
    }
}

impl ConnectOptions {
    /// Connects to `addr` with these options.
    ///
    /// # Errors
    ///
    /// See [`Stream::connect`]; also [`ErrorKind::InvalidOption`](crate::ErrorKind::InvalidOption) for
    /// [`max_message_size`](Self::max_message_size), which a byte stream
    /// cannot use.
    pub fn connect(&self, addr: impl ToAddress) -> Result<Stream> {
        let addr = addr.to_address()?;
        self.check_for(Kind::stream(&addr), &addr)?;
        Stream::connect_with(addr, self)
    }
}
