//! Mailslots: one-way messages from any number of writers to one receiver, and
//! broadcast to every receiver of a group.
//!
//! | | Windows | Unix |
//! |---|---|---|
//! | `mailslot:NAME` | a mailslot, `\\.\mailslot\NAME` (`CreateMailslotW`) | a `SOCK_DGRAM` socket file `NAME.dgram` in the private per-user directory |
//! | `unix:/path`, `@NAME` | — | a `SOCK_DGRAM` socket at that path or abstract name |
//! | broadcast group `NAME` | a mailslot per receiver, registered in a per-user directory | a socket per receiver in the directory `NAME.group/` |
//!
//! ```no_run
//! use ipckit::{MailslotReceiver, MailslotSender};
//! use std::time::Duration;
//!
//! let inbox = MailslotReceiver::bind("mailslot:inbox")?;
//! let writer = MailslotSender::connect("mailslot:inbox")?;
//! writer.send(b"one")?;
//! writer.send(b"")?; // empty messages are messages
//! assert_eq!(inbox.recv()?, b"one");
//! assert_eq!(inbox.recv_timeout(Duration::from_secs(1))?, b"");
//! assert!(inbox.try_recv()?.is_none()); // nothing queued
//! # Ok::<(), ipckit::Error>(())
//! ```
//!
//! # Delivery
//!
//! Each `send` is one message, delivered whole or not at all, in order from each
//! sender. On Unix a full receive queue makes senders wait, so nothing is lost
//! while the receiver keeps reading. Windows mailslots queue messages in the
//! receiver's process without a bound.
//!
//! # The maximum message size
//!
//! The receiver sets it (default 64 MiB; [`ListenerOptions::max_message_size`]
//! then [`ListenerOptions::bind_mailslot`]). On Windows it is the mailslot's
//! `nMaxMessageSize`, and a larger `send` fails at the sender. On Unix the
//! sender cannot know it: the receiver drops a larger message whole and its
//! `recv` fails with [`ErrorKind::FrameTooLarge`] (the next `recv` goes on with
//! the next message). A Unix datagram is also bounded by the sending socket's
//! buffer (about 208 KiB by default): a larger `send` fails at the sender.
//!
//! # Broadcast
//!
//! [`MailslotReceiver::join`] makes a receiver a member of a broadcast group;
//! [`MailslotSender::broadcast`] sends one message to every live member on this
//! machine and removes the registration of members that died without leaving.
//! It never waits for a member: on Unix, a member whose datagram queue is full
//! (it is not reading, or not fast enough) is skipped, so one stuck member
//! cannot stall the others. The skipped member loses that message: the
//! [`Broadcast`] each call returns says how many members received it and how
//! many were skipped ([`Broadcast::full`], named in
//! [`Broadcast::full_members`]).
//! (Windows also has a domain-wide broadcast, writing to `\\*\mailslot\NAME`,
//! which reaches the mailslot `NAME` of every machine in the domain over the
//! network, in messages of at most 424 bytes. ipckit does not use it: groups are
//! local to this machine.)

mod options;

use std::fmt;
use std::time::Duration;

use crate::address::{Address, ToAddress};
use crate::error::{Error, ErrorKind, Result};
use crate::options::applies::Kind;
use crate::options::{ConnectOptions, ListenerOptions};
use crate::sys;

/// What is queued at a receiver ([`MailslotReceiver::pending`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pending {
    /// The size of the next message, or `None` when none is queued.
    pub next_size: Option<usize>,
    /// How many messages are queued, when the OS tells: always on Windows
    /// (`GetMailslotInfo`); on Unix only that none is (`Some(0)`), as Unix does
    /// not count datagrams.
    pub count: Option<usize>,
}

impl Pending {
    /// From the sys layer's `(next size, count)` for the receiver of `addr`.
    pub(crate) fn of(
        queued: std::io::Result<(Option<usize>, Option<usize>)>,
        addr: &Address,
    ) -> Result<Pending> {
        let (next_size, count) =
            queued.map_err(|e| Error::io(format!("look at what is queued on {addr}"), e))?;
        Ok(Pending { next_size, count })
    }
}

pub use crate::plain::Broadcast;

