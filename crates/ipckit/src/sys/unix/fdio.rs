//! Reads and writes on a socket bounded by an absolute deadline.
//!
//! The socket stays in blocking mode (clones share it); a bounded operation tries a
//! non-blocking `recv`/`send` first and, when the kernel has nothing, waits in
//! `poll` for the time that is left. Nothing is lost: a byte is either returned by
//! `recv` or still in the kernel's buffer.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Instant;

pub(super) use crate::sys::plain::timed_out;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, recv, send};

/// Waits until `fd` is ready for `flags` or `limit` passes.
pub(super) fn wait(
    fd: BorrowedFd<'_>,
    flags: PollFlags,
    limit: Instant,
    what: &str,
) -> io::Result<()> {
    loop {
        let left = limit.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(what));
        }
        let timeout = Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        });
        let mut fds = [PollFd::new(&fd, flags)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => continue, // loop re-checks the clock
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A deadline that has passed fails the call before it touches the socket (Go's
/// semantics), so no byte is consumed by a call that reports a timeout.
pub(super) fn check(limit: Instant, what: &str) -> io::Result<()> {
    if limit <= Instant::now() {
        return Err(timed_out(what));
    }
    Ok(())
}

pub(super) fn read_until(fd: BorrowedFd<'_>, buf: &mut [u8], limit: Instant) -> io::Result<usize> {
    check(limit, "read")?;
    loop {
        match recv(fd, &mut *buf, RecvFlags::DONTWAIT) {
            Ok((n, _)) => return Ok(n),
            Err(Errno::AGAIN) => wait(fd, PollFlags::IN, limit, "read")?,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

pub(super) fn write_until(fd: BorrowedFd<'_>, buf: &[u8], limit: Instant) -> io::Result<usize> {
    check(limit, "write")?;
    loop {
        match send(fd, buf, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
            Ok(n) => return Ok(n),
            Err(Errno::AGAIN) => wait(fd, PollFlags::OUT, limit, "write")?,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether the peer has closed its end (or shut down writing): the socket
/// reports `RDHUP` (Linux) or `HUP` without waiting.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn hung_up(fd: BorrowedFd<'_>) -> io::Result<bool> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let hup = PollFlags::RDHUP | PollFlags::HUP;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let hup = PollFlags::HUP;
    let mut fds = [PollFd::new(&fd, hup)];
    loop {
        match poll(&mut fds, Some(&Timespec::default())) {
            Ok(_) => return Ok(fds[0].revents().intersects(hup)),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// How a socket call that would block goes on.
#[derive(Debug, Clone, Copy)]
pub(super) enum Wait {
    /// Blocks in the kernel (the socket is in blocking mode).
    Block,
    /// Waits in `poll` until this instant, then fails with `TimedOut`.
    Until(Instant),
    /// Fails at once with `WouldBlock` (the async layer waits in its reactor).
    Never,
}

impl Wait {
    pub(super) fn from_limit(limit: Option<Instant>) -> Wait {
        limit.map_or(Wait::Block, Wait::Until)
    }

    /// Whether calls must not block in the kernel (`MSG_DONTWAIT`).
    pub(super) fn dont_block(self) -> bool {
        !matches!(self, Wait::Block)
    }

    /// Fails a call whose deadline has already passed, before it starts.
    pub(super) fn check(self, what: &str) -> io::Result<()> {
        match self {
            Wait::Until(limit) => check(limit, what),
            _ => Ok(()),
        }
    }

    /// After `EAGAIN`: waits until `fd` is ready for `flags`, or gives up.
    pub(super) fn again(self, fd: BorrowedFd<'_>, flags: PollFlags, what: &str) -> io::Result<()> {
        match self {
            Wait::Block => Ok(()),
            Wait::Until(limit) => wait(fd, flags, limit, what),
            Wait::Never => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}
