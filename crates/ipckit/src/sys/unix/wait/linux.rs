//! Linux: `futex(2)` on the word itself.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::thread::futex;

/// `FUTEX_WAIT` without `FUTEX_PRIVATE_FLAG`, so it works across processes on
/// a word in shared memory.
pub(crate) fn wait(word: &AtomicU32, seen: u32, timeout: Duration) {
    let ts = futex::Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    // EAGAIN (the word had changed), EINTR and ETIMEDOUT are all "look again".
    let _ = futex::wait(word, futex::Flags::empty(), seen, Some(&ts));
}

/// `FUTEX_WAKE` of every waiter, in every process.
pub(crate) fn wake(word: &AtomicU32) {
    let _ = futex::wake(word, futex::Flags::empty(), u32::MAX);
}
