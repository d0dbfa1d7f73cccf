//! The service registry's OS parts on Unix: its directory, who owns a record
//! file, whether a process still runs (and since when), and the change
//! notification that wakes a waiting client (inotify on Linux, a kqueue
//! `EVFILT_VNODE` filter on the directory on macOS and FreeBSD).
//!
//! The directory is `services/` in ipckit's runtime directory, made and
//! checked by the same rules as the runtime directory itself (owned by the
//! effective uid, mode 0700, not a symlink).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The registry directory of the current user.
pub(crate) fn dir() -> io::Result<PathBuf> {
    Ok(super::runtime_dir::path().join("services"))
}

/// Creates the registry directory (and the runtime directory above it) if
/// needed, and refuses either if it is not the user's own private directory.
pub(crate) fn ensure_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent() {
        super::runtime_dir::ensure(parent)?;
    }
    super::runtime_dir::ensure(dir)
}

/// Checks, without creating anything, that `dir` and its parent are private
/// to the current user (`NotFound` when the directory does not exist).
pub(crate) fn check_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent() {
        super::runtime_dir::check(parent)?;
    }
    super::runtime_dir::check(dir)
}

/// Why the record file at `path` may not be trusted, if it may not: it must be
/// a regular file (not a symlink) owned by the effective uid.
pub(crate) fn foreign_record(path: &Path) -> io::Result<Option<String>> {
    let meta = fs::symlink_metadata(path)?;
    let uid = rustix::process::geteuid().as_raw();
    if !meta.file_type().is_file() {
        return Ok(Some(format!(
            "it is not a regular file (a symlink or some other file), owned by uid {}",
            meta.uid()
        )));
    }
    if meta.uid() != uid {
        return Ok(Some(format!(
            "it is owned by uid {}, not by uid {uid}, the user running this process",
            meta.uid()
        )));
    }
    Ok(None)
}

/// The id of this process.
pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

/// When process `pid` started, in an OS-specific unit (Linux: clock ticks
/// since boot, field 22 of `/proc/PID/stat`), or `None` if no such process
/// runs. A zombie counts as gone. Elsewhere the start time is not read: any
/// running process of that id gives `Some(0)`.
pub(crate) fn process_start(pid: u32) -> io::Result<Option<u64>> {
    if cfg!(any(target_os = "linux", target_os = "android")) {
        return linux_start(pid);
    }
    let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else {
        return Ok(None);
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) | Err(rustix::io::Errno::PERM) => Ok(Some(0)),
        Err(rustix::io::Errno::SRCH) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn linux_start(pid: u32) -> io::Result<Option<u64>> {
    let path = format!("/proc/{pid}/stat");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io::Error::new(e.kind(), format!("read {path}: {e}"))),
    };
    // `PID (COMM) STATE ...`: COMM may hold spaces and parentheses, so the
    // fields are counted after its last ')'. STATE is field 3, starttime 22.
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("{path}: {text:?}"));
    let after = text.rsplit_once(')').ok_or_else(bad)?.1;
    let mut fields = after.split_ascii_whitespace();
    let state = fields.next().ok_or_else(bad)?;
    if state == "Z" || state == "X" {
        return Ok(None);
    }
    let start = fields.nth(18).ok_or_else(bad)?;
    start.parse().map(Some).map_err(|_| bad())
}

/// Whether a stream or message endpoint is there without connecting to it
/// (connecting would take the place of a real client of a server that serves
/// one): on Linux, whether `/proc/net/unix` has a listening socket of that
/// path or abstract name; elsewhere whether the socket file exists and is a
/// socket. `None` when it cannot be told.
pub(crate) fn endpoint_present(ep: &crate::sys::plain::Endpoint) -> Option<bool> {
    use crate::sys::plain::Endpoint;
    let name = match ep {
        Endpoint::UnixPath { path, .. } => path.to_str()?.to_owned(),
        Endpoint::Abstract(name) => format!("@{}", String::from_utf8_lossy(name)),
        _ => return None,
    };
    match fs::read_to_string("/proc/net/unix") {
        Ok(text) => Some(listening_in_proc_net_unix(&text, &name)),
        Err(_) => match ep {
            Endpoint::UnixPath { path, .. } => {
                use std::os::unix::fs::FileTypeExt;
                Some(fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()))
            }
            _ => None,
        },
    }
}

/// Whether `/proc/net/unix` (`Num RefCount Protocol Flags Type St Inode Path`)
/// lists a listening socket (`__SO_ACCEPTCON`) named `name`.
fn listening_in_proc_net_unix(text: &str, name: &str) -> bool {
    const ACCEPTCON: u32 = 0x0001_0000;
    text.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        fields.len() >= 8
            && fields[7..].join(" ") == name
            && u32::from_str_radix(fields[3], 16).is_ok_and(|f| f & ACCEPTCON != 0)
    })
}

/// Wakes a waiter when an entry of the registry directory is created, renamed
/// into it or removed: inotify on Linux; on macOS and FreeBSD a kqueue
/// watching the directory for writes (`NOTE_WRITE`: an entry made, renamed in
/// or out, or removed; records are renamed into place); elsewhere there is no
/// notification and `wait` returns after at most `FALLBACK_POLL` (a poll, said
/// so in the docs).
#[derive(Debug)]
pub(crate) struct DirWatcher {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fd: std::os::fd::OwnedFd,
    /// The kqueue, declared before the directory it watches so that it
    /// closes first (its filter names the directory's descriptor).
    #[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
    kq: std::os::fd::OwnedFd,
    #[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
    _dir: std::os::fd::OwnedFd,
}

