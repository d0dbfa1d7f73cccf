//! Mailslots: one-way, whole messages, many writers to one receiver, on this
//! machine (`\\.\mailslot\NAME`).
//!
//! A receiver creates the mailslot (`CreateMailslotW`); senders open it for
//! writing (`CreateFileW`) and each `WriteFile` queues one message. Domain
//! broadcast (`\\*\mailslot\NAME`, at most 424 bytes a message, delivered to
//! every machine of the domain) is not offered; broadcast to the receivers of
//! this machine is the group in `mailslot_group`.
//!
//! Reads are overlapped (a mailslot handle is created for asynchronous I/O, and
//! its own read timeout is set to "forever"), so a receive is bounded by
//! `overlapped::run_stoppable` like every other wait of this layer: a deadline
//! cancels it with `CancelIoEx`, and [`MailslotReceiver::abort`] gives it up
//! through a stop event.
//!
//! Wine (8) blocks in `ReadFile` on a mailslot even when the handle is
//! overlapped, and `CancelIoEx` cannot reach a read that has not returned. So
//! under Wine the mailslot gets a short read timeout instead of "forever", and
//! a waiting receive reads in slices of it, checking its deadline and the stop
//! event between them: a wake-up every slice while idle, and up to one slice
//! of delay for a timeout or `abort` (a message ends a slice at once).
//!
//! A message is never delivered cut: the read is sized by the size
//! `GetMailslotInfo` reports for the queued message, or, while none is queued,
//! by a first guess; a message larger than the guess fails the read with
//! `ERROR_INSUFFICIENT_BUFFER` and stays queued, and the next read is sized
//! for it. Wine differs; see [`MailslotReceiver::recv`].

use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::windows::io::{AsHandle, AsRawHandle, BorrowedHandle, OwnedHandle};
use std::path::PathBuf;
use std::ptr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    ERROR_ALREADY_EXISTS, ERROR_BROKEN_PIPE, ERROR_INSUFFICIENT_BUFFER, ERROR_SEM_TIMEOUT,
    GENERIC_WRITE,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_ATTRIBUTE_NORMAL, FILE_FLAG_OVERLAPPED, FILE_SHARE_READ, FILE_SHARE_WRITE,
    OPEN_EXISTING, ReadFile, WriteFile,
};
use windows_sys::Win32::System::Mailslots::{CreateMailslotW, GetMailslotInfo};

use super::handle::{Event, owned, wide};
use super::security::SecurityAttributes;
use super::{is_wine, overlapped};
use crate::sys::plain::Endpoint;
use crate::sys::plain::ListenConfig;
use crate::sys::plain::{Fault, FaultKind, timed_out, too_large};
use crate::sys::sync::relock;

/// `lReadTimeout` for reads that wait until a message comes (winbase.h).
const MAILSLOT_WAIT_FOREVER: u32 = u32::MAX;
/// Under Wine (8), the mailslot's read timeout, in milliseconds: there a read
/// blocks in `ReadFile` even on an overlapped handle, until a message comes or
/// this timeout ends it with `ERROR_SEM_TIMEOUT`; a waiting `recv` reads in
/// slices this long and checks its deadline and the stop event between them.
const WINE_READ_SLICE_MS: u32 = 20;
/// `GetMailslotInfo`'s next-message size when none is queued (winbase.h).
const MAILSLOT_NO_MESSAGE: u32 = u32::MAX;

/// A read that waits for a message not yet queued asks for at most this much
/// (or the receiver's maximum, if smaller); a larger message takes a second
/// read of exactly its size.
const FIRST_READ: usize = 64 * 1024;

/// How long a read of a message already queued may take, whatever is left of
/// the caller's timeout (a poll has none left): it completes at once, and this
/// only bounds a read that does not.
const QUEUED_READ_GRACE: Duration = Duration::from_millis(100);

/// Why a send failed after one did not complete within [`SEND_LIMIT`].
fn stuck_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        format!(
            "a message to this mailslot was not taken within {} s: its receiver has gone \
             (Wine keeps a dead receiver's mailslot for its senders) or stopped reading; \
             connect again to reach a new receiver",
            SEND_LIMIT.as_secs()
        ),
    )
}

