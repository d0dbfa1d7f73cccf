//! Node's `json` serialization: one JSON value per line (`JSON.stringify(msg) +
//! "\n"`), over a byte stream.
//!
//! The line codec is pure logic over read/write closures, so it is unit-tested
//! here without a process.

use std::io;
use std::sync::Mutex;
use std::time::Instant;

use super::uv_frame::{self, Deframer};
use crate::error::{Error, ErrorKind};
use crate::sys;

/// The most read from the stream at once.
const CHUNK: usize = 64 * 1024;

/// Lines received but not yet taken, and where the scan for the next newline
/// stopped.
#[derive(Debug, Default)]
pub(super) struct LineBuf {
    buf: Vec<u8>,
    /// Bytes before this were taken already.
    start: usize,
    /// Bytes from `start` up to here hold no newline.
    scanned: usize,
    /// The stream has ended; what is left in `buf` is all there will be.
    ended: bool,
}

impl LineBuf {
    /// Moves the next whole line, without its `\n`, into `out`; `Ok(false)` at
    /// the end of the stream. `read` reads more bytes (0 at the end). A line of
    /// over `max` bytes fails with `FrameTooLarge`; a stream that ends inside a
    /// line fails with `Protocol` once, then reads as the end. A `read` error
    /// (a timeout) loses nothing: the next call goes on where this one stopped.
    pub(super) fn next_line(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
        mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<bool> {
        loop {
            if let Some(at) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + at;
                out.clear();
                out.extend_from_slice(&self.buf[self.start..end]);
                self.start = end + 1;
                self.scanned = self.start;
                return Ok(true);
            }
            self.scanned = self.buf.len();
            let pending = self.buf.len() - self.start;
            if pending > max {
                return Err(Error::new(
                    ErrorKind::FrameTooLarge,
                    format!(
                        "an incoming line of more than {max} bytes (no newline in \
                         {pending} bytes) exceeds the maximum message size of {max} bytes"
                    ),
                )
                .into());
            }
            if self.ended {
                self.compact();
                if self.buf.is_empty() {
                    return Ok(false);
                }
                self.buf.clear();
                self.scanned = 0;
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "the channel ended in the middle of a message: {pending} bytes \
                         without the newline that ends a message"
                    ),
                )
                .into());
            }
            self.compact();
            let old = self.buf.len();
            self.buf.resize(old + CHUNK, 0);
            let got = read(&mut self.buf[old..]);
            self.buf.truncate(old + *got.as_ref().unwrap_or(&0));
            if got? == 0 {
                self.ended = true;
            }
        }
    }

    /// Drops the bytes already taken.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
    }
}

/// Bytes of committed messages that are not written yet.
#[derive(Debug, Default)]
pub(super) struct PendingWrite {
    buf: Vec<u8>,
    sent: usize,
}

impl PendingWrite {
    /// Writes `line` and a `\n`, after the rest of any earlier message. An error
    /// before this message's first byte went out leaves it unsent; after that the
    /// message is committed and its rest goes out first on the next call, so the
    /// peer never sees a torn line.
    /// `prefix` goes out before the line, in the same committed bytes (libuv's
    /// frame header on Windows, nothing on Unix).
    pub(super) fn send(
        &mut self,
        prefix: &[u8],
        line: &[u8],
        mut write: impl FnMut(&[u8]) -> io::Result<usize>,
    ) -> io::Result<()> {
        self.flush(&mut write)?;
        self.buf.clear();
        self.sent = 0;
        self.buf.extend_from_slice(prefix);
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        self.flush(&mut write)
    }

