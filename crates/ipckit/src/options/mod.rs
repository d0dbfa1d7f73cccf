//! The builders for listeners and client connections, [`ListenerOptions`]
//! and [`ConnectOptions`], with the settings every kind shares, and which
//! option applies to which kind ([`applies`]). Each kind declares its
//! finishers (`bind`, `bind_message`, `connect_shm`, ...) and its own
//! settings beside its type: `stream/options.rs`, `message/options.rs`,
//! `mailslot/options.rs`, `shm/options.rs`, and the tokio forms in
//! `crate::tokio`. This module names none of them (their types are named in
//! its docs only), so every kind can build on it.
//!
//! Public as `ipckit::{ListenerOptions, ConnectOptions}` and
//! `ipckit::stream::{ListenerOptions, ConnectOptions}`.

pub(crate) mod applies;

use std::time::Duration;

use self::applies::{Kind, Opt, Set, refuse_unused};
use crate::error::{Error, ErrorKind, Result};
use crate::limits::{DEFAULT_MAX_MESSAGE_SIZE, check_max_message_size};
use crate::plain::{ConnectConfig, ListenConfig};
use crate::security::{ServerUser, UserId};

/// Options for [`Listener::bind`](crate::Listener::bind), like tokio's `ServerOptions`: set once, bind many.
///
/// The defaults are the safe ones: owner-only access, a stale Unix socket file is
/// replaced while a live one is an error, and on Windows unlimited pipe instances
/// with 64 KiB buffers.
///
/// The settings of one OS are set through its extension trait,
/// [`os::unix::ListenerOptionsExt`](crate::os) (`mode`, `backlog`,
/// `replace_stale`) or [`os::windows::ListenerOptionsExt`](crate::os)
/// (`max_instances`, `buffer_sizes`, `security_descriptor`,
/// `accept_remote_clients`), so code that sets them says which OS it is for.
/// The finishers refuse an option the kind they make cannot use (a pipe
/// instance limit on `tcp:`, a maximum message size on a byte stream, a ring
/// capacity on anything but a shared-memory channel) with
/// [`ErrorKind::InvalidOption`] naming the option and the kind: no option is
/// ignored.
///
/// # Examples
///
/// ```no_run
/// let mut opts = ipckit::ListenerOptions::new();
/// opts.current_user_only(true);
/// #[cfg(windows)]
/// {
///     use ipckit::os::windows::ListenerOptionsExt;
///     opts.max_instances(16).buffer_sizes(1 << 16, 1 << 16);
/// }
/// #[cfg(unix)]
/// {
///     use ipckit::os::unix::ListenerOptionsExt;
///     opts.backlog(64);
/// }
/// let listener = opts.bind("pipe:app")?;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    /// What `sys` takes: instances, buffers, backlog, mode, SDDL, ...
    pub(crate) sys: ListenConfig,
    pub(crate) shm_capacity: usize,
    pub(crate) current_user_only: bool,
    /// Which options were set, to refuse those a kind cannot use.
    set: Set,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            sys: ListenConfig::default(),
            shm_capacity: crate::sys::shm_channel::DEFAULT_CAPACITY,
            current_user_only: false,
            set: Set::default(),
        }
    }
}

impl ListenerOptions {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// The largest message a [`MessageListener`](crate::MessageListener)'s
    /// streams, a [`MailslotReceiver`](crate::MailslotReceiver) or a
    /// shared-memory channel accept (default 64 MiB). See
    /// [`MessageStream::set_max_message_size`](crate::MessageStream::set_max_message_size).
    /// A byte-stream listener ([`bind`](Self::bind)) has no messages and
    /// refuses it ([`ErrorKind::InvalidOption`]).
    pub fn max_message_size(&mut self, bytes: usize) -> &mut Self {
        self.set.add(Opt::MaxMessageSize);
        self.sys.max_message_size = bytes;
        self
    }

