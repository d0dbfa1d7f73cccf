//! Claiming a Unix socket name atomically: the bind lock, and the probe that
//! tells a live socket (and who serves it) from a stale file.
//!
//! # Why no interleaving leaves two servers
//!
//! Every ipckit process that binds a socket path `P`, or removes a file at `P`
//! as stale, does so only while it holds an exclusive `flock` on the lock file
//! `P.lock` ([`BindLock`]), and it keeps the lock from before its `bind` until
//! after its `listen` (or, for a datagram socket, until `bind` returned, which is
//! when the kernel lets senders reach it). So, seen from any process that holds
//! the lock, the file at `P` is in one of three states, never in between:
//!
//! - absent;
//! - served: a socket is bound to it and listening (or bound, for datagrams), so
//!   a `connect` to it succeeds, finds a full backlog (`EAGAIN`) or finds the
//!   other socket type (`EPROTOTYPE`);
//! - stale: no socket is bound to it any more (its server died or closed it
//!   before removing it), so a `connect` is refused (`ECONNREFUSED`).
//!
//! The state "bound, not yet listening", which also refuses a `connect`, exists
//! only inside another process's locked section, so the holder never sees it.
//! The holder removes the file only when its probe was refused, i.e. only a stale
//! file; and no other process can bind a new file at `P` between that probe and
//! its own `bind`, since that needs the lock. Hence a live server's file is never
//! removed by another ipckit binder, and of any number of racing binders the
//! first to take the lock binds, and each later one finds a served file and fails
//! with `AddrInUse`. A server removes its own file at the end without the lock
//! (`OwnFile`), but only while its socket is still open: a binder probing then
//! either finds it served (and fails, rightly: it was) or finds no file.
//!
//! The lock file is removed by its holder when it releases it, so normal runs
//! leave nothing behind. That is safe because a process that took the lock
//! checks that the file it locked is still the one at `P.lock` (device and
//! inode); if the holder it waited for removed it, it opens the new one and
//! tries again. Only the holder removes the file, so once the check passed the
//! file stays linked until this process removes it. A process killed inside the
//! locked section leaves `P.lock` behind; the next binder takes it and removes
//! it.
//!
//! Only ipckit processes take the lock: a foreign program that binds `P` in the
//! same instant can still lose its file to a stale-file replacement, as before.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{SocketAddrUnix, SocketType};

use super::socket::new_socket_of;
use super::stream::peer_credentials;

/// How long a binder waits for another process's bind of the same path. A bind
/// holds the lock for microseconds; only a stopped or hung process holds it
/// this long.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The pause between two tries to take a lock another process holds.
const LOCK_PAUSE: Duration = Duration::from_millis(2);

/// An exclusive `flock` on `SOCKET.lock`, the lock file beside a socket file;
/// dropping it removes the lock file, then releases the lock.
#[derive(Debug)]
pub(super) struct BindLock {
    path: PathBuf,
    // Dropped after `drop` removed `path`: the lock is released last.
    _file: OwnedFd,
}

