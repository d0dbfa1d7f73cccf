//! How a server creates the instances of its pipe: name, kind, limits,
//! buffers and security, the same for every instance after the first (which
//! alone carries `FILE_FLAG_FIRST_PIPE_INSTANCE`). Shared by the blocking
//! listener (`pipe.rs`) and the async one (`tokio.rs`).

use std::io;
use std::os::windows::io::OwnedHandle;

use windows_sys::Win32::Foundation::{ERROR_NO_DATA, ERROR_PIPE_CONNECTED};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, PIPE_ACCESS_DUPLEX,
};
use windows_sys::Win32::System::Pipes::{
    CreateNamedPipeW, NAMED_PIPE_MODE, PIPE_ACCEPT_REMOTE_CLIENTS, PIPE_READMODE_BYTE,
    PIPE_READMODE_MESSAGE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE, PIPE_TYPE_MESSAGE,
    PIPE_UNLIMITED_INSTANCES, PIPE_WAIT,
};

use super::first_instance::create_first;
use super::handle::{owned, wide};
use super::security::SecurityAttributes;
use crate::sys::plain::{Endpoint, ListenConfig};

/// What the instances of a pipe carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PipeKind {
    /// A byte stream (`PIPE_TYPE_BYTE | PIPE_READMODE_BYTE`).
    Bytes,
    /// Whole messages (`PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE`).
    Messages,
}

impl PipeKind {
    fn mode(self) -> NAMED_PIPE_MODE {
        match self {
            PipeKind::Bytes => PIPE_TYPE_BYTE | PIPE_READMODE_BYTE,
            PipeKind::Messages => PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE,
        }
    }
}

/// The errors of `ConnectNamedPipe` that mean a client has come: it
/// connected before the call (`ERROR_PIPE_CONNECTED`), or connected and left
/// again (`ERROR_NO_DATA`: its stream reads the end at once). Both accepts,
/// blocking and async, take them as success.
pub(super) const CLIENT_CAME: [u32; 2] = [ERROR_PIPE_CONNECTED, ERROR_NO_DATA];

/// The NUL-terminated path of a pipe endpoint.
pub(super) fn pipe_path(ep: &Endpoint) -> io::Result<Vec<u16>> {
    match ep {
        Endpoint::Pipe(path) => Ok(wide(path)),
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "not a named-pipe endpoint",
        )),
    }
}

/// `PIPE_REJECT_REMOTE_CLIENTS`, unless the options accept remote clients.
fn remote_mode(opts: &ListenConfig) -> NAMED_PIPE_MODE {
    if opts.accept_remote {
        PIPE_ACCEPT_REMOTE_CLIENTS
    } else {
        PIPE_REJECT_REMOTE_CLIENTS
    }
}

/// The recipe of a server's pipe instances (all overlapped, duplex).
#[derive(Debug)]
pub(super) struct Instances {
    path: Vec<u16>,
    kind: PipeKind,
    max_instances: u32,
    in_buffer: u32,
    out_buffer: u32,
    /// The descriptor every instance is created with.
    security: SecurityAttributes,
    /// `PIPE_REJECT_REMOTE_CLIENTS` unless the listener opted out.
    remote: NAMED_PIPE_MODE,
}

impl Instances {
    /// The recipe, and the first instance of the name: refused (`AddrInUse`,
    /// naming the owner) when the name has instances already.
    pub(super) fn first(
        ep: &Endpoint,
        opts: &ListenConfig,
        kind: PipeKind,
    ) -> io::Result<(Instances, OwnedHandle)> {
        let instances = Instances {
            path: pipe_path(ep)?,
            kind,
            max_instances: opts
                .max_instances
                .map_or(PIPE_UNLIMITED_INSTANCES, u32::from),
            in_buffer: opts.in_buffer,
            out_buffer: opts.out_buffer,
            security: SecurityAttributes::new(opts.sddl.as_deref())?,
            remote: remote_mode(opts),
        };
        let first = create_first(&instances.path, || instances.create(true))?;
        Ok((instances, first))
    }

    /// An instance after the first.
    pub(super) fn next(&self) -> io::Result<OwnedHandle> {
        self.create(false)
    }

    fn create(&self, first: bool) -> io::Result<OwnedHandle> {
        let mut open = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED;
        if first {
            open |= FILE_FLAG_FIRST_PIPE_INSTANCE;
        }
        let mode = self.kind.mode() | PIPE_WAIT | self.remote;
        let raw = self.security.with(|sa| {
            // SAFETY: `self.path` is NUL-terminated and outlives the call; `sa`
            // points to SECURITY_ATTRIBUTES whose descriptor `self.security` owns,
            // valid for the whole call (`with`). The result is checked by `owned`.
            unsafe {
                CreateNamedPipeW(
                    self.path.as_ptr(),
                    open,
                    mode,
                    self.max_instances,
                    self.out_buffer,
                    self.in_buffer,
                    0,
                    sa,
                )
            }
        });
        owned(raw)
    }
}
