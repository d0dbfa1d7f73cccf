//! The atomics of the shared-memory ring, from std, or from loom when built
//! with `--cfg loom` so that loom can check the ring's index protocol (see
//! `sys::ring`'s loom test and docs/TESTING.md).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::compiler_fence;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering, fence};