impl Drop for BindLock {
    fn drop(&mut self) {
        // Still ours: only a holder removes it (see the module docs).
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The lock file of socket path `socket`.
pub(super) fn lock_path(socket: &Path) -> PathBuf {
    let mut name = OsString::from(socket.as_os_str());
    name.push(".lock");
    PathBuf::from(name)
}

impl BindLock {
    /// Takes the bind lock of socket path `socket`, waiting up to [`LOCK_WAIT`]
    /// for another process's bind of it.
    ///
    /// `None` when the directory cannot be written (`EACCES`, `EPERM`, `EROFS`
    /// and no lock file there): then nobody of this user can create or remove a
    /// socket file in it either, and the `bind` fails on its own.
    ///
    /// A lock file that is a symlink, not a regular file, or owned by another
    /// user is refused (`PermissionDenied`): in a directory others can write
    /// (`/tmp`), another user could otherwise hold it to stop our binds. Ours is
    /// created 0600, so no other user can open it to lock it.
    pub(super) fn acquire(socket: &Path) -> io::Result<Option<BindLock>> {
        let path = lock_path(socket);
        let limit = Instant::now() + LOCK_WAIT;
        loop {
            let flags = OFlags::RDWR
                | OFlags::CREATE
                | OFlags::NOFOLLOW
                | OFlags::NONBLOCK
                | OFlags::CLOEXEC;
            let file = match rustix::fs::open(&path, flags, Mode::from_raw_mode(0o600)) {
                Ok(file) => file,
                Err(Errno::ACCESS | Errno::PERM | Errno::ROFS)
                    if std::fs::symlink_metadata(&path).is_err() =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(refused(&path, &format!("cannot open it: {e}"))),
            };
            let meta = rustix::fs::fstat(&file)?;
            check_owner(&path, &file, &meta)?;
            wait_for_lock(&path, &file, limit)?;
            let still_there = std::fs::symlink_metadata(&path).is_ok_and(|now| {
                now.dev() == meta.st_dev as u64 && now.ino() == meta.st_ino as u64
            });
            if still_there {
                return Ok(Some(BindLock { path, _file: file }));
            }
            // The holder we waited for removed it: lock the current one.
        }
    }
}

/// The lock file must be a regular file of ours that no one else can open.
fn check_owner(path: &Path, file: &OwnedFd, meta: &rustix::fs::Stat) -> io::Result<()> {
    let uid = rustix::process::geteuid().as_raw();
    if rustix::fs::FileType::from_raw_mode(meta.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(refused(path, "it is not a regular file"));
    }
    if meta.st_uid != uid {
        return Err(refused(
            path,
            &format!(
                "it is owned by uid {}, not by uid {uid}, who could hold it to stop this bind",
                meta.st_uid
            ),
        ));
    }
    if meta.st_mode & 0o077 != 0 {
        rustix::fs::fchmod(file, Mode::from_raw_mode(0o600))?;
    }
    Ok(())
}

fn refused(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "refusing the bind lock file {}: {why}; remove it, or bind in a directory only \
             you can write",
            path.display()
        ),
    )
}

/// Takes the exclusive lock on `file`, trying until `limit`.
fn wait_for_lock(path: &Path, file: &OwnedFd, limit: Instant) -> io::Result<()> {
    loop {
        match rustix::fs::flock(file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(()),
            Err(Errno::INTR) => {}
            Err(Errno::WOULDBLOCK) => {
                let left = limit.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "another process has held the bind lock {} for {}s (a bind takes \
                             microseconds: is it stopped or hung?)",
                            path.display(),
                            LOCK_WAIT.as_secs()
                        ),
                    ));
                }
                std::thread::sleep(left.min(LOCK_PAUSE));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Who is at a socket address: nobody (no file, or a stale one), or a live
/// socket.
#[derive(Debug)]
pub(super) enum Holder {
    Nobody,
    Live(Live),
}

/// A live socket a probe found: the probe's connection to it (none when its
/// backlog was full or its type unknown) and its type.
#[derive(Debug)]
pub(super) struct Live {
    probe: Option<OwnedFd>,
    ty: Option<SocketType>,
}

