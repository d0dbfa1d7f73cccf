//! Windows: named pipes with overlapped I/O, and Wine detection.
//!
//! - `pipe`: byte streams (`Listener`, `Stream`), and the server that always keeps
//!   one instance waiting and the client connect logic, both shared with:
//! - `message`: message channels (`MsgListener`, `MsgStream`) on pipes in message
//!   mode, messages larger than a read reassembled across `ERROR_MORE_DATA`.
//! - `mailslot`: mailslots (`MailslotReceiver`, `MailslotSender`), overlapped
//!   reads sized by `GetMailslotInfo`; `mailslot_group`: broadcast groups of
//!   them (`join_group`, `broadcast`), registered by marker files.
//! - `pipe_instances`: how a server creates its pipe's instances (shared by
//!   the blocking and the async listener).
//! - `pipe_waiting` (feature `tokio`): the instance the async listener keeps
//!   waiting, awaited through the thread pool and closed at once on drop.
//! - `overlapped`: one overlapped operation bounded by a deadline.
//! - `handle`: owned handles and events.
//! - `tokio` (feature `tokio`): the async listener and streams, on tokio's named
//!   pipes; `tokio_message` and `tokio_mailslot`: the async message channels
//!   and mailslot receivers, on the blocking pool (`crate::sys::tokio_blocking`).
//! - `pipe_list`: the names in `\\.\pipe\` (`pipe_names`).
//! - `security`: the current-user DACL every named object is created with (or
//!   a listener's SDDL), peer process ids and user SIDs, descriptors read back.
//! - `object_owner`: who owns a kernel object and whom its DACL lets write it
//!   (checked by shared-memory clients); account names to SIDs.
//! - `adopt`: what a pipe handle made elsewhere is (end, type, name).
//! - `wine`: Wine detection.
#![allow(unsafe_code)]

mod adopt;
pub(crate) mod child;
mod crt_fds;
mod first_instance;
mod handle;
mod mailslot;
mod mailslot_group;
mod message;
mod object_owner;
mod overlapped;
mod pipe;
mod pipe_instances;
mod pipe_list;
#[cfg(feature = "tokio")]
mod pipe_waiting;
pub(crate) mod registry;
mod security;
pub(crate) mod shm;
#[cfg(feature = "tokio")]
pub(crate) mod shm_async;
#[cfg(feature = "tokio")]
pub(crate) mod tokio;
#[cfg(feature = "tokio")]
mod tokio_mailslot;
#[cfg(feature = "tokio")]
mod tokio_message;
mod wine;

use std::io;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Instant;

use windows_sys::Win32::Foundation::{
    ERROR_COMMITMENT_LIMIT, ERROR_NO_DATA, ERROR_NO_SYSTEM_RESOURCES,
    ERROR_NONPAGED_SYSTEM_RESOURCES, ERROR_NOT_ENOUGH_MEMORY, ERROR_NOT_ENOUGH_QUOTA,
    ERROR_OUTOFMEMORY, ERROR_PAGED_SYSTEM_RESOURCES, ERROR_PAGEFILE_QUOTA, ERROR_PIPE_BUSY,
    ERROR_PIPE_NOT_CONNECTED, ERROR_TOO_MANY_OPEN_FILES, ERROR_WORKING_SET_QUOTA,
};

use crate::sys::plain::{Env, Os};
use crate::sys::plain::{OsErrorClass, timed_out};

pub(crate) use mailslot::{MailslotReceiver, MailslotSender};
pub(crate) use mailslot_group::{broadcast, groups_dir, join_group};
pub(crate) use message::{MsgListener, MsgStream};
pub(crate) use object_owner::{current_owners, user_named};
pub(crate) use pipe::{Listener, Stream};
pub(crate) use pipe_list::pipe_names;
pub(crate) use wine::{is_wine, wine_version};

pub(crate) const OS: Os = Os::Windows;

/// The directories the address resolver needs (only .NET's temp dir matters here).
pub(crate) fn env() -> Env {
    Env {
        os: OS,
        runtime_dir: PathBuf::new(),
        temp_dir: std::env::temp_dir(),
    }
}