fn mailslot_path(ep: &Endpoint) -> io::Result<Vec<u16>> {
    match ep {
        Endpoint::Mailslot(path) => Ok(wide(path)),
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "not a mailslot endpoint",
        )),
    }
}

/// One `recv` at a time. Unlike a plain mutex, waiting for the turn keeps to
/// the caller's deadline.
#[derive(Debug, Default)]
struct Turn {
    taken: Mutex<bool>,
    freed: Condvar,
}

/// The turn, held until dropped.
struct TurnGuard<'a>(&'a Turn);

impl Turn {
    fn take(&self, limit: Option<Instant>) -> io::Result<TurnGuard<'_>> {
        let mut taken: MutexGuard<'_, bool> = relock(self.taken.lock());
        while *taken {
            taken = match limit {
                None => relock(self.freed.wait(taken)),
                Some(limit) => {
                    let left = limit.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(timed_out("receive"));
                    }
                    relock(self.freed.wait_timeout(taken, left)).0
                }
            };
        }
        *taken = true;
        Ok(TurnGuard(self))
    }
}

impl Drop for TurnGuard<'_> {
    fn drop(&mut self) {
        *relock(self.0.taken.lock()) = false;
        self.0.freed.notify_one();
    }
}

/// What `GetMailslotInfo` tells about the queue.
struct Queue {
    /// The size of the next message, if one is queued.
    next: Option<usize>,
    /// How many messages are queued.
    count: usize,
}

/// The receiving end of a mailslot: the one handle that reads it.
pub(crate) struct MailslotReceiver {
    handle: OwnedHandle,
    /// The largest message delivered.
    max: usize,
    turn: Turn,
    /// The overlapped reads' event; used only by the holder of `turn`.
    event: Event,
    /// Signalled to give up every receive, now and later (see `abort`).
    stop: Event,
    /// A group member's marker file, removed on drop (see `mailslot_group`).
    marker: Option<PathBuf>,
}

/// The mailslot handle (for the public receiver's `AsHandle`).
impl AsHandle for MailslotReceiver {
    fn as_handle(&self) -> BorrowedHandle<'_> {
        self.handle.as_handle()
    }
}

impl fmt::Debug for MailslotReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailslotReceiver")
            .field("handle", &self.handle)
            .field("max", &self.max)
            .field("marker", &self.marker)
            .finish_non_exhaustive()
    }
}

/// The error of a mailslot name that another receiver already holds.
fn name_taken(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(ERROR_ALREADY_EXISTS as i32) {
        io::Error::new(
            io::ErrorKind::AddrInUse,
            "another receiver already owns this mailslot name (CreateMailslotW: \
             ERROR_ALREADY_EXISTS; Windows does not tell which process holds a mailslot)",
        )
    } else {
        e
    }
}

/// Under Wine (8), `GetMailslotInfo` reports at most this as the next
/// message's size (or the maximum message size, if smaller), whatever the
/// message's real size.
const WINE_SIZE_CAP: usize = 64 * 1024;

/// Under Wine (8) a read cuts a message longer than its buffer without a word;
/// a read that filled its buffer there may have lost the rest of the message.
fn cut_by_wine(read: usize, max: usize) -> io::Error {
    let why = format!(
        "an incoming message of more than {} bytes exceeds the maximum message size of \
         {max} bytes (Wine does not refuse it to the sender, and its mailslot reads cut a \
         message at the read's size), so it was dropped",
        read.saturating_sub(1)
    );
    Fault::io(FaultKind::TooLarge, why)
}

impl MailslotReceiver {
    /// Creates the mailslot `ep` names, taking messages of up to
    /// `opts.max_message_size` bytes (at least 1: the options refuse 0, which
    /// to Windows would mean "any size").
    ///
    /// That is the mailslot's `nMaxMessageSize` (clamped to `u32::MAX`):
    /// Windows refuses a larger `WriteFile` to it with an error to the sender,
    /// and nothing is queued (Wine queues it; `recv` then drops it).
    pub(crate) fn bind(ep: &Endpoint, opts: &ListenConfig) -> io::Result<MailslotReceiver> {
        let security = SecurityAttributes::new(opts.sddl.as_deref())?;
        MailslotReceiver::create(&mailslot_path(ep)?, opts.max_message_size, None, &security)
    }

