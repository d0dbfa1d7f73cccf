//! One overlapped operation, bounded by a deadline.
//!
//! The operation is started with a stack `OVERLAPPED`; if the deadline passes first
//! it is cancelled with `CancelIoEx`, and in every case `GetOverlappedResult(wait)`
//! waits for the kernel to finish with the `OVERLAPPED` and the buffer before this
//! returns. So no wait leaks, and bytes that arrived as the deadline fired are
//! returned, not lost.

use std::io;
use std::os::windows::io::{AsRawHandle, BorrowedHandle};
use std::time::Instant;

use windows_sys::Win32::Foundation::{ERROR_IO_PENDING, ERROR_OPERATION_ABORTED, WAIT_TIMEOUT};
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};
use windows_sys::Win32::System::Threading::{INFINITE, WaitForSingleObject};
use windows_sys::core::BOOL;

use super::handle::Event;

/// Milliseconds to wait for `limit`, rounded up so a wait never ends early.
fn wait_ms(limit: Option<Instant>) -> u32 {
    match limit {
        None => INFINITE,
        Some(limit) => {
            let left = limit.saturating_duration_since(Instant::now());
            let ms = left.as_nanos().div_ceil(1_000_000);
            u32::try_from(ms).unwrap_or(INFINITE - 1).min(INFINITE - 1)
        }
    }
}

/// Runs `start` (which must issue one overlapped call on `handle` with the
/// `OVERLAPPED` it is given) and returns the bytes transferred.
///
/// `start` returns the call's `BOOL`; on `FALSE` the thread's last error is read
/// at once. `ok_errors` lists error codes that mean success with no transfer
/// (e.g. `ERROR_PIPE_CONNECTED` for `ConnectNamedPipe`).
pub(super) fn run(
    handle: BorrowedHandle<'_>,
    event: &Event,
    limit: Option<Instant>,
    what: &str,
    ok_errors: &[u32],
    start: impl FnOnce(*mut OVERLAPPED) -> BOOL,
) -> io::Result<u32> {
    if limit.is_some_and(|l| l <= Instant::now()) {
        return Err(super::timed_out(what));
    }
    let raw = handle.as_raw_handle();
    let mut ov = OVERLAPPED {
        hEvent: event.raw(),
        ..OVERLAPPED::default()
    };
    if start(&mut ov) == 0 {
        let err = io::Error::last_os_error();
        match err.raw_os_error().map(|c| c as u32) {
            Some(ERROR_IO_PENDING) => {}
            Some(code) if ok_errors.contains(&code) => return Ok(0),
            _ => return Err(err),
        }
    }
    // SAFETY: `event` is a live event handle owned by the caller for this call.
    let waited = unsafe { WaitForSingleObject(event.raw(), wait_ms(limit)) };
    let cancelled = waited == WAIT_TIMEOUT;
    if cancelled {
        // SAFETY: `raw` is the live handle the operation was issued on and `ov`
        // is that operation's OVERLAPPED, still in place. Failure (the operation
        // finished meanwhile) is fine: the result below tells.
        unsafe { CancelIoEx(raw, &ov) };
    }
    let mut n = 0u32;
    // SAFETY: same handle and OVERLAPPED as the operation; `bWait = TRUE` blocks
    // until the kernel is done with `ov` and the caller's buffer, so neither is
    // used after this function returns.
    let ok = unsafe { GetOverlappedResult(raw, &ov, &mut n, 1) };
    if ok != 0 {
        return Ok(n);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error().map(|c| c as u32) {
        // A cancelled transfer may have moved part of the buffer first (a large
        // write into a full pipe): report that part, so no byte goes unaccounted.
        Some(ERROR_OPERATION_ABORTED) if cancelled && ov.InternalHigh > 0 => {
            Ok(u32::try_from(ov.InternalHigh).unwrap_or(u32::MAX))
        }
        Some(ERROR_OPERATION_ABORTED) if cancelled => Err(super::timed_out(what)),
        Some(code) if ok_errors.contains(&code) => Ok(0),
        _ => Err(err),
    }
}
