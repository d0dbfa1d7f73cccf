//! Which server's handler the current thread or task is running, so that a
//! server told to stop from one of its own handlers (a `"shutdown"` method)
//! does not wait for the very call that asked: that call cannot finish
//! before the stop returns.
//!
//! A server is told apart by an [`Id`] taken when it binds. A sync handler
//! marks its thread for as long as it runs ([`run_sync`]); an async handler
//! marks its task ([`run_async`]), whichever thread polls it.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

/// One server, for as long as the process runs (never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Id(u64);

impl Id {
    /// A new server's identity.
    pub(crate) fn next() -> Id {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Id(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

thread_local! {
    // Already `const`: clippy 1.96 for the Windows target built with
    // `-Zbuild-std` says it could be (a false positive there; Linux's does not).
    #[allow(clippy::missing_const_for_thread_local)]
    static THREAD: Cell<Option<Id>> = const { Cell::new(None) };
}

::tokio::task_local! {
    static TASK: Id;
}

/// Puts the thread's previous mark back, also when the handler panics.
struct Restore(Option<Id>);

impl Drop for Restore {
    fn drop(&mut self) {
        THREAD.with(|t| t.set(self.0));
    }
}

/// Runs `f`, a sync handler of server `id`, with this thread marked as
/// running it.
pub(crate) fn run_sync<T>(id: Id, f: impl FnOnce() -> T) -> T {
    let _restore = Restore(THREAD.with(|t| t.replace(Some(id))));
    f()
}

/// `fut`, an async handler of server `id`, with its task marked as running
/// it while it is polled.
pub(crate) fn run_async<F: Future>(id: Id, fut: F) -> impl Future<Output = F::Output> {
    TASK.scope(id, fut)
}

/// Whether the caller is one of server `id`'s handlers.
pub(crate) fn inside(id: Id) -> bool {
    THREAD.with(Cell::get) == Some(id) || TASK.try_with(|t| *t == id).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_marked_while_its_handler_runs_and_after_a_panic_no_more() {
        let (a, b) = (Id::next(), Id::next());
        assert!(!inside(a));
        run_sync(a, || {
            assert!(inside(a) && !inside(b));
            run_sync(b, || assert!(inside(b) && !inside(a)));
            assert!(inside(a), "the outer mark is back after a nested handler");
        });
        assert!(!inside(a));
        let panicked = std::panic::catch_unwind(|| run_sync(a, || panic!("on purpose")));
        assert!(panicked.is_err());
        assert!(!inside(a), "a panicking handler leaves no mark behind");
    }

    #[test]
    fn a_task_is_marked_on_whichever_thread_polls_it() {
        let rt = ::tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let id = Id::next();
        let marked = rt.block_on(async move {
            ::tokio::spawn(run_async(id, async move {
                ::tokio::task::yield_now().await;
                inside(id)
            }))
            .await
            .unwrap()
        });
        assert!(marked);
        assert!(!inside(id));
        assert!(!rt.block_on(async move { inside(id) }));
    }
}
