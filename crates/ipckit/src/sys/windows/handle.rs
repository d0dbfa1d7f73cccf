//! Owned handles and events: every raw handle becomes an `OwnedHandle` here.

use std::io;
use std::os::windows::io::{AsHandle, AsRawHandle, BorrowedHandle, FromRawHandle, OwnedHandle};
use std::ptr;

use windows_sys::Win32::Foundation::WAIT_OBJECT_0;
use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::System::Threading::{CreateEventW, SetEvent, WaitForSingleObject};

/// Takes ownership of a handle just returned by a Win32 call that reports failure
/// as `INVALID_HANDLE_VALUE` or null; on failure returns the thread's last error.
pub(super) fn owned(raw: HANDLE) -> io::Result<OwnedHandle> {
    if raw.is_null() || raw == INVALID_HANDLE_VALUE {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` was just returned by a successful Win32 call that hands its
    // caller a new handle; nobody else owns or closes it.
    Ok(unsafe { OwnedHandle::from_raw_handle(raw) })
}

/// A NUL-terminated UTF-16 copy of `s` for the `W` functions.
pub(super) fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// A manual-reset event for one overlapped operation at a time.
#[derive(Debug)]
pub(super) struct Event(OwnedHandle);

impl Event {
    pub(super) fn new() -> io::Result<Event> {
        // SAFETY: null security attributes and name are allowed; the flags ask for
        // a manual-reset event that starts non-signalled. The result is checked.
        let raw = unsafe { CreateEventW(ptr::null(), 1, 0, ptr::null()) };
        owned(raw).map(Event)
    }

    pub(super) fn raw(&self) -> HANDLE {
        self.0.as_raw_handle()
    }

    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(super) fn handle(&self) -> BorrowedHandle<'_> {
        self.0.as_handle()
    }

    /// Signals the event; it stays signalled (manual reset).
    pub(super) fn set(&self) {
        // SAFETY: `self.0` is a live event handle. Failure is not possible for a
        // valid event handle with the rights `CreateEventW` gives its creator.
        unsafe { SetEvent(self.raw()) };
    }

    /// Whether the event is signalled, without waiting.
    pub(super) fn is_set(&self) -> bool {
        // SAFETY: `self.0` is a live event handle; a zero timeout only polls.
        unsafe { WaitForSingleObject(self.raw(), 0) == WAIT_OBJECT_0 }
    }
}