/// Checks a broadcast group name: a valid mailslot name that is also one
/// plain component of a file name on every OS (the group is a directory),
/// short enough for its members' socket paths on Unix.
fn group_name(group: &str) -> Result<String> {
    let invalid = |why: String| {
        Error::new(
            ErrorKind::InvalidAddress,
            format!("invalid broadcast group name {group:?}: {why}"),
        )
    };
    let Address::Mailslot(name) = format!("mailslot:{group}").parse::<Address>()? else {
        return Err(invalid("it is not a mailslot name".into()));
    };
    if name == "." || name == ".." {
        return Err(invalid("it must name something (not '.' or '..')".into()));
    }
    if let Some(c) = name.chars().find(|&c| {
        matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') || c.is_control()
    }) {
        return Err(invalid(format!(
            "it cannot contain {c:?} (it is one component of a file name)"
        )));
    }
    crate::address::check_group_name_len(&name, &sys::env())?;
    Ok(name)
}

/// "1 byte", "2 bytes".
fn bytes(n: usize) -> String {
    if n == 1 {
        "1 byte".to_owned()
    } else {
        format!("{n} bytes")
    }
}

/// The receiving end of a mailslot: any number of senders, one receiver.
///
/// See the [module documentation](self) for delivery, size limits and
/// broadcast.
///
/// # Examples
///
/// ```no_run
/// let inbox = ipckit::ListenerOptions::new()
///     .max_message_size(4096)
///     .bind_mailslot("mailslot:logs")?;
/// loop {
///     let line = inbox.recv()?;
///     println!("{}", String::from_utf8_lossy(&line));
/// }
/// # Ok::<(), ipckit::Error>(())
/// ```
pub struct MailslotReceiver {
    pub(crate) inner: sys::MailslotReceiver,
    inbox: Inbox,
}

impl fmt::Debug for MailslotReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inbox.debug(f, "MailslotReceiver")
    }
}

/// What both faces of a receiver keep beside their OS object, and the policy
/// they share: the address served (`mailslot:NAME`, or a group's name), the
/// largest message taken, the context of a failed receive.
pub(crate) struct Inbox {
    pub(crate) addr: Address,
    pub(crate) max: usize,
}

impl Inbox {
    pub(crate) fn debug(&self, f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
        f.debug_struct(name)
            .field("addr", &self.addr)
            .field("max_message_size", &self.max)
            .finish_non_exhaustive()
    }

    /// A failed receive, naming the address.
    pub(crate) fn recv_error(&self, e: std::io::Error) -> Error {
        Error::io(format!("receive on {}", self.addr), e)
    }
}

/// `pending`, `local_addr` and `max_message_size` of a receiver face that
/// keeps an [`Inbox`] in `self.inbox` and its OS object in `self.inner`.
macro_rules! inbox_accessors {
    () => {
        /// What is queued: the next message's size and, where the OS counts
        /// them, how many messages wait (`GetMailslotInfo`'s contract).
        ///
        /// # Errors
        ///
        /// The OS error.
        pub fn pending(&self) -> $crate::Result<$crate::mailslot::Pending> {
            $crate::mailslot::Pending::of(self.inner.pending(), &self.inbox.addr)
        }

        /// The address this receiver serves (`mailslot:NAME`, or for a group
        /// member the group's name as `mailslot:GROUP`).
        pub fn local_addr(&self) -> &$crate::Address {
            &self.inbox.addr
        }

        /// The largest message this receiver accepts.
        pub fn max_message_size(&self) -> usize {
            self.inbox.max
        }
    };
}
#[cfg(feature = "tokio")]
pub(crate) use inbox_accessors;

impl MailslotReceiver {
    /// Creates the receiver of `addr` (`mailslot:NAME`; on Unix also
    /// `unix:/path` or `@NAME`), accepting messages up to 64 MiB.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AddrInUse`] when another receiver has the name,
    /// [`ErrorKind::InvalidAddress`] or [`ErrorKind::Unsupported`] for an
    /// address that is not a mailslot here, and the OS error otherwise.
    pub fn bind(addr: impl ToAddress) -> Result<MailslotReceiver> {
        ListenerOptions::new().bind_mailslot(addr)
    }

