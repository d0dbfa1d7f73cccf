//! The credentials the kernel recorded for the peer of a connected Unix
//! socket (its effective uid and gid, and its pid where the OS tells it), as
//! of its `connect` or `listen`.
//!
//! - Linux: `SO_PEERCRED` (pid, uid, gid).
//! - macOS: `getpeereid` (uid, gid) and `LOCAL_PEERPID` (pid).
//! - FreeBSD: `LOCAL_PEERCRED` (an `xucred`: uid, groups, and since FreeBSD
//!   13 the pid).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::BorrowedFd;

use crate::sys::peer::PeerCredentials;

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn peer_credentials(fd: BorrowedFd<'_>) -> io::Result<PeerCredentials> {
    let cred = rustix::net::sockopt::socket_peercred(fd)?;
    Ok(PeerCredentials {
        pid: u32::try_from(cred.pid.as_raw_nonzero().get()).ok(),
        uid: Some(cred.uid.as_raw()),
        gid: Some(cred.gid.as_raw()),
        sid: None,
    })
}

#[cfg(target_vendor = "apple")]
pub(super) fn peer_credentials(fd: BorrowedFd<'_>) -> io::Result<PeerCredentials> {
    use std::os::fd::AsRawFd;
    let (mut uid, mut gid) = (0, 0);
    // SAFETY: `fd` is open for the call; `uid` and `gid` are valid for writes.
    if unsafe { libc::getpeereid(fd.as_raw_fd(), &mut uid, &mut gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut pid: libc::pid_t = 0;
    // SAFETY: a `pid_t` is valid for any bytes.
    let got = unsafe { local_option(fd, libc::LOCAL_PEERPID, &mut pid) };
    Ok(PeerCredentials {
        // The pid is a bonus: a socket whose peer is gone still has its ids.
        pid: (got.is_ok() && pid > 0).then_some(pid as u32),
        uid: Some(uid),
        gid: Some(gid),
        sid: None,
    })
}

#[cfg(target_os = "freebsd")]
pub(super) fn peer_credentials(fd: BorrowedFd<'_>) -> io::Result<PeerCredentials> {
    // SAFETY: `xucred` is plain data (integers and a union of an integer and
    // a pointer), valid all zero.
    let mut cred: libc::xucred = unsafe { std::mem::zeroed() };
    // SAFETY: `xucred` is valid for any bytes (see above).
    unsafe { local_option(fd, libc::LOCAL_PEERCRED, &mut cred) }?;
    if cred.cr_version != libc::XUCRED_VERSION {
        return Err(io::Error::other(format!(
            "LOCAL_PEERCRED gave an xucred of version {}, not {}",
            cred.cr_version,
            libc::XUCRED_VERSION
        )));
    }
    // SAFETY: the kernel (FreeBSD 13 and later) fills `cr_pid`; older ones
    // leave the zero written above, read as "no pid".
    let pid = unsafe { cred.cr_pid__c_anonymous_union.cr_pid };
    Ok(PeerCredentials {
        pid: (pid > 0).then_some(pid as u32),
        uid: Some(cred.cr_uid),
        // The effective gid comes first among the groups.
        gid: (cred.cr_ngroups > 0).then_some(cred.cr_groups[0]),
        sid: None,
    })
}

/// `getsockopt(fd, SOL_LOCAL, name)` into `value` (`LOCAL_PEERPID`: a
/// `pid_t`; `LOCAL_PEERCRED`: an `xucred`).
///
/// # Safety
///
/// `T` must be plain data valid for any bytes (the kernel writes the option's
/// bytes into it).
#[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
unsafe fn local_option<T>(fd: BorrowedFd<'_>, name: libc::c_int, value: &mut T) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `fd` is open for the call; `value` is valid for writes of `len`
    // bytes, which `len` says, and `T` is valid for any bytes the kernel
    // writes (the caller's promise).
    let got = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_LOCAL,
            name,
            std::ptr::from_mut(value).cast(),
            &mut len,
        )
    };
    if got != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd"
)))]
pub(super) fn peer_credentials(_fd: BorrowedFd<'_>) -> io::Result<PeerCredentials> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "peer credentials are implemented for Linux, macOS and FreeBSD only",
    ))
}
