//! macOS: `os_sync_wait_on_address` (macOS 14.4 and later), else the older
//! `__ulock_wait` that libc++ and std have used since macOS 10.12, both on the
//! word itself and in their shared (cross-process) forms.
//!
//! Both are looked up at run time (`dlsym`), so one binary runs on every
//! macOS: linking against `os_sync_*` would fail to load before 14.4, and
//! `__ulock_*` is not in the public SDK. A system with neither (none is known)
//! falls back to short sleeps.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_int, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// `os_sync_wait_on_address_with_timeout(addr, value, size, flags, clockid, timeout_ns)`.
type OsSyncWait = unsafe extern "C" fn(*mut c_void, u64, usize, u32, u32, u64) -> c_int;
/// `os_sync_wake_by_address_all(addr, size, flags)`.
type OsSyncWake = unsafe extern "C" fn(*mut c_void, usize, u32) -> c_int;
/// `__ulock_wait(operation, addr, value, timeout_us)`.
type UlockWait = unsafe extern "C" fn(u32, *mut c_void, u64, u32) -> c_int;
/// `__ulock_wake(operation, addr, wake_value)`.
type UlockWake = unsafe extern "C" fn(u32, *mut c_void, u64) -> c_int;

/// `UL_COMPARE_AND_WAIT_SHARED` (xnu `sys/ulock.h`): a 32-bit compare-and-wait
/// keyed by the memory object, across processes.
const UL_COMPARE_AND_WAIT_SHARED: u32 = 3;
/// `ULF_WAKE_ALL`: wake every waiter, not one.
const ULF_WAKE_ALL: u32 = 0x100;

/// The calls this macOS has.
#[derive(Clone, Copy)]
enum Api {
    OsSync { wait: OsSyncWait, wake: OsSyncWake },
    Ulock { wait: UlockWait, wake: UlockWake },
    Sleep,
}

fn lookup(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: `name` is NUL-terminated and outlives the call; `RTLD_DEFAULT`
    // searches the images already loaded (libSystem) and loads nothing.
    let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!sym.is_null()).then_some(sym)
}

fn api() -> Api {
    static FNS: OnceLock<Api> = OnceLock::new();
    *FNS.get_or_init(|| {
        if let (Some(wait), Some(wake)) = (
            lookup(c"os_sync_wait_on_address_with_timeout"),
            lookup(c"os_sync_wake_by_address_all"),
        ) {
            // SAFETY: libSystem exports these names with the signatures of
            // `<os/os_sync_wait_on_address.h>`, which the types spell out.
            let wait = unsafe { std::mem::transmute::<*mut c_void, OsSyncWait>(wait) };
            // SAFETY: as above.
            let wake = unsafe { std::mem::transmute::<*mut c_void, OsSyncWake>(wake) };
            return Api::OsSync { wait, wake };
        }
        if let (Some(wait), Some(wake)) = (lookup(c"__ulock_wait"), lookup(c"__ulock_wake")) {
            // SAFETY: libSystem exports these names with the signatures of
            // xnu's `sys/ulock.h`, which the types spell out.
            let wait = unsafe { std::mem::transmute::<*mut c_void, UlockWait>(wait) };
            // SAFETY: as above.
            let wake = unsafe { std::mem::transmute::<*mut c_void, UlockWake>(wake) };
            return Api::Ulock { wait, wake };
        }
        Api::Sleep
    })
}

/// Sleeps while `word` holds `seen`, at most `timeout`.
pub(crate) fn wait(word: &AtomicU32, seen: u32, timeout: Duration) {
    let addr = word.as_ptr().cast::<c_void>();
    match api() {
        Api::OsSync { wait, .. } => {
            // 0 is refused (EINVAL), and would not sleep anyway.
            let ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX).max(1);
            // SAFETY: `addr` is a live, aligned 4-byte word for the whole call
            // (the kernel only reads it); size 4 matches it; the shared flag
            // keys it by the memory object, so a waker in another process that
            // maps the same region finds this sleeper. EINTR, ETIMEDOUT and a
            // word that had changed all mean "look again".
            let _ = unsafe {
                wait(
                    addr,
                    u64::from(seen),
                    4,
                    libc::OS_SYNC_WAIT_ON_ADDRESS_SHARED,
                    libc::OS_CLOCK_MACH_ABSOLUTE_TIME,
                    ns,
                )
            };
        }
        Api::Ulock { wait, .. } => {
            // Microseconds; 0 would mean "no timeout".
            let us = u32::try_from(timeout.as_micros())
                .unwrap_or(u32::MAX)
                .max(1);
            // SAFETY: as for `os_sync_wait_on_address`: a live, aligned u32,
            // compared as 32 bits (`UL_COMPARE_AND_WAIT_SHARED`), across
            // processes.
            let _ = unsafe { wait(UL_COMPARE_AND_WAIT_SHARED, addr, u64::from(seen), us) };
        }
        Api::Sleep => {
            if word.load(Ordering::Acquire) == seen {
                std::thread::sleep(timeout.min(Duration::from_micros(500)));
            }
        }
    }
}

/// Wakes every thread of every process sleeping on `word`.
pub(crate) fn wake(word: &AtomicU32) {
    let addr = word.as_ptr().cast::<c_void>();
    match api() {
        Api::OsSync { wake, .. } => {
            // SAFETY: `addr` is a live, aligned 4-byte word; the call only
            // uses it as the key (ENOENT: nobody sleeps on it).
            let _ = unsafe { wake(addr, 4, libc::OS_SYNC_WAKE_BY_ADDRESS_SHARED) };
        }
        Api::Ulock { wake, .. } => {
            // SAFETY: as above, for the `__ulock` key of the same word.
            let _ = unsafe { wake(UL_COMPARE_AND_WAIT_SHARED | ULF_WAKE_ALL, addr, 0) };
        }
        Api::Sleep => {}
    }
}
