//! Unix-specific extensions, as `std::os::unix`: the settings only a Unix
//! socket has, and the file descriptor of each one-descriptor type (`AsFd`,
//! `AsRawFd`, `From<OwnedFd>`, implemented on the types themselves).
//!
//! # Examples
//!
//! ```no_run
//! # #[cfg(unix)] {
//! use ipckit::os::unix::ListenerOptionsExt;
//!
//! let listener = ipckit::ListenerOptions::new()
//!     .mode(0o660)
//!     .backlog(64)
//!     .bind("unix:/srv/app/app.sock")?;
//! # }
//! # Ok::<(), ipckit::Error>(())
//! ```

use crate::ListenerOptions;
use crate::options::applies::Opt;

/// Unix socket settings of [`ListenerOptions`]. A finisher whose kind cannot
/// use one (`tcp:`, a shared-memory channel) refuses it with
/// [`ErrorKind::InvalidOption`](crate::ErrorKind::InvalidOption).
pub trait ListenerOptionsExt: super::sealed::Sealed {
    /// The mode of the socket file a Unix listener (or mailslot receiver)
    /// creates, instead of the owner-only 0600: for example `0o660` to admit
    /// the members of the file's group (the creating process's group, or the
    /// directory's with setgid).
    ///
    /// Only the permission bits are allowed and the owner must keep read and
    /// write; `bind` refuses anything else with
    /// [`ErrorKind::InvalidOption`](crate::ErrorKind::InvalidOption). The mode
    /// is set on the file before the socket listens, so no client connects
    /// under the default first. A client also needs search (`x`) permission on
    /// every directory above the file: the private directory of portable
    /// names is 0700 and admits nobody else whatever the mode, so a group
    /// socket needs an explicit path (`unix:/srv/app/app.sock`). A Linux
    /// abstract socket has no file and no mode; `bind` refuses a mode for one.
    #[doc(alias = "chmod")]
    fn mode(&mut self, mode: u32) -> &mut Self;

    /// The `listen` backlog of a Unix stream or message socket (default 1024,
    /// capped by the kernel).
    fn backlog(&mut self, n: i32) -> &mut Self;

    /// Whether `bind` replaces a Unix socket file that nobody listens on
    /// (default true). A file a live listener serves is never replaced.
    ///
    /// Binding is atomic among ipckit processes, replacement included: of
    /// several processes binding one path at once exactly one wins, the others
    /// fail with [`ErrorKind::AddrInUse`](crate::ErrorKind::AddrInUse) naming
    /// the winner's pid where it can be read. They take turns on a lock file
    /// `SOCKET.lock` beside the socket file, which the winner removes once it
    /// listens (docs/SECURITY.md).
    fn replace_stale(&mut self, yes: bool) -> &mut Self;
}

impl ListenerOptionsExt for ListenerOptions {
    fn mode(&mut self, mode: u32) -> &mut Self {
        self.os_setting(Opt::Mode).mode = Some(mode);
        self
    }

    fn backlog(&mut self, n: i32) -> &mut Self {
        self.os_setting(Opt::Backlog).backlog = n;
        self
    }

    fn replace_stale(&mut self, yes: bool) -> &mut Self {
        self.os_setting(Opt::ReplaceStale).replace_stale = yes;
        self
    }
}

/// The socket of a message channel, where it has one: [`MessageStream`]
/// is one socket over a Unix message socket or `tcp:`, but a
/// shared-memory channel (`shm:`) is a mapped region and futex wake-ups, no
/// descriptor; so the type has no `AsFd`, and this says which it is.
///
/// [`MessageStream`]: crate::MessageStream
// Unix only, even in documentation built elsewhere: `std::os::fd` exists on
// Unix only (rustdoc's doctests for Windows compile this module).
#[cfg(unix)]
pub trait MessageStreamExt: super::sealed::Sealed {
    /// The socket the messages go through, or `None` for a shared-memory
    /// channel. Poll it for readiness; do not read it: a `tcp:` channel's
    /// socket carries ipckit's frames, not whole messages, and an ipckit
    /// client's socket may be readable with the server's greeting, which
    /// `recv` drops (a readiness that `recv` then waits through).
    fn try_as_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>>;
}

// The descriptors of ipckit's types (`AsFd`, `AsRawFd`, `From<OwnedFd>`).
#[cfg(unix)]
mod handles;
