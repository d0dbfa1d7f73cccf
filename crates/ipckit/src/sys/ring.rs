//! The ring of one direction of a shared-memory channel: a single-producer,
//! single-consumer queue of variable-size records in a byte area of shared
//! memory, with monotonic 64-bit write and read positions.
//!
//! A record is an 8-byte header (`u32` payload length, `u32` flags, native
//! byte order) and the payload, padded to a multiple of 8. A record never wraps
//! around the end of the area: when one does not fit in the tail, the writer
//! puts a `WRAP` header there and the record at offset 0, and publishes both
//! at once. A payload is at most `capacity / 2 - 8` bytes, so a record always
//! fits once the reader has drained the ring; larger messages are split into
//! chunks flagged `MORE`.
//!
//! The writer alone stores `write`, the reader alone stores `read`. The writer
//! fills a record, then publishes it with a release store of `write`; the
//! reader's acquire load of `write` makes the record's bytes visible before it
//! reads them, and its release store of `read` hands the space back. Nothing
//! read from the area is trusted: a length or flag that could not have been
//! written by a writer following this protocol is `Corrupt`.
//!
//! The only unsafe here is the copying of bytes in and out of the area, whose
//! validity [`Ring::new`]'s caller guarantees.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;
#[cfg(not(loom))]
use std::ptr;

use super::sync::{AtomicU64, Ordering};

/// The size of a record's header.
pub(crate) const RECORD_HEADER: usize = 8;
/// The payload goes on in the next record.
const MORE: u32 = 1;
/// No record here: the next one is at offset 0.
const WRAP: u32 = 2;

/// A position value on a 128-byte block of its own, so the writer's and the
/// reader's stores do not contend: x86's adjacent-line prefetcher moves
/// 64-byte lines in pairs, so two positions 64 bytes apart still bounce
/// together (crossbeam's `CachePadded` pads to 128 on x86-64 for this).
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub(crate) struct Line(pub(crate) AtomicU64);

/// The two positions of a ring, as laid out in shared memory.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Positions {
    /// Bytes published by the writer, ever.
    pub(crate) write: Line,
    /// Bytes consumed by the reader, ever.
    pub(crate) read: Line,
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<Positions>() == 256);

/// A ring whose records claim more than was published, or lengths and flags
/// no writer of this protocol writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Corrupt(pub(crate) String);

fn pad(len: usize) -> usize {
    len.next_multiple_of(8)
}

/// One ring: its positions and its byte area.
#[derive(Debug)]
pub(crate) struct Ring<'a> {
    pos: &'a Positions,
    data: *mut u8,
    cap: usize,
}

// SAFETY: a `Ring` is a view of shared memory that `Ring::new`'s caller keeps
// valid; its methods are safe to call from any thread under the single-writer,
// single-reader rule that the caller also guarantees.
unsafe impl Send for Ring<'_> {}
// SAFETY: as for `Send`.
unsafe impl Sync for Ring<'_> {}

