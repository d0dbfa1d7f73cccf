//! Builders for listeners and client connections.

use std::time::Duration;

use super::{Listener, Stream};
use crate::address::ToAddress;
use crate::error::{Error, ErrorKind, Result};
use crate::limits::{DEFAULT_MAX_MESSAGE_SIZE, check_max_message_size};
use crate::plain::{ConnectConfig, ListenConfig};
use crate::security::{ServerUser, UserId};

/// Options for [`Listener::bind`], like tokio's `ServerOptions`: set once, bind many.
///
/// The defaults are the safe ones: owner-only access, a stale Unix socket file is
/// replaced while a live one is an error, and on Windows unlimited pipe instances
/// with 64 KiB buffers.
///
/// # Examples
///
/// ```no_run
/// let mut opts = ipckit::ListenerOptions::new();
/// opts.max_instances(16).buffer_sizes(1 << 16, 1 << 16);
/// let listener = opts.bind("pipe:app")?;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    /// What `sys` takes: instances, buffers, backlog, mode, SDDL, ...
    pub(crate) sys: ListenConfig,
    pub(crate) shm_capacity: usize,
    pub(crate) current_user_only: bool,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            sys: ListenConfig::default(),
            shm_capacity: crate::sys::shm_channel::DEFAULT_CAPACITY,
            current_user_only: false,
        }
    }
}

impl ListenerOptions {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most pipe instances (connected clients plus the one waiting) the server
    /// allows, 1 to 254; unlimited by default.
    ///
    /// # Platform-specific behavior
    ///
    /// Windows only (`nMaxInstances` of `CreateNamedPipeW`); Unix sockets and TCP
    /// have no such limit and ignore it.
    pub fn max_instances(&mut self, n: u8) -> &mut Self {
        self.sys.max_instances = Some(n);
        self
    }

    /// The sizes the OS reserves for each instance's input and output buffers.
    ///
    /// # Platform-specific behavior
    ///
    /// Windows only (`nInBufferSize`/`nOutBufferSize`); elsewhere ignored.
    pub fn buffer_sizes(&mut self, input: u32, output: u32) -> &mut Self {
        self.sys.in_buffer = input;
        self.sys.out_buffer = output;
        self
    }

    /// Whether `bind` replaces a Unix socket file that nobody listens on (default
    /// true). A file a live listener serves is never replaced.
    ///
    /// Binding is atomic among ipckit processes, replacement included: of
    /// several processes binding one path at once exactly one wins, the others
    /// fail with [`ErrorKind::AddrInUse`] naming the winner's pid where it can
    /// be read. They take turns on a lock file `SOCKET.lock` beside the socket
    /// file, which the winner removes once it listens (docs/SECURITY.md).
    pub fn replace_stale(&mut self, yes: bool) -> &mut Self {
        self.sys.replace_stale = yes;
        self
    }

    /// The listen backlog for Unix sockets (default 1024, capped by the kernel).
    pub fn backlog(&mut self, n: i32) -> &mut Self {
        self.sys.backlog = n;
        self
    }

    /// The largest message a [`MessageListener`](crate::MessageListener)'s
    /// streams accept (default 64 MiB); byte streams ignore it. See
    /// [`MessageStream::set_max_message_size`](crate::MessageStream::set_max_message_size).
    pub fn max_message_size(&mut self, bytes: usize) -> &mut Self {
        self.sys.max_message_size = bytes;
        self
    }