/// Windows tells a mailslot's sender nothing about who created the mailslot.
pub(crate) const MAILSLOT_RECEIVER_UNKNOWN: Option<&str> = Some(
    "Windows tells a mailslot's sender nothing about who created the mailslot (no call names \
     its creator, and a sender's handle may not read its security descriptor)",
);

/// Where broadcast groups register their members: a directory per group, a
/// marker file per member.
pub(crate) fn mailslot_groups_dir() -> Option<PathBuf> {
    Some(groups_dir())
}

/// No runtime directory: portable names are pipe names on Windows.
pub(crate) fn runtime_dir() -> Option<PathBuf> {
    None
}

/// The user this process runs as: the user SID of its token.
pub(crate) fn current_user() -> io::Result<crate::sys::peer::UserId> {
    security::current_user_sid().map(crate::sys::peer::UserId::Sid)
}

/// Win32 error codes whose `io::ErrorKind` does not say enough.
pub(crate) fn os_error_class(code: i32) -> Option<OsErrorClass> {
    match u32::try_from(code).ok()? {
        ERROR_PIPE_BUSY => Some(OsErrorClass::Busy),
        ERROR_NO_DATA | ERROR_PIPE_NOT_CONNECTED => Some(OsErrorClass::Disconnected),
        _ => None,
    }
}

/// Winsock's `WSAEMFILE` and `WSAENOBUFS` (a TCP accept out of sockets or
/// buffers); written out to spare the whole WinSock binding for two numbers.
const WSAEMFILE: u32 = 10024;
const WSAENOBUFS: u32 = 10055;

/// Whether `code` says the process or the machine ran out of something a new
/// connection needs: handles, memory, kernel pool or quota. `CreateNamedPipeW`
/// reports `ERROR_NO_SYSTEM_RESOURCES`, `ERROR_NOT_ENOUGH_QUOTA` or one of the
/// memory errors when the pipe buffers cannot be had; a TCP accept reports
/// `WSAEMFILE` or `WSAENOBUFS`. Such a failure passes once something is freed.
pub(crate) fn is_resource_error(code: i32) -> bool {
    let Ok(code) = u32::try_from(code) else {
        return false;
    };
    matches!(
        code,
        ERROR_TOO_MANY_OPEN_FILES
            | ERROR_NOT_ENOUGH_MEMORY
            | ERROR_OUTOFMEMORY
            | ERROR_NO_SYSTEM_RESOURCES
            | ERROR_NONPAGED_SYSTEM_RESOURCES
            | ERROR_PAGED_SYSTEM_RESOURCES
            | ERROR_WORKING_SET_QUOTA
            | ERROR_PAGEFILE_QUOTA
            | ERROR_COMMITMENT_LIMIT
            | ERROR_NOT_ENOUGH_QUOTA
            | WSAEMFILE
            | WSAENOBUFS
    )
}

/// No per-process limit on open handles that a program can read and that a
/// server would meet first (handles run out with memory).
pub(crate) fn open_files_limit() -> Option<u64> {
    None
}

/// The time left until `limit`, or a `TimedOut` error when none is left.
fn time_left(limit: Instant, what: &str) -> io::Result<std::time::Duration> {
    let left = limit.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(timed_out(what))
    } else {
        Ok(left)
    }
}

/// Reads from a TCP stream, giving up with `TimedOut` at `limit` (via `SO_RCVTIMEO`).
pub(crate) fn tcp_read(
    stream: &TcpStream,
    buf: &mut [u8],
    limit: Option<Instant>,
) -> io::Result<usize> {
    let left = limit.map(|l| time_left(l, "read")).transpose()?;
    stream.set_read_timeout(left)?;
    match io::Read::read(&mut &*stream, buf) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(timed_out("read")),
        other => other,
    }
}

/// Writes to a TCP stream, giving up with `TimedOut` at `limit` (via `SO_SNDTIMEO`).
pub(crate) fn tcp_write(
    stream: &TcpStream,
    buf: &[u8],
    limit: Option<Instant>,
) -> io::Result<usize> {
    let left = limit.map(|l| time_left(l, "write")).transpose()?;
    stream.set_write_timeout(left)?;
    match io::Write::write(&mut &*stream, buf) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(timed_out("write")),
        other => other,
    }
}