impl<'a> Ring<'a> {
    /// A ring over `cap` bytes at `data`, with positions `pos`.
    ///
    /// # Safety
    ///
    /// `data` is valid for reads and writes of `cap` bytes for `'a` (it may be
    /// shared with other processes), `cap` is a multiple of 8 and at least 64,
    /// and across all processes at most one thread writes (`try_write`) and at
    /// most one reads (`try_read`) at a time. Under loom, `data` points to
    /// `cap` `loom::sync::atomic::AtomicU8`s instead.
    pub(crate) unsafe fn new(pos: &'a Positions, data: *mut u8, cap: usize) -> Ring<'a> {
        debug_assert!(cap.is_multiple_of(8) && cap >= 64);
        Ring { pos, data, cap }
    }

    /// The largest payload of one record.
    #[inline]
    pub(crate) fn max_chunk(&self) -> usize {
        self.cap / 2 - RECORD_HEADER
    }

    fn put_header(&self, off: usize, len: u32, flags: u32) {
        let (l, f) = (len.to_ne_bytes(), flags.to_ne_bytes());
        self.copy_in(off, &[l[0], l[1], l[2], l[3], f[0], f[1], f[2], f[3]]);
    }

    fn get_header(&self, off: usize) -> (u32, u32) {
        let mut header = [MaybeUninit::<u8>::uninit(); RECORD_HEADER];
        self.copy_out(off, &mut header);
        // SAFETY: `copy_out` initialised every byte of `header`.
        let header: [u8; RECORD_HEADER] = unsafe { std::mem::transmute(header) };
        let [a, b, c, d, e, f, g, h] = header;
        (
            u32::from_ne_bytes([a, b, c, d]),
            u32::from_ne_bytes([e, f, g, h]),
        )
    }

    /// Where a record of `len` payload bytes goes at write position `w`: its
    /// offset, the tail skipped before it, and whether the ring has room.
    /// `read_seen` is the writer's last look at the read position: only when
    /// that shows too little room is the position loaded again (each load may
    /// take the cache line from the reader's core).
    fn place(&self, w: u64, len: usize, read_seen: &mut u64) -> (usize, usize, bool) {
        let need = RECORD_HEADER + pad(len);
        let off = (w % self.cap as u64) as usize;
        let tail = self.cap - off;
        let (at, skip) = if need <= tail { (off, 0) } else { (0, tail) };
        let free = |r: u64| self.cap - (w.wrapping_sub(r) as usize).min(self.cap);
        if free(*read_seen) < skip + need {
            *read_seen = self.pos.read.0.load(Ordering::Acquire);
        }
        (at, skip, free(*read_seen) >= skip + need)
    }

    /// Whether a record of `len` payload bytes fits now (called by the writer;
    /// `read_seen` as for [`try_write`](Ring::try_write)).
    #[inline]
    pub(crate) fn has_room(&self, len: usize, read_seen: &mut u64) -> bool {
        self.place(self.pos.write.0.load(Ordering::Relaxed), len, read_seen)
            .2
    }

    /// Copies `src` into the area at `off`.
    ///
    /// Under loom the area is an array of `AtomicU8`, and each byte is a
    /// relaxed atomic store: loom then sees the bytes, and a reader that could
    /// see them before their publication (a weaker ordering on `write`) fails
    /// the model.
    fn copy_in(&self, off: usize, src: &[u8]) {
        assert!(off <= self.cap && src.len() <= self.cap - off);
        #[cfg(not(loom))]
        // SAFETY: `off + src.len() <= cap` (asserted), so the destination is
        // inside the area, which `new`'s caller keeps valid for writes; `src` is
        // a borrowed buffer of this process, not part of the area.
        unsafe {
            ptr::copy_nonoverlapping(src.as_ptr(), self.data.wrapping_add(off), src.len());
        }
        #[cfg(loom)]
        for (i, &b) in src.iter().enumerate() {
            let cell = self
                .data
                .cast::<loom::sync::atomic::AtomicU8>()
                .wrapping_add(off + i);
            // SAFETY: under loom, `new`'s caller passes an array of `cap`
            // `AtomicU8`s, and `off + i < cap`.
            unsafe { &*cell }.store(b, Ordering::Relaxed);
        }
    }

    /// Copies `dst.len()` bytes of the area at `off` into `dst` (see
    /// [`copy_in`](Ring::copy_in) for loom).
    fn copy_out(&self, off: usize, dst: &mut [MaybeUninit<u8>]) {
        assert!(off <= self.cap && dst.len() <= self.cap - off);
        #[cfg(not(loom))]
        // SAFETY: `off + dst.len() <= cap` (asserted), so the source is inside
        // the area, which `new`'s caller keeps valid for reads; `dst` is a
        // buffer of this process, not part of the area.
        unsafe {
            ptr::copy_nonoverlapping(
                self.data.wrapping_add(off),
                dst.as_mut_ptr().cast::<u8>(),
                dst.len(),
            );
        }
        #[cfg(loom)]
        for (i, d) in dst.iter_mut().enumerate() {
            let cell = self
                .data
                .cast::<loom::sync::atomic::AtomicU8>()
                .wrapping_add(off + i);
            // SAFETY: as in `copy_in`.
            d.write(unsafe { &*cell }.load(Ordering::Relaxed));
        }
    }

    /// Appends `chunk` (at most [`max_chunk`](Ring::max_chunk) bytes) as one
    /// record, flagged to go on in the next if `more`; `false` if it does not
    /// fit now. `read_seen` is the writer's own memory of the read position
    /// (start at 0), kept from call to call.
    #[inline]
    pub(crate) fn try_write(&self, chunk: &[u8], more: bool, read_seen: &mut u64) -> bool {
        debug_assert!(chunk.len() <= self.max_chunk());
        let w = self.pos.write.0.load(Ordering::Relaxed);
        let (at, skip, room) = self.place(w, chunk.len(), read_seen);
        if !room {
            return false;
        }
        let need = RECORD_HEADER + pad(chunk.len());
        if skip > 0 {
            self.put_header(self.cap - skip, 0, WRAP);
        }
        self.put_header(at, chunk.len() as u32, if more { MORE } else { 0 });
        // The payload's bytes are free: the reader has consumed them
        // (`free >= skip + need`), and this thread is the only writer.
        self.copy_in(at + RECORD_HEADER, chunk);
        self.pos
            .write
            .0
            .store(w + (skip + need) as u64, Ordering::Release);
        true
    }

    /// Takes the next record, appending its payload to `out`: `Some(more)`,
    /// where `more` says the message goes on in the next record, or `None`
    /// when nothing is published. It moves the reader's own position; the
    /// shared one follows in [`publish_if_due`](Ring::publish_if_due).
    #[inline]
    pub(crate) fn try_read(
        &self,
        out: &mut Vec<u8>,
        rd: &mut Reader,
    ) -> Result<Option<bool>, Corrupt> {
        let mut r = rd.pos;
        if r == rd.write_seen {
            rd.write_seen = self.pos.write.0.load(Ordering::Acquire);
            if r == rd.write_seen {
                return Ok(None);
            }
        }
        let w = rd.write_seen;
        let published = w.wrapping_sub(r);
        if published > self.cap as u64 || !published.is_multiple_of(8) || !r.is_multiple_of(8) {
            return Err(Corrupt(format!(
                "positions read {r} and write {w} are not those of a ring of {} bytes",
                self.cap
            )));
        }
        let mut off = (r % self.cap as u64) as usize;
        let (mut len, mut flags) = self.get_header(off);
        if flags == WRAP {
            if off == 0 || len != 0 {
                return Err(Corrupt(format!("a wrap record at offset {off}")));
            }
            r += (self.cap - off) as u64;
            off = 0;
            (len, flags) = self.get_header(0);
        }
        let len = len as usize;
        let need = RECORD_HEADER + pad(len);
        if flags & !MORE != 0 || len > self.max_chunk() || r + need as u64 > w {
            return Err(Corrupt(format!(
                "a record of {len} bytes with flags {flags:#x} at offset {off}, \
                 {} bytes published",
                w.wrapping_sub(r)
            )));
        }
        out.reserve(len);
        if off + need > self.cap {
            return Err(Corrupt(format!(
                "a record of {len} bytes at offset {off} crosses the end of the ring"
            )));
        }
        // The record was published (`r + need <= w`, acquire on `write`).
        self.copy_out(off + RECORD_HEADER, &mut out.spare_capacity_mut()[..len]);
        // SAFETY: `copy_out` initialised `len` more bytes after `out.len()`.
        unsafe { out.set_len(out.len() + len) };
        rd.pos = r + need as u64;
        Ok(Some(flags & MORE != 0))
    }

    /// Hands the space the reader has consumed back to the writer, when that is
    /// due: once an eighth of the ring is consumed, or when the reader has read
    /// everything it knows of (so it never waits with space unreturned). Each
    /// store can take the position's cache line from a writer that looks at it,
    /// so a reader that runs behind stores it seldom. Returns whether it
    /// stored.
    #[inline]
    pub(crate) fn publish_if_due(&self, rd: &mut Reader) -> bool {
        let due = rd.pos - rd.published >= (self.cap / 8) as u64 || rd.pos == rd.write_seen;
        if due && rd.pos != rd.published {
            self.pos.read.0.store(rd.pos, Ordering::Release);
            rd.published = rd.pos;
            return true;
        }
        false
    }

    /// Whether the writer has published past the reader's position.
    #[inline]
    pub(crate) fn has_data(&self, rd: &Reader) -> bool {
        self.pos.write.0.load(Ordering::Acquire) != rd.pos
    }
}

/// The reader's side of a ring, kept by the reader from call to call: its own
/// position, the position it last handed back, and the last write position it
/// saw. Starts at zero, as a new ring does.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    pos: u64,
    published: u64,
    write_seen: u64,
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn ring<'a>(area: &'a mut [u64], pos: &'a Positions) -> Ring<'a> {
        let (data, cap) = (area.as_mut_ptr().cast::<u8>(), area.len() * 8);
        // SAFETY: `area` is borrowed for as long as the ring lives, and the tests
        // use one thread.
        unsafe { Ring::new(pos, data, cap) }
    }