    /// Whether `accept` refuses a client that runs as another user than this
    /// process (like .NET's `PipeOptions.CurrentUserOnly`; default false). The
    /// refused client's connection is closed and `accept` fails with
    /// [`ErrorKind::PermissionDenied`], naming the client's user; the listener
    /// stays usable, so an accept loop should go on after that error.
    ///
    /// The file mode and DACL already keep other users out by default; this
    /// check holds even where they do not (a group `mode`, an abstract socket,
    /// a wide `security_descriptor`: see [`os`](crate::os)).
    ///
    /// # Platform-specific behavior
    ///
    /// Unix: the peer's uid from `SO_PEERCRED`. Windows: the user SID of the
    /// client process (`GetNamedPipeClientProcessId`, then its token). A `tcp:`
    /// listener cannot tell who its clients are, nor can a mailslot or a
    /// shared-memory channel: binding those refuses the option
    /// ([`ErrorKind::InvalidOption`]).
    pub fn current_user_only(&mut self, yes: bool) -> &mut Self {
        self.current_user_only = yes;
        self
    }

    /// The settings `sys` takes, to set `opt` in them: the one way the OS
    /// extension traits ([`os`](crate::os)) change these options.
    pub(crate) fn os_setting(&mut self, opt: Opt) -> &mut ListenConfig {
        self.set.add(opt);
        &mut self.sys
    }

    /// Notes that `opt` was set (by a setter declared beside its kind).
    pub(crate) fn mark(&mut self, opt: Opt) {
        self.set.add(opt);
    }

    /// Refuses option values no listener can use, then the options that
    /// `kind` at `place` cannot use.
    pub(crate) fn check_for(&self, kind: Kind, place: &dyn std::fmt::Display) -> Result<()> {
        self.check()?;
        refuse_unused(self.set, kind, place)
    }

    /// The settings `sys` takes from these options.
    pub(crate) fn config(&self) -> &ListenConfig {
        &self.sys
    }

    /// Refuses option values no listener can use.
    pub(crate) fn check(&self) -> Result<()> {
        check_max_message_size(self.sys.max_message_size)?;
        if let Some(n) = self.sys.max_instances
            && (n == 0 || n == 255)
        {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!("max_instances must be from 1 to 254, not {n}"),
            ));
        }
        if let Some(mode) = self.sys.mode {
            crate::security::check_mode(mode)?;
        }
        Ok(())
    }
}

/// Options for [`Stream::connect`](crate::Stream::connect).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// let mut opts = ipckit::ConnectOptions::new();
/// opts.timeout(Duration::from_secs(2)).retry_not_found(true);
/// let stream = opts.connect("pipe:app")?;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// What `sys` takes: the timeout and whether to retry.
    pub(crate) sys: ConnectConfig,
    pub(crate) max_message_size: usize,
    pub(crate) server_user: ServerUser,
    /// Which options were set, to refuse those a kind cannot use.
    set: Set,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            sys: ConnectConfig::default(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            server_user: ServerUser::Default,
            set: Set::default(),
        }
    }
}

impl ConnectOptions {
    /// The default options: no timeout, no retry when nobody listens, and the
    /// server of a portable name must run as the current user (see
    /// [`require_server_user`](Self::require_server_user)).
    ///
    /// On Unix a client of a portable name also checks ipckit's runtime
    /// directory as `bind` does (a directory, not a symlink, owned by the
    /// effective user, writable by it only) before each attempt, and fails with
    /// [`ErrorKind::PermissionDenied`] naming it otherwise; no option turns
    /// that off.
    pub fn new() -> Self {
        Self::default()
    }

