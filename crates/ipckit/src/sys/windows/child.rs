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
use std::os::windows::io::{
    AsHandle, AsRawHandle, BorrowedHandle, FromRawHandle, IntoRawHandle, OwnedHandle,
};
use std::os::windows::process::CommandExt;
use std::process::Command;
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use windows_sys::Win32::Foundation::{
    GetHandleInformation, HANDLE, HANDLE_FLAG_INHERIT, NO_ERROR, SetHandleInformation,
};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_TYPE, FILE_TYPE_CHAR, FILE_TYPE_DISK, FILE_TYPE_PIPE, FILE_TYPE_REMOTE, GetFileType,
};
use windows_sys::Win32::System::Pipes::{GetNamedPipeInfo, PIPE_SERVER_END, PIPE_TYPE_MESSAGE};
use windows_sys::Win32::System::Threading::{CREATE_SUSPENDED, GetStartupInfoW, STARTUPINFOW};

use super::crt_fds;
use super::message::{MsgStream, client_handle};
use super::pipe::{Listener, PipeKind, connect_handle, lock};
use crate::sys::plain::Endpoint;
use crate::sys::plain::{ConnectConfig, ListenConfig};

/// Held by every ipckit spawn while its child end is inheritable.
static SPAWN_LOCK: Mutex<()> = Mutex::new(());

/// The end of a channel that goes to the child.
#[derive(Debug)]
pub(crate) struct ChildEnd {
    handle: OwnedHandle,
    /// Node's channel: the C runtime descriptor the child finds it as.
    node_fd: Option<usize>,
}

/// The descriptor Node's `fork` gives its channel (after stdin, stdout and
/// stderr), which ipckit gives it too.
const NODE_FD: usize = 3;

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
    let opts = ListenConfig {
        max_instances: Some(1),
        ..ListenConfig::default()
    };
    let listener = Listener::bind_kind(&ep, &opts, PipeKind::Messages)?;
    let client = client_handle(&ep, &ConnectConfig::default())?;
    // The client is connected already: this returns at once (ERROR_PIPE_CONNECTED).
    let server = listener.accept_handle()?;
    let end = ChildEnd {
        handle: client,
        node_fd: None,
    };
    Ok((MsgStream::new(server, true)?, end))
}

/// libuv on Windows writes and expects its IPC frames on Node's channel.
pub(crate) const LIBUV_FRAMES: bool = true;

