//! The shared-memory message channel: one region holding a header and two
//! rings (`sys::ring`), one per direction, between exactly two processes.
//!
//! Layout of the region (all of it `#[repr(C)]`, checked on open):
//!
//! | offset | what |
//! |---|---|
//! | 0 | [`Header`]: magic, version, sizes, state, the two pids, each side's maximum message size |
//! | 64 | [`RingState`] of ring 0 (the creator writes, the opener reads) |
//! | 256 | [`RingState`] of ring 1 (the opener writes, the creator reads) |
//! | 512 | ring 0's bytes, `capacity` of them |
//! | 512 + capacity | ring 1's bytes |
//!
//! Waiting never polls: a side spins for [`SPIN`], then announces itself in
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
#![allow(unsafe_code)]

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering as StdOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ObjectOwner;
use super::ring::{Positions, Reader, Ring};
use super::shm::{
    Peer, Region, Wakers, current_pid, heavy_barrier, light_barrier, pid_alive, unlink,
};
use crate::sys::plain::{Fault, FaultKind, timed_out};
use crate::sys::sync::relock;
use crate::sys::sync::{Ordering, compiler_fence, fence};

/// `b"ipckitch"`: an ipckit channel region.
const MAGIC: [u8; 8] = *b"ipckitch";
/// The layout version; a region of another version is refused.
const VERSION: u32 = 1;
/// Where the rings' bytes start.
const DATA_OFFSET: usize = 512;

/// `Header::state`: the creator is still writing the header.
const STATE_NEW: u32 = 0;
/// The creator waits for its peer.
const STATE_LISTENING: u32 = 1;
/// Both sides are there.
const STATE_CONNECTED: u32 = 2;

/// The wake-up index of the state word (ring `i`'s data word is `2 i`, its
/// space word `2 i + 1`).
const STATE_WORD: usize = 4;

/// How long a waiting side spins before it sleeps.
pub(crate) const SPIN: Duration = Duration::from_micros(50);
/// The longest sleep between two checks that the peer still runs.
pub(crate) const PEER_CHECK: Duration = Duration::from_millis(100);

/// The longest sleep when the heavy barrier is not to be had (see `wait`).
const UNCOVERED_SLEEP: Duration = Duration::from_millis(1);

/// The smallest and the default capacity of each ring.
pub(crate) const MIN_CAPACITY: usize = 4096;
pub(crate) const DEFAULT_CAPACITY: usize = 1 << 20;

/// The fixed part of the region.
#[repr(C)]
#[derive(Debug)]
struct Header {
    magic: [u8; 8],
    version: u32,
    /// `DATA_OFFSET`, as the creator laid it out.
    data_offset: u32,
    /// Bytes of each ring.
    capacity: u64,
    /// The largest message each side accepts: `[creator, opener]`.
    max_message: [AtomicU64; 2],
    state: AtomicU32,
    creator_pid: AtomicU32,
    opener_pid: AtomicU32,
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
    _reserved: [u32; 10],
}

const _: () = assert!(size_of::<RingState>() == 192);
const _: () = assert!(std::mem::offset_of!(Header, rings) == 64);
const _: () = assert!(size_of::<Header>() <= DATA_OFFSET);

/// The region's size for two rings of `capacity` bytes.
pub(crate) fn region_size(capacity: usize) -> Option<usize> {
    capacity.checked_mul(2)?.checked_add(DATA_OFFSET)
}

