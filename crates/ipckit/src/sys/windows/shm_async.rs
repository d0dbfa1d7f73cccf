//! Async wake-ups of the shared-memory channel on Windows (feature `tokio`).
//!
//! The blocking side sleeps in `WaitForSingleObject` on the word's named
//! auto-reset event; a notifier `SetEvent`s it. A tokio task instead has the
//! system thread pool wait for it (`RegisterWaitForSingleObject`, once): the
//! pool's wait threads each serve up to 63 objects of the whole process, so no
//! thread is blocked per channel, and the callback signals the task's
//! `Notify`. The event is a latch: a `SetEvent` between the task's
//! announcement and the registration leaves it signalled, and the
//! registration fires at once, so no wake-up is lost. The peer's exit is a
//! second registration, on its process handle. Like a blocking waiter, an
//! async one sleeps at most `PEER_CHECK` before it looks again.
#![allow(unsafe_code)]

use std::any::Any;
use std::ffi::c_void;
use std::io;
use std::os::windows::io::{AsRawHandle, BorrowedHandle};
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use tokio::sync::Notify;
use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::System::Threading::{
    INFINITE, RegisterWaitForSingleObject, UnregisterWaitEx, WT_EXECUTEONLYONCE,
};

use super::shm::{Peer, Wakers};
use crate::sys::shm_channel::PEER_CHECK;

/// What keeps a watched object open while the thread pool waits for it: the
/// channel (or the listener's region and events) that holds its handle.
pub(crate) type Keep = Arc<dyn Any + Send + Sync>;

/// A wait of the thread pool on one object, unregistered on drop.
pub(super) struct Registration {
    wait: HANDLE,
    /// An `Arc<Notify>` turned into the callback's context.
    notify: *const Notify,
    /// Keeps the waited-for handle open while registered.
    _keep: Keep,
}

// SAFETY: `wait` is a wait handle, usable from any thread; `notify` is an
// `Arc<Notify>` in raw form (`Notify` is `Send + Sync`), released once in
// `drop`.
unsafe impl Send for Registration {}

/// Runs on a thread-pool thread when the object is signalled.
unsafe extern "system" fn signalled(ctx: *mut c_void, _timed_out: bool) {
    // SAFETY: `ctx` is the `Arc<Notify>` that `register` turned into a raw
    // pointer; `Registration::drop` releases it only after `UnregisterWaitEx`
    // has waited for this callback to return.
    let notify = unsafe { &*ctx.cast::<Notify>() };
    notify.notify_one();
}

pub(super) fn register(
    object: BorrowedHandle<'_>,
    notify: &Arc<Notify>,
    keep: Keep,
) -> io::Result<Registration> {
    let ctx = Arc::into_raw(Arc::clone(notify));
    let mut wait: HANDLE = ptr::null_mut();
    // SAFETY: `wait` is valid for a write; `object` is a live handle that `keep`
    // keeps open until the wait is unregistered; `ctx` stays valid until then
    // (released in `Registration::drop`, after `UnregisterWaitEx`).
    let ok = unsafe {
        RegisterWaitForSingleObject(
            &mut wait,
            object.as_raw_handle(),
            Some(signalled),
            ctx.cast::<c_void>(),
            INFINITE,
            WT_EXECUTEONLYONCE,
        )
    };
    if ok == 0 {
        let e = io::Error::last_os_error();
        // SAFETY: `ctx` came from `Arc::into_raw` above and no callback holds it.
        drop(unsafe { Arc::from_raw(ctx) });
        return Err(e);
    }
    Ok(Registration {
        wait,
        notify: ctx,
        _keep: keep,
    })
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: `wait` came from `RegisterWaitForSingleObject` and is
        // unregistered only here; INVALID_HANDLE_VALUE makes the call wait for a
        // running callback to return, so `notify` is unused afterwards.
        let _ = unsafe { UnregisterWaitEx(self.wait, INVALID_HANDLE_VALUE) };
        // SAFETY: `notify` came from `Arc::into_raw` in `register`, and the
        // callback that used it can no longer run.
        drop(unsafe { Arc::from_raw(self.notify) });
    }
}

/// How one async end sleeps: a `Notify` the thread pool signals.
#[derive(Debug, Default)]
pub(crate) struct Sleeper {
    notify: Arc<Notify>,
}

impl Sleeper {
    pub(crate) fn new() -> Sleeper {
        Sleeper::default()
    }

    /// Sleeps until the event of word `index` is signalled (or may have
    /// been), or `peer` exits. Callers recheck.
    pub(crate) async fn sleep(
        &mut self,
        wakers: &Wakers,
        peer: Option<&Peer>,
        index: usize,
        _word: &AtomicU32,
        _seen: u32,
        keep: Keep,
    ) -> io::Result<()> {
        let woken = self.notify.notified();
        let _event = register(wakers.event(index), &self.notify, Arc::clone(&keep))?;
        let _exit = match peer.and_then(Peer::handle) {
            Some(process) => Some(register(process, &self.notify, keep)?),
            None => None,
        };
        // At most one peer-check slice, as a blocking waiter sleeps in
        // `WaitForSingleObject`: the caller rechecks the word and the peer, so a
        // registration whose wait never fires costs a slice instead of the task
        // (under Wine in CI, once, a tokio shm test with thousands of cancelled
        // waits hung until its watchdog; 45 runs here did not repeat it).
        let _ = tokio::time::timeout(PEER_CHECK, woken).await;
        Ok(())
    }
}
