//! A condition variable that makes no system call when nobody waits.
//!
//! std's `Condvar::notify_*` wake the futex whether or not a thread sleeps on
//! it: one system call per notification. On the paths of a call (a reply left
//! for its caller, a slot given back) nobody waits almost always, and that
//! call was a measurable part of a small call over `shm:`. A [`Signal`]
//! counts its sleepers; a sleeper counts itself while it holds the mutex, so
//! a notifier that changed the state under the same mutex sees it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, MutexGuard};
use std::time::Duration;

#[derive(Debug, Default)]
pub(crate) struct Signal {
    cv: Condvar,
    sleepers: AtomicUsize,
}

impl Signal {
    /// Waits on `guard`'s mutex until notified (or spuriously).
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        let guard = self.cv.wait(guard).unwrap_or_else(|p| p.into_inner());
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
        guard
    }

    /// Waits on `guard`'s mutex until notified, or for at most `timeout`.
    pub(crate) fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> MutexGuard<'a, T> {
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        let (guard, _) = self
            .cv
            .wait_timeout(guard, timeout)
            .unwrap_or_else(|p| p.into_inner());
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
        guard
    }

    /// Wakes every sleeper, if there is one. The caller changed the state
    /// the sleepers wait for under their mutex (and may still hold it): a
    /// sleeper counted itself before it released that mutex to sleep, so
    /// the count is seen here (the mutex orders the two).
    pub(crate) fn notify_all(&self) {
        if self.sleepers.load(Ordering::Relaxed) > 0 {
            self.cv.notify_all();
        }
    }
}