    fn flush(&mut self, write: &mut impl FnMut(&[u8]) -> io::Result<usize>) -> io::Result<()> {
        while self.sent < self.buf.len() {
            match write(&self.buf[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A byte stream carrying one JSON value per line; on Windows each write is
/// one of libuv's IPC frames ([`uv_frame`](super::uv_frame)), as Node's end
/// expects.
#[derive(Debug)]
pub(crate) struct Lines {
    stream: sys::Stream,
    reader: Mutex<(LineBuf, Deframer)>,
    writer: Mutex<PendingWrite>,
}

impl Lines {
    /// The byte stream the lines go over (for the OS handle impls of `os`).
    pub(crate) fn stream(&self) -> &sys::Stream {
        &self.stream
    }

    pub(super) fn new(stream: sys::Stream) -> Lines {
        Lines {
            stream,
            reader: Mutex::default(),
            writer: Mutex::default(),
        }
    }

    /// Sends `msg`, which must be one JSON value, as one line.
    pub(crate) fn send(&self, msg: &[u8], limit: Option<Instant>) -> io::Result<()> {
        check_json(msg)?;
        // Valid JSON holds a newline only as whitespace between tokens, never
        // inside a string: a space there means the same and keeps the line whole.
        let line: Vec<u8> = msg
            .iter()
            .map(|&b| if b == b'\n' { b' ' } else { b })
            .collect();
        let frame;
        let prefix: &[u8] = if sys::child::LIBUV_FRAMES {
            frame = uv_frame::header(line.len() + 1)?;
            &frame
        } else {
            &[]
        };
        // The writer's lock is held for the whole call, a blocked one included.
        super::lock(&self.writer).send(prefix, &line, |buf| self.stream.write(buf, limit))
    }

    /// Receives the next line (valid JSON or not; the caller checks). The
    /// reader's lock is held for the whole call, a blocked one included: a
    /// `recv` through another handle waits for it, whatever its own limit.
    ///
    /// A peer that exits with bytes of ours unread resets the connection
    /// (`ECONNRESET`). Linux reports that once, after every byte the peer sent
    /// before it exited, so it is the end of the stream like a plain close: the
    /// end with no partial line buffered, the "cut short" error with one.
    fn recv_line(&self, out: &mut Vec<u8>, max: usize, limit: Option<Instant>) -> io::Result<bool> {
        let raw = |buf: &mut [u8]| match self.stream.read(buf, limit) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(0),
            other => other,
        };
        let mut reader = super::lock(&self.reader);
        let (lines, frames) = &mut *reader;
        if sys::child::LIBUV_FRAMES {
            lines.next_line(out, max, |buf| frames.read(buf, raw))
        } else {
            lines.next_line(out, max, raw)
        }
    }
}

impl Lines {
    /// Receives the next message: a line that must be one JSON value. A line
    /// that is not fails with `Protocol` for that message only
    /// ([`is_bad_line`]); the next call goes on with the next line.
    pub(crate) fn recv(
        &self,
        out: &mut Vec<u8>,
        max: usize,
        limit: Option<Instant>,
    ) -> io::Result<bool> {
        let more = self.recv_line(out, max, limit)?;
        if more {
            check_json(out)?;
        }
        Ok(more)
    }

    /// Shuts down reading, writing or both, as the stream allows (see
    /// `sys::Stream::shutdown`): shutting down reading ends a `recv` waiting
    /// now with the end of the channel.
    pub(crate) fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        self.stream.shutdown(how)
    }
}

/// Whether a receive failed on a line that is not JSON: an error for that
/// message only, the channel goes on.
pub(crate) fn is_bad_line(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
        .is_some_and(|inner| inner.kind() == ErrorKind::Protocol)
}

/// Checks that `msg` is exactly one JSON value.
pub(super) fn check_json(msg: &[u8]) -> io::Result<()> {
    serde_json::from_slice::<serde::de::IgnoredAny>(msg)
        .map(drop)
        .map_err(|e| not_json(msg, &e))
}

/// The error for a message that is not JSON, quoting its start.
pub(super) fn not_json(msg: &[u8], e: &serde_json::Error) -> io::Error {
    protocol(msg, format!("is not valid JSON ({e})"))
}

/// The error for a message that did not parse as a `ty` (`e` says why): not
/// JSON at all, or JSON of another shape.
pub(super) fn not_a(msg: &[u8], ty: &str, e: &serde_json::Error) -> io::Error {
    // serde stops at the first token that does not fit `ty`, so its error does
    // not tell whether the rest is JSON at all: check that first.
    match check_json(msg) {
        Err(not_json) => not_json,
        Ok(()) => protocol(msg, format!("does not parse as {ty}: {e}")),
    }
}

/// A `Protocol` error about `msg`, quoting its start.
fn protocol(msg: &[u8], what: String) -> io::Error {
    const QUOTE: usize = 60;
    let text = String::from_utf8_lossy(&msg[..msg.len().min(QUOTE)]);
    let more = if msg.len() > QUOTE { "..." } else { "" };
    Error::new(
        ErrorKind::Protocol,
        format!("a message of {} bytes {what}: {text:?}{more}", msg.len()),
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out `data` in pieces of `step` bytes.
    fn reader(data: &[u8], step: usize) -> impl FnMut(&mut [u8]) -> io::Result<usize> + '_ {
        let mut at = 0;
        move |buf| {
            let n = step.min(buf.len()).min(data.len() - at);
            buf[..n].copy_from_slice(&data[at..at + n]);
            at += n;
            Ok(n)
        }
    }

    fn lines(data: &[u8], step: usize) -> Vec<io::Result<Vec<u8>>> {
        let mut lb = LineBuf::default();
        let mut read = reader(data, step);
        let mut out = Vec::new();
        let mut got = Vec::new();
        loop {
            match lb.next_line(&mut out, 1 << 20, &mut read) {
                Ok(true) => got.push(Ok(out.clone())),
                Ok(false) => return got,
                Err(e) => got.push(Err(e)),
            }
        }
    }

    #[test]
    fn lines_split_at_newlines_whatever_the_read_sizes() {
        let data = b"{\"a\":1}\n\n[1,2]\n\"x\"\n";
        for step in [1, 2, 3, 7, 64 * 1024] {
            let got: Vec<Vec<u8>> = lines(data, step).into_iter().map(Result::unwrap).collect();
            assert_eq!(
                got,
                vec![
                    b"{\"a\":1}".to_vec(),
                    vec![],
                    b"[1,2]".to_vec(),
                    b"\"x\"".to_vec()
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn a_stream_ending_inside_a_line_is_one_error_then_the_end() {
        let got = lines(b"1\n{\"a\":", 3);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap(), b"1");
        let err = got[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("5 bytes without the newline"), "{err}");
    }

    #[test]
    fn a_read_error_loses_nothing() {
        let mut lb = LineBuf::default();
        let mut out = Vec::new();
        let mut calls = 0;
        let err = lb
            .next_line(&mut out, 100, |buf| {
                calls += 1;
                if calls == 1 {
                    buf[..3].copy_from_slice(b"[1,");
                    Ok(3)
                } else {
                    Err(io::ErrorKind::TimedOut.into())
                }
            })
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(lb.next_line(&mut out, 100, reader(b"2]\n", 10)).unwrap());
        assert_eq!(out, b"[1,2]");
    }

    #[test]
    fn a_line_over_the_limit_is_refused() {
        let mut lb = LineBuf::default();
        let mut out = Vec::new();
        let err = lb
            .next_line(&mut out, 10, reader(&[b'1'; 100], 5))
            .unwrap_err();
        assert!(
            err.to_string().contains("maximum message size of 10"),
            "{err}"
        );
    }

    #[test]
    fn a_write_cut_short_is_finished_before_the_next_message() {
        let mut pw = PendingWrite::default();
        let mut wire = Vec::new();
        let err = pw
            .send(b"", b"[1,2,3]", |buf| {
                if wire.is_empty() {
                    wire.extend_from_slice(&buf[..2]);
                    Ok(2)
                } else {
                    Err(io::ErrorKind::TimedOut.into())
                }
            })
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        pw.send(b"", b"4", |buf| {
            wire.extend_from_slice(buf);
            Ok(buf.len())
        })
        .unwrap();
        assert_eq!(wire, b"[1,2,3]\n4\n");
    }

    #[test]
    fn json_of_the_wrong_type_says_so() {
        let e = serde_json::from_slice::<u32>(b"\"x\"").unwrap_err();
        let err = not_a(b"\"x\"", "u32", &e).to_string();
        assert!(err.contains("does not parse as u32"), "{err}");
        let e = serde_json::from_slice::<u32>(b"{oops").unwrap_err();
        let err = not_a(b"{oops", "u32", &e).to_string();
        assert!(err.contains("not valid JSON"), "{err}");
    }

    #[test]
    fn only_json_passes_the_check() {
        check_json(b"{\"a\": [1, \"x\\ny\"]}").unwrap();
        check_json(b" 1 ").unwrap();
        for bad in [&b""[..], b"nope", b"1 2", b"{\"a\":"] {
            let err = check_json(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{bad:?}");
            assert!(err.to_string().contains("not valid JSON"), "{err}");
        }
    }
}