    /// Creates the mailslot at `path` (NUL-terminated).
    pub(super) fn create(
        path: &[u16],
        max: usize,
        marker: Option<PathBuf>,
        security: &SecurityAttributes,
    ) -> io::Result<MailslotReceiver> {
        let os_max = u32::try_from(max).unwrap_or(u32::MAX);
        let read_timeout = if is_wine() {
            WINE_READ_SLICE_MS
        } else {
            MAILSLOT_WAIT_FOREVER
        };
        let raw = security.with(|sa| {
            // SAFETY: `path` is NUL-terminated and outlives the call; `sa` points
            // to SECURITY_ATTRIBUTES whose descriptor `security` owns, valid for
            // the whole call. The result is checked by `owned`.
            unsafe { CreateMailslotW(path.as_ptr(), os_max, read_timeout, sa) }
        });
        let handle = owned(raw).map_err(name_taken)?;
        Ok(MailslotReceiver {
            handle,
            max,
            turn: Turn::default(),
            event: Event::new()?,
            stop: Event::new()?,
            marker,
        })
    }

    /// Receives one whole message, appended to `out` (which callers pass
    /// empty), waiting as `timeout` says: `Some(ZERO)` polls, `Some(d)` waits
    /// up to `d`, `None` forever. Nothing in time is `ErrorKind::TimedOut`.
    /// Concurrent calls take turns.
    ///
    /// Under Wine (8), whose reads cut a message at the read's size and whose
    /// `GetMailslotInfo` reports at most 64 KiB as the next message's size, a
    /// read that may meet a message of 64 KiB or more is sized for the maximum
    /// message, and a message over `max` (which Wine does not refuse to the
    /// sender) is dropped with `ErrorKind::FrameTooLarge` instead of delivered
    /// cut: every read asks for one byte more than the message it expects, and
    /// a read that fills its buffer is taken as cut.
    pub(crate) fn recv(&self, out: &mut Vec<u8>, timeout: Option<Duration>) -> io::Result<()> {
        let poll = timeout.is_some_and(|d| d.is_zero());
        let limit = timeout.and_then(|d| Instant::now().checked_add(d));
        if self.stop.is_set() {
            return Err(overlapped::stopped("receive"));
        }
        let _turn = self.turn.take(limit)?;
        let wine = is_wine();
        // Whether the last read was sized by the queued message's own size.
        let mut sized = false;
        loop {
            let next = self.queue()?.next;
            let (want, read_limit) = match next {
                Some(size) => (
                    self.read_size(size, wine),
                    Some(limit.map_or(Instant::now() + QUEUED_READ_GRACE, |l| {
                        l.max(Instant::now() + QUEUED_READ_GRACE)
                    })),
                ),
                None if poll => return Err(timed_out("receive")),
                None if wine => (self.read_size(WINE_SIZE_CAP, wine), limit),
                None => (self.max.min(FIRST_READ), limit),
            };
            let before = out.len();
            match self.read_append(out, want.saturating_add(1), read_limit) {
                // The message is larger than the first guess and still queued
                // (never after a read sized by the queue, which ends the loop).
                Err(e) if !sized && e.raw_os_error() == Some(ERROR_INSUFFICIENT_BUFFER as i32) => {
                    sized = true;
                    continue;
                }
                // Wine: a slice of waiting ended with nothing (see
                // `WINE_READ_SLICE_MS`).
                Err(e) if wine && e.raw_os_error() == Some(ERROR_SEM_TIMEOUT as i32) => {
                    if self.stop.is_set() {
                        return Err(overlapped::stopped("receive"));
                    }
                    if limit.is_some_and(|l| l <= Instant::now()) {
                        return Err(timed_out("receive"));
                    }
                    continue;
                }
                // Wine fails the read of an empty message with
                // ERROR_BROKEN_PIPE (and takes it off the queue); on Windows a
                // mailslot read never does, as a mailslot has no connection.
                Err(e) if wine && e.raw_os_error() == Some(ERROR_BROKEN_PIPE as i32) => {
                    out.truncate(before);
                    return Ok(());
                }
                other => other?,
            }
            let n = out.len() - before;
            if n > want && wine {
                out.truncate(before);
                return Err(cut_by_wine(n, self.max));
            }
            if n > self.max {
                // Only under Wine, which queues it: dropped whole.
                out.truncate(before);
                return Err(too_large(n as u64, self.max));
            }
            if wine && out.capacity() - out.len() > WINE_SIZE_CAP {
                // Do not hand back the room of a read sized for the maximum.
                out.shrink_to_fit();
            }
            return Ok(());
        }
    }

