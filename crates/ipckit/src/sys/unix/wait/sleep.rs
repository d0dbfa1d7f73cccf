//! Unix systems without a cross-process wait on an address known here: the
//! waiter sleeps briefly and looks again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A short sleep, at most `timeout`, unless the word has changed already.
pub(crate) fn wait(word: &AtomicU32, seen: u32, timeout: Duration) {
    if word.load(Ordering::Acquire) == seen {
        std::thread::sleep(timeout.min(Duration::from_micros(500)));
    }
}

/// Waiters look again on their own: nothing to do.
pub(crate) fn wake(_word: &AtomicU32) {}
