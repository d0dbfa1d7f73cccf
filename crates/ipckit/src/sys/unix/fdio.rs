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
        match send(fd, buf, SendFlags::DONTWAIT | super::socket::NO_SIGNAL) {
            Ok(n) => return Ok(n),
            Err(Errno::AGAIN) => wait(fd, PollFlags::OUT, limit, "write")?,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The size of the next datagram queued on `fd`, without taking it or
/// waiting (`WouldBlock` when none is queued).
///
/// Linux: `MSG_PEEK | MSG_TRUNC` returns the whole size whatever the buffer.
/// Elsewhere `MSG_TRUNC` is only an output flag: the datagram is peeked into
/// a buffer that doubles while the kernel reports it cut (a datagram never
/// exceeds the socket's receive buffer, so this ends).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn peek_len(fd: BorrowedFd<'_>) -> io::Result<usize> {
    use rustix::net::{RecvAncillaryBuffer, recvmsg};
    let flags = RecvFlags::PEEK | RecvFlags::TRUNC | RecvFlags::DONTWAIT;
    loop {
        let mut none = RecvAncillaryBuffer::new(&mut []);
        match recvmsg(fd, &mut [], &mut none, flags) {
            Ok(r) => return Ok(r.bytes),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn peek_len(fd: BorrowedFd<'_>) -> io::Result<usize> {
    peek_len_growing(fd)
}

/// [`peek_len`] without `MSG_TRUNC` as an input flag (compiled, and tested,
/// on Linux too).
#[cfg_attr(any(target_os = "linux", target_os = "android"), allow(dead_code))]
fn peek_len_growing(fd: BorrowedFd<'_>) -> io::Result<usize> {
    use rustix::net::{RecvAncillaryBuffer, ReturnFlags, recvmsg};
    let flags = RecvFlags::PEEK | RecvFlags::DONTWAIT;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut none = RecvAncillaryBuffer::new(&mut []);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        match recvmsg(fd, &mut iov, &mut none, flags) {
            Ok(r) if r.flags.contains(ReturnFlags::TRUNC) => {
                let bigger = buf.len() * 2;
                buf.resize(bigger, 0);
            }
            Ok(r) => return Ok(r.bytes),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The whole size of a record a peek with too small a buffer found:
/// `bytes` on Linux (`MSG_TRUNC` made the kernel return it); elsewhere, when
/// the kernel reports the record cut (`MSG_TRUNC` in `flags`), what
/// [`peek_len`] finds.
#[cfg_attr(target_vendor = "apple", allow(dead_code))] // no SOCK_SEQPACKET there
pub(super) fn full_len(
    fd: BorrowedFd<'_>,
    bytes: usize,
    flags: rustix::net::ReturnFlags,
) -> io::Result<usize> {
    if cfg!(any(target_os = "linux", target_os = "android"))
        || !flags.contains(rustix::net::ReturnFlags::TRUNC)
    {
        return Ok(bytes);
    }
    peek_len_growing(fd)
}

/// Whether the peer has closed its end (or shut down writing): the socket
/// reports `RDHUP` (Linux) or `HUP` without waiting. (For `SOCK_SEQPACKET`
/// outside Linux; macOS has none.)
#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
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

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use rustix::net::SocketType;

    use super::*;

    /// The size of the next datagram or record as macOS and FreeBSD learn it
    /// (no `MSG_TRUNC` input flag), checked on Linux against what was sent:
    /// empty, small, over the first buffer, and nothing queued.
    #[test]
    fn peek_len_growing_finds_whole_sizes_without_taking_anything() {
        // macOS has no SOCK_SEQPACKET for Unix sockets.
        let types: &[SocketType] = if cfg!(target_vendor = "apple") {
            &[SocketType::DGRAM]
        } else {
            &[SocketType::DGRAM, SocketType::SEQPACKET]
        };
        for &ty in types {
            let (a, b) = super::super::socket::pair(ty).unwrap();
            rustix::net::sockopt::set_socket_send_buffer_size(&a, 1 << 20).unwrap();
            rustix::net::sockopt::set_socket_recv_buffer_size(&b, 1 << 20).unwrap();
            let big = vec![7u8; 200_000];
            for msg in [&b""[..], &b"hello"[..], &big[..]] {
                rustix::net::send(&a, msg, SendFlags::empty()).unwrap();
                assert_eq!(peek_len_growing(b.as_fd()).unwrap(), msg.len(), "{ty:?}");
                // Peeking took nothing: the same size again, then the bytes.
                assert_eq!(peek_len_growing(b.as_fd()).unwrap(), msg.len(), "{ty:?}");
                let mut got = vec![0u8; msg.len() + 1];
                let (n, _) = rustix::net::recv(&b, &mut got[..], RecvFlags::empty()).unwrap();
                assert_eq!(&got[..n], msg, "{ty:?}");
            }
            let none = peek_len_growing(b.as_fd()).unwrap_err();
            assert_eq!(none.kind(), io::ErrorKind::WouldBlock, "{ty:?}");
        }
    }
}
