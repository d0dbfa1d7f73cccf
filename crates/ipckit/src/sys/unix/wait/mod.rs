//! Sleeping on a 32-bit word in shared memory until another process changes
//! it: the wake-up of the shared-memory channel (`sys::shm_channel`).
//!
//! The contract, the same on every OS: [`wait`]`(word, seen, timeout)` returns
//! at once if `word` no longer holds `seen`, else sleeps until a [`wake`] on
//! the same word (from any process that maps it), the timeout, or for no
//! reason (callers look again); [`wake`] wakes every thread of every process
//! sleeping on the word.
//!
//! No wake-up is lost, for the reason the Linux futex gives: the kernel
//! compares the word with `seen` and queues the sleeper as one step, under the
//! lock of the word's wait queue, and a waker changes the word *before* it
//! calls `wake`, which takes the same lock. Either the change comes first, and
//! the comparison fails (the sleeper returns at once), or the sleeper is
//! queued first, and the wake finds it. The channel bumps its `*_seq` word
//! before every wake, and passes the value it read before announcing itself
//! as `seen`, so a bump between its last look and its sleep is seen.
//!
//! The word is keyed by the memory it lives in, not by this process's
//! address: every call asks for the *shared* (cross-process) variant.
//!
//! | OS | wait | wake |
//! |---|---|---|
//! | Linux | `futex(FUTEX_WAIT)` (not `FUTEX_PRIVATE_FLAG`) | `futex(FUTEX_WAKE, all)` |
//! | macOS 14.4+ | `os_sync_wait_on_address_with_timeout(OS_SYNC_WAIT_ON_ADDRESS_SHARED)` | `os_sync_wake_by_address_all(OS_SYNC_WAKE_BY_ADDRESS_SHARED)` |
//! | older macOS | `__ulock_wait(UL_COMPARE_AND_WAIT_SHARED)` | `__ulock_wake(UL_COMPARE_AND_WAIT_SHARED \| ULF_WAKE_ALL)` |
//! | FreeBSD | `_umtx_op(UMTX_OP_WAIT_UINT)` (not `_PRIVATE`) | `_umtx_op(UMTX_OP_WAKE, all)` |
//! | other Unix | a short sleep (at most 500 µs) | nothing |
//!
//! Nothing here has run on macOS or FreeBSD: those are type-checked and
//! linted by `scripts/check-cross.sh` only.

#[cfg(target_os = "freebsd")]
mod freebsd;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_vendor = "apple")]
mod macos;
#[cfg(not(any(target_os = "linux", target_vendor = "apple", target_os = "freebsd")))]
mod sleep;

#[cfg(target_os = "freebsd")]
pub(crate) use freebsd::{wait, wake};
#[cfg(target_os = "linux")]
pub(crate) use linux::{wait, wake};
#[cfg(target_vendor = "apple")]
pub(crate) use macos::{wait, wake};
#[cfg(not(any(target_os = "linux", target_vendor = "apple", target_os = "freebsd")))]
pub(crate) use sleep::{wait, wake};