fn protocol(msg: String) -> io::Error {
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
struct Shared {
    region: Region,
    wakers: Wakers,
    peer: Peer,
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
}

/// The sending half of an end: the one writer of its ring. No lock: the
/// fast path of a send has no atomic read-modify-write at all, which on x86
/// would wait for the stores of the message to reach the reader's core.
#[derive(Debug)]
pub(crate) struct ShmSender {
    shared: Arc<Shared>,
    /// The writer's last look at the read position.
    read_seen: u64,
}

/// The receiving half of an end: the one reader of the other ring.
#[derive(Debug)]
pub(crate) struct ShmReceiver {
    shared: Arc<Shared>,
    /// The part of a message received so far, so a receive that times out
    /// mid-message goes on where it stopped.
    partial: Vec<u8>,
    reader: Reader,
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
    fn new(shared: Shared) -> ShmChannel {
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

    /// Sends `msg` whole, waiting for room until `limit`.
    fn send(&self, read_seen: &mut u64, msg: &[u8], limit: Option<Instant>) -> io::Result<()> {
        if msg.len() > self.max_out {
            return Err(Fault::io(
                FaultKind::TooLarge,
                format!(
                    "a message of {} bytes exceeds the peer's maximum message size of {} bytes",
                    msg.len(),
                    self.max_out
                ),
            ));
        }
        let ring = self.ring(self.out);
        let rs = &self.header().rings[self.out];
        let max = ring.max_chunk();
        let mut chunks = msg.chunks(max).peekable();
        let mut next: Option<&[u8]> = chunks.next().or(Some(&[]));
        while let Some(chunk) = next {
            let more = chunks.peek().is_some();
            loop {
                if rs.reader_closed.load(StdOrdering::Acquire) != 0 {
                    return Err(disconnected("the peer closed the channel"));
                }
                if ring.try_write(chunk, more, read_seen) {
                    break;
                }
                self.wait(
                    || {
                        ring.has_room(chunk.len(), &mut 0)
                            || rs.reader_closed.load(StdOrdering::Acquire) != 0
                    },
                    &rs.space_seq,
                    &rs.writer_waiting,
                    2 * self.out + 1,
                    limit,
                    "send",
                )?;
            }
            // Wake the reader if it sleeps (the Dekker pair with `wait`).
            self.notify(&rs.data_seq, &rs.reader_waiting, 2 * self.out);
            next = chunks.next();
        }
        Ok(())
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
                        return Ok(true);
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
                            return Ok(false);
                        }
                        return Err(disconnected(
                            "the peer closed the channel in the middle of a message",
                        ));
                    }
                    self.wait(
                        || ring.has_data(rd) || rs.writer_closed.load(StdOrdering::Acquire) != 0,
                        &rs.data_seq,
                        &rs.reader_waiting,
                        2 * inp,
                        limit,
                        "receive",
                    )?;
                }
                Err(corrupt) => {
                    let why = format!("the incoming ring is corrupt: {}", corrupt.0);
                    return Err(self.break_incoming(rs, partial, why));
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

    /// Waits until `ready()`: spins for [`SPIN`], then sleeps on `seq` after
    /// announcing itself in `waiting`, checking the peer every [`PEER_CHECK`].
    fn wait(
        &self,
        ready: impl Fn() -> bool,
        seq: &AtomicU32,
        waiting: &AtomicU32,
        index: usize,
        limit: Option<Instant>,
        what: &str,
    ) -> io::Result<()> {
        let spin_end = Instant::now() + SPIN;
        let mut spins = 0u32;
        loop {
            if ready() {
                return Ok(());
            }
            spins += 1;
            if spins.is_multiple_of(64) {
                let now = Instant::now();
                if now >= spin_end || limit.is_some_and(|l| now >= l) {
                    break;
                }
            }
            std::hint::spin_loop();
        }
        loop {
            let seen = seq.load(StdOrdering::Acquire);
            waiting.store(1, StdOrdering::Relaxed);
            fence(Ordering::SeqCst);
            // A peer that skips its fence (`light`) is made to take one now; if
            // that cannot be done, a wake-up may be missed, so sleep briefly.
            let covered = heavy_barrier();
            if ready() {
                waiting.store(0, StdOrdering::Relaxed);
                return Ok(());
            }
            let now = Instant::now();
            let slice = match limit {
                Some(l) if now >= l => {
                    waiting.store(0, StdOrdering::Relaxed);
                    return Err(timed_out(what));
                }
                Some(l) => (l - now).min(PEER_CHECK),
                None => PEER_CHECK,
            };
            let slice = if covered {
                slice
            } else {
                slice.min(UNCOVERED_SLEEP)
            };
            self.wakers.wait(index, seq, seen, slice);
            waiting.store(0, StdOrdering::Relaxed);
            if ready() {
                return Ok(());
            }
            if self.peer.exited() {
                return Err(disconnected(
                    "the peer process exited without closing the channel",
                ));
            }
        }
    }
}

fn header(region: &Region) -> &Header {
    // SAFETY: the region is at least `DATA_OFFSET` bytes (checked at creation
    // and on open), page-aligned (a mapping's start), and `Header` is
    // `repr(C)` with fields valid for any bit pattern (bytes, integers and
    // atomics), so the reference is to initialised, aligned memory that lives
    // as long as `region`. Other processes change only the atomic fields after
    // the creator's initialisation.
    unsafe { &*region.mapping().as_ptr().cast::<Header>() }
}

/// The listening end: a region that waits for its one peer.
#[derive(Debug)]
pub(crate) struct ShmListener {
    name: String,
    region: Option<Region>,
    wakers: Option<Wakers>,
    capacity: usize,
    max_in: usize,
}

impl ShmListener {
    /// Creates channel region `name` with rings of `capacity` bytes (a multiple
    /// of 8, at least [`MIN_CAPACITY`]). A leftover region whose creator has
    /// exited is replaced; one whose creator runs is `AddrInUse`.
    pub(crate) fn bind(name: &str, capacity: usize, max_in: usize) -> io::Result<ShmListener> {
        let size = region_size(capacity)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "capacity too large"))?;
        let region = match Region::create(name, size) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && stale(name) => {
                let _ = unlink(name);
                Region::create(name, size)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "a shared-memory region of that name exists, and it is not a channel \
                 left by a process that has exited",
            )),
            other => other,
        }?;
        let wakers = match Wakers::create(name) {
            Ok(w) => w,
            Err(e) => {
                let _ = unlink(name);
                return Err(e);
            }
        };
        // SAFETY: the region was just created, zeroed, at least `DATA_OFFSET`
        // bytes and page-aligned; nobody else writes its plain fields (an opener
        // waits for `STATE_LISTENING`, stored last with release ordering).
        let hdr = unsafe { &mut *region.mapping().as_ptr().cast::<Header>() };
        hdr.magic = MAGIC;
        hdr.version = VERSION;
        hdr.data_offset = DATA_OFFSET as u32;
        hdr.capacity = capacity as u64;
        hdr.max_message[0].store(max_in as u64, StdOrdering::Relaxed);
        hdr.creator_pid.store(current_pid(), StdOrdering::Relaxed);
        hdr.state.store(STATE_LISTENING, StdOrdering::Release);
        Ok(ShmListener {
            name: name.to_owned(),
            region: Some(region),
            wakers: Some(wakers),
            capacity,
            max_in,
        })
    }

    /// Waits until `limit` for the peer; then the name is removed (Unix: the
    /// channel needs it no more, and nothing is left behind if a side dies).
    pub(crate) fn accept(&mut self, limit: Option<Instant>) -> io::Result<ShmChannel> {
        let (Some(region), Some(wakers)) = (&self.region, &self.wakers) else {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "this shared-memory listener has accepted its one peer already",
            ));
        };
        let hdr = header(region);
        loop {
            let state = hdr.state.load(StdOrdering::Acquire);
            if state == STATE_CONNECTED {
                break;
            }
            let now = Instant::now();
            let slice = match limit {
                Some(l) if now >= l => return Err(timed_out("accept")),
                Some(l) => (l - now).min(PEER_CHECK),
                None => PEER_CHECK,
            };
            wakers.wait(STATE_WORD, &hdr.state, state, slice);
        }
        let peer = Peer::watch(hdr.opener_pid.load(StdOrdering::Acquire));
        let max_out =
            usize::try_from(hdr.max_message[1].load(StdOrdering::Acquire)).unwrap_or(usize::MAX);
        let _ = unlink(&self.name);
        let (Some(region), Some(wakers)) = (self.region.take(), self.wakers.take()) else {
            unreachable!("checked above");
        };
        Ok(ShmChannel::new(Shared {
            region,
            wakers,
            peer,
            out: 0,
            capacity: self.capacity,
            max_in: self.max_in,
            max_out,
            broken: AtomicBool::new(false),
            broken_why: Mutex::new(String::new()),
            light: light_barrier(),
        }))
    }
}