    /// The mode of the socket file a Unix listener creates, instead of the
    /// owner-only 0600: for example `0o660` to admit the members of the file's
    /// group (the creating process's group, or the directory's with setgid).
    ///
    /// Only the permission bits are allowed and the owner must keep read and
    /// write; `bind` refuses anything else with [`ErrorKind::InvalidOption`].
    /// The mode is set on the file before the socket listens, so no client
    /// connects under the default first. A client also needs search (`x`)
    /// permission on every directory above the file: the private directory of
    /// portable names is 0700 and admits nobody else whatever the mode, so a
    /// group socket needs an explicit path (`unix:/srv/app/app.sock`).
    ///
    /// # Platform-specific behavior
    ///
    /// Unix only. Windows ignores it (use
    /// [`security_descriptor`](Self::security_descriptor)): it only ever widens
    /// access, so ignoring it keeps the stricter default. A Linux abstract
    /// socket has no file and no mode; `bind` refuses a mode for one.
    #[doc(alias = "chmod")]
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.sys.mode = Some(mode);
        self
    }

    /// The security descriptor of the pipes (and mailslots) the listener creates,
    /// in SDDL, instead of the default that grants only the current user and
    /// SYSTEM. For example `"D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;AU)"` admits
    /// every authenticated user.
    ///
    /// This corresponds to `ConvertStringSecurityDescriptorToSecurityDescriptorW`;
    /// a text it cannot parse makes `bind` fail with [`ErrorKind::InvalidOption`]
    /// naming the text.
    ///
    /// # Platform-specific behavior
    ///
    /// Windows only. Unix ignores it (use [`mode`](Self::mode)): it only ever
    /// widens access, so ignoring it keeps the stricter default.
    #[doc(alias = "SDDL")]
    pub fn security_descriptor(&mut self, sddl: &str) -> &mut Self {
        self.sys.sddl = Some(sddl.to_owned());
        self
    }

    /// Whether clients on other machines may connect over SMB (default false:
    /// `PIPE_REJECT_REMOTE_CLIENTS`). They still need the descriptor's permission.
    ///
    /// # Platform-specific behavior
    ///
    /// Windows only; Unix sockets are local by nature and ignore it.
    pub fn accept_remote_clients(&mut self, yes: bool) -> &mut Self {
        self.sys.accept_remote = yes;
        self
    }

    /// Whether `accept` refuses a client that runs as another user than this
    /// process (like .NET's `PipeOptions.CurrentUserOnly`; default false). The
    /// refused client's connection is closed and `accept` fails with
    /// [`ErrorKind::PermissionDenied`], naming the client's user; the listener
    /// stays usable, so an accept loop should go on after that error.
    ///
    /// The file mode and DACL already keep other users out by default; this
    /// check holds even where they do not (a group [`mode`](Self::mode), an
    /// abstract socket, a wide [`security_descriptor`](Self::security_descriptor)).
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

    /// Binds a listener at `addr` with these options.
    ///
    /// # Errors
    ///
    /// See [`Listener::bind`]; also [`ErrorKind::InvalidOption`] for a
    /// `max_instances` of 0 or 255, a bad [`mode`](Self::mode) or
    /// [`security_descriptor`](Self::security_descriptor), or
    /// [`current_user_only`](Self::current_user_only) on `tcp:`.
    pub fn bind(&self, addr: impl ToAddress) -> Result<Listener> {
        self.check()?;
        Listener::bind_with(addr.to_address()?, self)
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

/// Options for [`Stream::connect`].
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
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            sys: ConnectConfig::default(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            server_user: ServerUser::Default,
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
        self.sys.timeout = Some(timeout);
        self
    }

    /// Keep trying while nobody listens at the address yet (until the timeout, or
    /// for ever without one), instead of failing at once with `NotFound`.
    pub fn retry_not_found(&mut self, yes: bool) -> &mut Self {
        self.sys.retry_not_found = yes;
        self
    }

    /// The largest message a [`MessageStream`](crate::MessageStream) connected
    /// with these options accepts (default 64 MiB); byte streams ignore it.
    pub fn max_message_size(&mut self, bytes: usize) -> &mut Self {
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

    /// Connects to `addr` with these options.
    ///
    /// # Errors
    ///
    /// See [`Stream::connect`].
    pub fn connect(&self, addr: impl ToAddress) -> Result<Stream> {
        Stream::connect_with(addr.to_address()?, self)
    }
}
