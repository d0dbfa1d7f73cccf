//! Length-prefixed frames over a byte stream, as Python's
//! `multiprocessing.connection` writes them: a 4-byte big-endian signed length,
//! or, for a message over 2^31 − 1 bytes, −1 followed by an 8-byte big-endian
//! length; then the message. ipckit speaks them over TCP, on any stream given
//! to `Framed`, and (in `sys`) over the stream sockets that carry message
//! channels on macOS.
//!
//! Both halves survive a timeout in the middle of a frame: the reader keeps the
//! part it has and continues on the next call, and the writer keeps the part it
//! has not sent and sends it before the next frame. The peer never sees a torn
//! message.
//!
//! Broken framing and an oversized frame are [`Fault`]s (`Protocol`,
//! `TooLarge`), which `error.rs` maps to `ErrorKind::Protocol` and
//! `ErrorKind::FrameTooLarge`.

use std::io::{self, Read, Write};

use super::fault::{Fault, FaultKind, too_large};

/// The largest length the 4-byte form carries.
const SHORT_MAX: u64 = 0x7fff_ffff;
/// Messages below this size go out with their header in one write (one syscall),
/// as Python does below 16 KiB.
const COALESCE: usize = 16 * 1024;
/// The most a frame's buffer grows by before any of its body has arrived;
/// after that it at most doubles what has.
const GROW_FIRST: usize = 64 * 1024;

/// The header for a message of `len` bytes, and how many of its bytes are used.
pub(crate) fn header(len: u64) -> ([u8; 12], usize) {
    let mut h = [0u8; 12];
    if len <= SHORT_MAX {
        h[..4].copy_from_slice(&(len as u32).to_be_bytes());
        (h, 4)
    } else {
        h[..4].copy_from_slice(&(-1i32).to_be_bytes());
        h[4..].copy_from_slice(&len.to_be_bytes());
        (h, 12)
    }
}

fn protocol(message: String) -> io::Error {
    Fault::io(FaultKind::Protocol, message)
}

/// Reads frames; keeps a partial frame across a timed-out or interrupted read.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    head: [u8; 12],
    head_have: usize,
    /// The body length, once the header is complete.
    body_len: Option<usize>,
    body: Vec<u8>,
}

impl FrameReader {
    /// Reads the next whole message into `out` (replacing its contents). Returns
    /// `Ok(false)` when the stream ended cleanly between two frames.
    ///
    /// An I/O error (a timeout, say) leaves the partial frame in place for the
    /// next call. A message longer than `max` is an `ErrorKind::FrameTooLarge`
    /// error; its body is not read, so the stream is out of step afterwards and
    /// must be closed.
    pub(crate) fn read_from(
        &mut self,
        r: &mut impl Read,
        max: usize,
        out: &mut Vec<u8>,
    ) -> io::Result<bool> {
        let len = match self.body_len {
            Some(len) => len,
            None => match self.read_header(r, max)? {
                Some(len) => len,
                None => return Ok(false),
            },
        };
        while self.body.len() < len {
            // Grow as bytes arrive, never from the announced length: a peer
            // that announces a large frame and sends little of it makes this
            // hold little more than it sent.
            let want = (len - self.body.len())
                .min(self.body.len().max(GROW_FIRST))
                .min(1 << 20);
            self.body.reserve(want);
            let got = r.by_ref().take(want as u64).read_to_end(&mut self.body)?;
            if got == 0 {
                return Err(protocol(format!(
                    "the peer closed the stream in the middle of a message ({} of {len} bytes)",
                    self.body.len()
                )));
            }
        }
        std::mem::swap(out, &mut self.body);
        self.body.clear();
        self.body_len = None;
        self.head_have = 0;
        Ok(true)
    }

