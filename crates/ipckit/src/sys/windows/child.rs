//! Child-process channels: the two ends of a message-mode named pipe under a
//! unique name, the client end inherited by the child.
//!
//! Both ends are opened here, in the parent, before the spawn: the server
//! instance (one instance only, remote clients refused, overlapped) and its
//! client, switched to `PIPE_READMODE_MESSAGE`; the name is never used again.
//! The child is told the client handle's value in its environment.
//!
//! std's `Command` spawns with `bInheritHandles = TRUE` and, on stable Rust,
//! takes no `PROC_THREAD_ATTRIBUTE_HANDLE_LIST`. So the client end is created
//! non-inheritable, made inheritable just for the spawn under [`SPAWN_LOCK`], and
//! closed in the parent right after: no two ipckit spawns leak ends into each
//! other's children. The parent keeps no copy of the child's end, so the child's
//! exit breaks the pipe (`ERROR_BROKEN_PIPE`: the end of the channel), and the
//! parent's end is never inherited, so the parent's death does the same for the
//! child.

use std::io;
use std::os::windows::io::{AsHandle, AsRawHandle, BorrowedHandle, FromRawHandle, OwnedHandle};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use windows_sys::Win32::Foundation::{HANDLE, HANDLE_FLAG_INHERIT, SetHandleInformation};
use windows_sys::Win32::Storage::FileSystem::{FILE_TYPE_PIPE, GetFileType};

use super::message::{MsgStream, client_handle};
use super::pipe::{Listener, PipeKind, lock};
use crate::address::Endpoint;
use crate::stream::{ConnectOptions, ListenerOptions};

/// Held by every ipckit spawn while its child end is inheritable.
static SPAWN_LOCK: Mutex<()> = Mutex::new(());

/// The end of a channel that goes to the child.
#[derive(Debug)]
pub(crate) struct ChildEnd {
    handle: OwnedHandle,
}

/// A pipe path no other channel, process or earlier run uses.
fn unique_path() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        r"\\.\pipe\ipckit-child-{}-{n}-{nanos:x}",
        std::process::id()
    )
}

/// A connected message-mode pipe: the parent's end and the child's end.
pub(crate) fn message_pair() -> io::Result<(MsgStream, ChildEnd)> {
    let ep = Endpoint::Pipe(unique_path());
    let mut opts = ListenerOptions::new();
    opts.max_instances(1);
    let listener = Listener::bind_kind(&ep, &opts, PipeKind::Messages)?;
    let client = client_handle(&ep, &ConnectOptions::new())?;
    // The client is connected already: this returns at once (ERROR_PIPE_CONNECTED).
    let server = listener.accept_handle()?;
    Ok((MsgStream::new(server, true)?, ChildEnd { handle: client }))
}

/// Node's channel is a C runtime descriptor that Node passes in `STARTUPINFO`'s
/// `lpReserved2`, which `std::process::Command` cannot set.
fn node_unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "Node's json channel is not supported on Windows (Node passes it as a C runtime \
         descriptor in STARTUPINFO, which std::process::Command cannot set); use the \
         messages serialization",
    )
}

/// Not on Windows: see [`node_unsupported`].
pub(crate) fn stream_pair() -> io::Result<(super::Stream, ChildEnd)> {
    Err(node_unsupported())
}

/// Not on Windows: see [`node_unsupported`].
pub(crate) fn adopt_stream(_token: &str, _var: &str) -> io::Result<super::Stream> {
    Err(node_unsupported())
}

/// A named pipe cannot be half-closed.
pub(crate) fn shutdown_messages(_s: &MsgStream) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "a named pipe cannot be half-closed; drop every handle to the channel instead",
    ))
}

fn set_inherit(handle: BorrowedHandle<'_>, inherit: bool) -> io::Result<()> {
    let flags = if inherit { HANDLE_FLAG_INHERIT } else { 0 };
    // SAFETY: `handle` is borrowed, so live for the whole call; only its inherit
    // flag is changed.
    let ok = unsafe { SetHandleInformation(handle.as_raw_handle(), HANDLE_FLAG_INHERIT, flags) };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl ChildEnd {
    /// What the child is told in its environment: the handle's value.
    pub(crate) fn token(&self) -> String {
        (self.handle.as_raw_handle() as usize).to_string()
    }

    /// Spawns `cmd` through `spawn` with this end inherited, then closes the
    /// parent's copy of it.
    pub(crate) fn spawn_with<C, T>(
        self,
        cmd: &mut C,
        _std_cmd: fn(&mut C) -> &mut Command,
        spawn: impl FnOnce(&mut C) -> io::Result<T>,
    ) -> io::Result<T> {
        let _only_us = lock(&SPAWN_LOCK);
        set_inherit(self.handle.as_handle(), true)?;
        let spawned = spawn(cmd);
        // Closed while the lock is held: no later ipckit spawn can inherit it.
        drop(self);
        spawned
    }
}

/// Set once the inherited channel has been taken, so no two owners adopt it.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Takes ownership of the inherited message pipe handle named by `token` (what
/// [`ChildEnd::token`] gave the parent). It is made non-inheritable again, so
/// the child's own children do not inherit it.
pub(crate) fn adopt_messages(token: &str, var: &str) -> io::Result<MsgStream> {
    let value: usize = token.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{var}={token:?} is not a handle value"),
        )
    })?;
    let raw = value as HANDLE;
    // SAFETY: `GetFileType` only queries the handle; a value that is not an open
    // handle of this process fails with ERROR_INVALID_HANDLE and goes no further.
    let kind = unsafe { GetFileType(raw) };
    if kind != FILE_TYPE_PIPE {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{var}={value}, but handle {value} is not an open pipe in this process \
                 (was the variable inherited from a process that had the channel?): {err}"
            ),
        ));
    }
    if TAKEN.swap(true, Ordering::AcqRel) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the channel to the parent was already taken by this process",
        ));
    }
    // SAFETY: `raw` is an open pipe handle (checked above), the one the parent
    // passed for this channel (named by `var`), and `TAKEN` makes this the only
    // place in the process that takes ownership of it, once.
    let handle = unsafe { OwnedHandle::from_raw_handle(raw) };
    set_inherit(handle.as_handle(), false)?;
    MsgStream::new(handle, false)
}
