//! Security descriptors and peer identity on Windows.
//!
//! - `SecurityAttributes`: the `SECURITY_ATTRIBUTES` every named object ipckit
//!   creates is given (pipes, mailslots, file mappings, events). By default its
//!   DACL grants only the current user and SYSTEM:
//!   `D:P(A;;FA;;;SY)(A;;FA;;;<user SID>)`; a listener may give its own SDDL.
//!   `FA` (`FILE_ALL_ACCESS`) rather than `GA`: explicit rights need no generic
//!   mapping, and cover every right of a pipe, a mailslot, a section and an event.
//! - `current_user_sid`, `peer_credentials`: the user SID of this process, and the
//!   process id and user SID of the other end of a pipe.
//! - `describe`: an object's owner and DACL read back as SDDL (`GetSecurityInfo`).
//!   (`object_owner` reads them to check an object a client opens.)

use std::ffi::c_void;
use std::io;
use std::os::windows::io::{AsRawHandle, BorrowedHandle, OwnedHandle};
use std::ptr;

use windows_sys::Win32::Foundation::{ERROR_SUCCESS, HANDLE, HLOCAL, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, ConvertSidToStringSidW,
    ConvertStringSecurityDescriptorToSecurityDescriptorW, GetSecurityInfo, SDDL_REVISION_1,
    SE_FILE_OBJECT, SE_KERNEL_OBJECT, SE_OBJECT_TYPE,
};
use windows_sys::Win32::Security::{
    ACL, DACL_SECURITY_INFORMATION, OBJECT_SECURITY_INFORMATION, OWNER_SECURITY_INFORMATION,
    PSECURITY_DESCRIPTOR, PSID, RevertToSelf, SECURITY_ATTRIBUTES, TOKEN_QUERY,
};
use windows_sys::Win32::System::Pipes::{
    GetNamedPipeClientProcessId, GetNamedPipeServerProcessId, ImpersonateNamedPipeClient,
};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetCurrentThread, OpenProcess, OpenProcessToken, OpenThreadToken,
    PROCESS_QUERY_LIMITED_INFORMATION,
};

use super::handle::{owned, wide};
use super::object_owner::token_user_sid;
use crate::sys::peer::PeerCredentials;
use crate::sys::plain::{Fault, FaultKind};

/// Frees memory the system allocated with `LocalAlloc` for us, when dropped.
pub(super) struct Local(pub(super) *mut c_void);

impl Drop for Local {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: `self.0` was returned to us by a Win32 call documented to
            // allocate it with `LocalAlloc` and is freed exactly once, here.
            unsafe { LocalFree(self.0 as HLOCAL) };
        }
    }
}

/// Reads a NUL-terminated UTF-16 string the system allocated.
///
/// # Safety
///
/// `p` must be null or point to a NUL-terminated UTF-16 string that stays valid
/// for the call.
pub(super) unsafe fn read_wide(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut len = 0;
    loop {
        // SAFETY: the caller guarantees a NUL terminator, and `len` has not
        // passed it, so `p + len` is inside the string.
        let unit = unsafe { p.add(len) };
        // SAFETY: `unit` points inside the string (above).
        if unsafe { *unit } == 0 {
            break;
        }
        len += 1;
    }
    // SAFETY: the `len` units before the terminator are part of the string.
    let units = unsafe { std::slice::from_raw_parts(p, len) };
    String::from_utf16_lossy(units)
}

/// A security descriptor built from SDDL, and the `SECURITY_ATTRIBUTES` that
/// points at it, for the `Create*` calls.
pub(super) struct SecurityAttributes {
    descriptor: Local,
    sddl: String,
}

// SAFETY: the descriptor is memory this value owns alone; it is only read (by the
// `Create*` calls it is passed to) after it was built, never written, so sharing
// or moving it between threads cannot race.
unsafe impl Send for SecurityAttributes {}
// SAFETY: as for `Send`: shared access only ever reads the descriptor.
unsafe impl Sync for SecurityAttributes {}

impl std::fmt::Debug for SecurityAttributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityAttributes")
            .field("sddl", &self.sddl)
            .finish()
    }
}

