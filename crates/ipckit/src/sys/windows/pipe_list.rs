//! The names in the named-pipe file system: `FindFirstFileW` on `\\.\pipe\*`.

use std::io;

use windows_sys::Win32::Foundation::{
    ERROR_FILE_NOT_FOUND, ERROR_NO_MORE_FILES, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{
    FindClose, FindFirstFileW, FindNextFileW, WIN32_FIND_DATAW,
};

use super::handle::wide;

/// The name (the part after `\\.\pipe\`) of every named pipe on this machine, in
/// the order the pipe file system gives them.
///
/// This corresponds to `FindFirstFileW` / `FindNextFileW` on `\\.\pipe\*`.
pub(crate) fn pipe_names() -> io::Result<Vec<String>> {
    let pattern = wide(r"\\.\pipe\*");
    let mut data = WIN32_FIND_DATAW::default();
    // SAFETY: `pattern` is NUL-terminated and outlives the call; `data` is a
    // WIN32_FIND_DATAW the call may write, owned by this frame.
    let find = unsafe { FindFirstFileW(pattern.as_ptr(), &mut data) };
    if find == INVALID_HANDLE_VALUE {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            // No pipe at all.
            Some(code) if code == ERROR_FILE_NOT_FOUND as i32 => Ok(Vec::new()),
            _ => Err(err),
        };
    }
    let mut names = Vec::new();
    let result = loop {
        names.push(file_name(&data));
        // SAFETY: `find` is the search handle FindFirstFileW returned, not yet
        // closed; `data` is a WIN32_FIND_DATAW owned by this frame.
        if unsafe { FindNextFileW(find, &mut data) } == 0 {
            let err = io::Error::last_os_error();
            break match err.raw_os_error() {
                Some(code) if code == ERROR_NO_MORE_FILES as i32 => Ok(names),
                _ => Err(err),
            };
        }
    };
    // SAFETY: `find` is a search handle from FindFirstFileW, closed only here.
    unsafe { FindClose(find) };
    result
}

/// `cFileName` up to its NUL, as text (unpaired surrogates replaced).
fn file_name(data: &WIN32_FIND_DATAW) -> String {
    let len = data
        .cFileName
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(data.cFileName.len());
    String::from_utf16_lossy(&data.cFileName[..len])
}