/// Finds out who serves `addr` by connecting to it without blocking, with each
/// socket type in turn until one is not the wrong type (`EPROTOTYPE`). Under
/// the bind lock a refused connect means a stale file (see the module docs).
pub(super) fn holder(addr: &SocketAddrUnix) -> io::Result<Holder> {
    for ty in [SocketType::STREAM, SocketType::SEQPACKET, SocketType::DGRAM] {
        let probe = new_socket_of(ty, false)?;
        // Not `SOCK_NONBLOCK`, which macOS lacks.
        rustix::io::ioctl_fionbio(&probe, true)?;
        match rustix::net::connect(&probe, addr) {
            Ok(()) => {
                return Ok(Holder::Live(Live {
                    probe: Some(probe),
                    ty: Some(ty),
                }));
            }
            Err(Errno::AGAIN | Errno::INPROGRESS) => {
                return Ok(Holder::Live(Live {
                    probe: None,
                    ty: Some(ty),
                }));
            }
            Err(Errno::PROTOTYPE) => {}
            Err(Errno::CONNREFUSED | Errno::NOENT) => return Ok(Holder::Nobody),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Holder::Live(Live {
        probe: None,
        ty: None,
    }))
}

impl Live {
    /// What the probe found, and its server's pid and uid where they can be
    /// read; `path` is the socket file, if it has one.
    pub(super) fn describe(&self, path: Option<&Path>) -> String {
        let (what, probe) = match (self.ty, &self.probe) {
            (None, _) => return "a socket of another kind is bound to it".into(),
            (Some(_), None) => {
                return "a live listener already serves it (its backlog is full, so its pid \
                        could not be read)"
                    .into();
            }
            (Some(ty), Some(_)) if ty == SocketType::DGRAM => {
                let what = "a live receiver (datagrams) already receives on it";
                return format!("{what}: {}", datagram_owner(path));
            }
            (Some(ty), Some(probe)) if ty == SocketType::STREAM => {
                ("a live listener (byte streams) already serves it", probe)
            }
            (Some(_), Some(probe)) => (
                "a live listener (message channels) already serves it",
                probe,
            ),
        };
        let who = match peer_credentials(probe.as_fd()) {
            Ok(cred) => match (cred.pid, cred.uid) {
                (Some(pid), Some(uid)) => format!("pid {pid}, uid {uid}"),
                (Some(pid), None) => format!("pid {pid}"),
                _ => "its pid could not be read".into(),
            },
            Err(e) => format!("its pid could not be read: {e}"),
        };
        format!("{what}: {who}")
    }
}

/// A datagram socket tells no pid to whom connects to it (`SO_PEERCRED` is
/// empty): on Linux the processes holding a datagram socket bound to `path` are
/// looked up in `/proc` (those of this user); otherwise the file's owner is all
/// that can be said.
fn datagram_owner(path: Option<&Path>) -> String {
    let Some(path) = path else {
        return "a datagram socket does not tell its pid".into();
    };
    let owner = std::fs::symlink_metadata(path)
        .map(|m| format!("socket file owned by uid {}", m.uid()))
        .unwrap_or_else(|_| "socket file owner unknown".into());
    match procfs::datagram_pids(path).as_slice() {
        [] => format!("{owner}; a datagram socket does not tell its pid"),
        [pid] => format!("pid {pid}, {owner}"),
        pids => {
            let list: Vec<String> = pids.iter().map(u32::to_string).collect();
            format!("pid one of {}, {owner}", list.join(", "))
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod procfs {
    use std::collections::HashSet;
    use std::fs;
    use std::path::Path;

    /// The pids of this user's processes that hold a datagram socket bound to
    /// `path`: its socket inodes from `/proc/net/unix`, then the processes whose
    /// `/proc/PID/fd` links name one of them.
    pub(super) fn datagram_pids(path: &Path) -> Vec<u32> {
        let Some(name) = path.to_str() else {
            return Vec::new();
        };
        let Ok(table) = fs::read_to_string("/proc/net/unix") else {
            return Vec::new();
        };
        // Num RefCount Protocol Flags Type St Inode Path; type 0002 is SOCK_DGRAM.
        let inodes: HashSet<String> = table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let fields: Vec<&str> = line.splitn(8, ' ').filter(|f| !f.is_empty()).collect();
                match fields.as_slice() {
                    [_, _, _, _, "0002", _, inode, bound] if *bound == name => {
                        Some(format!("socket:[{inode}]"))
                    }
                    _ => None,
                }
            })
            .collect();
        if inodes.is_empty() {
            return Vec::new();
        }
        let Ok(procs) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut pids: Vec<u32> = procs
            .flatten()
            .filter_map(|proc| {
                let pid = proc.file_name().to_str()?.parse::<u32>().ok()?;
                let fds = fs::read_dir(proc.path().join("fd")).ok()?;
                fds.flatten()
                    .filter_map(|fd| fs::read_link(fd.path()).ok())
                    .any(|link| link.to_str().is_some_and(|l| inodes.contains(l)))
                    .then_some(pid)
            })
            .collect();
        pids.sort_unstable();
        pids
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod procfs {
    use std::path::Path;

    /// No `/proc` to look in.
    pub(super) fn datagram_pids(_path: &Path) -> Vec<u32> {
        Vec::new()
    }
}
