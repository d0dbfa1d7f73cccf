//! A bare single-producer, single-consumer ring in a named shared-memory
//! region: the benchmark baseline of the shared-memory channel (its public
//! face is a module above `sys`). Two positions and a `memcpy`; no wake-ups, no peer-death
//! detection, no chunking: both sides spin.
//!
//! Layout of the region (`#[repr(C)]`):
//!
//! | offset | what |
//! |---|---|
//! | 0 | magic `b"ipckitbr"`, capacity (`u64`) |
//! | 64 | the writer's and the reader's claim (who may send, who may receive) |
//! | 128 | `write`: bytes published by the writer, ever (a line of its own) |
//! | 256 | `read`: bytes consumed by the reader, ever (a line of its own) |
//! | 384 | the ring's `capacity` bytes |
//!
//! A record is an 8-byte header (`u32` payload length, then 4 unused bytes)
//! and the payload, padded to a multiple of 8; a record that does not fit in
//! the tail of the area goes to offset 0 after a header of length `WRAP`,
//! published together. The writer publishes a record with a release store
//! of `write`, the reader hands the space back with a release store of
//! `read` after each record; each side keeps its last look at the other's
//! position and loads it again only when that shows too little.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::io;
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::shm::Region;

const MAGIC: [u8; 8] = *b"ipckitbr";
const HEADER: usize = 8;
const WRAP: u32 = u32::MAX;
/// Where the ring's bytes start.
const DATA_OFFSET: usize = 384;

#[repr(C, align(128))]
#[derive(Debug)]
struct Line(AtomicU64);

#[repr(C)]
#[derive(Debug)]
struct Header {
    magic: [u8; 8],
    capacity: u64,
    _pad: [u64; 6],
    writer: AtomicU64,
    reader: AtomicU64,
    _pad2: [u64; 6],
    write: Line,
    read: Line,
}

const _: () = assert!(size_of::<Header>() == DATA_OFFSET);
const _: () = assert!(std::mem::offset_of!(Header, write) == 128);

/// Unique per handle in this process; with the pid, unique across processes.
static HANDLES: AtomicU32 = AtomicU32::new(1);

fn pad(len: usize) -> usize {
    len.next_multiple_of(8)
}

/// One end of a bare ring. Not `Sync` (its cached positions are `Cell`s): a
/// handle is used by one thread at a time, and [`send`](BareRing::send) and
/// [`recv`](BareRing::recv) claim the writer's and the reader's role in the
/// region for this handle, so at most one handle ever writes and one reads.
#[derive(Debug)]
pub(crate) struct BareRing {
    region: Region,
    cap: usize,
    token: u64,
    /// Whether this handle holds the writer's / the reader's claim.
    writes: Cell<bool>,
    reads: Cell<bool>,
    /// The writer's own position and its last look at `read`.
    w: Cell<u64>,
    read_seen: Cell<u64>,
    /// The reader's own position and its last look at `write`.
    r: Cell<u64>,
    write_seen: Cell<u64>,
}

impl BareRing {
    /// The region's size for a ring of `capacity` bytes.
    pub(crate) fn region_size(capacity: usize) -> Option<usize> {
        capacity.checked_add(DATA_OFFSET)
    }

