//! Creating the first instance of a pipe name atomically.
//!
//! On Windows `FILE_FLAG_FIRST_PIPE_INSTANCE` makes the kernel refuse a first
//! instance of a name that already has one, atomically: of racing servers
//! exactly one creates it. Wine (8) ignores the flag, so there two servers that
//! both found the name free (`refuse_existing`) both got instances. Under Wine
//! only, ipckit servers therefore take turns on a named mutex per pipe name
//! from that check until the first instance exists; a later server then finds
//! the name taken. On Windows no mutex is taken: the flag suffices, and a mutex
//! another user could hold must not stand in a server's way.

use std::io;
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::ptr;

use windows_sys::Win32::Foundation::{WAIT_ABANDONED, WAIT_OBJECT_0, WAIT_TIMEOUT};
use windows_sys::Win32::System::Threading::{CreateMutexW, ReleaseMutex, WaitForSingleObject};

use super::handle::{owned, wide};
use super::pipe::{first_instance_error, refuse_existing};
use super::wine::is_wine;

/// How long a server waits for another's first instance (which takes
/// microseconds) before it gives up.
const WAIT_MS: u32 = 10_000;

/// Creates the first instance of pipe `path` (NUL-terminated) with `create`,
/// which must pass `FILE_FLAG_FIRST_PIPE_INSTANCE`: refuses a name that has
/// instances, and maps the kernel's refusal to `AddrInUse` naming the owner.
pub(super) fn create_first<T>(
    path: &[u16],
    create: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    let _turn = if is_wine() {
        Some(Turn::take(path)?)
    } else {
        None
    };
    refuse_existing(path)?;
    create().map_err(|e| first_instance_error(path, e))
}

/// Ownership of the named mutex of one pipe name; released when dropped.
struct Turn {
    mutex: OwnedHandle,
}

impl Turn {
    fn take(path: &[u16]) -> io::Result<Turn> {
        let name = wide(&mutex_name(path));
        // SAFETY: `name` is NUL-terminated and outlives the call; null security
        // attributes give the default descriptor. The result is checked by `owned`.
        let mutex = owned(unsafe { CreateMutexW(ptr::null(), 0, name.as_ptr()) })?;
        // SAFETY: `mutex` is a live mutex handle that we own.
        match unsafe { WaitForSingleObject(mutex.as_raw_handle(), WAIT_MS) } {
            // Abandoned: its holder died while holding it; it is ours now.
            WAIT_OBJECT_0 | WAIT_ABANDONED => Ok(Turn { mutex }),
            WAIT_TIMEOUT => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "another process has held the bind mutex of this pipe name for {}s \
                     (a bind takes microseconds: is it hung?)",
                    WAIT_MS / 1000
                ),
            )),
            _ => Err(io::Error::last_os_error()),
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // SAFETY: `self.mutex` is a live mutex handle this thread owns (taken in
        // `take` on this thread; a `Turn` never leaves the function that made it).
        unsafe { ReleaseMutex(self.mutex.as_raw_handle()) };
    }
}

/// The mutex of pipe `path`: a hash of its name, folded to lower case as pipe
/// names are, since a mutex name may hold no backslash and only `MAX_PATH`
/// characters (FNV-1a, the same in every process).
fn mutex_name(path: &[u16]) -> String {
    let hash = path
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| match u8::try_from(c) {
            Ok(b) => u16::from(b.to_ascii_lowercase()),
            Err(_) => c,
        })
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, c| {
            (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("Local\\ipckit-pipe-bind-{hash:016x}")
}
