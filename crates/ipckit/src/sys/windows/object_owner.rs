//! Who owns a kernel object, and whom its DACL lets write it: what a client
//! checks before it trusts a shared-memory region or a channel's events that
//! another process created. Also account names and SIDs (`LookupAccountNameW`,
//! `LookupAccountSidW`).
//!
//! The rule (docs/SECURITY.md, "What a client checks"):
//!
//! - the owner must be the token's user SID or its default owner (`TokenOwner`):
//!   that is the owner the OS stamps on every object this user creates, which
//!   for an elevated administrator is `BUILTIN\Administrators` (and under Wine
//!   may be yet another SID), so both stand for "the current user";
//! - no allow-ACE of the DACL may grant a write right (map for writing, extend,
//!   modify an event's state, change the DACL or owner, `GENERIC_WRITE`,
//!   `GENERIC_ALL`) to any SID but the object's owner, the token's user and
//!   default owner, `OWNER RIGHTS`, `SYSTEM`, `BUILTIN\Administrators` (who
//!   could take ownership of any object anyway) and the logon session's SID
//!   (the processes of this logon). A NULL DACL (everyone may do anything) is
//!   refused; an ACE ipckit cannot read (an object ACE) is refused too.

use std::ffi::c_void;
use std::io;
use std::os::windows::io::{AsHandle, AsRawHandle, BorrowedHandle};
use std::ptr;

use windows_sys::Win32::Foundation::{
    ERROR_INSUFFICIENT_BUFFER, ERROR_NONE_MAPPED, GENERIC_ALL, GENERIC_WRITE, GetLastError,
};
use windows_sys::Win32::Security::Authorization::SE_KERNEL_OBJECT;
use windows_sys::Win32::Security::{
    ACCESS_ALLOWED_ACE, ACE_HEADER, ACL, ACL_SIZE_INFORMATION, AclSizeInformation,
    DACL_SECURITY_INFORMATION, GetAce, GetAclInformation, GetTokenInformation, INHERIT_ONLY_ACE,
    LookupAccountNameW, LookupAccountSidW, OWNER_SECURITY_INFORMATION, PSID, SID_AND_ATTRIBUTES,
    SID_NAME_USE, TOKEN_GROUPS, TOKEN_INFORMATION_CLASS, TOKEN_OWNER, TOKEN_USER, TokenGroups,
    TokenOwner, TokenUser,
};
use windows_sys::Win32::Storage::FileSystem::{WRITE_DAC, WRITE_OWNER};
use windows_sys::Win32::System::Threading::GetCurrentProcess;

use super::handle::wide;
use super::security::{process_token, security_info, sid_string};
use crate::sys::ObjectOwner;
use crate::sys::peer::PeerCredentials;

/// `SECTION_MAP_WRITE` and `SECTION_EXTEND_SIZE`: writing a file mapping.
pub(super) const SECTION_WRITE: u32 = 0x0002 | 0x0010;
/// `EVENT_MODIFY_STATE`: setting or resetting an event.
pub(super) const EVENT_WRITE: u32 = 0x0002;
/// Rights that amount to writing any object: its DACL, its owner, the generic
/// write and all.
const ANY_OBJECT_WRITE: u32 = WRITE_DAC | WRITE_OWNER | GENERIC_WRITE | GENERIC_ALL;

const SYSTEM: &str = "S-1-5-18";
const ADMINISTRATORS: &str = "S-1-5-32-544";
const OWNER_RIGHTS: &str = "S-1-3-4";
/// `SE_GROUP_LOGON_ID`: the group of a token that is its logon session's SID.
const LOGON_ID: u32 = 0xC000_0000;
/// ACE types that allow: `ACCESS_ALLOWED` and `ACCESS_ALLOWED_CALLBACK` (the
/// SID right after the mask, read here), and the compound and object ones
/// (a different layout: refused unread).
const ALLOWED_PLAIN: [u8; 2] = [0, 9];
const ALLOWED_OTHER: [u8; 3] = [4, 5, 11];

