//! The finishers of message channels: [`ListenerOptions::bind_message`] and
//! [`ConnectOptions::connect_message`] (their tokio forms are in
//! `crate::tokio`, with the `tokio` feature).

use crate::address::ToAddress;
use crate::error::Result;
use crate::limits::check_max_message_size;
use crate::message::{MessageListener, MessageStream};
use crate::options::applies::Kind;
use crate::options::{ConnectOptions, ListenerOptions};

impl ListenerOptions {
    /// Binds a [`MessageListener`] at `addr` with these options.
    ///
    /// # Errors
    ///
    /// See [`ListenerOptions::bind`]; also [`ErrorKind::InvalidOption`](crate::ErrorKind::InvalidOption) for a
    /// maximum message size of 0.
    pub fn bind_message(&self, addr: impl ToAddress) -> Result<MessageListener> {
        let addr = addr.to_address()?;
        self.check_for(Kind::message(&addr), &addr)?;
        MessageListener::bind_with(addr, self)
    }
}

impl ConnectOptions {
    /// Connects a [`MessageStream`] to `addr` with these options.
    ///
    /// # Errors
    ///
    /// See [`MessageStream::connect`]; also [`ErrorKind::InvalidOption`](crate::ErrorKind::InvalidOption) for a
    /// maximum message size of 0.
    pub fn connect_message(&self, addr: impl ToAddress) -> Result<MessageStream> {
        check_max_message_size(self.max_message_size)?;
        let addr = addr.to_address()?;
        self.check_for(Kind::message(&addr), &addr)?;
        MessageStream::connect_with(addr, self)
    }
}
