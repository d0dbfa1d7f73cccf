//! Unix: Unix domain sockets (path and Linux abstract names), byte streams and
//! message channels, with poll-based deadlines.
//!
//! Linux, macOS and FreeBSD share this code; a file per OS exists only where
//! the mechanism differs:
//!
//! | what | Linux | macOS | FreeBSD |
//! |---|---|---|---|
//! | message channels | `SOCK_SEQPACKET` (`seqpacket`) | frames over `SOCK_STREAM` (`stream_msg`) | `SOCK_SEQPACKET` (`seqpacket`) |
//! | shm wake-ups (`wait/`) | futex | `os_sync_wait_on_address`, else `__ulock_wait` | `_umtx_op` |
//! | peer exit (`exit_watch`) | pidfd | kqueue `EVFILT_PROC` | kqueue `EVFILT_PROC` |
//! | peer credentials (`cred`) | `SO_PEERCRED` | `getpeereid` + `LOCAL_PEERPID` | `LOCAL_PEERCRED` |
//! | socket flags (`socket`) | `SOCK_CLOEXEC`, `MSG_NOSIGNAL` | `fcntl`, `SO_NOSIGPIPE` | `SOCK_CLOEXEC`, `MSG_NOSIGNAL` |
//!
//! macOS and FreeBSD are type-checked and linted from Linux
//! (`scripts/check-cross.sh`); nothing here has run on them.

pub(crate) mod child;
mod claim;
mod cred;
mod dgram;
mod exit_watch;
mod fdio;
pub(crate) mod handles;
#[cfg(not(target_vendor = "apple"))]
mod large_records;
mod msg_socket;
pub(crate) mod registry;
mod runtime_dir;
#[cfg(not(target_vendor = "apple"))]
mod seqpacket;
pub(crate) mod shm;
#[cfg(feature = "tokio")]
pub(crate) mod shm_async;
mod socket;
mod stream;
#[cfg(target_vendor = "apple")]
mod stream_msg;
#[cfg(feature = "tokio")]
pub(crate) mod tokio;
mod users;
mod wait;

use std::io;
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Instant;

use crate::sys::plain::{Env, Os, OsErrorClass};

pub(crate) use dgram::{MailslotReceiver, MailslotSender, broadcast, join_group};
pub(crate) use msg_socket::MsgListener;
#[cfg(not(target_vendor = "apple"))]
pub(crate) use seqpacket::MsgStream;
#[cfg(target_vendor = "apple")]
pub(crate) use stream_msg::MsgStream;

/// The socket type of a message channel: `SOCK_SEQPACKET`, or on macOS (which
/// has none for Unix sockets) `SOCK_STREAM` carrying frames.
#[cfg(not(target_vendor = "apple"))]
const MSG_SOCKET: rustix::net::SocketType = rustix::net::SocketType::SEQPACKET;
#[cfg(target_vendor = "apple")]
const MSG_SOCKET: rustix::net::SocketType = rustix::net::SocketType::STREAM;
pub(crate) use stream::{Listener, Stream};
pub(crate) use users::{current_owners, user_named};

#[cfg(target_os = "linux")]
pub(crate) const OS: Os = Os::Linux;
#[cfg(not(target_os = "linux"))]
pub(crate) const OS: Os = Os::OtherUnix;

/// The directories the address resolver needs on this machine.
pub(crate) fn env() -> Env {
    Env {
        os: OS,
        runtime_dir: runtime_dir::path(),
        temp_dir: dotnet_temp_dir(),
    }
}

/// What .NET's `Path.GetTempPath()` returns on Unix: `$TMPDIR`, else `/tmp/`.
fn dotnet_temp_dir() -> PathBuf {
    match std::env::var_os("TMPDIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("/tmp"),
    }
}

/// Reads from a TCP stream, giving up with `TimedOut` at `limit`.
pub(crate) fn tcp_read(
    stream: &TcpStream,
    buf: &mut [u8],
    limit: Option<Instant>,
) -> io::Result<usize> {
    match limit {
        None => io::Read::read(&mut &*stream, buf),
        Some(limit) => fdio::read_until(stream.as_fd(), buf, limit),
    }
}

/// Writes to a TCP stream, giving up with `TimedOut` at `limit`.
pub(crate) fn tcp_write(
    stream: &TcpStream,
    buf: &[u8],
    limit: Option<Instant>,
) -> io::Result<usize> {
    match limit {
        None => io::Write::write(&mut &*stream, buf),
        Some(limit) => fdio::write_until(stream.as_fd(), buf, limit),
    }
}

/// ipckit's private per-user directory for portable names.
pub(crate) fn runtime_dir() -> Option<PathBuf> {
    Some(runtime_dir::path())
}

/// A mailslot sender can tell who owns the receiver's socket file.
pub(crate) const MAILSLOT_RECEIVER_UNKNOWN: Option<&str> = None;

/// Broadcast groups live in the runtime directory (`NAME.group/`) on Unix.
pub(crate) fn mailslot_groups_dir() -> Option<PathBuf> {
    None
}

/// There is no named-pipe file system on Unix.
pub(crate) fn pipe_names() -> io::Result<Vec<String>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        r"\\.\pipe\ exists only on Windows",
    ))
}

/// The user this process runs as: its effective uid, the one the kernel gives
/// the files it creates and reports to its peers (`SO_PEERCRED`).
pub(crate) fn current_user() -> io::Result<crate::sys::peer::UserId> {
    Ok(crate::sys::peer::UserId::Uid(
        rustix::process::geteuid().as_raw(),
    ))
}

/// Never under Wine on Unix.
pub(crate) fn wine_version() -> Option<String> {
    None
}

/// Error codes whose `io::ErrorKind` does not say enough: a name too long for
/// the OS (`ENAMETOOLONG`) is an invalid address.
pub(crate) fn os_error_class(code: i32) -> Option<OsErrorClass> {
    (code == rustix::io::Errno::NAMETOOLONG.raw_os_error()).then_some(OsErrorClass::InvalidAddress)
}

/// Whether `code` says the process or the machine ran out of something a new
/// connection needs (descriptors, socket buffers, kernel memory): `EMFILE`,
/// `ENFILE`, `ENOBUFS`, `ENOMEM`. Such a failure passes once something is freed.
pub(crate) fn is_resource_error(code: i32) -> bool {
    use rustix::io::Errno;
    [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
        .iter()
        .any(|e| e.raw_os_error() == code)
}

/// The soft limit on this process's open descriptors (`RLIMIT_NOFILE`); `None`
/// when unlimited.
pub(crate) fn open_files_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}