impl SecurityAttributes {
    /// The descriptor `sddl` names, or by default one whose DACL grants only the
    /// current user and SYSTEM. SDDL that Windows cannot parse is an
    /// `InvalidOption` error that names it.
    pub(super) fn new(sddl: Option<&str>) -> io::Result<SecurityAttributes> {
        let sddl = match sddl {
            Some(s) => s.to_owned(),
            None => format!("D:P(A;;FA;;;SY)(A;;FA;;;{})", current_user_sid()?),
        };
        let text = wide(&sddl);
        let mut descriptor: PSECURITY_DESCRIPTOR = ptr::null_mut();
        // SAFETY: `text` is NUL-terminated and outlives the call; `descriptor`
        // is a valid out-pointer, and the size out-pointer may be null. On
        // success the descriptor is LocalAlloc'd for us: it goes straight into
        // `Local`, which LocalFrees it once on drop; on failure it stays null.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                text.as_ptr(),
                SDDL_REVISION_1,
                &mut descriptor,
                ptr::null_mut(),
            )
        };
        if ok == 0 {
            let os = io::Error::last_os_error();
            return Err(Fault::io(
                FaultKind::InvalidOption,
                format!(
                    "security_descriptor {sddl:?} is not a valid SDDL security descriptor: {os}"
                ),
            ));
        }
        Ok(SecurityAttributes {
            descriptor: Local(descriptor),
            sddl,
        })
    }

    /// Runs `f` with a pointer to `SECURITY_ATTRIBUTES` naming the descriptor
    /// (not inheritable), valid for the duration of `f`.
    pub(super) fn with<T>(&self, f: impl FnOnce(*const SECURITY_ATTRIBUTES) -> T) -> T {
        let sa = SECURITY_ATTRIBUTES {
            nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: self.descriptor.0,
            bInheritHandle: 0,
        };
        f(&sa)
    }
}

/// A token of `process` (TOKEN_QUERY).
pub(super) fn process_token(process: HANDLE) -> io::Result<OwnedHandle> {
    let mut token: HANDLE = ptr::null_mut();
    // SAFETY: `process` is a live process handle (or the current-process
    // pseudo-handle); `token` is a valid out-pointer.
    if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    owned(token)
}

/// The user SID of this process, string form.
pub(super) fn current_user_sid() -> io::Result<String> {
    // SAFETY: returns the current-process pseudo-handle; nothing to check or close.
    let me = unsafe { GetCurrentProcess() };
    let token = process_token(me)?;
    token_user_sid(std::os::windows::io::AsHandle::as_handle(&token))
}

/// The user SID of process `pid`, if its token can be opened.
fn process_user_sid(pid: u32) -> io::Result<String> {
    // SAFETY: takes no pointers. The handle returned is either null (failure,
    // turned into the error by `owned`) or a new handle that `owned` wraps in an
    // `OwnedHandle`, which closes it exactly once.
    let raw = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    let process = owned(raw)?;
    let token = process_token(process.as_raw_handle())?;
    token_user_sid(std::os::windows::io::AsHandle::as_handle(&token))
}

