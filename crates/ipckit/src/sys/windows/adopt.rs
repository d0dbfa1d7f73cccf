//! Adopting a pipe handle made elsewhere (`TryFrom<OwnedHandle>` on the
//! stream types): what kind of pipe end it is, and its name.

use std::io;
use std::os::windows::io::{AsRawHandle, BorrowedHandle};
use std::ptr;

use windows_sys::Win32::Storage::FileSystem::{
    FILE_NAME_INFO, FILE_TYPE_PIPE, FileNameInfo, GetFileInformationByHandleEx, GetFileType,
};
use windows_sys::Win32::System::Pipes::{GetNamedPipeInfo, PIPE_SERVER_END, PIPE_TYPE_MESSAGE};

/// What a pipe handle is: which end, and which type of pipe.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PipeEnd {
    /// The server end (`CreateNamedPipeW`), else a client end (`CreateFileW`).
    pub(crate) server: bool,
    /// A `PIPE_TYPE_MESSAGE` pipe, else `PIPE_TYPE_BYTE`.
    pub(crate) message: bool,
}

/// Asks `handle` what pipe end it is; an error of kind `InvalidInput` names
/// what it is instead (a file, a character device, ...).
pub(crate) fn pipe_end(handle: BorrowedHandle<'_>) -> io::Result<PipeEnd> {
    let raw = handle.as_raw_handle();
    // SAFETY: `GetFileType` only queries `raw`, which `handle` keeps open.
    let kind = unsafe { GetFileType(raw) };
    if kind != FILE_TYPE_PIPE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the handle is not a pipe (GetFileType: {kind})"),
        ));
    }
    named_pipe_end(handle).map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the handle is a pipe that is not a named pipe (GetNamedPipeInfo: {err})"),
        )
    })
}

/// Which end of which type of named pipe `handle` is (`GetNamedPipeInfo`),
/// with the OS error as it came.
pub(crate) fn named_pipe_end(handle: BorrowedHandle<'_>) -> io::Result<PipeEnd> {
    let mut flags = 0u32;
    // SAFETY: `GetNamedPipeInfo` writes the pipe's flags into `flags`, a local
    // that outlives the call; the other out-pointers are optional and null. It
    // only queries the open `handle` and fails for one that is no named pipe.
    let ok = unsafe {
        GetNamedPipeInfo(
            handle.as_raw_handle(),
            &mut flags,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PipeEnd {
        server: flags & PIPE_SERVER_END != 0,
        message: flags & PIPE_TYPE_MESSAGE != 0,
    })
}

/// The name of the named pipe behind `handle`, without `\\.\pipe\`
/// (`FileNameInfo` gives `\NAME`), where the OS tells it.
pub(crate) fn pipe_name(handle: BorrowedHandle<'_>) -> Option<String> {
    // FILE_NAME_INFO is a length and a trailing UTF-16 array: room for a
    // pipe name of the longest kind (256 characters) and then some.
    #[repr(C)]
    struct NameBuf {
        info: FILE_NAME_INFO,
        rest: [u16; 600],
    }
    // SAFETY: NameBuf is plain integers, for which all zeroes is valid.
    let mut buf: NameBuf = unsafe { std::mem::zeroed() };
    let size = u32::try_from(std::mem::size_of::<NameBuf>()).ok()?;
    // SAFETY: `buf` is writable for `size` bytes during the call and aligned
    // for FILE_NAME_INFO; the call only queries the open `handle`.
    let ok = unsafe {
        GetFileInformationByHandleEx(
            handle.as_raw_handle(),
            FileNameInfo,
            (&raw mut buf).cast(),
            size,
        )
    };
    if ok == 0 {
        return None;
    }
    let units = usize::try_from(buf.info.FileNameLength).ok()? / 2;
    let base = (&raw const buf.info.FileName).cast::<u16>();
    if units > 1 + buf.rest.len() {
        return None;
    }
    // SAFETY: the OS wrote `units` UTF-16 units from `FileName` on, which
    // fit in `buf` (checked above); `buf` lives across the read.
    let name = unsafe { std::slice::from_raw_parts(base, units) };
    let name = String::from_utf16(name).ok()?;
    let name = name.trim_start_matches('\\').to_string();
    (!name.is_empty()).then_some(name)
}