    /// The longest `connect` may take, retries included. On Windows this bounds
    /// the wait for a free instance of a busy pipe.
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.set.add(Opt::Timeout);
        self.sys.timeout = Some(timeout);
        self
    }

    /// Keep trying while nobody listens at the address yet (until the timeout, or
    /// for ever without one), instead of failing at once with `NotFound`.
    pub fn retry_not_found(&mut self, yes: bool) -> &mut Self {
        // Off is the default: never refused, whatever the kind.
        self.set.switch(Opt::RetryNotFound, yes);
        self.sys.retry_not_found = yes;
        self
    }

    /// The largest message a [`MessageStream`](crate::MessageStream) or a
    /// shared-memory channel connected with these options accepts (default 64
    /// MiB). A byte stream ([`connect`](Self::connect)) and a mailslot sender
    /// refuse it ([`ErrorKind::InvalidOption`]).
    pub fn max_message_size(&mut self, bytes: usize) -> &mut Self {
        self.set.add(Opt::MaxMessageSize);
        self.max_message_size = bytes;
        self
    }

    /// Refuse a server that does not run as `user`, so that a process of another
    /// user that took the name first cannot pose as the server. After the
    /// connection is made the server's user is read from the OS; another user
    /// closes the connection and `connect` fails with
    /// [`ErrorKind::PermissionDenied`], naming the user that owns the server.
    ///
    /// Without this setting a client checks the server of a portable name
    /// (`NAME`, `pipe:NAME`, `mailslot:NAME`, `shm:NAME`, `dotnet:NAME`) against
    /// the current user anyway, as if [`server_user_is_current`](Self::server_user_is_current)
    /// were set, and accepts any server on an address written out in full
    /// (`unix:/path`, `@NAME`, `\\.\pipe\NAME`, `tcp:`); see
    /// [`server_user_any`](Self::server_user_any).
    ///
    /// For a mailslot on Unix the "server" is the owner of the receiver's socket
    /// file; for a shared-memory channel, the owner of its region (which must
    /// also be writable by its owner only).
    ///
    /// # Platform-specific behavior
    ///
    /// Unix: the server's uid from `SO_PEERCRED` (as it was when the server
    /// called `listen`); `user` must be a [`UserId::Uid`]. Windows: the user SID
    /// of the server process (`GetNamedPipeServerProcessId`, then its token);
    /// `user` must be a [`UserId::Sid`]. A user of the other kind, or a `tcp:`
    /// or `shm:` address (whose server cannot be identified), makes `connect`
    /// fail with [`ErrorKind::InvalidOption`] before any connection is made.
    pub fn require_server_user(&mut self, user: UserId) -> &mut Self {
        self.server_user = ServerUser::Is(user);
        self
    }

    /// Refuse a server that does not run as the user this process runs as: a
    /// shorthand for [`require_server_user`](Self::require_server_user) with
    /// [`UserId::current`].
    pub fn server_user_is_current(&mut self) -> &mut Self {
        self.server_user = ServerUser::Current;
        self
    }

    /// Accept a server run by any user, turning off the check a client makes by
    /// default on portable names (see [`require_server_user`](Self::require_server_user)).
    ///
    /// The default check is what keeps another local user from posing as your
    /// server: on Unix, by serving a portable name from a runtime directory of
    /// theirs (the directory itself is checked whatever this says); on Windows,
    /// by creating `\\.\pipe\NAME` before your server does. Turn it off only to
    /// reach a server that runs as another user on purpose (a system service),
    /// and prefer naming that user with [`require_server_user`](Self::require_server_user).
    /// For a shared-memory channel this also accepts a region that its group or
    /// others can write.
    pub fn server_user_any(&mut self) -> &mut Self {
        self.server_user = ServerUser::Any;
        self
    }

    /// The settings `sys` takes from these options.
    pub(crate) fn config(&self) -> &ConnectConfig {
        &self.sys
    }

    /// Refuses the options that `kind` at `place` cannot use.
    pub(crate) fn check_for(&self, kind: Kind, place: &dyn std::fmt::Display) -> Result<()> {
        refuse_unused(self.set, kind, place)
    }
}
