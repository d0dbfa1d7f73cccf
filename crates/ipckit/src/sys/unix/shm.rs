//! Shared memory on Unix: POSIX named regions (`shm_open`), file-backed
//! mappings (`mmap` of a file), wake-ups on words in a region (`wait`: futex,
//! `os_sync_wait_on_address`, `_umtx_op`), and watching a peer process for its
//! exit (`exit_watch`: pidfd, kqueue; else `kill(pid, 0)`).
//!
//! `shm:NAME` is the POSIX name `/NAME`, the name Python's
//! `multiprocessing.shared_memory.SharedMemory(name="NAME")` uses, created with
//! mode 0600 and `O_EXCL`.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::ptr::{self, NonNull};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags, mmap, munmap};
use rustix::shm;

use super::exit_watch::{self, Watch};
use crate::sys::ObjectOwner;
use crate::sys::peer::PeerCredentials;

/// A mapping of shared memory into this process, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a `Mapping` is a plain range of shared memory. Nothing about it is tied
// to the thread that mapped it; every access through it goes through raw
// pointers whose users synchronise (atomics) or document the race.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`: `&Mapping` only hands out the raw pointer and length.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps all `len` bytes of `fd`, shared and writable.
    fn map(fd: impl AsFd, len: usize) -> io::Result<Mapping> {
        crate::sys::mem::check_mappable(len, "region")?;
        // SAFETY: a null hint lets the kernel choose a fresh range, so no existing
        // memory of this process is replaced; `fd` is open for reading and
        // writing and at least `len` bytes long (callers size or measure it).
        let raw = unsafe {
            mmap(
                ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
        }?;
        let ptr =
            NonNull::new(raw.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Mapping { ptr, len })
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the range `mmap` returned, mapped once
        // and unmapped only here; nothing borrows it beyond the `Mapping`.
        let _ = unsafe { munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
    }
}

/// The longest `NAME` of `shm:NAME` this OS takes (its POSIX name is `/NAME`),
/// and the rule that sets it.
#[cfg(target_vendor = "apple")]
pub(crate) const NAME_LIMIT: Option<(usize, &str)> = Some((
    30,
    "macOS takes POSIX shared-memory names of at most 31 bytes, the leading '/' \
     included (PSHMNAMLEN)",
));
#[cfg(target_os = "freebsd")]
pub(crate) const NAME_LIMIT: Option<(usize, &str)> = Some((
    1022,
    "FreeBSD takes POSIX shared-memory paths of at most 1023 bytes, the leading '/' \
     included (MAXPATHLEN)",
));
#[cfg(not(any(target_vendor = "apple", target_os = "freebsd")))]
pub(crate) const NAME_LIMIT: Option<(usize, &str)> = Some((
    255,
    "a region is the file /dev/shm/NAME, and a file name has at most 255 bytes (NAME_MAX)",
));

/// The POSIX name of `shm:NAME`.
fn posix_name(name: &str) -> String {
    format!("/{name}")
}

/// The size of the object `fd` refers to.
fn size_of_fd(fd: impl AsFd) -> io::Result<usize> {
    let st = rustix::fs::fstat(fd)?;
    usize::try_from(st.st_size).map_err(|_| io::Error::other("region size out of range"))
}

/// The owner and permission bits of the object `fd` refers to.
fn owner_of_fd(fd: impl AsFd) -> io::Result<ObjectOwner> {
    let st = rustix::fs::fstat(fd)?;
    #[allow(clippy::useless_conversion)] // `st_mode` is a u16 on macOS
    let mode = u32::from(st.st_mode) & 0o7777;
    Ok(ObjectOwner {
        user: PeerCredentials {
            pid: None,
            uid: Some(st.st_uid),
            gid: Some(st.st_gid),
            sid: None,
        },
        mode: Some(mode),
        others_write: None,
    })
}

/// A named region of shared memory.
#[derive(Debug)]
pub(crate) struct Region {
    map: Mapping,
    /// Its owner and mode when it was opened (`fstat` on the `shm_open` fd).
    owner: ObjectOwner,
}

impl Region {
    /// Creates region `name` of `len` bytes (zeroed), owner-only (0600). A name
    /// that exists is `AlreadyExists`.
    /// [`create`](Self::create): a security descriptor (Windows) has no
    /// meaning here and is ignored, which keeps the stricter mode 0600.
    pub(crate) fn create_with(name: &str, len: usize, _sddl: Option<&str>) -> io::Result<Region> {
        Region::create(name, len)
    }

    pub(crate) fn create(name: &str, len: usize) -> io::Result<Region> {
        let fd = shm::open(
            posix_name(name).as_str(),
            shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
            Mode::from_raw_mode(0o600),
        )?;
        let sized = u64::try_from(len)
            .map_err(|_| io::Error::other("size out of range"))
            .and_then(|l| rustix::fs::ftruncate(&fd, l).map_err(io::Error::from))
            .and_then(|()| Ok((Mapping::map(&fd, len)?, owner_of_fd(&fd)?)));
        match sized {
            Ok((map, owner)) => Ok(Region { map, owner }),
            Err(e) => {
                let _ = unlink(name);
                Err(e)
            }
        }
    }

    /// Opens region `name`, mapping all of it. A name that does not exist is
    /// `NotFound`.
    pub(crate) fn open(name: &str) -> io::Result<Region> {
        let fd = shm::open(posix_name(name).as_str(), shm::OFlags::RDWR, Mode::empty())?;
        let len = size_of_fd(&fd)?;
        if len == 0 {
            // Between its creator's `shm_open` and `ftruncate` (ipckit never
            // makes an empty region): not there yet, as far as an opener goes.
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the region is still being created (it has no size yet)",
            ));
        }
        Ok(Region {
            map: Mapping::map(&fd, len)?,
            owner: owner_of_fd(&fd)?,
        })
    }

    /// Who owns the region and its mode, as `fstat` told when it was opened.
    pub(crate) fn owner(&self) -> io::Result<ObjectOwner> {
        Ok(self.owner.clone())
    }

    pub(crate) fn mapping(&self) -> &Mapping {
        &self.map
    }

    /// The exact size, as created.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// Removes the name `name` (the memory stays while anyone maps it).