/// The client's user SID through its identification token: impersonate it on
/// this thread, read the thread token, revert.
fn client_sid_by_impersonation(pipe: BorrowedHandle<'_>) -> io::Result<String> {
    // SAFETY: `pipe` is a live server end of a connected pipe (borrowed for the
    // call). The impersonation it starts is ended by `RevertToSelf` below on
    // every path: nothing in between returns early or can panic.
    if unsafe { ImpersonateNamedPipeClient(pipe.as_raw_handle()) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut token: HANDLE = ptr::null_mut();
    // SAFETY: returns the current-thread pseudo-handle; nothing to check or close.
    let thread = unsafe { GetCurrentThread() };
    // SAFETY: `thread` is the current-thread pseudo-handle; `token` is a valid
    // out-pointer. OpenAsSelf (1): the access check uses the process's own token.
    let opened = unsafe { OpenThreadToken(thread, TOKEN_QUERY, 1, &mut token) };
    let err = io::Error::last_os_error();
    // SAFETY: ends the impersonation begun above on this thread; always called.
    let reverted = unsafe { RevertToSelf() };
    if reverted == 0 {
        // A thread that cannot stop impersonating must not go on as the client.
        std::process::abort();
    }
    if opened == 0 {
        return Err(err);
    }
    let token = owned(token)?;
    token_user_sid(std::os::windows::io::AsHandle::as_handle(&token))
}

/// The process id and user SID of the other end of pipe `handle` (either end).
pub(super) fn peer_credentials(handle: BorrowedHandle<'_>) -> io::Result<PeerCredentials> {
    let raw = handle.as_raw_handle();
    let server_end = super::adopt::named_pipe_end(handle)?.server;
    let mut pid = 0u32;
    let ok = if server_end {
        // SAFETY: `raw` is a live server end; `pid` is a valid out-pointer.
        unsafe { GetNamedPipeClientProcessId(raw, &mut pid) }
    } else {
        // SAFETY: `raw` is a live client end; `pid` is a valid out-pointer.
        unsafe { GetNamedPipeServerProcessId(raw, &mut pid) }
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // On the server end the client's token comes from the pipe itself: unlike a
    // pid, which is free for reuse once the process that connected has exited
    // (its pipe handle may live on in another process), it cannot name some
    // other process's user. The pid is the fallback, for a client that allows
    // no identification (SECURITY_ANONYMOUS). A client has only the pid.
    let sid = if server_end {
        client_sid_by_impersonation(handle)
            .or_else(|_| process_user_sid(pid))
            .ok()
    } else {
        process_user_sid(pid).ok()
    };
    Ok(PeerCredentials {
        pid: Some(pid),
        uid: None,
        gid: None,
        sid,
    })
}

/// A security descriptor read with `GetSecurityInfo`, and its owner and DACL
/// (null unless asked for), which point into it: valid while this lives.
pub(super) struct SecurityInfo {
    pub(super) descriptor: Local,
    pub(super) owner: PSID,
    pub(super) dacl: *mut ACL,
}

/// The parts `what` (`OWNER_SECURITY_INFORMATION`, `DACL_...`) of the security
/// descriptor of the object of type `kind` behind `handle`, which must have
/// been opened with `READ_CONTROL`.
pub(super) fn security_info(
    handle: BorrowedHandle<'_>,
    kind: SE_OBJECT_TYPE,
    what: OBJECT_SECURITY_INFORMATION,
) -> io::Result<SecurityInfo> {
    let mut owner: PSID = ptr::null_mut();
    let mut dacl: *mut ACL = ptr::null_mut();
    let mut descriptor: PSECURITY_DESCRIPTOR = ptr::null_mut();
    // SAFETY: `handle` is live and was opened with READ_CONTROL; the owner,
    // DACL and descriptor out-pointers are valid, the group and SACL ones may
    // be null. The owner and DACL point into the descriptor, LocalAlloc'd for
    // us and freed by `Local` when the returned value drops.
    let status = unsafe {
        GetSecurityInfo(
            handle.as_raw_handle(),
            kind,
            what,
            &mut owner,
            ptr::null_mut(),
            &mut dacl,
            ptr::null_mut(),
            &mut descriptor,
        )
    };
    if status != ERROR_SUCCESS {
        return Err(io::Error::from_raw_os_error(status as i32));
    }
    Ok(SecurityInfo {
        descriptor: Local(descriptor),
        owner,
        dacl,
    })
}

/// The string form of `sid`.
///
/// # Safety
///
/// `sid` must point to a valid SID that stays alive for the call.
pub(super) unsafe fn sid_string(sid: PSID) -> io::Result<String> {
    let mut text: *mut u16 = ptr::null_mut();
    // SAFETY: the caller guarantees `sid` is a valid SID for the call; `text` is
    // a valid out-pointer that receives a LocalAlloc'd string on success.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let text = Local(text.cast());
    // SAFETY: the call returned a NUL-terminated string, freed only when `text`
    // drops after this read.
    Ok(unsafe { read_wide(text.0.cast()) })
}

/// The owner SID (string form) of the file or directory behind `handle`,
/// which must have been opened with `READ_CONTROL`.
pub(super) fn file_owner_sid(handle: BorrowedHandle<'_>) -> io::Result<String> {
    let info = security_info(handle, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION)?;
    if info.owner.is_null() {
        return Err(io::Error::other(
            "the file's security descriptor has no owner",
        ));
    }
    // SAFETY: `info.owner` points into `info`'s descriptor, alive for the call.
    unsafe { sid_string(info.owner) }
}

/// The owner and DACL of the object behind `handle`, as SDDL.
pub(super) fn describe(handle: BorrowedHandle<'_>) -> io::Result<String> {
    let what = OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION;
    // A pipe server end has READ_CONTROL.
    let info = security_info(handle, SE_KERNEL_OBJECT, what)?;
    let descriptor = &info.descriptor;
    let mut text: *mut u16 = ptr::null_mut();
    // SAFETY: `descriptor.0` is the valid descriptor just read, alive until
    // `descriptor` drops; `text` is a valid out-pointer, the length may be null.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            descriptor.0,
            SDDL_REVISION_1,
            what,
            &mut text,
            ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    let text = Local(text.cast());
    // SAFETY: the call returned a NUL-terminated string, freed only when `text`
    // drops after this read.
    Ok(unsafe { read_wide(text.0.cast()) })
}
