//! The finishers of mailslots: [`ConnectOptions::connect_mailslot`],
//! [`ListenerOptions::bind_mailslot`] and
//! [`ListenerOptions::join_mailslot_group`] (their tokio form is in
//! `crate::tokio`, with the `tokio` feature).

use crate::address::ToAddress;
use crate::error::Result;
use crate::mailslot::{MailslotReceiver, MailslotSender};
use crate::options::{ConnectOptions, ListenerOptions};

impl ConnectOptions {
    /// Opens the mailslot at `addr` for sending, checking its receiver as these
    /// options say ([`require_server_user`](ConnectOptions::require_server_user),
    /// [`server_user_any`](ConnectOptions::server_user_any)); the other options
    /// do not apply to mailslots.
    ///
    /// # Platform-specific behavior
    ///
    /// ### Unix
    ///
    /// For `mailslot:NAME` the private runtime directory is checked as for
    /// every portable name, and the receiver's socket file must belong to the
    /// current user (by default) or to the user named: a datagram socket has
    /// no peer credentials, but only its owner (or root) can have created the
    /// file.
    ///
    /// ### Windows
    ///
    /// Windows tells a sender nothing about who created a mailslot, so nothing
    /// is checked by default, and a rule set with `require_server_user` or
    /// `server_user_is_current` is refused ([`ErrorKind::InvalidOption`](crate::ErrorKind::InvalidOption)).
    ///
    /// # Errors
    ///
    /// See [`MailslotSender::connect`].
    pub fn connect_mailslot(&self, addr: impl ToAddress) -> Result<MailslotSender> {
        crate::mailslot::connect_with(self, addr)
    }
}

impl ListenerOptions {
    /// Creates a [`MailslotReceiver`] at `addr` that accepts messages up to this
    /// options' [`max_message_size`](ListenerOptions::max_message_size).
    ///
    /// # Errors
    ///
    /// See [`MailslotReceiver::bind`].
    pub fn bind_mailslot(&self, addr: impl ToAddress) -> Result<MailslotReceiver> {
        crate::mailslot::bind_with(self, addr)
    }

    /// Joins broadcast group `group` with a receiver that accepts messages up to
    /// this options' maximum message size.
    ///
    /// # Errors
    ///
    /// See [`MailslotReceiver::join`].
    pub fn join_mailslot_group(&self, group: &str) -> Result<MailslotReceiver> {
        crate::mailslot::join_with(self, group)
    }
}