    /// How many bytes a read of a queued message of reported size `size` asks
    /// for (one more is added, to tell a cut read). Under Wine a size at its cap
    /// may stand for a larger message: the read is sized for the largest
    /// message this receiver takes (at least the cap), so a message up to the
    /// maximum arrives whole and a larger one is measured exactly when it fits.
    fn read_size(&self, size: usize, wine: bool) -> usize {
        if wine && size >= self.max.min(WINE_SIZE_CAP) {
            self.max.max(WINE_SIZE_CAP)
        } else {
            size
        }
    }

    /// One overlapped `ReadFile` of at most `len` bytes, appended to `out`.
    fn read_append(&self, out: &mut Vec<u8>, len: usize, limit: Option<Instant>) -> io::Result<()> {
        let len = len.min(u32::MAX as usize);
        out.reserve_exact(len);
        let spare: &mut [MaybeUninit<u8>] = &mut out.spare_capacity_mut()[..len];
        let dst = spare.as_mut_ptr().cast::<u8>();
        let len32 = len as u32;
        let raw = self.handle.as_raw_handle();
        let n = overlapped::run_stoppable(
            self.handle.as_handle(),
            &self.event,
            &self.stop,
            limit,
            "receive",
            &[],
            |ov| {
                // SAFETY: `raw` is our live mailslot handle (asynchronous I/O);
                // `dst` is valid for writes of `len32` bytes (spare capacity of
                // `out`) and, like `ov`, outlives the operation because
                // `run_stoppable` waits for it to finish.
                unsafe { ReadFile(raw, dst, len32, ptr::null_mut(), ov) }
            },
        )?;
        let n = (n as usize).min(len);
        // SAFETY: the read initialised the first `n` bytes of the spare capacity
        // (never more than the `len` it was given, and `n` is capped at that),
        // so the first `out.len() + n` elements are initialised.
        unsafe { out.set_len(out.len() + n) };
        Ok(())
    }

    fn queue(&self) -> io::Result<Queue> {
        let (mut next, mut count) = (0u32, 0u32);
        // SAFETY: `self.handle` is a live mailslot handle; `next` and `count` are
        // valid for writes during the call and the other out-pointers are
        // optional.
        let ok = unsafe {
            GetMailslotInfo(
                self.handle.as_raw_handle(),
                ptr::null_mut(),
                &mut next,
                &mut count,
                ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Queue {
            next: (next != MAILSLOT_NO_MESSAGE).then_some(next as usize),
            count: count as usize,
        })
    }

    /// The size of the next message if one is queued, and how many are queued,
    /// as `GetMailslotInfo` reports them. Under Wine (8) only whether a message
    /// is queued is known: the count is `None` while one is.
    pub(crate) fn pending(&self) -> io::Result<(Option<usize>, Option<usize>)> {
        let q = self.queue()?;
        let count = if q.next.is_some() && is_wine() {
            None
        } else {
            Some(q.count)
        };
        Ok((q.next, count))
    }

    /// Gives up the `recv` waiting now, if any, and every later one, with
    /// `ConnectionAborted`: the async layer calls it when its receiver is
    /// dropped, so no call on the blocking pool outlives it. (A stop event
    /// that the overlapped read waits on next to its own; see the module docs.)
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn abort(&self) {
        self.stop.set();
    }
}

impl Drop for MailslotReceiver {
    fn drop(&mut self) {
        // Unregister a group member before its mailslot goes (the handle closes
        // after this), so a broadcast never counts a member that left as dead.
        if let Some(marker) = &self.marker {
            let _ = std::fs::remove_file(marker);
        }
    }
}

/// A handle that writes messages to one mailslot.
#[derive(Debug)]
pub(crate) struct MailslotSender {
    /// The client handle and the event of its writes (one write at a time:
    /// the lock is held for it); `None` once a send did not complete within
    /// [`SEND_LIMIT`]: the receiver is gone or stopped reading, every later
    /// send fails at once, and the handle is closed (under Wine it would keep
    /// a dead receiver's mailslot, and its name, alive).
    handle: Mutex<Option<(OwnedHandle, Event)>>,
}

/// How long one `WriteFile` to a mailslot may take. Windows queues a message
/// or fails at once, and ipckit promises that a send never waits for its
/// receiver; but Wine keeps the mailslot of a receiver that died for its
/// senders, and a write blocks once its buffer is full (after ~90 messages of
/// 1000 bytes). Such a write is cancelled after this long and the send fails.
const SEND_LIMIT: Duration = Duration::from_secs(5);

impl MailslotSender {
    /// Opens `ep` for writing. No receiver is the OS error
    /// (`ERROR_FILE_NOT_FOUND`), unchanged.
    pub(crate) fn connect(ep: &Endpoint) -> io::Result<MailslotSender> {
        MailslotSender::open(&mailslot_path(ep)?)
    }

