//! The service registry's OS parts on Windows: its directory
//! (`%LOCALAPPDATA%\ipckit\services`, created with a DACL that grants only the
//! current user and SYSTEM, its owner checked), who owns a record file,
//! whether a process still runs and since when (`GetProcessTimes`), and the
//! change notification that wakes a waiting client
//! (`FindFirstChangeNotificationW`).

use std::fs;
use std::io;
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::os::windows::io::{AsHandle, AsRawHandle};
use std::path::{Path, PathBuf};
use std::time::Duration;

use windows_sys::Win32::Foundation::{
    ERROR_ALREADY_EXISTS, ERROR_FILE_NOT_FOUND, ERROR_INVALID_PARAMETER, ERROR_SEM_TIMEOUT,
    FILETIME, HANDLE, INVALID_HANDLE_VALUE, STILL_ACTIVE, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateDirectoryW, FILE_ATTRIBUTE_REPARSE_POINT, FILE_FLAG_BACKUP_SEMANTICS,
    FILE_FLAG_OPEN_REPARSE_POINT, FILE_NOTIFY_CHANGE_FILE_NAME, FILE_NOTIFY_CHANGE_LAST_WRITE,
    FindCloseChangeNotification, FindFirstChangeNotificationW, FindNextChangeNotification,
    GetFileAttributesW, INVALID_FILE_ATTRIBUTES, READ_CONTROL,
};
use windows_sys::Win32::System::Pipes::WaitNamedPipeW;
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, GetProcessTimes, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
    WaitForSingleObject,
};

use super::handle::{owned, wide};
use super::security::{SecurityAttributes, current_user_sid, file_owner_sid};
use crate::sys::plain::Endpoint;

/// The registry directory of the current user.
pub(crate) fn dir() -> io::Result<PathBuf> {
    match std::env::var_os("LOCALAPPDATA") {
        Some(d) if Path::new(&d).is_absolute() => {
            Ok(PathBuf::from(d).join("ipckit").join("services"))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            "%LOCALAPPDATA% is not set to an absolute path, and the service registry lives \
             below it",
        )),
    }
}

/// Creates the registry directory and its parent (owner-only DACL, inherited
/// by the record files) if needed, then checks both as [`check_dir`] does.
pub(crate) fn ensure_dir(dir: &Path) -> io::Result<()> {
    let sid = current_user_sid()?;
    let security =
        SecurityAttributes::new(Some(&format!("D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;{sid})")))?;
    let parent = dir.parent().unwrap_or(dir);
    for d in [parent, dir] {
        let path = wide(&d.to_string_lossy());
        // SAFETY: `path` is NUL-terminated and outlives the call; the
        // SECURITY_ATTRIBUTES pointer is valid for the duration of `with`.
        let ok = security.with(|sa| unsafe { CreateDirectoryW(path.as_ptr(), sa) });
        if ok == 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(ERROR_ALREADY_EXISTS as i32) {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot create the service registry {}: {e}", d.display()),
                ));
            }
        }
    }
    check_dir(dir)
}

/// Whether `path` (whose own metadata is `meta`) is a link of any kind: a
/// symlink, a junction, or any other reparse point. The attributes are read
/// by path too (`GetFileAttributesW`): under Wine a handle opened on a Unix
/// symlink shows its target's, and only the path shows the reparse point.
fn is_link(path: &Path, meta: &fs::Metadata) -> bool {
    let wide = wide(&path.to_string_lossy());
    // SAFETY: `wide` is NUL-terminated and outlives the call.
    let attrs = unsafe { GetFileAttributesW(wide.as_ptr()) };
    let by_path = attrs != INVALID_FILE_ATTRIBUTES && attrs & FILE_ATTRIBUTE_REPARSE_POINT != 0;
    by_path
        || meta.file_type().is_symlink()
        || meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0
}