    /// Lays a new ring of `capacity` bytes (a multiple of 8, at least 64) out
    /// in `region`, freshly created (zeroed) and of `region_size(capacity)`
    /// bytes.
    pub(crate) fn create(region: Region, capacity: usize) -> io::Result<BareRing> {
        if !capacity.is_multiple_of(8)
            || capacity < 64
            || Self::region_size(capacity).is_none_or(|n| region.len() < n)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a bare ring of {capacity} bytes (a multiple of 8, at least 64) does not fit a region of {} bytes",
                    region.len()
                ),
            ));
        }
        let at = region.mapping().as_ptr();
        let fixed = [MAGIC, (capacity as u64).to_ne_bytes()].concat();
        // SAFETY: the region is at least `DATA_OFFSET` (> 16) bytes, checked
        // above; nobody else knows it has a ring yet (the opener checks the
        // magic, which this writes); `fixed` is a local buffer.
        unsafe { ptr::copy_nonoverlapping(fixed.as_ptr(), at, fixed.len()) };
        Ok(Self::with(region, capacity))
    }

    /// The ring in `region`, laid out by [`create`](BareRing::create).
    pub(crate) fn open(region: Region) -> io::Result<BareRing> {
        let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
        if region.len() < DATA_OFFSET {
            return Err(bad(format!(
                "a region of {} bytes is too small for a bare ring",
                region.len()
            )));
        }
        let mut fixed = [0u8; 16];
        // SAFETY: the region is at least `DATA_OFFSET` bytes (checked), so its
        // first 16 are mapped; `fixed` is a local buffer. The creator wrote
        // these bytes before the opener could find the region's ring.
        unsafe { ptr::copy_nonoverlapping(region.mapping().as_ptr(), fixed.as_mut_ptr(), 16) };
        let (magic, cap) = fixed.split_at(8);
        let cap = u64::from_ne_bytes(cap.try_into().expect("8 bytes"));
        if magic != MAGIC {
            return Err(bad("the region is not a bare ring (wrong magic)".to_owned()));
        }
        let cap = usize::try_from(cap).ok().filter(|&c| {
            c.is_multiple_of(8)
                && c >= 64
                && Self::region_size(c).is_some_and(|n| n <= region.len())
        });
        let Some(cap) = cap else {
            return Err(bad(format!(
                "the region's bare ring claims a capacity that does not fit its {} bytes",
                region.len()
            )));
        };
        Ok(Self::with(region, cap))
    }

    fn with(region: Region, cap: usize) -> BareRing {
        let token = (u64::from(std::process::id()) << 32)
            | u64::from(HANDLES.fetch_add(1, Ordering::Relaxed));
        BareRing {
            region,
            cap,
            token,
            writes: Cell::new(false),
            reads: Cell::new(false),
            w: Cell::new(0),
            read_seen: Cell::new(0),
            r: Cell::new(0),
            write_seen: Cell::new(0),
        }
    }

    fn header(&self) -> &Header {
        // SAFETY: the region is at least `DATA_OFFSET` bytes (checked by
        // `create` and `open`) and page-aligned; `Header` is `repr(C)` and
        // valid for any bit pattern (bytes, integers, atomics); other
        // processes change only its atomics after creation.
        unsafe { &*self.region.mapping().as_ptr().cast::<Header>() }
    }

    fn data(&self) -> *mut u8 {
        self.region.mapping().as_ptr().wrapping_add(DATA_OFFSET)
    }

    /// The largest message: a record always fits once the ring is drained.
    pub(crate) fn max_message(&self) -> usize {
        self.cap / 2 - HEADER
    }

    /// Takes the writer's (`writer`) or the reader's claim for this handle,
    /// once, and then starts from the shared positions (a handle may take
    /// over from one that was dropped); `false` if another handle has it.
    fn claim(&self, writer: bool) -> bool {
        let h = self.header();
        let (claim, held) = if writer {
            (&h.writer, &self.writes)
        } else {
            (&h.reader, &self.reads)
        };
        if !held.get() {
            let got = claim.compare_exchange(0, self.token, Ordering::Acquire, Ordering::Relaxed);
            if got.is_err() {
                return false;
            }
            held.set(true);
            let w = h.write.0.load(Ordering::Acquire);
            let r = h.read.0.load(Ordering::Acquire);
            if writer {
                self.w.set(w);
                self.read_seen.set(r);
            } else {
                self.r.set(r);
                self.write_seen.set(w);
            }
        }
        true
    }

    /// Sends `msg`, spinning while the ring is full: `Err` with the rule when
    /// `msg` is over [`max_message`](BareRing::max_message) or another handle
    /// is the ring's writer.
    pub(crate) fn send(&self, msg: &[u8]) -> Result<(), String> {
        let cap = self.cap;
        if msg.len() > self.max_message() {
            return Err(format!(
                "a message of {} bytes is over this bare ring's maximum of {} bytes",
                msg.len(),
                self.max_message()
            ));
        }
        let h = self.header();
        if !self.claim(true) {
            return Err("another handle is this bare ring's writer (one writer per ring)".into());
        }
        let w = self.w.get();
        let need = HEADER + pad(msg.len());
        let off = (w % cap as u64) as usize;
        let (at, skip) = if need <= cap - off {
            (off, 0)
        } else {
            (0, cap - off)
        };
        let mut read_seen = self.read_seen.get();
        while (cap as u64) - (w - read_seen) < (skip + need) as u64 {
            std::hint::spin_loop();
            read_seen = h.read.0.load(Ordering::Acquire);
        }
        self.read_seen.set(read_seen);
        let data = self.data();
        if skip > 0 {
            let wrap = WRAP.to_ne_bytes();
            // SAFETY: `off + 4 <= cap` (`off` is a multiple of 8 below `cap`),
            // inside the area, which the region maps; the reader has handed
            // these bytes back (`read_seen` shows room for `skip + need`), and
            // this handle is the one writer (claimed).
            unsafe { ptr::copy_nonoverlapping(wrap.as_ptr(), data.wrapping_add(off), 4) };
        }
        let len = (msg.len() as u32).to_ne_bytes();
        // SAFETY: `at + HEADER + msg.len() <= cap` (the record fits at `at`),
        // inside the mapped area; the bytes are free as above; `len` and `msg`
        // are this process's buffers, not part of the area.
        unsafe {
            ptr::copy_nonoverlapping(len.as_ptr(), data.wrapping_add(at), 4);
        }
        // SAFETY: as above.
        unsafe {
            ptr::copy_nonoverlapping(msg.as_ptr(), data.wrapping_add(at + HEADER), msg.len());
        }
        let w = w + (skip + need) as u64;
        h.write.0.store(w, Ordering::Release);
        self.w.set(w);
        Ok(())
    }

    /// Receives the next message into `buf`, spinning while the ring is
    /// empty, and returns its length: `Err` with the rule when `buf` is too
    /// short for it (it stays in the ring), when another handle is the ring's
    /// reader, or when the ring holds what no writer of it writes.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> Result<usize, String> {
        let cap = self.cap;
        let h = self.header();
        if !self.claim(false) {
            return Err("another handle is this bare ring's reader (one reader per ring)".into());
        }
        let mut r = self.r.get();
        let mut write_seen = self.write_seen.get();
        while write_seen == r {
            std::hint::spin_loop();
            write_seen = h.write.0.load(Ordering::Acquire);
        }
        self.write_seen.set(write_seen);
        let corrupt = |what: &str| Err(format!("the bare ring is corrupt: {what}"));
        if write_seen - r > cap as u64 || !(write_seen - r).is_multiple_of(8) {
            return corrupt("positions out of range");
        }
        let data = self.data();
        let mut off = (r % cap as u64) as usize;
        let header = |off: usize| {
            let mut len = [0u8; 4];
            // SAFETY: `off` is a multiple of 8 below `cap`, so `off + 4 <= cap`,
            // inside the mapped area; the writer published these bytes (the
            // acquire load of `write` shows them) and leaves them alone until
            // `read` passes them.
            unsafe { ptr::copy_nonoverlapping(data.wrapping_add(off), len.as_mut_ptr(), 4) };
            u32::from_ne_bytes(len)
        };
        let mut len = header(off);
        if len == WRAP {
            r += (cap - off) as u64;
            off = 0;
            len = header(0);
        }
        let len = len as usize;
        let need = HEADER + pad(len);
        if len > self.max_message() || off + need > cap || r + need as u64 > write_seen {
            return corrupt(&format!("a record of {len} bytes at offset {off}"));
        }
        if len > buf.len() {
            return Err(format!(
                "a message of {len} bytes does not fit the buffer of {} bytes",
                buf.len()
            ));
        }
        // SAFETY: `off + HEADER + len <= cap` (checked), inside the mapped
        // area, published as above; `buf` is this process's buffer of at
        // least `len` bytes.
        unsafe { ptr::copy_nonoverlapping(data.wrapping_add(off + HEADER), buf.as_mut_ptr(), len) };
        r += need as u64;
        h.read.0.store(r, Ordering::Release);
        self.r.set(r);
        Ok(len)
    }
}

impl Drop for BareRing {
    fn drop(&mut self) {
        let h = self.header();
        if self.writes.get() {
            h.writer.store(0, Ordering::Release);
        }
        if self.reads.get() {
            h.reader.store(0, Ordering::Release);
        }
    }
}