/// Node's channel: a connected byte-mode pipe (as libuv makes it), the
/// parent's end and the child's, which the child finds as C runtime descriptor
/// 3 (see [`ChildEnd::spawn_with`]).
pub(crate) fn stream_pair() -> io::Result<(super::Stream, ChildEnd)> {
    let ep = Endpoint::Pipe(unique_path());
    let opts = ListenConfig {
        max_instances: Some(1),
        ..ListenConfig::default()
    };
    let listener = Listener::bind_kind(&ep, &opts, PipeKind::Bytes)?;
    let client = connect_handle(&ep, &ConnectConfig::default())?;
    let server = listener.accept_handle()?;
    let end = ChildEnd {
        handle: client,
        node_fd: Some(NODE_FD),
    };
    Ok((super::Stream::from_handle(server)?, end))
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
    /// What the child is told in its environment: the handle's value, or for
    /// Node's channel the descriptor number.
    pub(crate) fn token(&self) -> String {
        match self.node_fd {
            Some(fd) => fd.to_string(),
            None => (self.handle.as_raw_handle() as usize).to_string(),
        }
    }

    /// Spawns `cmd` through `spawn` with this end inherited, then closes the
    /// parent's copy of it. For Node's channel the child is created suspended
    /// (the command's creation flags are set to `CREATE_SUSPENDED` for the
    /// spawn, then to 0), given a C runtime descriptor table that names the
    /// inherited handle as descriptor 3, and resumed; `pid` finds the child.
    /// A child that cannot be given its table is killed.
    pub(crate) fn spawn_with<C, T>(
        self,
        cmd: &mut C,
        std_cmd: fn(&mut C) -> &mut Command,
        spawn: impl FnOnce(&mut C) -> io::Result<T>,
        pid: fn(&T) -> Option<u32>,
    ) -> io::Result<T> {
        let _only_us = lock(&SPAWN_LOCK);
        set_inherit(self.handle.as_handle(), true)?;
        if self.node_fd.is_some() {
            std_cmd(cmd).creation_flags(CREATE_SUSPENDED);
        }
        let spawned = spawn(cmd);
        if self.node_fd.is_some() {
            std_cmd(cmd).creation_flags(0);
        }
        let child = spawned?;
        if let Some(fd) = self.node_fd {
            let id = pid(&child).ok_or_else(|| {
                io::Error::other("the suspended child has no process id (it was reaped)")
            })?;
            let suspended = crt_fds::Suspended::open(id)?;
            suspended.give_table(&crt_fds::pipe_table(fd, self.handle.as_raw_handle()))?;
            suspended.resume()?;
        }
        // Closed while the lock is held: no later ipckit spawn can inherit it.
        drop(self);
        Ok(child)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn file_type_name(kind: FILE_TYPE) -> &'static str {
    match kind {
        FILE_TYPE_DISK => "disk file",
        FILE_TYPE_CHAR => "character device (a console or NUL)",
        FILE_TYPE_REMOTE => "remote file",
        _ => "handle of unknown type",
    }
}

/// Takes ownership of the inherited message pipe handle named by `token` (what
/// [`ChildEnd::token`] gave the parent), which must be inheritable and the
/// client end of a message-mode pipe. It is made non-inheritable again, so the
/// child's own children do not inherit it. The caller (the portable layer) makes
/// sure this process takes its channel once. On a refusal nothing is changed
/// and nothing is closed.
pub(crate) fn adopt_messages(token: &str, var: &str) -> io::Result<MsgStream> {
    let value: usize = token
        .trim()
        .parse()
        .map_err(|_| invalid(format!("{var}={token:?} is not a handle value")))?;
    // 0 is no handle; values that are negative as an isize are pseudo-handles
    // (-1 is the current process), never inherited ones.
    if value == 0 || (value as isize) < 0 {
        return Err(invalid(format!(
            "{var}={value} is not the value of an inherited handle"
        )));
    }
    let handle = adopt_pipe(value as HANDLE, &format!("{var}={value}"), true)?;
    MsgStream::new(handle, false)
}

/// Takes ownership of Node's channel: the C runtime descriptor named by
/// `token` (`NODE_CHANNEL_FD`, 3 as Node's `fork` sets it), which Node passes
/// in the descriptor table of `STARTUPINFO`'s `lpReserved2` (the table the C
/// runtime reads at startup). The handle there must be inheritable and the
/// client end of a byte-mode pipe; it is made non-inheritable again. Its bytes
/// are libuv's IPC frames, which the portable layer takes apart.
pub(crate) fn adopt_stream(token: &str, var: &str) -> io::Result<super::Stream> {
    let fd: usize = token
        .trim()
        .parse()
        .map_err(|_| invalid(format!("{var}={token:?} is not a descriptor number")))?;
    let raw = inherited_descriptor(fd, var)?;
    let handle = adopt_pipe(raw, &format!("{var}={fd} (handle {})", raw as usize), false)?;
    super::pipe::Stream::from_handle(handle)
}

/// The handle of C runtime descriptor `fd` in the table this process was
/// started with (`STARTUPINFO.lpReserved2`: a 32-bit count, a flag byte per
/// descriptor, then a handle per descriptor, packed).
fn inherited_descriptor(fd: usize, var: &str) -> io::Result<HANDLE> {
    let mut info = STARTUPINFOW {
        cb: std::mem::size_of::<STARTUPINFOW>() as u32,
        ..Default::default()
    };
    // SAFETY: `info` is a live, correctly sized STARTUPINFOW that the call
    // fills in; it cannot fail.
    unsafe { GetStartupInfoW(&mut info) };
    let missing = |why: String| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{var}={fd}, but {why} (Node passes its channel there when it forks; \
                 was the variable inherited from a process that had the channel?)"
            ),
        )
    };
    let len = usize::from(info.cbReserved2);
    if info.lpReserved2.is_null() || len < 4 {
        return Err(missing(
            "this process was started without a C runtime descriptor table".into(),
        ));
    }
    // SAFETY: the system keeps the `cbReserved2` bytes at `lpReserved2` (part
    // of the process parameters that the parent passed to CreateProcess) for
    // the life of the process and never writes them again; they are only read.
    let table = unsafe { std::slice::from_raw_parts(info.lpReserved2, len) };
    let count = u32::from_le_bytes(table[..4].try_into().unwrap()) as usize;
    let size = std::mem::size_of::<HANDLE>();
    let at = 4 + count + fd * size;
    if fd >= count || table.len() < at + size {
        return Err(missing(format!(
            "the C runtime descriptor table this process was started with has \
             {count} descriptors, not descriptor {fd}"
        )));
    }
    let value = usize::from_le_bytes(table[at..at + size].try_into().unwrap());
    // 0 and -1 (INVALID_HANDLE_VALUE) mark a descriptor that is not open; -2
    // one whose handle the parent did not pass.
    if value == 0 || (value as isize) < 0 {
        return Err(missing(format!(
            "descriptor {fd} is not open in the table this process was started with"
        )));
    }
    Ok(value as HANDLE)
}