/// How often a waiter re-reads the directory where no notification exists.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd"
)))]
const FALLBACK_POLL: Duration = Duration::from_millis(100);

impl DirWatcher {
    /// Starts watching `dir`.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn new(dir: &Path) -> io::Result<DirWatcher> {
        use rustix::fs::inotify;
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
        let mask = inotify::WatchFlags::CREATE
            | inotify::WatchFlags::MOVED_TO
            | inotify::WatchFlags::MOVED_FROM
            | inotify::WatchFlags::DELETE
            | inotify::WatchFlags::CLOSE_WRITE
            | inotify::WatchFlags::ONLYDIR
            | inotify::WatchFlags::DONT_FOLLOW;
        inotify::add_watch(&fd, dir, mask)
            .map_err(|e| io::Error::from_raw_os_error(e.raw_os_error()))?;
        Ok(DirWatcher { fd })
    }

    /// A kqueue with an `EVFILT_VNODE` filter on the directory.
    #[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
    #[allow(unsafe_code)]
    pub(crate) fn new(dir: &Path) -> io::Result<DirWatcher> {
        use rustix::event::kqueue::{Event, EventFilter, EventFlags, VnodeEvents, kevent, kqueue};
        use rustix::fs::{Mode, OFlags};
        use std::os::fd::AsRawFd;
        let dir_fd = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let kq = kqueue()?;
        rustix::io::fcntl_setfd(&kq, rustix::io::FdFlags::CLOEXEC)?;
        let change = [Event::new(
            EventFilter::Vnode {
                vnode: dir_fd.as_raw_fd(),
                flags: VnodeEvents::WRITE | VnodeEvents::DELETE | VnodeEvents::RENAME,
            },
            EventFlags::ADD | EventFlags::CLEAR,
            std::ptr::null_mut(),
        )];
        let mut none: [std::mem::MaybeUninit<Event>; 0] = [];
        // SAFETY: the filter names `dir_fd`, which the returned watcher owns
        // and closes only after the kqueue (field order); the event list is
        // empty and the zero timeout makes the call only register it.
        unsafe { kevent(&kq, &change, &mut none[..], Some(Duration::ZERO)) }?;
        Ok(DirWatcher { kq, _dir: dir_fd })
    }

    /// No notification here: `wait` polls.
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_vendor = "apple",
        target_os = "freebsd"
    )))]
    pub(crate) fn new(_dir: &Path) -> io::Result<DirWatcher> {
        Ok(DirWatcher {})
    }

    /// Waits until something changed in the directory (`true`) or `timeout`
    /// passed (`false`); drains the events, which only say "look again".
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        use rustix::io::Errno;
        let limit = std::time::Instant::now() + timeout;
        loop {
            if self.drain()? {
                return Ok(true);
            }
            let left = limit.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let ts = Timespec::try_from(left).unwrap_or(Timespec {
                tv_sec: i64::MAX,
                tv_nsec: 0,
            });
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads every pending event; whether there was any.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn drain(&mut self) -> io::Result<bool> {
        use rustix::io::Errno;
        let mut buf = [0u8; 4096];
        let mut any = false;
        loop {
            match rustix::io::read(&self.fd, &mut buf) {
                Ok(0) => return Ok(any),
                Ok(_) => any = true,
                Err(Errno::AGAIN) => return Ok(any),
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Waits until the kqueue reports a change (`true`; also on a signal, which
    /// only means "look again") or `timeout` passed (`false`). `EV_CLEAR`
    /// resets the filter once its event is taken.
    #[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
    #[allow(unsafe_code)]
    pub(crate) fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        use rustix::event::kqueue::{Event, kevent};
        let mut events: Vec<Event> = Vec::with_capacity(4);
        // SAFETY: the only filter names the directory descriptor this watcher
        // owns, open as long as the kqueue; no change is submitted.
        match unsafe {
            kevent(
                &self.kq,
                &[],
                rustix::buffer::spare_capacity(&mut events),
                Some(timeout),
            )
        } {
            Ok(n) => Ok(n > 0),
            Err(rustix::io::Errno::INTR) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// Sleeps for the fallback poll period (or less, to `timeout`).
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_vendor = "apple",
        target_os = "freebsd"
    )))]
    pub(crate) fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        std::thread::sleep(timeout.min(FALLBACK_POLL));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_listening_sockets_in_proc_net_unix() {
        let text = "Num       RefCount Protocol Flags    Type St Inode Path\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 20 /run/a b.sock\n\
            0000000000000000: 00000002 00000000 00000000 0001 03 21 /run/c.sock\n\
            0000000000000000: 00000002 00000000 00010000 0005 01 22 @abs\n";
        assert!(listening_in_proc_net_unix(text, "/run/a b.sock"));
        assert!(!listening_in_proc_net_unix(text, "/run/c.sock"));
        assert!(listening_in_proc_net_unix(text, "@abs"));
        assert!(!listening_in_proc_net_unix(text, "/run/none.sock"));
    }

    #[test]
    fn reads_this_process_start_time() {
        let start = process_start(current_pid()).unwrap();
        assert!(start.is_some());
        assert_eq!(process_start(current_pid()).unwrap(), start);
    }
}