    #[test]
    fn records_wrap_and_keep_their_bytes() {
        let mut area = vec![0u64; 16]; // 128 bytes: chunks of up to 56
        let pos = Positions::default();
        let ring = ring(&mut area, &pos);
        assert_eq!(ring.max_chunk(), 56);
        let (mut seen_r, mut rd) = (0, Reader::default());
        let mut out = Vec::new();
        for round in 0..200u32 {
            let len = (round as usize * 13) % 57;
            let msg: Vec<u8> = (0..len).map(|i| (i as u32 + round) as u8).collect();
            assert!(
                ring.try_write(&msg, round % 3 == 0, &mut seen_r),
                "round {round}"
            );
            out.clear();
            assert_eq!(ring.try_read(&mut out, &mut rd), Ok(Some(round % 3 == 0)));
            assert_eq!(out, msg, "round {round}");
            assert!(ring.publish_if_due(&mut rd), "caught up: handed back");
            assert_eq!(ring.try_read(&mut out, &mut rd), Ok(None));
        }
    }

    #[test]
    fn a_full_ring_refuses_until_read() {
        let mut area = vec![0u64; 16];
        let pos = Positions::default();
        let ring = ring(&mut area, &pos);
        let (mut seen_r, mut rd) = (0, Reader::default());
        let mut n = 0;
        while ring.try_write(&[n as u8; 20], false, &mut seen_r) {
            n += 1;
        }
        assert_eq!(n, 4, "4 records of 32 bytes fit in 128");
        let mut out = Vec::new();
        assert_eq!(ring.try_read(&mut out, &mut rd), Ok(Some(false)));
        assert!(
            !ring.try_write(&[9; 20], false, &mut seen_r),
            "not handed back yet"
        );
        assert!(
            ring.publish_if_due(&mut rd),
            "32 bytes is over an eighth of 128"
        );
        assert!(ring.try_write(&[9; 20], false, &mut seen_r));
        for want in [1u8, 2, 3, 9] {
            out.clear();
            ring.try_read(&mut out, &mut rd).unwrap();
            assert_eq!(out, vec![want; 20]);
        }
    }