/// The information of class `class` about `token`, in a buffer of u64s (so
/// aligned for the structures it starts with), sized as the OS asks.
fn token_info(token: BorrowedHandle<'_>, class: TOKEN_INFORMATION_CLASS) -> io::Result<Vec<u64>> {
    let mut len = 0u32;
    // SAFETY: `token` is a live token handle opened with TOKEN_QUERY; a null
    // buffer of length 0 asks only for the size, written to `len`.
    let ok =
        unsafe { GetTokenInformation(token.as_raw_handle(), class, ptr::null_mut(), 0, &mut len) };
    // SAFETY: reads this thread's last-error value; no pointers involved.
    if ok == 0 && unsafe { GetLastError() } != ERROR_INSUFFICIENT_BUFFER {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u64; (len as usize).div_ceil(8).max(1)];
    // SAFETY: as above, with `buf` writable for the size passed.
    let ok = unsafe {
        GetTokenInformation(
            token.as_raw_handle(),
            class,
            buf.as_mut_ptr().cast(),
            (buf.len() * 8) as u32,
            &mut len,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(buf)
}

/// The user SID of `token`, in string form.
pub(super) fn token_user_sid(token: BorrowedHandle<'_>) -> io::Result<String> {
    let buf = token_info(token, TokenUser)?;
    // SAFETY: the call succeeded, so `buf` starts with a TOKEN_USER (aligned:
    // u64s).
    let sid = unsafe { (*buf.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    // SAFETY: the SID lies inside `buf`, alive for the call.
    unsafe { sid_string(sid) }
}

/// The SIDs of this process's token that stand for the current user: the user,
/// the default owner of new objects, the logon session (if the token has one).
struct Me {
    user: String,
    owner: String,
    logon: Option<String>,
}

fn me() -> io::Result<Me> {
    // SAFETY: returns the current-process pseudo-handle; nothing to check or close.
    let token = process_token(unsafe { GetCurrentProcess() })?;
    let token = token.as_handle();
    let owner = token_info(token, TokenOwner)?;
    // SAFETY: the call succeeded: `owner` starts with a TOKEN_OWNER (aligned).
    let sid = unsafe { (*owner.as_ptr().cast::<TOKEN_OWNER>()).Owner };
    // SAFETY: the SID lies inside `owner`, alive for the call.
    let owner = unsafe { sid_string(sid)? };
    let groups = token_info(token, TokenGroups)?;
    let list = groups.as_ptr().cast::<TOKEN_GROUPS>();
    // SAFETY: the call succeeded: `groups` starts with a TOKEN_GROUPS.
    let count = unsafe { (*list).GroupCount } as usize;
    // SAFETY: the array of `count` SID_AND_ATTRIBUTES starts at `Groups` and
    // lies inside `groups` (the OS wrote it there).
    let first = unsafe { ptr::addr_of!((*list).Groups).cast::<SID_AND_ATTRIBUTES>() };
    // SAFETY: `count` entries from `first` are inside `groups` (above).
    let entries = unsafe { std::slice::from_raw_parts(first, count) };
    let logon = entries
        .iter()
        .find(|g| g.Attributes & LOGON_ID == LOGON_ID)
        // SAFETY: each entry's SID points inside `groups`, alive here.
        .map(|g| unsafe { sid_string(g.Sid) })
        .transpose()?;
    Ok(Me {
        user: super::security::current_user_sid()?,
        owner,
        logon,
    })
}

/// The owners that stand for the current user: its user SID and the default
/// owner the OS gives its new objects (the same SID, except for an elevated
/// administrator and under Wine).
pub(crate) fn current_owners() -> io::Result<Vec<crate::sys::peer::UserId>> {
    let me = me()?;
    let mut owners = vec![crate::sys::peer::UserId::Sid(me.user.clone())];
    if !me.owner.eq_ignore_ascii_case(&me.user) {
        owners.push(crate::sys::peer::UserId::Sid(me.owner));
    }
    Ok(owners)
}

/// `DOMAIN\name` of `sid`, if the OS knows it (for messages only).
///
/// # Safety
///
/// `sid` must point to a valid SID that stays alive for the call.
unsafe fn account_name(sid: PSID) -> Option<String> {
    let mut name = [0u16; 256];
    let mut domain = [0u16; 256];
    let (mut name_len, mut domain_len) = (name.len() as u32, domain.len() as u32);
    let mut kind: SID_NAME_USE = 0;
    // SAFETY: `sid` is valid (the caller); both buffers are writable for the
    // lengths passed, which the call updates; `kind` is a valid out-pointer.
    let ok = unsafe {
        LookupAccountSidW(
            ptr::null(),
            sid,
            name.as_mut_ptr(),
            &mut name_len,
            domain.as_mut_ptr(),
            &mut domain_len,
            &mut kind,
        )
    };
    if ok == 0 {
        return None;
    }
    let name = String::from_utf16_lossy(&name[..name_len as usize]);
    let domain = String::from_utf16_lossy(&domain[..domain_len as usize]);
    Some(if domain.is_empty() {
        name
    } else {
        format!("{domain}\\{name}")
    })
}

/// The SID of account `name` (`NAME`, `DOMAIN\NAME`, `NAME@DOMAIN`), or `None`
/// when no account has that name (`LookupAccountNameW`).
pub(crate) fn user_named(name: &str) -> io::Result<Option<crate::sys::peer::UserId>> {
    let text = wide(name);
    // SECURITY_MAX_SID_SIZE is 68 bytes; u64s keep the buffer aligned.
    let mut sid = [0u64; 16];
    let mut sid_len = size_of_val(&sid) as u32;
    let mut domain = [0u16; 256];
    let mut domain_len = domain.len() as u32;
    let mut kind: SID_NAME_USE = 0;
    // SAFETY: `text` is NUL-terminated and outlives the call; `sid` and `domain`
    // are writable for the lengths passed; `kind` is a valid out-pointer.
    let ok = unsafe {
        LookupAccountNameW(
            ptr::null(),
            text.as_ptr(),
            sid.as_mut_ptr().cast(),
            &mut sid_len,
            domain.as_mut_ptr(),
            &mut domain_len,
            &mut kind,
        )
    };
    if ok == 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(ERROR_NONE_MAPPED as i32) {
            return Ok(None);
        }
        return Err(err);
    }
    // SAFETY: the call succeeded: `sid` holds a valid SID.
    let sid = unsafe { sid_string(sid.as_mut_ptr().cast())? };
    Ok(Some(crate::sys::peer::UserId::Sid(sid)))
}

/// A SID for messages: its string form and, if known, its account name.
///
/// # Safety
///
/// `sid` must point to a valid SID that stays alive for the call.
unsafe fn named(sid: PSID, text: &str) -> String {
    // SAFETY: passed on from the caller.
    match unsafe { account_name(sid) } {
        Some(name) => format!("{text} ({name})"),
        None => text.to_owned(),
    }
}

/// The owner of the object behind `handle` (opened with `READ_CONTROL`), and
/// why its DACL lets someone else write it (`write`: the object type's own
/// write rights), if it does.
pub(super) fn object_owner(handle: BorrowedHandle<'_>, write: u32) -> io::Result<ObjectOwner> {
    let info = security_info(
        handle,
        SE_KERNEL_OBJECT,
        OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
    )?;
    let (owner, dacl) = (info.owner, info.dacl);
    if owner.is_null() {
        return Err(io::Error::other(
            "the object's security descriptor has no owner",
        ));
    }
    // SAFETY: `owner` points into `info`'s descriptor, alive until `info` drops.
    let owner_sid = unsafe { sid_string(owner)? };
    let me = me()?;
    let mut trusted = vec![owner_sid.clone(), me.user, me.owner];
    trusted.extend(me.logon);
    trusted.extend([SYSTEM, ADMINISTRATORS, OWNER_RIGHTS].map(String::from));
    let mut seen = Vec::new();
    trusted.retain(|sid| {
        let new = !seen.contains(&sid.to_ascii_uppercase());
        seen.push(sid.to_ascii_uppercase());
        new
    });
    let others_write = if dacl.is_null() {
        Some("it has a NULL DACL, which lets everyone do anything to it".to_owned())
    } else {
        // SAFETY: `dacl` points into `info`'s descriptor, alive until `info` drops.
        unsafe { foreign_writer(dacl, write | ANY_OBJECT_WRITE, &trusted)? }
    }
    .map(|why| {
        format!(
            "{why}; write access may be granted only to its owner, this user, this \
             user's default owner, SYSTEM, Administrators and this logon session ({})",
            trusted.join(", ")
        )
    });
    Ok(ObjectOwner {
        user: PeerCredentials {
            pid: None,
            uid: None,
            gid: None,
            sid: Some(owner_sid),
        },
        mode: None,
        others_write,
    })
}

/// The first allow-ACE of `dacl` that grants any of `rights` to a SID not in
/// `trusted`, described.
///
/// # Safety
///
/// `dacl` must point to a valid ACL that stays alive for the call.
unsafe fn foreign_writer(
    dacl: *const ACL,
    rights: u32,
    trusted: &[String],
) -> io::Result<Option<String>> {
    let mut size = ACL_SIZE_INFORMATION::default();
    // SAFETY: `dacl` is a valid ACL (the caller); `size` is writable for the
    // size passed.
    let ok = unsafe {
        GetAclInformation(
            dacl,
            ptr::addr_of_mut!(size).cast(),
            size_of::<ACL_SIZE_INFORMATION>() as u32,
            AclSizeInformation,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    for index in 0..size.AceCount {
        let mut ace: *mut c_void = ptr::null_mut();
        // SAFETY: `dacl` is valid and `index` is below its ACE count; `ace` is a
        // valid out-pointer that receives a pointer into the ACL.
        if unsafe { GetAce(dacl, index, &mut ace) } == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: every ACE starts with an ACE_HEADER.
        let header = unsafe { *ace.cast::<ACE_HEADER>() };
        if header.AceFlags as u32 & INHERIT_ONLY_ACE != 0 {
            continue; // for children only: no right on this object
        }
        if ALLOWED_OTHER.contains(&header.AceType) {
            return Ok(Some(format!(
                "its DACL has an allow-ACE of type {} that ipckit does not read",
                header.AceType
            )));
        }
        if !ALLOWED_PLAIN.contains(&header.AceType) {
            continue; // deny and audit ACEs grant nothing
        }
        let allowed = ace.cast::<ACCESS_ALLOWED_ACE>();
        // SAFETY: an ACCESS_ALLOWED(_CALLBACK)_ACE: a header, the mask, the SID.
        let mask = unsafe { (*allowed).Mask };
        if mask & rights == 0 {
            continue;
        }
        // SAFETY: the SID starts at `SidStart`, inside the ACE, inside the ACL.
        let sid = unsafe { ptr::addr_of!((*allowed).SidStart) }
            .cast_mut()
            .cast::<c_void>();
        // SAFETY: `sid` is a valid SID inside the ACL (above).
        let text = unsafe { sid_string(sid)? };
        if trusted.iter().any(|t| t.eq_ignore_ascii_case(&text)) {
            continue;
        }
        // SAFETY: as above.
        let who = unsafe { named(sid, &text) };
        return Ok(Some(format!(
            "its DACL lets {who} write it: ACE (A;;{mask:#010x};;;{text})"
        )));
    }
    Ok(None)
}
