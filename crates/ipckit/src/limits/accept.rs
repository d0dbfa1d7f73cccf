//! What an accept loop needs to keep serving: a pause after resource errors
//! ([`AcceptBackoff`]) and a cap on the connections held at once
//! ([`ConnectionLimit`]).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sys;

/// The first pause of a burst of resource errors.
const FIRST_PAUSE: Duration = Duration::from_millis(5);

/// The longest pause between two accepts of a burst.
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// [`ConnectionLimit::default_max`] where the OS sets no limit on open files
/// that a server would meet first (Windows, or an unlimited `RLIMIT_NOFILE`).
const FALLBACK_MAX_CONNECTIONS: usize = 4096;

/// Paces an accept loop through resource errors, as Go's `net/http` server
/// does: after an accept fails because the process or the machine ran out of
/// something ([`Error::is_resource_exhausted`]: out of file descriptors, say),
/// wait 5 ms, then twice as long after each further failure, up to 1 s, and
/// start again from 5 ms after an accept succeeds. The connections the server
/// already has keep being served meanwhile, and the clients that arrive wait in
/// the listener's backlog (or for a pipe instance) until descriptors are freed.
///
/// [`Listener::incoming`](crate::Listener::incoming) and
/// [`MessageListener::incoming`](crate::MessageListener::incoming) use it; a
/// loop of your own around `accept` uses it like this:
///
/// ```no_run
/// use ipckit::stream::AcceptBackoff;
/// let listener = ipckit::Listener::bind("pipe:echo")?;
/// let mut backoff = AcceptBackoff::new();
/// loop {
///     match listener.accept() {
///         Ok(stream) => {
///             backoff.on_success();
///             // serve `stream` ...
/// #           drop(stream);
///         }
///         Err(err) => match backoff.on_error(&err) {
///             Some(pause) => {
///                 if backoff.failures() == 1 {
///                     eprintln!("{err}: pausing accepts until it passes");
///                 }
///                 std::thread::sleep(pause);
///             }
///             None => return Err(err.into()),
///         },
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct AcceptBackoff {
    /// The pause after the next resource error; `None` outside a burst.
    next: Option<Duration>,
    failures: u64,
}

impl AcceptBackoff {
    /// A backoff outside any burst of errors.
    pub fn new() -> AcceptBackoff {
        AcceptBackoff::default()
    }

    /// After an accept failed with `err`: when `err` is a resource error, how
    /// long to wait before the next accept (5 ms at the start of a burst,
    /// doubling up to 1 s). `None` for any other error, which says something
    /// about one client (skip it) or about the listener (report it): the
    /// caller decides.
    pub fn on_error(&mut self, err: &Error) -> Option<Duration> {
        if !err.is_resource_exhausted() {
            return None;
        }
        let pause = self.next.unwrap_or(FIRST_PAUSE);
        self.next = Some((pause * 2).min(MAX_PAUSE));
        self.failures += 1;
        Some(pause)
    }

    /// After an accept succeeded: ends the burst of errors, if any, and
    /// returns how many accepts failed in it (0 when there was none).
    pub fn on_success(&mut self) -> u64 {
        self.next = None;
        std::mem::take(&mut self.failures)
    }

    /// How many accepts in a row have failed with a resource error: 0 outside
    /// a burst, 1 right after its first error (the time to report it once).
    pub fn failures(&self) -> u64 {
        self.failures
    }
}

/// Runs `accept` until it succeeds or fails with something other than a
/// resource error, pausing as `backoff` says in between.
pub(crate) fn accept_through<T>(
    backoff: &mut AcceptBackoff,
    mut accept: impl FnMut() -> Result<T>,
) -> Result<T> {
    loop {
        match accept() {
            Ok(conn) => {
                backoff.on_success();
                return Ok(conn);
            }
            Err(err) => match backoff.on_error(&err) {
                Some(pause) => std::thread::sleep(pause),
                None => return Err(err),
            },
        }
    }
}

/// A cap on the connections a blocking server holds at once: take a
/// [`ConnectionSlot`] before each `accept` and keep it as long as the
/// connection lives. At the cap, the loop waits in [`acquire`](Self::acquire)
/// and accepts nobody, so new clients queue until a connection closes, and
/// are then served in turn (it queues rather than refuses, as Go's
/// `netutil.LimitListener` does).
///
/// Clones share the same slots.
///
/// # Platform-specific behavior
///
/// ### Unix
///
/// Waiting clients are connected in the listener's backlog (TCP too): their
/// `connect` succeeds and what they send is buffered. Clients that arrive
/// while the backlog is full are refused by the OS, or wait in `connect`.
///
/// ### Windows
///
/// One client connects to the pipe instance the listener keeps waiting and is
/// held there; later ones find every instance busy and wait for one within
/// their connect timeout ([`ConnectOptions::timeout`](crate::ConnectOptions::timeout)),
/// as for any busy pipe (TCP clients queue in the backlog as on Unix).
///
/// # Examples
///
/// ```no_run
/// use ipckit::stream::ConnectionLimit;
/// let listener = ipckit::Listener::bind("pipe:echo")?;
/// let limit = ConnectionLimit::new(64)?;
/// while let Some(slot) = limit.acquire() {
///     let stream = listener.accept()?;
///     std::thread::spawn(move || {
///         let _slot = slot; // freed when this client is done
///         // serve `stream` ...
/// #       drop(stream);
///     });
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    inner: Arc<Slots>,
}