/// Checks that `raw`, named by `named` in errors, is an inherited pipe client
/// end in message mode (`messages`) or byte mode, and takes ownership of it,
/// making it non-inheritable. On a refusal nothing is changed or closed.
fn adopt_pipe(raw: HANDLE, named: &str, messages: bool) -> io::Result<OwnedHandle> {
    let value = raw as usize;
    let stdio = [
        std::io::stdin().as_raw_handle(),
        std::io::stdout().as_raw_handle(),
        std::io::stderr().as_raw_handle(),
    ];
    if let Some(n) = stdio.iter().position(|h| *h == raw) {
        return Err(invalid(format!(
            "{named}, but handle {value} is standard {}, never an inherited channel",
            ["input", "output", "error"][n]
        )));
    }
    let mut flags = 0u32;
    // SAFETY: `GetHandleInformation` only reads the flags of the handle-table
    // entry `raw` into `flags`, a local that outlives the call; a value that is
    // not an open handle of this process fails with ERROR_INVALID_HANDLE, and one
    // that belongs to another part of the process is only asked about.
    let ok = unsafe { GetHandleInformation(raw, &mut flags) };
    if ok == 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{named}, but handle {value} is not open in this process (was the \
                 variable inherited from a process that had the channel?): {err}"
            ),
        ));
    }
    // std and ipckit create every handle non-inheritable (ipckit's child ends
    // only for the length of a spawn): an inheritable one came from the parent.
    if flags & HANDLE_FLAG_INHERIT == 0 {
        return Err(invalid(format!(
            "{named}, but handle {value} is not inheritable: this process opened \
             it itself (or took its channel already), so it is not the inherited \
             channel (was the variable inherited from a process that had the channel?)"
        )));
    }
    // SAFETY: `GetFileType` only queries the handle `raw`, which is open (above);
    // were it closed meanwhile the call fails and goes no further.
    let kind = unsafe { GetFileType(raw) };
    if kind != FILE_TYPE_PIPE {
        let err = io::Error::last_os_error();
        if kind == 0 && err.raw_os_error() != Some(NO_ERROR as i32) {
            return Err(invalid(format!(
                "{named}, but handle {value} could not be asked for its type: {err}"
            )));
        }
        return Err(invalid(format!(
            "{named}, but handle {value} is a {}, not a pipe",
            file_type_name(kind)
        )));
    }
    let mut mode = 0u32;
    // SAFETY: `GetNamedPipeInfo` writes the pipe's flags into `mode`, a local
    // that outlives the call; the other out-pointers are optional and null. It
    // only queries `raw` and fails for a handle that is not a named pipe.
    let ok = unsafe {
        GetNamedPipeInfo(
            raw,
            &mut mode,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if ok == 0 {
        let err = io::Error::last_os_error();
        return Err(invalid(format!(
            "{named}, but handle {value} is a pipe that could not be asked for \
             its mode: {err}"
        )));
    }
    let (server, message) = (mode & PIPE_SERVER_END != 0, mode & PIPE_TYPE_MESSAGE != 0);
    if server || message != messages {
        let what = match (server, message) {
            (true, true) => "the server end of a message-mode pipe",
            (true, false) => "the server end of a byte-mode pipe",
            (false, true) => "the client end of a message-mode pipe",
            (false, false) => "the client end of a byte-mode pipe",
        };
        let want = if messages {
            "the client end of a message-mode pipe that an ipckit channel uses"
        } else {
            "the client end of a byte-mode pipe that Node's channel uses"
        };
        return Err(invalid(format!(
            "{named}, but handle {value} is {what}, not {want}"
        )));
    }
    // SAFETY: `raw` is open and inheritable, and std and ipckit create every
    // handle non-inheritable (ipckit's child ends only while a spawn runs, and
    // the parent's copy is closed right after), so no owner in this process
    // made it: it was inherited from the parent. Of the inherited handles, the
    // standard ones (which std writes through) were refused above, and the
    // parent named this one (in the variable, or in the variable and its C
    // runtime descriptor table) as this channel, a pipe client end of the
    // checked mode. The only way for code in this process to own it is to
    // adopt it here, which clears the evidence (it is non-inheritable from now
    // on) and which the portable layer allows once. (Code that creates
    // inheritable handles itself, outside std, would defeat the check; the
    // parent would then have to name one.)
    let handle = unsafe { OwnedHandle::from_raw_handle(raw) };
    if let Err(e) = set_inherit(handle.as_handle(), false) {
        // Not taken after all: give the handle back, open and unchanged.
        let _ = handle.into_raw_handle();
        return Err(e);
    }
    Ok(handle)
}
