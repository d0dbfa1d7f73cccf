//! A descriptor that becomes readable when a given process exits, so that the
//! shared-memory channel notices a peer that died (`shm::Peer`).
//!
//! - Linux: a pidfd (`pidfd_open`, Linux 5.3+).
//! - macOS and FreeBSD: a kqueue with an `EVFILT_PROC` / `NOTE_EXIT` filter
//!   registered on the process; the kqueue is readable once the exit is
//!   queued (the event is never taken off it, so it stays readable).
//!
//! Both are immune to pid reuse: they name the process, not the number. Where
//! neither can be had, the caller falls back to `kill(pid, 0)`.

use std::io;
use std::os::fd::OwnedFd;

use rustix::process::Pid;

/// What watching a process gave.
#[derive(Debug)]
pub(super) enum Watch {
    /// Readable once the process has exited.
    Fd(OwnedFd),
    /// The process had exited already (or never existed).
    Gone,
    /// No watch to be had here; ask `kill(pid, 0)` instead.
    Unavailable,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn watch(pid: Pid) -> Watch {
    use rustix::io::Errno;
    match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => Watch::Fd(fd),
        Err(Errno::SRCH) => Watch::Gone,
        Err(_) => Watch::Unavailable,
    }
}

#[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
pub(super) fn watch(pid: Pid) -> Watch {
    match kqueue_on(pid) {
        Ok(fd) => Watch::Fd(fd),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) => Watch::Gone,
        Err(_) => Watch::Unavailable,
    }
}

/// A close-on-exec kqueue watching `pid` for its exit.
#[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
#[allow(unsafe_code)]
fn kqueue_on(pid: Pid) -> io::Result<OwnedFd> {
    use rustix::event::kqueue::{Event, EventFilter, EventFlags, ProcessEvents, kevent, kqueue};
    let kq = kqueue()?;
    rustix::io::fcntl_setfd(&kq, rustix::io::FdFlags::CLOEXEC)?;
    let change = [Event::new(
        EventFilter::Proc {
            pid,
            flags: ProcessEvents::EXIT,
        },
        EventFlags::ADD,
        std::ptr::null_mut(),
    )];
    let mut none: [std::mem::MaybeUninit<Event>; 0] = [];
    // SAFETY: the change list names a process, no descriptor, so no
    // descriptor in it can be closed while the kernel uses it; the event list
    // is empty and the zero timeout makes the call only register the filter.
    unsafe { kevent(&kq, &change, &mut none[..], Some(std::time::Duration::ZERO)) }?;
    Ok(kq)
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd"
)))]
pub(super) fn watch(_pid: Pid) -> Watch {
    Watch::Unavailable
}

/// Whether the process behind a [`Watch::Fd`] has exited, without waiting.
pub(super) fn exited(fd: &OwnedFd) -> io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    Ok(poll(&mut fds, Some(&Timespec::default()))? > 0)
}
