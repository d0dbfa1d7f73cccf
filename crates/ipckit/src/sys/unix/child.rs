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
//! for named message channels; on macOS `SOCK_STREAM` carrying frames, as its
//! named message channels); Node's channel is `SOCK_STREAM`, as Node's own
//! `child_process.fork` makes it.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use rustix::io::{Errno, FdFlags};
use rustix::net::{AddressFamily, Shutdown, SocketType, sockopt};

use super::MsgStream;
use super::stream::{Stream, prepare};

/// The end of a channel that goes to the child.
#[derive(Debug)]
pub(crate) struct ChildEnd {
    fd: OwnedFd,
}

fn pair(ty: SocketType) -> io::Result<(OwnedFd, OwnedFd)> {
    let (parent, child) = super::socket::pair(ty)?;
    prepare(&parent, ty)?;
    prepare(&child, ty)?;
    Ok((above_stdio(parent)?, above_stdio(child)?))
}

/// `fd`, moved to a number above 2 if it is one of the standard ones. With
/// standard input, output or error closed in this process `socketpair` can
/// return 0, 1 or 2, and a spawn that redirects the child's stdio would then
/// overwrite the child end (`dup2` onto it) before the `pre_exec` hook runs, or
/// hand the parent's end to the child as its stdio.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // The copy is close-on-exec too; dropping `fd` closes the low number.
    Ok(rustix::io::fcntl_dupfd_cloexec(&fd, 3)?)
}

/// A message socket pair (`SOCK_SEQPACKET`; on macOS `SOCK_STREAM` carrying
/// frames): the parent's message channel and the child's end.
pub(crate) fn message_pair() -> io::Result<(MsgStream, ChildEnd)> {
    let (parent, child) = pair(super::MSG_SOCKET)?;
    Ok((MsgStream::from_fd(parent), ChildEnd { fd: child }))
}

/// Node's channel is a plain byte stream here (libuv frames it only on
/// Windows).
pub(crate) const LIBUV_FRAMES: bool = false;

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
        _pid: fn(&T) -> Option<u32>,
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

/// Takes ownership of the inherited channel descriptor named by `token` (what
/// [`ChildEnd::token`] gave the parent), which must be an `AF_UNIX` socket of
/// type `ty` above 2 and not close-on-exec. It is made close-on-exec again, so
/// the child's own children do not inherit it. The caller (the portable layer)
/// makes sure this process takes its channel once. On a refusal nothing is
/// changed and nothing is closed.
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
    if fd <= 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{var}={fd}, but descriptor {fd} is standard {}, never an inherited \
                 channel",
                ["input", "output", "error"][fd as usize]
            ),
        ));
    }
    // SAFETY: the borrow is used only for the queries below (F_GETFD, SO_TYPE,
    // getsockname) and for setting close-on-exec once they have shown that the
    // descriptor is the inherited channel; it never reads, writes or closes it.
    // Until then this function does not rely on `fd` being open or owned by no
    // one: a number that is not open fails the first query with EBADF, and one
    // another part of the process owns (even if it is closed and reused
    // meanwhile) is only asked about and then refused by the checks. Nothing is
    // done with the borrow after this function returns.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let flags = match rustix::io::fcntl_getfd(borrowed) {
        Ok(flags) => flags,
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
    };
    // std, tokio and ipckit open every descriptor close-on-exec: one without the
    // flag came through `exec` from the parent. One with it is this process's own.
    if flags.contains(FdFlags::CLOEXEC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{var}={fd}, but descriptor {fd} is close-on-exec: this process opened it \
                 itself (or took its channel already), so it is not the inherited \
                 channel (was the variable inherited from a process that had the channel?)"
            ),
        ));
    }
    let found = sockopt::socket_type(borrowed).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{var}={fd}, but descriptor {fd} is not a socket: {e}"),
        )
    })?;
    let family = rustix::net::getsockname(borrowed)
        .map(|addr| addr.address_family())
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{var}={fd}: ask descriptor {fd} for its address: {e}"),
            )
        })?;
    if family != AddressFamily::UNIX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{var}={fd}, but descriptor {fd} is not a Unix domain socket"),
        ));
    }
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
    rustix::io::fcntl_setfd(borrowed, FdFlags::CLOEXEC)?;
    // SAFETY: `fd` is open, above the standard descriptors, and was not
    // close-on-exec: everything std, tokio and ipckit open in this process is
    // opened close-on-exec, so no owner in this process made it; it came through
    // `exec` from the parent, which named it in `var` as this channel (an
    // `AF_UNIX` socket of the type it made). The only way for code in this
    // process to own it is to adopt it here, which clears the evidence (it is
    // close-on-exec from now on) and which the portable layer allows once.
    // (A C library that opened a Unix socket without close-on-exec would defeat
    // the check; the variable would then have to name that socket.)
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
    adopt(token, super::MSG_SOCKET, var).map(MsgStream::adopted)
}

/// The inherited stream channel (Node's) named by `token` (in the variable `var`).
pub(crate) fn adopt_stream(token: &str, var: &str) -> io::Result<Stream> {
    adopt(token, SocketType::STREAM, var).map(Stream::from_fd)
}