/// Refuses the registry directory or its parent unless each is a directory
/// (not a symlink, junction or other reparse point) owned by the current user.
pub(crate) fn check_dir(dir: &Path) -> io::Result<()> {
    let parent = dir.parent().unwrap_or(dir);
    for d in [parent, dir] {
        let meta = fs::symlink_metadata(d)?;
        let why = if is_link(d, &meta) || !meta.is_dir() {
            Some("it is not a directory but a symlink, a junction or a file".to_owned())
        } else {
            foreign_owner(d)?
        };
        if let Some(why) = why {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "refusing the service registry directory {}: {why} (it must be a directory \
                     owned by the user running this process; otherwise another user could \
                     pose as your services)",
                    d.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Why `path` is not the current user's, if it is not: its owner SID.
fn foreign_owner(path: &Path) -> io::Result<Option<String>> {
    let file = fs::OpenOptions::new()
        .access_mode(READ_CONTROL)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)?;
    let owner = file_owner_sid(file.as_handle())?;
    // The user's SID, or the default owner the OS gives its new objects (the
    // Administrators group for an elevated administrator, another SID under
    // Wine): both are the current user's.
    let mine: Vec<String> = super::object_owner::current_owners()?
        .into_iter()
        .filter_map(|o| match o {
            crate::sys::peer::UserId::Sid(sid) => Some(sid),
            crate::sys::peer::UserId::Uid(_) => None,
        })
        .collect();
    if mine.iter().any(|sid| sid.eq_ignore_ascii_case(&owner)) {
        return Ok(None);
    }
    Ok(Some(format!(
        "it is owned by {owner}, not by the current user ({})",
        mine.join(" or ")
    )))
}

/// Why the record file at `path` may not be trusted, if it may not: it must be
/// a regular file (not a link) owned by the current user.
pub(crate) fn foreign_record(path: &Path) -> io::Result<Option<String>> {
    let meta = fs::symlink_metadata(path)?;
    if is_link(path, &meta) || !meta.is_file() {
        return Ok(Some(
            "it is not a regular file (a link or some other file)".into(),
        ));
    }
    foreign_owner(path)
}

/// The id of this process.
pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

/// When process `pid` was created (a FILETIME, 100 ns since 1601), or `None`
/// if no such process runs (or it has exited but is still referenced).
pub(crate) fn process_start(pid: u32) -> io::Result<Option<u64>> {
    // SAFETY: takes no pointers. The handle returned is either null (failure,
    // turned into the error by `owned`) or a new handle that `owned` wraps in
    // an `OwnedHandle`, which closes it exactly once.
    let raw = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    let process = match owned(raw) {
        Ok(p) => p,
        Err(e) if e.raw_os_error() == Some(ERROR_INVALID_PARAMETER as i32) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut code = 0u32;
    // SAFETY: `process` is a live handle with PROCESS_QUERY_LIMITED_INFORMATION;
    // `code` is a valid out-pointer.
    if unsafe { GetExitCodeProcess(process.as_raw_handle(), &mut code) } == 0 {
        return Err(io::Error::last_os_error());
    }
    if code != STILL_ACTIVE as u32 {
        return Ok(None);
    }
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: `process` is a live handle with PROCESS_QUERY_LIMITED_INFORMATION;
    // the four FILETIMEs are valid out-pointers.
    let ok = unsafe {
        GetProcessTimes(
            process.as_raw_handle(),
            &mut created,
            &mut exited,
            &mut kernel,
            &mut user,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(
        (u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime),
    ))
}

/// Whether a pipe has instances, told by `WaitNamedPipeW` without taking one
/// (free: success; all busy: `ERROR_SEM_TIMEOUT`; none: `ERROR_FILE_NOT_FOUND`).
/// `None` for other endpoints.
pub(crate) fn endpoint_present(ep: &Endpoint) -> Option<bool> {
    let Endpoint::Pipe(path) = ep else {
        return None;
    };
    let path = wide(path);
    // SAFETY: `path` is NUL-terminated and outlives the call.
    if unsafe { WaitNamedPipeW(path.as_ptr(), 1) } != 0 {
        return Some(true);
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(c) if c == ERROR_SEM_TIMEOUT as i32 => Some(true),
        Some(c) if c == ERROR_FILE_NOT_FOUND as i32 => Some(false),
        _ => None,
    }
}

/// A change notification on the registry directory: files created, renamed,
/// removed or written.
#[derive(Debug)]
pub(crate) struct DirWatcher {
    handle: HANDLE,
}

// SAFETY: the change-notification handle may be waited on and re-armed from
// any thread; this value owns it alone and uses it through `&mut self`.
unsafe impl Send for DirWatcher {}

impl DirWatcher {
    /// Starts watching `dir`.
    pub(crate) fn new(dir: &Path) -> io::Result<DirWatcher> {
        let path = wide(&dir.to_string_lossy());
        let filter = FILE_NOTIFY_CHANGE_FILE_NAME | FILE_NOTIFY_CHANGE_LAST_WRITE;
        // SAFETY: `path` is NUL-terminated and outlives the call.
        let handle = unsafe { FindFirstChangeNotificationW(path.as_ptr(), 0, filter) };
        if handle == INVALID_HANDLE_VALUE || handle.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(DirWatcher { handle })
    }

    /// Waits until something changed in the directory (`true`) or `timeout`
    /// passed (`false`), and re-arms the notification.
    pub(crate) fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX - 1);
        // SAFETY: `self.handle` is a live change-notification handle.
        match unsafe { WaitForSingleObject(self.handle, ms) } {
            WAIT_OBJECT_0 => {}
            WAIT_TIMEOUT => return Ok(false),
            _ => return Err(io::Error::last_os_error()),
        }
        // SAFETY: `self.handle` is a live change-notification handle.
        if unsafe { FindNextChangeNotification(self.handle) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(true)
    }
}

impl Drop for DirWatcher {
    fn drop(&mut self) {
        // SAFETY: `self.handle` came from `FindFirstChangeNotificationW` and is
        // closed exactly once, here.
        unsafe { FindCloseChangeNotification(self.handle) };
    }
}