#[derive(Debug)]
struct Slots {
    max: usize,
    state: Mutex<SlotState>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct SlotState {
    in_use: usize,
    closed: bool,
}

impl Slots {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        crate::sync::lock(&self.state)
    }
}

impl ConnectionLimit {
    /// At most `max` connections at once.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`](crate::ErrorKind::InvalidOption) for 0.
    pub fn new(max: usize) -> Result<ConnectionLimit> {
        check_max_connections(max)?;
        Ok(ConnectionLimit {
            inner: Arc::new(Slots {
                max,
                state: Mutex::default(),
                freed: Condvar::new(),
            }),
        })
    }

    /// The default cap of ipckit's servers (ipckit-rpc, the `ipckit` command),
    /// read from the OS now: it stays well under the number of files the
    /// process may open, so that the server never runs out of descriptors
    /// for the connections it has and keeps some for everything else.
    ///
    /// # Platform-specific behavior
    ///
    /// ### Unix
    ///
    /// Half the soft `RLIMIT_NOFILE` (`ulimit -n`): 512 at the common limit
    /// of 1024. 4096 when the limit is `unlimited`.
    ///
    /// ### Windows
    ///
    /// 4096: Windows has no per-process handle limit that a server meets
    /// first; the cap keeps a flood of local clients from taking the kernel
    /// memory every pipe instance reserves for its buffers.
    pub fn default_max() -> usize {
        sys::open_files_limit().map_or(FALLBACK_MAX_CONNECTIONS, |soft| {
            usize::try_from(soft / 2).unwrap_or(usize::MAX).max(1)
        })
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// How many slots are held now.
    pub fn in_use(&self) -> usize {
        self.inner.lock().in_use
    }

    /// Waits until fewer than [`max`](Self::max) slots are held and takes one;
    /// `None` once [`close`](Self::close) has been called.
    pub fn acquire(&self) -> Option<ConnectionSlot> {
        let slots = &self.inner;
        let mut state = slots.lock();
        while state.in_use >= slots.max && !state.closed {
            state = crate::sync::relock(slots.freed.wait(state));
        }
        if state.closed {
            return None;
        }
        state.in_use += 1;
        Some(ConnectionSlot {
            slots: Arc::clone(slots),
        })
    }

    /// Wakes every [`acquire`](Self::acquire) waiting now and makes every later
    /// one return `None`: for stopping the accept loop. Slots held stay held
    /// until dropped.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.inner.freed.notify_all();
    }
}

impl Default for ConnectionLimit {
    /// A limit of [`ConnectionLimit::default_max`].
    fn default() -> ConnectionLimit {
        let max = ConnectionLimit::default_max();
        ConnectionLimit::new(max).unwrap_or_else(|_| unreachable!("default_max is at least 1"))
    }
}

/// One connection's place under a [`ConnectionLimit`]; dropping it frees the
/// place for the next client.
#[derive(Debug)]
pub struct ConnectionSlot {
    slots: Arc<Slots>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.slots.lock().in_use -= 1;
        self.slots.freed.notify_one();
    }
}

/// A cap on connections of 0 would serve nobody.
pub(crate) fn check_max_connections(max: usize) -> Result<()> {
    if max == 0 {
        return Err(Error::new(
            crate::ErrorKind::InvalidOption,
            "a maximum of 0 connections is not allowed: the server would serve nobody",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn os_error(code: i32) -> Error {
        Error::io("accept on pipe:t", io::Error::from_raw_os_error(code))
    }

    /// An error code this OS counts as a resource error.
    fn resource_code() -> i32 {
        (1..20_000)
            .find(|&c| sys::is_resource_error(c))
            .expect("some resource error code")
    }

    #[test]
    fn pauses_double_up_to_a_second_and_reset_after_a_success() {
        let mut b = AcceptBackoff::new();
        let err = os_error(resource_code());
        let pauses: Vec<u128> = (0..12)
            .map(|_| b.on_error(&err).unwrap().as_millis())
            .collect();
        assert_eq!(
            pauses,
            [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000]
        );
        assert_eq!(b.failures(), 12);
        assert_eq!(b.on_success(), 12);
        assert_eq!(b.failures(), 0);
        assert_eq!(b.on_error(&err), Some(FIRST_PAUSE));
        assert_eq!(b.failures(), 1);
    }

    #[test]
    fn other_errors_are_left_to_the_caller() {
        let mut b = AcceptBackoff::new();
        let reset = Error::io(
            "accept on pipe:t",
            io::Error::from(io::ErrorKind::ConnectionAborted),
        );
        assert_eq!(b.on_error(&reset), None);
        assert_eq!(b.failures(), 0);
    }

    #[test]
    fn a_limit_of_zero_is_refused() {
        let err = ConnectionLimit::new(0).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidOption);
        assert!(err.to_string().contains("0 connections"), "{err}");
    }

    #[test]
    fn slots_are_freed_on_drop_and_close_wakes_waiters() {
        let limit = ConnectionLimit::new(2).unwrap();
        let a = limit.acquire().unwrap();
        let _b = limit.acquire().unwrap();
        assert_eq!(limit.in_use(), 2);
        drop(a);
        assert_eq!(limit.in_use(), 1);
        let _c = limit.acquire().unwrap();
        let waiter = {
            let limit = limit.clone();
            std::thread::spawn(move || limit.acquire().is_none())
        };
        limit.close();
        assert!(waiter.join().unwrap(), "a closed limit gives no slot");
        assert!(ConnectionLimit::default_max() >= 1);
    }
}
