//! Shared helpers of the tokio tests: a runtime, and a future run under the
//! watchdog. Include with `#[path = "util/tokio.rs"] mod tokio_util;` next to
//! `mod util;` (a module of its own: not every crate that includes `util` has
//! tokio).
#![allow(dead_code)] // each test file uses a different subset

use std::future::Future;
use std::time::Duration;

use crate::util::{slow_factor, watchdog};

/// A multi-threaded runtime of two workers, with I/O and time.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

/// Runs the future that `make` builds on a fresh [`runtime`], all under the
/// watchdog (`secs` seconds, scaled by [`slow_factor`]).
pub(crate) fn run<F>(secs: u64, make: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = ()>,
{
    let limit = Duration::from_secs(secs * u64::from(slow_factor()));
    watchdog(limit, move || runtime().block_on(make()));
}
