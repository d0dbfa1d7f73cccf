//! The async mailslot receiver.

use std::fmt;

use super::in_runtime;
use crate::address::ToAddress;
use crate::error::{Error, Result};
use crate::mailslot::Inbox;
use crate::sys;

/// The receiving end of a mailslot on tokio: the async form of
/// [`crate::MailslotReceiver`] (senders need no async form: a send does not
/// wait for the receiver, except on a full Unix queue).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let inbox = ipckit::tokio::MailslotReceiver::bind("mailslot:inbox")?;
/// match tokio::time::timeout(Duration::from_secs(5), inbox.recv()).await {
///     Ok(msg) => println!("{} bytes", msg?.len()),
///     Err(_) => println!("nothing for 5 s"),
/// }
/// # Ok(()) }
/// ```
///
/// # Cancel safety
///
/// [`recv`](MailslotReceiver::recv) is cancel safe: a dropped `recv` (a lost
/// `select!` branch, an expired `tokio::time::timeout`) loses no message.
pub struct MailslotReceiver {
    /// Read by the OS handle impls of [`os`](crate::os) too.
    pub(crate) inner: sys::tokio::MailslotReceiver,
    inbox: Inbox,
}

impl fmt::Debug for MailslotReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inbox.debug(f, "MailslotReceiver")
    }
}

impl MailslotReceiver {
    /// Creates the receiver of `addr`, inside a tokio runtime (see
    /// [`crate::MailslotReceiver::bind`]).
    ///
    /// # Errors
    ///
    /// Those of [`crate::MailslotReceiver::bind`], and [`crate::ErrorKind::Unsupported`]
    /// outside a tokio runtime.
    pub fn bind(addr: impl ToAddress) -> Result<MailslotReceiver> {
        let addr = addr.to_address()?;
        in_runtime(format!("bind {addr}"))?;
        MailslotReceiver::new(crate::MailslotReceiver::bind(addr)?)
    }

    /// Joins broadcast group `group`, inside a tokio runtime (see
    /// [`crate::MailslotReceiver::join`]).
    ///
    /// # Errors
    ///
    /// Those of [`crate::MailslotReceiver::join`], and
    /// [`crate::ErrorKind::Unsupported`] outside a tokio runtime.
    pub fn join(group: &str) -> Result<MailslotReceiver> {
        in_runtime(format!("join broadcast group {group}"))?;
        MailslotReceiver::new(crate::MailslotReceiver::join(group)?)
    }

    /// Adopts a blocking receiver (made with options, say), inside a tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Unsupported`] outside a tokio runtime, and the OS
    /// error from registering with the reactor.
    pub fn new(receiver: crate::MailslotReceiver) -> Result<MailslotReceiver> {
        let (inner, inbox) = receiver.into_parts();
        in_runtime(format!("adopt the receiver of {}", inbox.addr))?;
        let inner = sys::tokio::MailslotReceiver::new(inner)
            .map_err(|e| Error::io(format!("register the receiver of {}", inbox.addr), e))?;
        Ok(MailslotReceiver { inner, inbox })
    }

    /// Waits for the next message.
    ///
    /// # Errors
    ///
    /// As for [`crate::MailslotReceiver::recv`].
    pub async fn recv(&self) -> Result<Vec<u8>> {
        let mut msg = Vec::new();
        self.inner
            .recv(&mut msg)
            .await
            .map_err(|e| self.inbox.recv_error(e))?;
        Ok(msg)
    }

    crate::mailslot::inbox_accessors!();
}
