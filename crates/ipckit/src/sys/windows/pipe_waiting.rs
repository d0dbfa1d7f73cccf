//! The instance an async pipe server keeps waiting for its next client
//! (feature `tokio`).
//!
//! Its `ConnectNamedPipe` runs with an `OVERLAPPED` and an event of ours, and
//! a task awaits the event through the system thread pool
//! (`shm_async::register`): no thread is blocked per listener. Only once a
//! client has connected is the instance handed to tokio. So dropping the
//! waiting instance closes it at once (the connect cancelled, the kernel
//! waited for, the handle closed), whatever the runtime does next. Had tokio
//! held it, its handle would close only once the runtime had seen the
//! completion of the read tokio starts on every connected pipe and cancels on
//! drop; a runtime that stopped first left the instance open for the life of
//! the process, and its name busy for every client (seen under Wine: a
//! stopped RPC server whose instance a client had just connected to).

use std::io;
use std::os::windows::io::{AsHandle, AsRawHandle, OwnedHandle};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use windows_sys::Win32::Foundation::ERROR_IO_PENDING;
use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};
use windows_sys::Win32::System::Pipes::ConnectNamedPipe;

use super::handle::Event;
use super::pipe_instances::CLIENT_CAME;
use super::shm_async::{Keep, register};

/// The longest a wait relies on the thread pool's callback before it looks
/// at the event itself (a registration that never fired was seen once under
/// Wine, see `shm_async`).
const LOOK_AGAIN: Duration = Duration::from_millis(50);

/// A pipe instance (server end) waiting for a client.
pub(super) struct Waiting {
    /// `None` only once handed out by [`into_connected`](Self::into_connected).
    instance: Option<OwnedHandle>,
    /// The connect's `OVERLAPPED`, boxed: the kernel writes it until the
    /// connect is done, wherever this value moves meanwhile.
    ov: Box<OVERLAPPED>,
    /// Signalled when the connect is done (manual reset; the connect resets
    /// it as it starts).
    event: Arc<Event>,
    notify: Arc<Notify>,
    /// A connect is in flight on `ov`.
    issued: bool,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("instance", &self.instance)
            .field("connect_in_flight", &self.issued)
            .finish_non_exhaustive()
    }
}

// SAFETY: `OVERLAPPED` holds raw pointers (the event's handle, the kernel's
// fields), which this type touches only through `&mut self` and on drop; the
// kernel writes it whichever thread issued the connect.
unsafe impl Send for Waiting {}

impl Waiting {
    /// `instance`: a new, overlapped server instance that no completion port
    /// knows yet.
    pub(super) fn new(instance: OwnedHandle) -> io::Result<Waiting> {
        Ok(Waiting {
            instance: Some(instance),
            ov: Box::default(),
            event: Arc::new(Event::new()?),
            notify: Arc::new(Notify::new()),
            issued: false,
        })
    }

    fn handle(&self) -> std::os::windows::io::BorrowedHandle<'_> {
        match &self.instance {
            Some(h) => h.as_handle(),
            None => unreachable!("a Waiting is used only until it is handed out"),
        }
    }

    /// Waits until a client has connected to the instance.
    ///
    /// Cancel safe: a dropped wait leaves the connect in flight, and the next
    /// call goes on waiting for that same connect.
    pub(super) async fn connected(&mut self) -> io::Result<()> {
        if !self.issued {
            *self.ov = OVERLAPPED {
                hEvent: self.event.raw(),
                ..OVERLAPPED::default()
            };
            let raw = self.handle().as_raw_handle();
            // SAFETY: `raw` is a live server instance opened with
            // FILE_FLAG_OVERLAPPED; `self.ov` is boxed and stays in place until
            // the connect is done: `Drop` cancels it and waits for the kernel.
            if unsafe { ConnectNamedPipe(raw, &mut *self.ov) } != 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error().map(|c| c as u32) {
                Some(ERROR_IO_PENDING) => self.issued = true,
                Some(code) if CLIENT_CAME.contains(&code) => return Ok(()),
                _ => return Err(err),
            }
        }
        while !self.event.is_set() {
            let woken = self.notify.notified();
            let keep: Keep = Arc::clone(&self.event) as Keep;
            let _registered = register(self.event.handle(), &self.notify, keep)?;
            // The event is a latch (manual reset): a connect that finished
            // before the registration fires it at once.
            let _ = tokio::time::timeout(LOOK_AGAIN, woken).await;
        }
        self.issued = false;
        let mut n = 0u32;
        let raw = self.handle().as_raw_handle();
        // SAFETY: the connect on this handle and `self.ov` has finished (its
        // event is set); no wait is needed.
        if unsafe { GetOverlappedResult(raw, &*self.ov, &mut n, 0) } != 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error().map(|c| c as u32) {
            Some(code) if CLIENT_CAME.contains(&code) => Ok(()),
            _ => Err(err),
        }
    }

    /// The instance, once [`connected`](Self::connected) has returned `Ok`.
    pub(super) fn into_connected(mut self) -> OwnedHandle {
        debug_assert!(!self.issued, "handed out while its connect is in flight");
        match self.instance.take() {
            Some(h) => h,
            None => unreachable!("a Waiting is handed out once"),
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let (true, Some(instance)) = (self.issued, &self.instance) {
            let raw = instance.as_raw_handle();
            let mut n = 0u32;
            // SAFETY: the connect was issued on `raw` with `self.ov`, which is
            // still in place; cancelling a finished one fails harmlessly.
            unsafe { CancelIoEx(raw, &*self.ov) };
            // SAFETY: as above; `bWait = TRUE` returns once the kernel is done
            // with `self.ov`, which is freed only after this.
            unsafe { GetOverlappedResult(raw, &*self.ov, &mut n, 1) };
        }
        // The fields drop next: the instance closes (a client connected to it
        // sees the pipe end), then the OVERLAPPED is freed.
    }
}
