//! Facts about the platform ipckit is running on, and where its endpoints live.

use std::io;
use std::path::PathBuf;

use crate::Address;
use crate::address::Endpoint;

/// The Wine version when this process runs under Wine, `None` otherwise.
///
/// Wine's `ntdll.dll` exports `wine_get_version`; real Windows does not. Tests use
/// this to skip only the assertions of behaviour that Wine is known not to
/// implement, and to say so.
///
/// # Examples
///
/// ```
/// if let Some(v) = ipckit::platform::wine_version() {
///     println!("running under Wine {v}");
/// }
/// ```
pub fn wine_version() -> Option<String> {
    crate::sys::wine_version()
}

/// True when this process runs under Wine.
pub fn is_wine() -> bool {
    wine_version().is_some()
}

/// ipckit's private per-user directory, where portable names (`NAME`,
/// `pipe:NAME`, `mailslot:NAME`) and broadcast groups live on Unix:
/// `$XDG_RUNTIME_DIR/ipckit/`, else on macOS `$TMPDIR/ipckit/` (macOS gives each
/// user a private `$TMPDIR`), else `/tmp/ipckit-UID/`. `None` on Windows, where a
/// portable name is a pipe name.
///
/// The directory may not exist yet: it is created by the first listener that
/// needs it.
///
/// # Examples
///
/// ```
/// if let Some(dir) = ipckit::platform::runtime_dir() {
///     println!("portable names live in {}", dir.display());
/// }
/// ```
pub fn runtime_dir() -> Option<PathBuf> {
    crate::sys::runtime_dir()
}

/// Windows: the directory in which broadcast groups register their members (a
/// directory per group, an empty marker file per member, named after the
/// member's mailslot `\\.\mailslot\ipckit\group\GROUP\MEMBER`). `None` on Unix,
/// where a group is a directory `GROUP.group/` in [`runtime_dir`].
pub fn mailslot_groups_dir() -> Option<PathBuf> {
    crate::sys::mailslot_groups_dir()
}

/// The directory of broadcast group `group`'s members: `GROUP.group/` in
/// [`runtime_dir`] on Unix (a socket file per member), `GROUP` in
/// [`mailslot_groups_dir`] on Windows (a marker file per member). It stays
/// when the last member leaves. `None` when there is no such place; `group` is
/// not checked.
pub fn mailslot_group_dir(group: &str) -> Option<PathBuf> {
    match (runtime_dir(), mailslot_groups_dir()) {
        (Some(runtime), _) => Some(runtime.join(format!("{group}.group"))),
        (None, Some(groups)) => Some(groups.join(group)),
        (None, None) => None,
    }
}

/// The names of the named pipes on this machine (what follows `\\.\pipe\`).
///
/// This corresponds to `FindFirstFileW` / `FindNextFileW` on `\\.\pipe\*`.
///
/// # Errors
///
/// Fails with [`io::ErrorKind::Unsupported`] on Unix, which has no named-pipe
/// file system, and with the OS error of `FindFirstFileW` or `FindNextFileW`
/// (`raw_os_error` intact) if the listing fails: Wine 8, for one, refuses to
/// list `\\.\pipe\` with `ERROR_BAD_DEV_TYPE`.
#[doc(alias = "FindFirstFileW")]
pub fn pipe_names() -> io::Result<Vec<String>> {
    crate::sys::pipe_names()
}

/// The socket file that a listener or a mailslot receiver bound at `addr`
/// creates on this OS, if it creates one: on Unix, for `unix:/path` and portable
/// names (`NAME`, `pipe:NAME`: `NAME.sock` in [`runtime_dir`]; `mailslot:NAME`:
/// the receiver's datagram socket file; `shm:NAME`: the rendezvous
/// `NAME.shm.sock` of a [`MessageListener`](crate::MessageListener) there).
/// `None` for abstract, TCP and Windows addresses, and for text that names
/// nothing valid here.
///
/// A process that is killed cannot remove the file its listener made; a signal
/// handler can remove this path (and only if the file is still a socket).
///
/// # Examples
///
/// ```
/// let addr: ipckit::Address = "unix:/tmp/app.sock".parse().unwrap();
/// if cfg!(unix) {
///     assert_eq!(
///         ipckit::platform::socket_file(&addr).as_deref(),
///         Some(std::path::Path::new("/tmp/app.sock"))
///     );
/// }
/// ```
pub fn socket_file(addr: &Address) -> Option<PathBuf> {
    let env = crate::sys::env();
    let ep = match addr {
        Address::Mailslot(_) => addr.mailslot_endpoint(&env),
        Address::Shm(name) => Address::shm_rendezvous(name, &env),
        _ => addr.stream_endpoint(&env),
    };
    match ep {
        Ok(Endpoint::UnixPath { path, .. }) => Some(path),
        _ => None,
    }
}

/// If the shared-memory region `name` is an ipckit channel (`shm:NAME`, made by
/// [`ShmListener::bind`](crate::shm::ShmListener::bind)): the id of the process
/// that created it and whether that process still runs. A channel whose creator
/// has exited is stale: the next `bind` of the name replaces it. `None` for a
/// region that is not a channel, or that cannot be opened.
pub fn shm_channel_creator(name: &str) -> Option<(u32, bool)> {
    crate::sys::shm_join::creator(name)
}
