//! One overlapped operation, bounded by a deadline.
//!
//! The operation is started with a stack `OVERLAPPED`; if the deadline passes first
//! it is cancelled with `CancelIoEx`, and in every case `GetOverlappedResult(wait)`
//! waits for the kernel to finish with the `OVERLAPPED` and the buffer before this
//! returns. So no wait leaks, and bytes that arrived as the deadline fired are
//! returned, not lost.
//!
//! A read of a message-mode pipe may end with `ERROR_MORE_DATA`: the buffer is
//! full and the rest of the message waits in the pipe. [`run_message`] reports
//! that as a flag next to the byte count; [`run`] keeps it an error.

use std::io;
use std::os::windows::io::{AsRawHandle, BorrowedHandle};
use std::time::Instant;

use windows_sys::Win32::Foundation::{
    ERROR_IO_PENDING, ERROR_MORE_DATA, ERROR_OPERATION_ABORTED, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};
use windows_sys::Win32::System::Threading::{
    INFINITE, WaitForMultipleObjects, WaitForSingleObject,
};
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
    run_inner(handle, event, None, limit, what, ok_errors, false, start).map(|(n, _)| n)
}

/// [`run`], also given up when `stop` is signalled (the async layer signals it
/// when the last handle to a channel or listener is dropped, so a blocking call
/// on the blocking pool does not outlive it): the operation is cancelled and
/// the call fails with `ConnectionAborted`.
pub(super) fn run_stoppable(
    handle: BorrowedHandle<'_>,
    event: &Event,
    stop: &Event,
    limit: Option<Instant>,
    what: &str,
    ok_errors: &[u32],
    start: impl FnOnce(*mut OVERLAPPED) -> BOOL,
) -> io::Result<u32> {
    run_inner(
        handle,
        event,
        Some(stop),
        limit,
        what,
        ok_errors,
        false,
        start,
    )
    .map(|(n, _)| n)
}

/// [`run`] for a read of a message-mode pipe: returns the bytes read and whether
/// the message goes on past them (`ERROR_MORE_DATA`; the rest is still in the
/// pipe and the next read continues it).
/// It stops as [`run_stoppable`] does.
pub(super) fn run_message(
    handle: BorrowedHandle<'_>,
    event: &Event,
    stop: &Event,
    limit: Option<Instant>,
    what: &str,
    start: impl FnOnce(*mut OVERLAPPED) -> BOOL,
) -> io::Result<(u32, bool)> {
    run_inner(handle, event, Some(stop), limit, what, &[], true, start)
}

/// The error of an operation given up because its channel is being closed.
pub(super) fn stopped(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        format!("{what} was given up: the channel is being closed"),
    )
}

/// Waits for the operation's event, for `stop` (if any) and for `limit`;
/// returns why the wait ended.
fn wait(event: &Event, stop: Option<&Event>, limit: Option<Instant>) -> Waited {
    let waited = match stop {
        // SAFETY: `event` is a live event handle owned by the caller for this call.
        None => unsafe { WaitForSingleObject(event.raw(), wait_ms(limit)) },
        Some(stop) => {
            let both = [event.raw(), stop.raw()];
            // SAFETY: both handles are live events owned by the caller for this
            // call; the array outlives it.
            unsafe { WaitForMultipleObjects(2, both.as_ptr(), 0, wait_ms(limit)) }
        }
    };
    match waited {
        WAIT_TIMEOUT => Waited::TimedOut,
        w if w == WAIT_OBJECT_0 + 1 => Waited::Stopped,
        _ => Waited::Done,
    }
}

#[derive(PartialEq, Eq)]
enum Waited {
    Done,
    TimedOut,
    Stopped,
}

#[allow(clippy::too_many_arguments)]
fn run_inner(
    handle: BorrowedHandle<'_>,
    event: &Event,
    stop: Option<&Event>,
    limit: Option<Instant>,
    what: &str,
    ok_errors: &[u32],
    more_data_ok: bool,
    start: impl FnOnce(*mut OVERLAPPED) -> BOOL,
) -> io::Result<(u32, bool)> {
    if limit.is_some_and(|l| l <= Instant::now()) {
        return Err(super::timed_out(what));
    }
    if stop.is_some_and(Event::is_set) {
        return Err(stopped(what));
    }
    let raw = handle.as_raw_handle();
    let mut ov = OVERLAPPED {
        // The low bit set keeps the completion off any I/O completion port
        // the pipe's file object is associated with (documented for
        // ReadFile/WriteFile and honoured by Wine): a handle adopted from, or
        // duplicated into, an async runtime (tokio's, .NET's) shares that
        // port, whose owner would take this OVERLAPPED for one of its own
        // (mio called a null callback and crashed). Waits on the tagged
        // value work: the kernel ignores a handle's two low bits.
        hEvent: event.raw().map_addr(|a| a | 1),
        ..OVERLAPPED::default()
    };
    // Whether the operation may still be running; `false` once it has finished.
    let mut pending = true;
    if start(&mut ov) == 0 {
        let err = io::Error::last_os_error();
        match err.raw_os_error().map(|c| c as u32) {
            Some(ERROR_IO_PENDING) => {}
            // The read finished at once with a full buffer; the OVERLAPPED holds
            // its result, which `GetOverlappedResult` below reports.
            Some(ERROR_MORE_DATA) if more_data_ok => pending = false,
            Some(code) if ok_errors.contains(&code) => return Ok((0, false)),
            _ => return Err(err),
        }
    }
    let waited = if pending {
        wait(event, stop, limit)
    } else {
        Waited::Done
    };
    let cancelled = waited != Waited::Done;
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
        return Ok((n, false));
    }
    let err = io::Error::last_os_error();
    let transferred = u32::try_from(ov.InternalHigh).unwrap_or(u32::MAX);
    match err.raw_os_error().map(|c| c as u32) {
        // The buffer is full and the message goes on. The count is read from the
        // OVERLAPPED, which holds it whatever `GetOverlappedResult` did with `n`
        // on failure.
        Some(ERROR_MORE_DATA) if more_data_ok => Ok((transferred, true)),
        // A cancelled transfer may have moved part of the buffer first (a large
        // write into a full pipe): report that part, so no byte goes unaccounted.
        Some(ERROR_OPERATION_ABORTED) if cancelled && transferred > 0 => Ok((transferred, false)),
        Some(ERROR_OPERATION_ABORTED) if waited == Waited::Stopped => Err(stopped(what)),
        Some(ERROR_OPERATION_ABORTED) if cancelled => Err(super::timed_out(what)),
        Some(code) if ok_errors.contains(&code) => Ok((0, false)),
        _ => Err(err),
    }
}