impl Drop for ShmListener {
    fn drop(&mut self) {
        if self.region.is_some() {
            let _ = unlink(&self.name);
        }
    }
}

/// If region `name` is a channel: the id of the process that created it, and
/// whether that process still runs.
pub(crate) fn creator(name: &str) -> Option<(u32, bool)> {
    let region = Region::open(name).ok()?;
    if region.len() < DATA_OFFSET {
        return None;
    }
    let hdr = header(&region);
    if hdr.magic != MAGIC {
        return None;
    }
    let pid = hdr.creator_pid.load(StdOrdering::Acquire);
    Some((pid, pid_alive(pid)))
}

/// Whether region `name` is a channel whose creator has exited (or a region
/// too small to be one, left by a crash during creation).
fn stale(name: &str) -> bool {
    let Ok(region) = Region::open(name) else {
        return false;
    };
    if region.len() < DATA_OFFSET {
        return false;
    }
    let hdr = header(&region);
    hdr.magic == MAGIC && !pid_alive(hdr.creator_pid.load(StdOrdering::Acquire))
}

/// Refuses a region that is not an ipckit channel of this version, or whose
/// sizes do not fit it.
fn check(region: &Region) -> Result<usize, String> {
    if region.len() < DATA_OFFSET {
        return Err(format!(
            "it is {} bytes, smaller than a channel header ({DATA_OFFSET} bytes)",
            region.len()
        ));
    }
    let hdr = header(region);
    if hdr.magic != MAGIC {
        return Err(format!(
            "its magic is {:02x?}, not an ipckit channel's",
            hdr.magic
        ));
    }
    if hdr.version != VERSION {
        return Err(format!(
            "its layout version is {}, and this ipckit reads version {VERSION}",
            hdr.version
        ));
    }
    if hdr.data_offset as usize != DATA_OFFSET {
        return Err(format!(
            "its data offset is {}, not {DATA_OFFSET}",
            hdr.data_offset
        ));
    }
    let capacity = usize::try_from(hdr.capacity).unwrap_or(usize::MAX);
    let fits = region_size(capacity).is_some_and(|size| size <= region.len());
    if capacity < MIN_CAPACITY || capacity % 8 != 0 || !fits {
        return Err(format!(
            "its ring capacity of {} bytes does not fit a region of {} bytes",
            hdr.capacity,
            region.len()
        ));
    }
    Ok(capacity)
}

