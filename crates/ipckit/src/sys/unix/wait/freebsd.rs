//! FreeBSD: `_umtx_op(2)` on the word itself.
//!
//! `UMTX_OP_WAIT_UINT` and `UMTX_OP_WAKE` are the shared forms: the kernel
//! keys the word by the object mapped there (the shared-memory region), so a
//! waker in another process finds the sleeper. (`UMTX_OP_WAIT_UINT_PRIVATE`,
//! what std uses for its own locks, keys it by this process's address space
//! and would never be woken from another process.)
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `word` holds `seen`, at most `timeout` (a relative
/// `CLOCK_MONOTONIC` timeout).
pub(crate) fn wait(word: &AtomicU32, seen: u32, timeout: Duration) {
    let mut time = libc::_umtx_time {
        _timeout: libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        },
        _flags: 0,
        _clockid: libc::CLOCK_MONOTONIC as u32,
    };
    // SAFETY: `word` is a live, aligned u32 for the whole call (the kernel
    // only reads it); with a `_umtx_time` timeout, `uaddr` carries its size
    // and `uaddr2` points to it, a local that outlives the call. EINTR,
    // ETIMEDOUT and a word that had changed all mean "look again".
    let _ = unsafe {
        libc::_umtx_op(
            word.as_ptr().cast::<c_void>(),
            libc::UMTX_OP_WAIT_UINT,
            libc::c_ulong::from(seen),
            std::mem::size_of::<libc::_umtx_time>() as *mut c_void,
            (&raw mut time).cast::<c_void>(),
        )
    };
}

/// Wakes every thread of every process sleeping on `word`.
pub(crate) fn wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32; `UMTX_OP_WAKE` only uses its
    // address as the key and takes no other pointer.
    let _ = unsafe {
        libc::_umtx_op(
            word.as_ptr().cast::<c_void>(),
            libc::UMTX_OP_WAKE,
            libc::c_int::MAX as libc::c_ulong,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
}