    #[test]
    fn corrupt_records_are_refused() {
        let mut area = vec![0u64; 16];
        let pos = Positions::default();
        let ring = ring(&mut area, &pos);
        assert!(ring.try_write(b"hello", false, &mut 0));
        // A length past what was published.
        ring.put_header(0, 50, 0);
        assert!(
            ring.try_read(&mut Vec::new(), &mut Reader::default())
                .is_err()
        );
        ring.put_header(0, 5, 0x80);
        assert!(
            ring.try_read(&mut Vec::new(), &mut Reader::default())
                .is_err(),
            "unknown flag"
        );
        ring.put_header(0, 0, WRAP);
        assert!(
            ring.try_read(&mut Vec::new(), &mut Reader::default())
                .is_err(),
            "wrap at 0"
        );
        pos.write.0.store(1_000, Ordering::Relaxed);
        assert!(
            ring.try_read(&mut Vec::new(), &mut Reader::default())
                .is_err(),
            "bad positions"
        );
    }
}

/// The loom model of the index protocol: a writer and a reader on their own
/// threads pass messages through a ring small enough to wrap, and every
/// message arrives whole and in order in every interleaving loom explores.
///
/// Run with `RUSTFLAGS="--cfg loom"`, see docs/TESTING.md.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    struct Shared {
        pos: Positions,
        area: [loom::sync::atomic::AtomicU8; 64],
    }

    fn ring(shared: &Shared) -> Ring<'_> {
        // SAFETY: `shared` outlives the ring; one writer and one reader thread.
        // (Under loom the ring reads and writes the area as `AtomicU8`s.)
        unsafe {
            Ring::new(
                &shared.pos,
                shared.area.as_ptr().cast_mut().cast::<u8>(),
                64,
            )
        }
    }

    #[test]
    fn loom_messages_arrive_whole_and_in_order() {
        loom::model(|| {
            let shared = Arc::new(Shared {
                pos: Positions::default(),
                area: std::array::from_fn(|_| loom::sync::atomic::AtomicU8::new(0)),
            });
            // Chunks of at most 24 bytes in a 64-byte area: the third wraps.
            let msgs: [&[u8]; 3] = [b"0123456789abcdef01", b"xy", b"0123456789abcdefghij"];
            let writer = {
                let shared = Arc::clone(&shared);
                loom::thread::spawn(move || {
                    let ring = ring(&shared);
                    let mut seen_r = 0;
                    for m in msgs {
                        while !ring.try_write(m, false, &mut seen_r) {
                            loom::thread::yield_now();
                        }
                    }
                })
            };
            let ring = ring(&shared);
            let mut rd = Reader::default();
            for m in msgs {
                let mut out = Vec::new();
                loop {
                    match ring.try_read(&mut out, &mut rd).expect("never corrupt") {
                        Some(more) => {
                            ring.publish_if_due(&mut rd);
                            assert!(!more);
                            break;
                        }
                        None => loom::thread::yield_now(),
                    }
                }
                assert_eq!(out, m);
            }
            writer.join().unwrap();
        });
    }
}