/// Opens channel region `name` as the creator's peer, if `accept` accepts the
/// region's owner (checked before anything in it is read or written).
pub(crate) fn connect(
    name: &str,
    max_in: usize,
    accept: &dyn Fn(io::Result<ObjectOwner>) -> io::Result<()>,
) -> io::Result<ShmChannel> {
    let region = Region::open(name)?;
    accept(region.owner())?;
    // A creator writes the magic, the fields, then the state: all-zero magic or
    // the first state is a channel still being made (try again), not a foreign
    // region.
    if region.len() >= DATA_OFFSET
        && (header(&region).magic == [0; 8]
            || (header(&region).magic == MAGIC
                && header(&region).state.load(StdOrdering::Acquire) == STATE_NEW))
    {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the channel is still being created",
        ));
    }
    let capacity = check(&region).map_err(|why| protocol(format!("refusing the region: {why}")))?;
    let hdr = header(&region);
    match hdr.state.load(StdOrdering::Acquire) {
        STATE_LISTENING => {}
        STATE_CONNECTED => {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "the channel has its peer already (a shared-memory channel joins two processes)",
            ));
        }
        state => {
            return Err(protocol(format!(
                "refusing the region: its state word is {state}, which no ipckit channel has"
            )));
        }
    }
    let creator = hdr.creator_pid.load(StdOrdering::Acquire);
    if !pid_alive(creator) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("the channel was left by process {creator}, which has exited"),
        ));
    }
    let wakers = Wakers::open(name)?;
    for owner in wakers.owners() {
        accept(owner)?;
    }
    hdr.max_message[1].store(max_in as u64, StdOrdering::Relaxed);
    hdr.opener_pid.store(current_pid(), StdOrdering::Relaxed);
    if hdr
        .state
        .compare_exchange(
            STATE_LISTENING,
            STATE_CONNECTED,
            StdOrdering::AcqRel,
            StdOrdering::Acquire,
        )
        .is_err()
    {
        return Err(io::Error::new(
            io::ErrorKind::ResourceBusy,
            "another process joined the channel first",
        ));
    }
    wakers.wake(STATE_WORD, &hdr.state);
    let peer = Peer::watch(hdr.creator_pid.load(StdOrdering::Acquire));
    let max_out =
        usize::try_from(hdr.max_message[0].load(StdOrdering::Acquire)).unwrap_or(usize::MAX);
    Ok(ShmChannel::new(Shared {
        region,
        wakers,
        peer,
        out: 1,
        capacity,
        max_in,
        max_out,
        broken: AtomicBool::new(false),
        broken_why: Mutex::new(String::new()),
        light: light_barrier(),
    }))
}