    /// Creates a receiver that is a member of broadcast group `group`, accepting
    /// messages up to 64 MiB. It leaves the group when dropped.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidAddress`] for a group name that is not a valid
    /// mailslot name, holds `/` or `\`, or (Unix) is too long for its members'
    /// socket paths (`RUNTIME_DIR/GROUP.group/PID-N.dgram` must fit in
    /// `sun_path`), and the OS error otherwise.
    pub fn join(group: &str) -> Result<MailslotReceiver> {
        ListenerOptions::new().join_mailslot_group(group)
    }

    /// Waits for the next message, for ever.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::FrameTooLarge`] for a message over the limit (Unix; it is
    /// dropped), and the OS error otherwise.
    pub fn recv(&self) -> Result<Vec<u8>> {
        let mut msg = Vec::new();
        self.recv_into(&mut msg, None)?;
        Ok(msg)
    }

    /// Waits up to `timeout` for the next message; a zero timeout only looks.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TimedOut`] when none arrived in time, and the errors of
    /// [`recv`](MailslotReceiver::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        let mut msg = Vec::new();
        self.recv_into(&mut msg, Some(timeout))?;
        Ok(msg)
    }

    /// The next message if one is queued, without waiting.
    ///
    /// # Errors
    ///
    /// The errors of [`recv`](MailslotReceiver::recv).
    pub fn try_recv(&self) -> Result<Option<Vec<u8>>> {
        match self.recv_timeout(Duration::ZERO) {
            Ok(msg) => Ok(Some(msg)),
            Err(e) if e.is_timeout() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Receives the next message into `buf` (replacing its contents), waiting as
    /// `timeout` says: `None` for ever, zero not at all.
    ///
    /// # Errors
    ///
    /// As for [`recv_timeout`](MailslotReceiver::recv_timeout); on an error `buf`
    /// is left empty.
    pub fn recv_into(&self, buf: &mut Vec<u8>, timeout: Option<Duration>) -> Result<()> {
        buf.clear();
        self.inner.recv(buf, timeout).map_err(|e| {
            buf.clear();
            self.inbox.recv_error(e)
        })
    }

    inbox_accessors!();

    #[cfg(feature = "tokio")]
    pub(crate) fn into_parts(self) -> (sys::MailslotReceiver, Inbox) {
        (self.inner, self.inbox)
    }
}

/// The sending end of a mailslot. Any number of senders may write to one
/// receiver; each `send` arrives as one message.
///
/// # Examples
///
/// ```no_run
/// let logs = ipckit::MailslotSender::connect("mailslot:logs")?;
/// logs.send(b"service started")?;
/// let reached = ipckit::MailslotSender::broadcast("workers", b"reload")?;
/// println!("{} workers told", reached.delivered);
/// # Ok::<(), ipckit::Error>(())
/// ```
pub struct MailslotSender {
    pub(crate) inner: sys::MailslotSender,
    addr: Address,
}

impl fmt::Debug for MailslotSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailslotSender")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MailslotSender {
    /// Opens the mailslot at `addr` for sending, with the default
    /// [`ConnectOptions`]: see [`ConnectOptions::connect_mailslot`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no receiver has the name,
    /// [`ErrorKind::PermissionDenied`] when the receiver of a portable name is
    /// another user's (Unix), and the address errors of
    /// [`MailslotReceiver::bind`].
    pub fn connect(addr: impl ToAddress) -> Result<MailslotSender> {
        ConnectOptions::new().connect_mailslot(addr)
    }

    /// Sends `msg` as one message. Nothing acknowledges it: a mailslot is a
    /// one-way datagram queue.
    ///
    /// # A receiver that died
    ///
    /// A send never hangs: on Unix it fails at once once the receiver has gone
    /// (and an old sender never reaches a receiver restarted on the name:
    /// connect again). On Windows the mailslot goes with its receiver's last
    /// handle and, as the Win32 documentation says, its senders' handles with
    /// it; a send that has not completed after 5 s (Wine keeps a dead
    /// receiver's mailslot alive for its senders, and its writes block once
    /// its buffer is full) is given up, and this sender fails every send from
    /// then on with [`ErrorKind::Disconnected`]. Under Wine the sends before
    /// that succeed and are lost. docs/RELIABILITY.md has the details.
    ///
    /// # Errors
    ///
    /// A message too large for the receiver (Windows) or for a datagram (Unix),
    /// [`ErrorKind::NotFound`] or [`ErrorKind::Disconnected`] when the receiver
    /// has gone, and the OS error otherwise.
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        self.inner
            .send(msg)
            .map_err(|e| Error::io(format!("send {} to {}", bytes(msg.len()), self.addr), e))
    }

    /// Sends `msg` to every live member of broadcast group `group` on this
    /// machine (see [`MailslotReceiver::join`]). A group nobody has joined
    /// reaches nobody; that is not an error.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidAddress`] for a bad group name (as for
    /// [`MailslotReceiver::join`]), and the OS error of a
    /// member that is alive but could not be written to, naming the member
    /// (every member is tried first). A member whose queue is full is no
    /// error: it is skipped, loses this message, and is counted in
    /// [`Broadcast::full`] and named in [`Broadcast::full_members`].
    pub fn broadcast(group: &str, msg: &[u8]) -> Result<Broadcast> {
        let name = group_name(group)?;
        sys::broadcast(&name, msg)
            .map_err(|e| Error::io(format!("broadcast {} to group {name}", bytes(msg.len())), e))
    }

    /// The address this sender writes to.
    pub fn peer_addr(&self) -> &Address {
        &self.addr
    }
}

