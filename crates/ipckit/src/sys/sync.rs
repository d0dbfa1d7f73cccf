//! The atomics of the shared-memory ring, from std, or from loom when built
//! with `--cfg loom` so that loom can check the ring's index protocol (see
//! `sys::ring`'s loom test and docs/TESTING.md); and the poison-tolerant lock
//! helper every layer uses (re-exported at the crate root for the layers above).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::compiler_fence;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering, fence};

/// Locks `m`, taking over a lock whose holder panicked. Every mutex in ipckit
/// guards state that a panic cannot leave half-written (a turn token, a slot
/// count, a handle), so a poisoned lock is used as it is rather than passed
/// on as a second panic.
pub(crate) fn lock<T: ?Sized>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    relock(m.lock())
}

/// The value of a lock operation (`lock`, `wait`, `into_inner`, `get_mut`)
/// whether or not the lock was poisoned; see [`lock`].
pub(crate) fn relock<T>(r: std::sync::LockResult<T>) -> T {
    r.unwrap_or_else(std::sync::PoisonError::into_inner)
}