    /// Who created the mailslot: Windows does not say. A sender's handle to a
    /// mailslot carries no identity of its receiver (there is no connection,
    /// and no call like `GetNamedPipeServerProcessId`), so this is always
    /// `Unsupported`.
    pub(crate) fn receiver_credentials(&self) -> io::Result<crate::sys::peer::PeerCredentials> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "Windows tells a mailslot's sender nothing about who created the mailslot",
        ))
    }

    /// The mailslot client handle, or `None` once a send gave it up. The
    /// `&mut` borrow is what makes the loan sound: no `send` (which takes
    /// `&self`) can close the handle while it is lent.
    pub(crate) fn handle_mut(&mut self) -> Option<BorrowedHandle<'_>> {
        relock(self.handle.get_mut())
            .as_ref()
            .map(|(open, _)| open.as_handle())
    }

    /// Opens the mailslot at `path` (NUL-terminated) for writing.
    ///
    /// `FILE_SHARE_WRITE` as well as `FILE_SHARE_READ`: Windows before Vista,
    /// and Wine, refuse a second writer (`ERROR_SHARING_VIOLATION`) unless every
    /// writer shares writing.
    pub(super) fn open(path: &[u16]) -> io::Result<MailslotSender> {
        // SAFETY: `path` is NUL-terminated and outlives the call; null security
        // attributes and template are allowed. The result is checked by `owned`.
        let raw = unsafe {
            CreateFileW(
                path.as_ptr(),
                GENERIC_WRITE,
                FILE_SHARE_READ | FILE_SHARE_WRITE,
                ptr::null(),
                OPEN_EXISTING,
                FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OVERLAPPED,
                ptr::null_mut(),
            )
        };
        Ok(MailslotSender {
            handle: Mutex::new(Some((owned(raw)?, Event::new()?))),
        })
    }

    /// Sends `msg` as one message (one overlapped `WriteFile`, which Windows
    /// completes at once; one that has not completed after [`SEND_LIMIT`] is
    /// cancelled, and this sender fails every send from then on, as a sender
    /// whose receiver has gone: `BrokenPipe`). A message over the receiver's
    /// maximum is the OS error.
    pub(crate) fn send(&self, msg: &[u8]) -> io::Result<()> {
        let mut handle = crate::sys::sync::lock(&self.handle);
        let Some((open, event)) = handle.as_ref() else {
            return Err(stuck_error());
        };
        let Ok(len) = u32::try_from(msg.len()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a message of {} bytes is larger than a mailslot carries ({} bytes at most)",
                    msg.len(),
                    u32::MAX
                ),
            ));
        };
        let raw = open.as_raw_handle();
        let limit = Instant::now() + SEND_LIMIT;
        let sent = overlapped::run(open.as_handle(), event, Some(limit), "send", &[], |ov| {
            // SAFETY: `raw` is our live mailslot client handle (asynchronous
            // I/O); `msg` is valid for reads of `len` bytes and, like `ov`,
            // outlives the operation because `run` waits for it to finish.
            unsafe { WriteFile(raw, msg.as_ptr(), len, ptr::null_mut(), ov) }
        });
        let written = match sent {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                *handle = None;
                return Err(stuck_error());
            }
            Err(e) => return Err(e),
        };
        if written != len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("the mailslot took {written} of the message's {len} bytes"),
            ));
        }
        Ok(())
    }
}
