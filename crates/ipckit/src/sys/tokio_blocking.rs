//! Blocking-layer calls on tokio's blocking pool, kept in flight across
//! dropped futures.
//!
//! A call that takes something from the OS (a message, a client) must not be
//! lost when the future awaiting it is dropped. So its task is left in a slot
//! while it runs, and the next call awaits that task instead of starting
//! another. The owners give up what is still waiting when their last handle is
//! dropped (a stop event in the blocking layer, or reading shut down), so no
//! blocking thread outlives them.

use std::io;

use ::tokio::sync::Mutex;
use ::tokio::task::{JoinHandle, spawn_blocking};

/// What a receive on the blocking pool gives: its result and the bytes.
pub(crate) type Received<T> = (io::Result<T>, Vec<u8>);

/// Runs the task in `slot`, or a new one from `start` when the slot is empty,
/// leaving it in the slot while it runs (so a dropped future leaves it for the
/// next call).
pub(crate) async fn in_flight<T: Send + 'static>(
    slot: &Mutex<Option<JoinHandle<T>>>,
    start: impl FnOnce() -> JoinHandle<T>,
) -> io::Result<T> {
    let mut slot = slot.lock().await;
    let task = slot.get_or_insert_with(start);
    let done = task.await;
    *slot = None;
    done.map_err(io::Error::other)
}

/// A receive kept in flight in `slot` ([`in_flight`]): `recv` fills a
/// buffer of its own on the blocking pool; the bytes of the call that
/// returns them are the second value.
pub(crate) async fn recv_in_flight<T: Send + 'static>(
    slot: &Mutex<Option<JoinHandle<Received<T>>>>,
    recv: impl FnOnce(&mut Vec<u8>) -> io::Result<T> + Send + 'static,
) -> io::Result<Received<T>> {
    in_flight(slot, || {
        spawn_blocking(move || {
            let mut msg = Vec::new();
            let result = recv(&mut msg);
            (result, msg)
        })
    })
    .await
}