pub(crate) fn unlink(name: &str) -> io::Result<()> {
    shm::unlink(posix_name(name).as_str()).map_err(io::Error::from)
}

/// Maps all of `file` (opened for reading and writing), shared: writes reach
/// the file and every other mapping of it.
pub(crate) fn map_file(file: &File) -> io::Result<Mapping> {
    let len = size_of_fd(file)?;
    Mapping::map(file, len)
}

pub(crate) use super::wait::{wait, wake};

/// Per-channel wake-up state: nothing on Unix (the futex words are in the
/// region itself). On Windows it holds the named events.
#[derive(Debug)]
pub(crate) struct Wakers;

impl Wakers {
    pub(crate) fn create(_name: &str) -> io::Result<Wakers> {
        Ok(Wakers)
    }

    pub(crate) fn open(_name: &str) -> io::Result<Wakers> {
        Ok(Wakers)
    }

    /// See [`wait`]; `index` names the word for platforms that need it.
    /// The words live in the region: no objects of their own to check.
    pub(crate) fn owners(&self) -> Vec<io::Result<ObjectOwner>> {
        Vec::new()
    }

    pub(crate) fn wait(&self, _index: usize, word: &AtomicU32, seen: u32, timeout: Duration) {
        wait(word, seen, timeout);
    }

    /// See [`wake`].
    pub(crate) fn wake(&self, _index: usize, word: &AtomicU32) {
        wake(word);
    }
}

/// The process this process talks to, watched for its exit.
#[derive(Debug)]
pub(crate) struct Peer {
    pid: u32,
    /// A descriptor readable once it exits (see `exit_watch`), where the OS
    /// gives one: immune to pid reuse.
    watch: Watch,
}

impl Peer {
    pub(crate) fn watch(pid: u32) -> Peer {
        let watch = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .map_or(Watch::Gone, exit_watch::watch);
        Peer { pid, watch }
    }

    /// The descriptor readable once the process has exited (a pidfd, or a
    /// kqueue watching it: see `exit_watch`), for tokio's reactor.
    #[cfg(feature = "tokio")]
    pub(crate) fn pidfd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match &self.watch {
            Watch::Fd(fd) => Some(fd.as_fd()),
            Watch::Gone | Watch::Unavailable => None,
        }
    }

    /// Whether the process has exited (a zombie counts as exited).
    pub(crate) fn exited(&self) -> bool {
        match &self.watch {
            Watch::Fd(fd) => exit_watch::exited(fd).unwrap_or(false),
            Watch::Gone => true,
            Watch::Unavailable => !pid_alive(self.pid),
        }
    }
}

/// Whether a process with this id exists (it may be a zombie or, after reuse,
/// another process).
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(rustix::process::test_kill_process(p), Err(Errno::SRCH))
}

/// This process's id.
pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

/// Whether this process may notify with a compiler fence only: true once it is
/// registered for `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` (Linux 4.16+),
/// so that a waiter's [`heavy_barrier`] runs a full barrier on its cores.
#[cfg(target_os = "linux")]
pub(crate) fn light_barrier() -> bool {
    use rustix::thread::{MembarrierCommand, MembarrierQuery, membarrier, membarrier_query};
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let q = membarrier_query();
        q.contains(MembarrierQuery::GLOBAL_EXPEDITED | MembarrierQuery::REGISTER_GLOBAL_EXPEDITED)
            && membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok()
    })
}

/// Runs a full memory barrier on every core running a thread of a process
/// registered by [`light_barrier`]; false if that failed (then a peer's light
/// notification may go unseen, and the caller must not sleep long).
#[cfg(target_os = "linux")]
pub(crate) fn heavy_barrier() -> bool {
    use rustix::thread::{MembarrierCommand, membarrier};
    membarrier(MembarrierCommand::GlobalExpedited).is_ok()
}

/// Without membarrier, notifiers take full fences.
#[cfg(not(target_os = "linux"))]
pub(crate) fn light_barrier() -> bool {
    false
}

/// Without membarrier no peer notifies lightly: nothing to cover.
#[cfg(not(target_os = "linux"))]
pub(crate) fn heavy_barrier() -> bool {
    true
}

/// Whether a region opened with length `opened` was created with `size`
/// bytes: Linux and FreeBSD keep the exact size.
#[cfg(not(target_vendor = "apple"))]
pub(crate) fn opened_len_matches(opened: usize, size: usize) -> bool {
    opened == size
}

/// macOS rounds a POSIX region's size up to whole pages (`fstat` tells the
/// rounded size), as Windows does.
#[cfg(target_vendor = "apple")]
pub(crate) fn opened_len_matches(opened: usize, size: usize) -> bool {
    // SAFETY: `sysconf` only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = usize::try_from(page).unwrap_or(1).max(1);
    opened == size || opened == size.next_multiple_of(page)
}