    fn read_header(&mut self, r: &mut impl Read, max: usize) -> io::Result<Option<usize>> {
        let mut need = if self.head_have < 4 { 4 } else { 12 };
        while self.head_have < need {
            let n = r.read(&mut self.head[self.head_have..need])?;
            if n == 0 {
                if self.head_have == 0 {
                    return Ok(None);
                }
                return Err(protocol(format!(
                    "the peer closed the stream in the middle of a frame header ({} of {need} bytes)",
                    self.head_have
                )));
            }
            self.head_have += n;
            if self.head_have == 4 {
                let short = i32::from_be_bytes(self.head[..4].try_into().unwrap_or_default());
                match short {
                    -1 => need = 12,
                    n if n < 0 => {
                        return Err(protocol(format!(
                            "invalid frame length {n} (a length is 0 or more, or -1 for the 8-byte form)"
                        )));
                    }
                    _ => {}
                }
            }
        }
        let len = if need == 4 {
            u64::from(u32::from_be_bytes(
                self.head[..4].try_into().unwrap_or_default(),
            ))
        } else {
            u64::from_be_bytes(self.head[4..12].try_into().unwrap_or_default())
        };
        if len > max as u64 {
            return Err(too_large(len, max));
        }
        let len = len as usize;
        self.body.clear();
        self.body_len = Some(len);
        Ok(Some(len))
    }
}

/// Writes frames; keeps the unsent part of a frame whose write timed out.
#[derive(Debug, Default)]
pub(crate) struct FrameWriter {
    /// The rest of a frame a timed-out write left behind: `pending[sent..]`.
    pending: Vec<u8>,
    sent: usize,
}

impl FrameWriter {
    /// Writes one message as a frame. On an error after part of the frame went
    /// out, the rest is kept and written first by the next call.
    pub(crate) fn write_to(&mut self, w: &mut impl Write, msg: &[u8]) -> io::Result<()> {
        self.finish_pending(w)?;
        let (h, hlen) = header(msg.len() as u64);
        if msg.len() < COALESCE {
            let mut frame = Vec::with_capacity(hlen + msg.len());
            frame.extend_from_slice(&h[..hlen]);
            frame.extend_from_slice(msg);
            self.write_keeping_rest(w, &frame, &[])
        } else {
            self.write_keeping_rest(w, &h[..hlen], msg)
        }
    }