/// Why a mailslot cannot check who sent a message.
const NO_SENDER: &str = "a mailslot or datagram receiver learns nothing about who sent a message";

/// [`ConnectOptions::connect_mailslot`]: opens the mailslot at `addr` for
/// sending, its receiver checked as `opts` say.
pub(crate) fn connect_with(opts: &ConnectOptions, addr: impl ToAddress) -> Result<MailslotSender> {
    let addr = crate::registry::resolve(&addr.to_address()?)?;
    opts.check_for(Kind::MailslotSender, &addr)?;
    let ep = addr.mailslot_endpoint(&sys::env())?;
    let server_user = opts
        .server_user
        .precheck(&addr, sys::MAILSLOT_RECEIVER_UNKNOWN)?;
    let inner = sys::MailslotSender::connect(&ep).map_err(|e| Error::connect(&addr, &ep, e))?;
    server_user.verify(&addr, "receiver", || inner.receiver_credentials())?;
    Ok(MailslotSender { inner, addr })
}

/// [`ListenerOptions::bind_mailslot`]: a receiver at `addr`.
pub(crate) fn bind_with(opts: &ListenerOptions, addr: impl ToAddress) -> Result<MailslotReceiver> {
    let addr = addr.to_address()?;
    opts.check_for(Kind::Mailslot, &addr)?;
    crate::security::refuse_identity_rule(
        opts.current_user_only,
        "current_user_only",
        &addr,
        NO_SENDER,
    )?;
    let ep = addr.mailslot_endpoint(&sys::env())?;
    let max = opts.sys.max_message_size;
    let inner =
        sys::MailslotReceiver::bind(&ep, opts.config()).map_err(|e| Error::bind(&addr, &ep, e))?;
    Ok(MailslotReceiver {
        inner,
        inbox: Inbox { addr, max },
    })
}

/// [`ListenerOptions::join_mailslot_group`]: a receiver in broadcast group `group`.
pub(crate) fn join_with(opts: &ListenerOptions, group: &str) -> Result<MailslotReceiver> {
    let name = group_name(group)?;
    opts.check_for(Kind::MailslotGroup, &format_args!("broadcast group {name}"))?;
    crate::security::refuse_identity_rule(
        opts.current_user_only,
        "current_user_only",
        format!("broadcast group {name}"),
        NO_SENDER,
    )?;
    let max = opts.sys.max_message_size;
    let inner = sys::join_group(&name, opts.config())
        .map_err(|e| Error::io(format!("join broadcast group {name}"), e))?;
    Ok(MailslotReceiver {
        inner,
        inbox: Inbox {
            addr: Address::Mailslot(name),
            max,
        },
    })
}
