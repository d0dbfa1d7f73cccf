//! New Unix sockets, set up alike on every Unix: close-on-exec, blocking unless
//! asked otherwise, and never raising `SIGPIPE` when the peer has gone.
//!
//! Linux and FreeBSD take the flags in the call that makes the socket
//! (`SOCK_CLOEXEC`, `SOCK_NONBLOCK`, `accept4`) and `MSG_NOSIGNAL` on each
//! send. macOS has none of them: the flags are set right after the call
//! (`fcntl(F_SETFD, FD_CLOEXEC)`, `FIONBIO`) and `SO_NOSIGPIPE` on the socket
//! stands in for `MSG_NOSIGNAL`. (Until `fcntl` runs, another thread's
//! `fork` + `exec` could inherit the descriptor; std's own sockets have the
//! same window there.)

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{AddressFamily, SendFlags, SocketType};

/// The flags every send takes so that a peer that has gone gives `EPIPE`
/// rather than `SIGPIPE`: `MSG_NOSIGNAL`, or nothing where `SO_NOSIGPIPE` is
/// set on the socket (macOS).
#[cfg(not(target_vendor = "apple"))]
pub(super) const NO_SIGNAL: SendFlags = SendFlags::NOSIGNAL;
#[cfg(target_vendor = "apple")]
pub(super) const NO_SIGNAL: SendFlags = SendFlags::empty();

/// A new Unix socket of type `ty`, close-on-exec, non-blocking if asked (the
/// async layer).
#[cfg(not(target_vendor = "apple"))]
pub(super) fn new_socket_of(ty: SocketType, nonblocking: bool) -> io::Result<OwnedFd> {
    use rustix::net::SocketFlags;
    let mut flags = SocketFlags::CLOEXEC;
    if nonblocking {
        flags |= SocketFlags::NONBLOCK;
    }
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        ty,
        flags,
        None,
    )?)
}

#[cfg(target_vendor = "apple")]
pub(super) fn new_socket_of(ty: SocketType, nonblocking: bool) -> io::Result<OwnedFd> {
    let fd = rustix::net::socket(AddressFamily::UNIX, ty, None)?;
    set_up(&fd)?;
    if nonblocking {
        rustix::io::ioctl_fionbio(&fd, true)?;
    }
    Ok(fd)
}

/// A connected pair of Unix sockets of type `ty`, close-on-exec.
pub(super) fn pair(ty: SocketType) -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(not(target_vendor = "apple"))]
    let flags = rustix::net::SocketFlags::CLOEXEC;
    #[cfg(target_vendor = "apple")]
    let flags = rustix::net::SocketFlags::empty();
    let (a, b) = rustix::net::socketpair(AddressFamily::UNIX, ty, flags, None)?;
    #[cfg(target_vendor = "apple")]
    {
        set_up(&a)?;
        set_up(&b)?;
    }
    Ok((a, b))
}

/// Takes the next connection of a listening socket, close-on-exec and in
/// blocking mode (the BSDs hand the listener's `O_NONBLOCK` on to the
/// accepted socket; the async layer's calls never block anyway).
pub(super) fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    loop {
        #[cfg(not(target_vendor = "apple"))]
        let accepted = rustix::net::accept_with(listener, rustix::net::SocketFlags::CLOEXEC);
        #[cfg(target_vendor = "apple")]
        let accepted = rustix::net::accept(listener);
        match accepted {
            Ok(fd) => {
                set_up_accepted(&fd)?;
                #[cfg(not(any(target_os = "linux", target_os = "android")))]
                rustix::io::ioctl_fionbio(&fd, false)?;
                return Ok(fd);
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// What a socket from any `accept` (std's and tokio's included) needs beyond
/// what it came with: on macOS close-on-exec (std and tokio set it already;
/// this is for ours) and `SO_NOSIGPIPE`. Nothing elsewhere.
pub(super) fn set_up_accepted(fd: &impl AsFd) -> io::Result<()> {
    #[cfg(target_vendor = "apple")]
    set_up(fd)?;
    #[cfg(not(target_vendor = "apple"))]
    let _ = fd;
    Ok(())
}

/// Shuts down one direction of a socket or both (`shutdown(2)`).
pub(super) fn shutdown(fd: BorrowedFd<'_>, how: std::net::Shutdown) -> io::Result<()> {
    let how = match how {
        std::net::Shutdown::Read => rustix::net::Shutdown::Read,
        std::net::Shutdown::Write => rustix::net::Shutdown::Write,
        std::net::Shutdown::Both => rustix::net::Shutdown::Both,
    };
    Ok(rustix::net::shutdown(fd, how)?)
}

/// macOS: close-on-exec and `SO_NOSIGPIPE` on a socket made without them.
#[cfg(target_vendor = "apple")]
fn set_up(fd: &impl AsFd) -> io::Result<()> {
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
    rustix::net::sockopt::set_socket_nosigpipe(fd, true)?;
    Ok(())
}