    /// Puts a whole frame for `msg` behind whatever is pending, to be written
    /// by [`finish_pending`](FrameWriter::finish_pending) (the async layer).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn queue(&mut self, msg: &[u8]) {
        let (h, hlen) = header(msg.len() as u64);
        self.pending.reserve(hlen + msg.len());
        self.pending.extend_from_slice(&h[..hlen]);
        self.pending.extend_from_slice(msg);
    }

    /// Whether part of a frame waits to be written.
    #[cfg_attr(not(target_vendor = "apple"), allow(dead_code))]
    pub(crate) fn has_pending(&self) -> bool {
        self.sent < self.pending.len()
    }

    /// Writes what a timed-out call left behind, if anything.
    pub(crate) fn finish_pending(&mut self, w: &mut impl Write) -> io::Result<()> {
        while self.sent < self.pending.len() {
            match w.write(&self.pending[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pending.clear();
        self.sent = 0;
        Ok(())
    }

    fn write_keeping_rest(&mut self, w: &mut impl Write, a: &[u8], b: &[u8]) -> io::Result<()> {
        let total = a.len() + b.len();
        let mut done = 0;
        while done < total {
            let part = if done < a.len() {
                &a[done..]
            } else {
                &b[done - a.len()..]
            };
            match w.write(part) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if done > 0 {
                        // Part of the frame is out: keep the rest for the next call.
                        if done < a.len() {
                            self.pending.extend_from_slice(&a[done..]);
                            self.pending.extend_from_slice(b);
                        } else {
                            self.pending.extend_from_slice(&b[done - a.len()..]);
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn encode(msgs: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = FrameWriter::default();
        for m in msgs {
            w.write_to(&mut out, m).unwrap();
        }
        out
    }

    fn decode_all(bytes: &[u8], max: usize) -> io::Result<Vec<Vec<u8>>> {
        let mut r = FrameReader::default();
        let mut cur = Cursor::new(bytes);
        let mut out = Vec::new();
        let mut msg = Vec::new();
        while r.read_from(&mut cur, max, &mut msg)? {
            out.push(msg.clone());
        }
        Ok(out)
    }

    #[test]
    fn headers_match_pythons_struct_pack() {
        // struct.pack("!i", 5) and struct.pack("!i", -1) + struct.pack("!Q", 2**31)
        assert_eq!(&header(5).0[..4], &[0, 0, 0, 5]);
        assert_eq!(header(5).1, 4);
        assert_eq!(header(SHORT_MAX).1, 4);
        let (h, n) = header(1 << 31);
        assert_eq!(n, 12);
        assert_eq!(
            &h[..12],
            &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0]
        );
    }

    #[test]
    fn round_trips_including_empty_messages() {
        let big = vec![9u8; 100_000];
        let msgs: Vec<&[u8]> = vec![b"", b"a", &big, b"", b"end"];
        assert_eq!(decode_all(&encode(&msgs), 1 << 20).unwrap(), msgs);
    }

    #[test]
    fn decodes_the_extended_form() {
        let mut bytes = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 3];
        bytes.extend_from_slice(b"xyz");
        assert_eq!(decode_all(&bytes, 10).unwrap(), vec![b"xyz".to_vec()]);
    }

    #[test]
    fn too_large_names_both_sizes() {
        let err = decode_all(&encode(&[&[0u8; 11]]), 10).unwrap_err();
        let fault = super::super::fault_of(&err).unwrap();
        assert_eq!(fault.kind, FaultKind::TooLarge);
        assert!(err.to_string().contains("11 bytes"), "{err}");
        assert!(err.to_string().contains("10 bytes"), "{err}");
    }

    #[test]
    fn truncated_and_negative_frames_are_protocol_errors() {
        for (bytes, needle) in [
            (&[0u8, 0][..], "frame header (2 of 4"),
            (&[0, 0, 0, 5, 1, 2][..], "middle of a message (2 of 5"),
            (&[0xff, 0xff, 0xff, 0xfe][..], "invalid frame length -2"),
            (&[0xff, 0xff, 0xff, 0xff, 0, 0][..], "frame header (6 of 12"),
        ] {
            let err = decode_all(bytes, 100).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{bytes:?}");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    /// A reader that hands out one byte per call and times out every other call.
    struct Stutter<'a> {
        data: &'a [u8],
        pos: usize,
        tick: bool,
    }

    impl Read for Stutter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.tick = !self.tick;
            if self.tick {
                return Err(io::ErrorKind::TimedOut.into());
            }
            if self.pos == self.data.len() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.data[self.pos];
            self.pos += 1;
            Ok(1)
        }
    }

    #[test]
    fn a_timeout_mid_frame_loses_nothing() {
        let msgs: Vec<&[u8]> = vec![b"hello", b"", b"world!"];
        let bytes = encode(&msgs);
        let mut src = Stutter {
            data: &bytes,
            pos: 0,
            tick: false,
        };
        let mut r = FrameReader::default();
        let mut got = Vec::new();
        let mut msg = Vec::new();
        loop {
            match r.read_from(&mut src, 100, &mut msg) {
                Ok(true) => got.push(msg.clone()),
                Ok(false) => break,
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
            }
        }
        assert_eq!(got, msgs);
    }

    /// A writer that accepts `room` bytes, then times out until given more room.
    struct Tight {
        out: Vec<u8>,
        room: usize,
    }

    impl Write for Tight {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let n = buf.len().min(self.room);
            self.out.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_timeout_mid_write_keeps_the_rest_for_the_next_call() {
        let big = vec![7u8; 40_000];
        let mut w = FrameWriter::default();
        let mut sink = Tight {
            out: Vec::new(),
            room: 1000,
        };
        let err = w.write_to(&mut sink, &big).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        sink.room = usize::MAX;
        w.write_to(&mut sink, b"next").unwrap();
        let msgs = decode_all(&sink.out, 1 << 20).unwrap();
        assert_eq!(msgs, vec![big, b"next".to_vec()]);
    }
}
