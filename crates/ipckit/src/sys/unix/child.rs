//! Child-process channels: a `socketpair` whose child end is inherited across
//! `exec` at its own descriptor number.
//!
//! Every descriptor ipckit and std create is close-on-exec. The child end is too,
//! until the forked child clears the flag on that one descriptor in a `pre_exec`
//! hook, just before `exec`: no other thread's `fork` can inherit it, and the
//! child gets no descriptor it was not meant to have. The parent closes its copy
//! of the child end right after the spawn, so the child's exit is the end of the
//! channel; the parent's end is never inherited, so the parent's death is the end
//! of the channel for the child.
//!
//! Message channels are `SOCK_SEQPACKET` (with `SO_PASSCRED` on both ends, as
//! for named message channels); Node's channel is `SOCK_STREAM`, as Node's own
//! `child_process.fork` makes it.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use rustix::io::{Errno, FdFlags};
use rustix::net::{AddressFamily, Shutdown, SocketFlags, SocketType, sockopt};

use super::seqpacket::MsgStream;
use super::stream::{Stream, prepare};

/// The end of a channel that goes to the child.
#[derive(Debug)]
pub(crate) struct ChildEnd {
    fd: OwnedFd,
}

fn pair(ty: SocketType) -> io::Result<(OwnedFd, OwnedFd)> {
    let (parent, child) =
        rustix::net::socketpair(AddressFamily::UNIX, ty, SocketFlags::CLOEXEC, None)?;
    prepare(&parent, ty)?;
    prepare(&child, ty)?;
    Ok((parent, child))
}

/// A `SOCK_SEQPACKET` pair: the parent's message channel and the child's end.
pub(crate) fn message_pair() -> io::Result<(MsgStream, ChildEnd)> {
    let (parent, child) = pair(SocketType::SEQPACKET)?;
    Ok((MsgStream::from_fd(parent), ChildEnd { fd: child }))
}

/// A `SOCK_STREAM` pair (Node's channel): the parent's stream and the child's end.
pub(crate) fn stream_pair() -> io::Result<(Stream, ChildEnd)> {
    let (parent, child) = pair(SocketType::STREAM)?;
    Ok((Stream::from_fd(parent), ChildEnd { fd: child }))
}

impl ChildEnd {
    /// What the child is told in its environment: the descriptor number.
    pub(crate) fn token(&self) -> String {
        self.fd.as_raw_fd().to_string()
    }

    /// Spawns `cmd` through `spawn` with this end inherited, then closes the
    /// parent's copy of it. `std_cmd` reaches the `std` command inside `cmd`.
    pub(crate) fn spawn_with<C, T>(
        self,
        cmd: &mut C,
        std_cmd: fn(&mut C) -> &mut Command,
        spawn: impl FnOnce(&mut C) -> io::Result<T>,
    ) -> io::Result<T> {
        // The hook stays on the command; once this spawn is over it must do
        // nothing in later spawns of the same command (the number may be reused).
        let armed = Arc::new(AtomicI32::new(self.fd.as_raw_fd()));
        let hook = Arc::clone(&armed);
        let clear_cloexec = move || -> io::Result<()> {
            let fd = hook.load(Ordering::Relaxed);
            if fd < 0 {
                return Ok(());
            }
            // SAFETY: runs in the forked child before `exec`. `fd` is the child
            // end, open in the parent for the whole spawn (`self` is held until
            // `spawn` returns and only then is `armed` reset) and therefore open
            // in the forked copy; the borrow lasts for this one call.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            // `fcntl` is async-signal-safe, as a `pre_exec` hook requires.
            rustix::io::fcntl_setfd(borrowed, FdFlags::empty())?;
            Ok(())
        };
        // SAFETY: the hook only loads an atomic and makes one `fcntl` call:
        // no allocation, no locks, nothing that is unsafe between `fork` and
        // `exec` in a multi-threaded process.
        unsafe { std_cmd(cmd).pre_exec(clear_cloexec) };
        let spawned = spawn(cmd);
        armed.store(-1, Ordering::Relaxed);
        drop(self);
        spawned
    }
}

/// Half-closes a message channel: the peer sees its end; receiving goes on.
pub(crate) fn shutdown_messages(s: &MsgStream) -> io::Result<()> {
    Ok(rustix::net::shutdown(s.as_fd(), Shutdown::Write)?)
}

/// Set once the inherited channel has been taken, so no two owners adopt it.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Takes ownership of the inherited channel descriptor named by `token` (what
/// [`ChildEnd::token`] gave the parent), which must be a socket of type `ty`.
/// It is made close-on-exec again, so the child's own children do not inherit it.
fn adopt(token: &str, ty: SocketType, var: &str) -> io::Result<OwnedFd> {
    let fd: RawFd = token
        .trim()
        .parse()
        .ok()
        .filter(|fd| *fd >= 0)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{var}={token:?} is not a file descriptor number"),
            )
        })?;
    // SAFETY: the borrow is used for `fcntl` and `getsockopt` calls that only
    // read: a descriptor that is not open fails the first with EBADF and goes no
    // further; nothing is read from or written to it here.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    match rustix::io::fcntl_getfd(borrowed) {
        Ok(_) => {}
        Err(Errno::BADF) => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{var}={fd}, but descriptor {fd} is not open in this process \
                     (was the variable inherited from a process that had the channel?)"
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let found = sockopt::socket_type(borrowed).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{var}={fd}, but descriptor {fd} is not a socket: {e}"),
        )
    })?;
    if found != ty {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{var}={fd}, but descriptor {fd} is a {} socket, not the {} socket \
                 this kind of channel uses",
                type_name(found),
                type_name(ty)
            ),
        ));
    }
    if TAKEN.swap(true, Ordering::AcqRel) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the channel to the parent was already taken by this process",
        ));
    }
    rustix::io::fcntl_setfd(borrowed, FdFlags::CLOEXEC)?;
    // SAFETY: `fd` is open (checked above), is the socket the parent passed for
    // this channel (named by `var`, of the right type), and `TAKEN` makes this the
    // only place in the process that takes ownership of it, once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn type_name(ty: SocketType) -> &'static str {
    match ty {
        SocketType::STREAM => "SOCK_STREAM",
        SocketType::SEQPACKET => "SOCK_SEQPACKET",
        SocketType::DGRAM => "SOCK_DGRAM",
        _ => "non-stream",
    }
}

/// The inherited message channel named by `token` (in the variable `var`).
pub(crate) fn adopt_messages(token: &str, var: &str) -> io::Result<MsgStream> {
    adopt(token, SocketType::SEQPACKET, var).map(MsgStream::from_fd)
}

/// The inherited stream channel (Node's) named by `token` (in the variable `var`).
pub(crate) fn adopt_stream(token: &str, var: &str) -> io::Result<Stream> {
    adopt(token, SocketType::STREAM, var).map(Stream::from_fd)
}
