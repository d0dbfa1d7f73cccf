//! The shared-memory message channel: one region holding a header and two
//! rings (`sys::ring`), one per direction, between exactly two processes.
//!
//! Layout of the region (all of it `#[repr(C)]`, checked on open):
//!
//! | offset | what |
//! |---|---|
//! | 0 | [`Header`]: magic, version, sizes, state, the two pids, each side's maximum message size |
//! | 128 | [`RingState`] of ring 0 (the creator writes, the opener reads) |
//! | 512 | [`RingState`] of ring 1 (the opener writes, the creator reads) |
//! | 1024 | ring 0's bytes, `capacity` of them |
//! | 1024 + capacity | ring 1's bytes |
//!
//! Each ring's write position, read position and flag words sit in 128-byte
//! blocks of their own (see `ring::Line`).
//!
//! Waiting never polls for long: a side spins (for at most
//! [`SPIN`](crate::sys::spin::SPIN); less while its spins go unanswered, see
//! `sys::spin`), yields its CPU for a while, then announces itself in
//! its ring's `*_waiting` word and sleeps on a futex (Linux) or a named event
//! (Windows) until the other side, seeing the announcement after it published,
//! bumps the matching `*_seq` word and wakes it. The announcement and the
//! publication form a Dekker pair: each side needs a full barrier between its
//! store and its load. The waiter, about to sleep, takes a full fence; the
//! notifier, on every message, would too, and on x86 that fence waits for the
//! message's stores to reach the other core. Where the OS can do it (Linux's
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`), the waiter instead forces a
//! barrier on every core running a registered process, and notifiers need only
//! a compiler fence: the barrier's cost moves to the side that was going to
//! sleep anyway. Each sleep lasts at most
//! [`PEER_CHECK`], after which the sleeper checks that the other process still
//! runs, so a peer that died gives an error within about that long.
//!
//! Both faces take the same steps (`try_send_chunk`, `try_recv`, `announce`);
//! they differ in the sleep alone. An async waiter (`shm_tokio`) announces
//! itself the same way and sleeps while the sequence word holds the value it
//! read before announcing, through a waker thread in `futex_waitv` (Linux) or
//! a thread-pool wait on the same event (Windows): the Dekker argument above
//! holds for it unchanged, and a notifier cannot tell the two kinds apart.
#![allow(unsafe_code)]

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering as StdOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ring::{Positions, Reader, Ring};
use super::shm::{Peer, Region, Wakers, heavy_barrier, light_barrier};
use crate::sys::plain::{Fault, FaultKind, timed_out};
use crate::sys::spin::{Spin, YIELD};
use crate::sys::sync::relock;
use crate::sys::sync::{Ordering, compiler_fence, fence};

/// `b"ipckitch"`: an ipckit channel region.
pub(super) const MAGIC: [u8; 8] = *b"ipckitch";
/// The layout version; a region of another version is refused.
pub(super) const VERSION: u32 = 2;
/// Where the rings' bytes start.
pub(super) const DATA_OFFSET: usize = 1024;

/// `Header::state`: the creator is still writing the header.
pub(super) const STATE_NEW: u32 = 0;
/// The creator waits for its peer.
pub(super) const STATE_LISTENING: u32 = 1;
/// Both sides are there.
pub(super) const STATE_CONNECTED: u32 = 2;

/// The wake-up index of the state word (ring `i`'s data word is `2 i`, its
/// space word `2 i + 1`).
pub(super) const STATE_WORD: usize = 4;

/// The longest sleep between two checks that the peer still runs.
pub(crate) const PEER_CHECK: Duration = Duration::from_millis(100);

/// The longest sleep when the heavy barrier is not to be had (see `wait`).
pub(super) const UNCOVERED_SLEEP: Duration = Duration::from_millis(1);

/// The smallest and the default capacity of each ring.
pub(crate) const MIN_CAPACITY: usize = 4096;
pub(crate) const DEFAULT_CAPACITY: usize = 1 << 20;

/// The fixed part of the region.
#[repr(C)]
#[derive(Debug)]
pub(super) struct Header {
    pub(super) magic: [u8; 8],
    pub(super) version: u32,
    /// `DATA_OFFSET`, as the creator laid it out.
    pub(super) data_offset: u32,
    /// Bytes of each ring.
    pub(super) capacity: u64,
    /// The largest message each side accepts: `[creator, opener]`.
    pub(super) max_message: [AtomicU64; 2],
    pub(super) state: AtomicU32,
    pub(super) creator_pid: AtomicU32,
    pub(super) opener_pid: AtomicU32,
    _reserved: [u32; 3],
    rings: [RingState; 2],
}

/// One ring's shared state.
#[repr(C)]
#[derive(Debug)]
struct RingState {
    pos: Positions,
    /// Bumped by the writer to wake a reader that announced itself.
    data_seq: AtomicU32,
    reader_waiting: AtomicU32,
    /// Bumped by the reader to wake a writer that announced itself.
    space_seq: AtomicU32,
    writer_waiting: AtomicU32,
    /// The writer has closed its end: once empty, the ring is at its end.
    writer_closed: AtomicU32,
    /// The reader has closed its end: writing is pointless.
    reader_closed: AtomicU32,
    /// To 128 bytes, so that the flag words share their block with nothing.
    _reserved: [u32; 26],
}

const _: () = assert!(size_of::<RingState>() == 384);
const _: () = assert!(std::mem::offset_of!(Header, rings) == 128);
const _: () = assert!(size_of::<Header>() <= DATA_OFFSET);

/// The region's size for two rings of `capacity` bytes.
pub(crate) fn region_size(capacity: usize) -> Option<usize> {
    capacity.checked_mul(2)?.checked_add(DATA_OFFSET)
}

pub(super) fn protocol(msg: String) -> io::Error {
    Fault::io(FaultKind::Protocol, msg)
}

fn disconnected(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, msg.to_owned())
}

/// A value on cache lines of its own: the sending and the receiving thread
/// each take their own lock for every message, and must not share a line.
#[repr(align(128))]
#[derive(Debug)]
struct Padded<T>(T);

/// What both halves of one end share: the region and how to wake and watch
/// the peer.
#[derive(Debug)]
pub(super) struct Shared {
    region: Region,
    pub(super) wakers: Wakers,
    pub(super) peer: Peer,
    /// The ring this end writes (0 for the creator); it reads the other.
    out: usize,
    capacity: usize,
    /// The largest message this end accepts.
    max_in: usize,
    /// The largest message the peer accepts.
    max_out: usize,
    /// A corrupt ring or an oversized message broke the incoming direction
    /// (`broken_why` says how).
    broken: AtomicBool,
    broken_why: Mutex<String>,
    /// Whether this process notifies with a compiler fence only (see
    /// `shm::light_barrier`).
    light: bool,
    /// How long this end's waits spin (`sys::spin`).
    spin: Spin,
}

/// The sending half of an end: the one writer of its ring. No lock: the
/// fast path of a send has no atomic read-modify-write at all, which on x86
/// would wait for the stores of the message to reach the reader's core.
#[derive(Debug)]
pub(crate) struct ShmSender {
    pub(super) shared: Arc<Shared>,
    /// The writer's last look at the read position.
    pub(super) read_seen: u64,
}

/// The receiving half of an end: the one reader of the other ring.
#[derive(Debug)]
pub(crate) struct ShmReceiver {
    pub(super) shared: Arc<Shared>,
    /// The part of a message received so far, so a receive that times out
    /// mid-message goes on where it stopped.
    pub(super) partial: Vec<u8>,
    pub(super) reader: Reader,
}

/// One end of a channel, both halves behind locks, each on cache lines of its
/// own.
#[derive(Debug)]
pub(crate) struct ShmChannel {
    tx: Padded<Mutex<ShmSender>>,
    rx: Padded<Mutex<ShmReceiver>>,
    max_in: usize,
    capacity: usize,
}

impl ShmChannel {
    pub(super) fn new(shared: Shared) -> ShmChannel {
        let (max_in, capacity) = (shared.max_in, shared.capacity);
        let shared = Arc::new(shared);
        ShmChannel {
            max_in,
            capacity,
            tx: Padded(Mutex::new(ShmSender {
                shared: Arc::clone(&shared),
                read_seen: 0,
            })),
            rx: Padded(Mutex::new(ShmReceiver {
                shared,
                partial: Vec::new(),
                reader: Reader::default(),
            })),
        }
    }

    /// Sends `msg` whole, waiting for room until `limit`.
    pub(crate) fn send(&self, msg: &[u8], limit: Option<Instant>) -> io::Result<()> {
        relock(self.tx.0.lock()).send(msg, limit)
    }

    /// Receives one whole message into `out` (replacing its contents), waiting
    /// until `limit`; `false` at the end of the channel.
    pub(crate) fn recv(&self, out: &mut Vec<u8>, limit: Option<Instant>) -> io::Result<bool> {
        relock(self.rx.0.lock()).recv(out, limit)
    }

    /// The two halves, without locks.
    pub(crate) fn split(self) -> (ShmSender, ShmReceiver) {
        (
            relock(self.tx.0.into_inner()),
            relock(self.rx.0.into_inner()),
        )
    }

    /// The largest message this end accepts.
    pub(crate) fn max_message_size(&self) -> usize {
        self.max_in
    }

    /// The bytes of each ring.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

impl ShmSender {
    pub(crate) fn send(&mut self, msg: &[u8], limit: Option<Instant>) -> io::Result<()> {
        self.shared.send(&mut self.read_seen, msg, limit)
    }

    pub(crate) fn max_message_size(&self) -> usize {
        self.shared.max_out
    }
}

impl Drop for ShmSender {
    fn drop(&mut self) {
        let out = &self.shared.header().rings[self.shared.out];
        out.writer_closed.store(1, StdOrdering::Release);
        self.shared
            .notify_always(&out.data_seq, 2 * self.shared.out);
    }
}

impl ShmReceiver {
    pub(crate) fn recv(&mut self, out: &mut Vec<u8>, limit: Option<Instant>) -> io::Result<bool> {
        self.shared
            .recv(&mut self.partial, &mut self.reader, out, limit)
    }

    pub(crate) fn max_message_size(&self) -> usize {
        self.shared.max_in
    }
}

impl Drop for ShmReceiver {
    fn drop(&mut self) {
        let inp = 1 - self.shared.out;
        let rs = &self.shared.header().rings[inp];
        rs.reader_closed.store(1, StdOrdering::Release);
        self.shared.notify_always(&rs.space_seq, 2 * inp + 1);
    }
}

impl Shared {
    /// One end's state: `out` is the ring it writes (0 for the creator).
    pub(super) fn new(
        region: Region,
        wakers: Wakers,
        peer: Peer,
        out: usize,
        capacity: usize,
        max_in: usize,
        max_out: usize,
    ) -> Shared {
        Shared {
            region,
            wakers,
            peer,
            out,
            capacity,
            max_in,
            max_out,
            broken: AtomicBool::new(false),
            broken_why: Mutex::new(String::new()),
            light: light_barrier(),
            spin: Spin::default(),
        }
    }

    fn header(&self) -> &Header {
        header(&self.region)
    }

    fn ring(&self, i: usize) -> Ring<'_> {
        let data_at = DATA_OFFSET + i * self.capacity;
        // SAFETY: the region is at least `DATA_OFFSET + 2 * capacity` bytes (the
        // creator sized it so; `check` verified it on open) and lives as long as
        // `self`; `capacity` is a multiple of 8 and at least `MIN_CAPACITY`. One
        // writer per ring: the `ShmSender` of the ring's own end (one per end,
        // used through `&mut`, or under `ShmChannel`'s lock); one reader: the
        // `ShmReceiver` of the other end, likewise.
        unsafe {
            Ring::new(
                &self.header().rings[i].pos,
                self.region.mapping().as_ptr().wrapping_add(data_at),
                self.capacity,
            )
        }
    }

    /// Refuses a message over the peer's maximum (nothing is sent).
    pub(super) fn check_size(&self, len: usize) -> io::Result<()> {
        if len > self.max_out {
            return Err(Fault::io(
                FaultKind::TooLarge,
                format!(
                    "a message of {len} bytes exceeds the peer's maximum message size of {} bytes",
                    self.max_out
                ),
            ));
        }
        Ok(())
    }

    /// The largest chunk of one record: a message goes out in chunks of up
    /// to this many bytes.
    pub(super) fn max_chunk(&self) -> usize {
        self.ring(self.out).max_chunk()
    }

    /// Writes one chunk if it fits now and wakes the reader if it sleeps:
    /// `Ok(false)` when the ring has no room for it, an error when the
    /// reader closed its end.
    #[inline]
    pub(super) fn try_send_chunk(
        &self,
        read_seen: &mut u64,
        chunk: &[u8],
        more: bool,
    ) -> io::Result<bool> {
        let rs = &self.header().rings[self.out];
        if rs.reader_closed.load(StdOrdering::Acquire) != 0 {
            return Err(disconnected("the peer closed the channel"));
        }
        if !self.ring(self.out).try_write(chunk, more, read_seen) {
            return Ok(false);
        }
        // Wake the reader if it sleeps (the Dekker pair with `announce`).
        self.notify(&rs.data_seq, &rs.reader_waiting, 2 * self.out);
        Ok(true)
    }

    /// Whether a chunk of `len` bytes fits now, or the reader has gone.
    pub(super) fn room_ready(&self, len: usize) -> bool {
        self.ring(self.out).has_room(len, &mut 0)
            || self.header().rings[self.out]
                .reader_closed
                .load(StdOrdering::Acquire)
                != 0
    }

    /// What a writer waiting for room sleeps on.
    pub(super) fn room_word(&self) -> WaitWord<'_> {
        let rs = &self.header().rings[self.out];
        WaitWord {
            seq: &rs.space_seq,
            waiting: &rs.writer_waiting,
            index: 2 * self.out + 1,
        }
    }

    /// Whether the incoming ring has something to read, or its writer closed.
    pub(super) fn data_ready(&self, rd: &Reader) -> bool {
        let inp = 1 - self.out;
        self.ring(inp).has_data(rd)
            || self.header().rings[inp]
                .writer_closed
                .load(StdOrdering::Acquire)
                != 0
    }

    /// What a reader waiting for data sleeps on.
    pub(super) fn data_word(&self) -> WaitWord<'_> {
        let inp = 1 - self.out;
        let rs = &self.header().rings[inp];
        WaitWord {
            seq: &rs.data_seq,
            waiting: &rs.reader_waiting,
            index: 2 * inp,
        }
    }

    /// Sends `msg` whole, waiting for room until `limit`.
    fn send(&self, read_seen: &mut u64, msg: &[u8], limit: Option<Instant>) -> io::Result<()> {
        self.check_size(msg.len())?;
        let mut chunks = msg.chunks(self.max_chunk()).peekable();
        let mut next: Option<&[u8]> = chunks.next().or(Some(&[]));
        while let Some(chunk) = next {
            let more = chunks.peek().is_some();
            while !self.try_send_chunk(read_seen, chunk, more)? {
                self.wait(
                    || self.room_ready(chunk.len()),
                    &self.room_word(),
                    limit,
                    "send",
                )?;
            }
            next = chunks.next();
        }
        Ok(())
    }

    /// Reads what the incoming ring holds, without waiting: a whole message
    /// moves into `out` (replacing its contents), the part of one that has
    /// arrived so far stays in `partial` for the next call.
    #[inline]
    pub(super) fn try_recv(
        &self,
        partial: &mut Vec<u8>,
        rd: &mut Reader,
        out: &mut Vec<u8>,
    ) -> io::Result<Received> {
        if self.broken.load(StdOrdering::Acquire) {
            return Err(protocol(relock(self.broken_why.lock()).clone()));
        }
        let inp = 1 - self.out;
        let ring = self.ring(inp);
        let rs = &self.header().rings[inp];
        loop {
            match ring.try_read(partial, rd) {
                Ok(Some(more)) => {
                    if ring.publish_if_due(rd) {
                        self.notify(&rs.space_seq, &rs.writer_waiting, 2 * inp + 1);
                    }
                    if partial.len() > self.max_in {
                        let why = format!(
                            "the peer sent a message of more than {} bytes, over this end's \
                             maximum message size of {} bytes (the incoming direction is closed)",
                            partial.len() - 1,
                            self.max_in
                        );
                        return Err(self.break_incoming(rs, partial, why));
                    }
                    if !more {
                        std::mem::swap(out, partial);
                        partial.clear();
                        return Ok(Received::Message);
                    }
                }
                Ok(None) => {
                    // Caught up: everything read is handed back already (see
                    // `publish_if_due`); this only makes sure.
                    if ring.publish_if_due(rd) {
                        self.notify(&rs.space_seq, &rs.writer_waiting, 2 * inp + 1);
                    }
                    if rs.writer_closed.load(StdOrdering::Acquire) != 0 && !ring.has_data(rd) {
                        if partial.is_empty() {
                            return Ok(Received::End);
                        }
                        return Err(disconnected(
                            "the peer closed the channel in the middle of a message",
                        ));
                    }
                    return Ok(Received::Nothing);
                }
                Err(corrupt) => {
                    let why = format!("the incoming ring is corrupt: {}", corrupt.0);
                    return Err(self.break_incoming(rs, partial, why));
                }
            }
        }
    }

    /// Receives one whole message into `out` (replacing its contents), waiting
    /// until `limit`; `false` at the end of the channel.
    fn recv(
        &self,
        partial: &mut Vec<u8>,
        rd: &mut Reader,
        out: &mut Vec<u8>,
        limit: Option<Instant>,
    ) -> io::Result<bool> {
        out.clear();
        loop {
            match self.try_recv(partial, rd, out)? {
                Received::Message => return Ok(true),
                Received::End => return Ok(false),
                Received::Nothing => {
                    self.wait(|| self.data_ready(rd), &self.data_word(), limit, "receive")?;
                }
            }
        }
    }

    fn break_incoming(&self, rs: &RingState, partial: &mut Vec<u8>, why: String) -> io::Error {
        partial.clear();
        rs.reader_closed.store(1, StdOrdering::Release);
        self.notify_always(&rs.space_seq, 2 * (1 - self.out) + 1);
        *relock(self.broken_why.lock()) = why.clone();
        self.broken.store(true, StdOrdering::Release);
        protocol(why)
    }

    /// Wakes the other side if it announced that it sleeps on `seq`.
    fn notify(&self, seq: &AtomicU32, waiting: &AtomicU32, index: usize) {
        if self.light {
            // The waiter's heavy barrier stands in for this side's fence (see
            // `shm::light_barrier`).
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
        if waiting.load(StdOrdering::Relaxed) != 0 {
            self.notify_always(seq, index);
        }
    }

    fn notify_always(&self, seq: &AtomicU32, index: usize) {
        seq.fetch_add(1, StdOrdering::Release);
        self.wakers.wake(index, seq);
    }

    /// Announces that this side is about to sleep on `word` (the waiter's half
    /// of the Dekker pair with `notify`): `None` when `ready()` holds after all
    /// (the announcement is withdrawn), else the sequence value to sleep on
    /// and whether the heavy barrier covered a light notifier (if not, sleep
    /// at most [`UNCOVERED_SLEEP`]). The caller clears `word.waiting` when it
    /// wakes.
    pub(super) fn announce(&self, ready: impl Fn() -> bool, word: &WaitWord<'_>) -> Option<Sleep> {
        let seen = word.seq.load(StdOrdering::Acquire);
        word.waiting.store(1, StdOrdering::Relaxed);
        fence(Ordering::SeqCst);
        // A peer that skips its fence (`light`) is made to take one now; if
        // that cannot be done, a wake-up may be missed, so sleep briefly.
        let covered = heavy_barrier();
        if ready() {
            word.waiting.store(0, StdOrdering::Relaxed);
            return None;
        }
        Some(Sleep { seen, covered })
    }

    /// Whether the peer's process has exited.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(super) fn peer_exited(&self) -> bool {
        self.peer.exited()
    }

    /// Waits until `ready()`: spins and yields its CPU as `self.spin` plans
    /// (and learns from the outcome), then sleeps on `word` after announcing itself, checking the
    /// peer every [`PEER_CHECK`].
    fn wait(
        &self,
        ready: impl Fn() -> bool,
        word: &WaitWord<'_>,
        limit: Option<Instant>,
        what: &str,
    ) -> io::Result<()> {
        // The clock is read first after 64 spins: a message that comes within
        // them (most, when both sides are busy) is not delayed by it.
        let plan = self.spin.plan();
        let mut spin_end = None;
        let mut spins = 0u32;
        let mut yielding = false;
        loop {
            if ready() {
                self.spin.record(plan, !yielding);
                return Ok(());
            }
            spins += 1;
            if yielding || spins.is_multiple_of(64) {
                let now = Instant::now();
                let end = *spin_end.get_or_insert(now + plan.spin);
                if now >= end + YIELD || limit.is_some_and(|l| now >= l) {
                    break;
                }
                yielding = now >= end;
            }
            if yielding {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        self.spin.record(plan, false);
        loop {
            let Some(sleep) = self.announce(&ready, word) else {
                return Ok(());
            };
            let now = Instant::now();
            let slice = match limit {
                Some(l) if now >= l => {
                    word.waiting.store(0, StdOrdering::Relaxed);
                    return Err(timed_out(what));
                }
                Some(l) => (l - now).min(PEER_CHECK),
                None => PEER_CHECK,
            };
            let slice = if sleep.covered {
                slice
            } else {
                slice.min(UNCOVERED_SLEEP)
            };
            self.wakers.wait(word.index, word.seq, sleep.seen, slice);
            word.waiting.store(0, StdOrdering::Relaxed);
            if ready() {
                return Ok(());
            }
            if self.peer.exited() {
                return Err(peer_exited());
            }
        }
    }
}

/// The error of a wait that finds the peer's process gone.
pub(super) fn peer_exited() -> io::Error {
    disconnected("the peer process exited without closing the channel")
}

/// A word a side sleeps on: its sequence word (bumped by the notifier), its
/// announcement word, and its wake-up index (`Wakers`).
#[derive(Debug)]
pub(super) struct WaitWord<'a> {
    pub(super) seq: &'a AtomicU32,
    pub(super) waiting: &'a AtomicU32,
    pub(super) index: usize,
}

/// An announced sleep (`Shared::announce`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Sleep {
    /// The sequence value seen before the announcement: sleep while it holds.
    pub(super) seen: u32,
    /// Whether the heavy barrier ran (else sleep at most [`UNCOVERED_SLEEP`]).
    pub(super) covered: bool,
}

/// What `Shared::try_recv` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Received {
    /// A whole message, now in `out`.
    Message,
    /// The peer closed its end and everything was read.
    End,
    /// Nothing whole yet: wait for data.
    Nothing,
}

pub(super) fn header(region: &Region) -> &Header {
    // SAFETY: the region is at least `DATA_OFFSET` bytes (checked at creation
    // and on open), page-aligned (a mapping's start), and `Header` is
    // `repr(C)` with fields valid for any bit pattern (bytes, integers and
    // atomics), so the reference is to initialised, aligned memory that lives
    // as long as `region`. Other processes change only the atomic fields after
    // the creator's initialisation.
    unsafe { &*region.mapping().as_ptr().cast::<Header>() }
}
