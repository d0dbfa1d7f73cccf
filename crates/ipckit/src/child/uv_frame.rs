//! libuv's IPC frames: how Node's channel travels over a Windows pipe.
//!
//! On Windows libuv does not hand an IPC pipe's bytes over as they are: every
//! write is one frame, a 16-byte header of four little-endian `u32`s — flags,
//! a reserved word, the length of the data, a reserved word that must be 0 —
//! then, when the flags say a socket is passed, a 632-byte socket-transfer
//! record, then the data. Node's `json` lines are the data. On Unix the same
//! channel is a plain byte stream, and nothing here is used.
//!
//! Pure logic over a read closure, so it is unit-tested on every OS.

use std::io;

use crate::error::{Error, ErrorKind};

/// The size of a frame header.
pub(super) const HEADER: usize = 16;
/// The frame carries data (`data_length` > 0).
const HAS_DATA: u32 = 0x01;
/// The frame carries a socket-transfer record before its data.
const HAS_SOCKET_XFER: u32 = 0x02;
/// The passed socket is a TCP connection (with `HAS_SOCKET_XFER` only).
const XFER_IS_TCP_CONNECTION: u32 = 0x04;
/// The size of a socket-transfer record (`WSAPROTOCOL_INFOW` and an error word).
const XFER_INFO: usize = 632;

/// The header of a frame of `len` data bytes, as libuv writes it.
pub(super) fn header(len: usize) -> io::Result<[u8; HEADER]> {
    let len = u32::try_from(len).map_err(|_| {
        Error::new(
            ErrorKind::FrameTooLarge,
            format!(
                "a message of {len} bytes does not fit a libuv IPC frame (at most {} bytes)",
                u32::MAX
            ),
        )
    })?;
    let mut h = [0u8; HEADER];
    if len > 0 {
        h[..4].copy_from_slice(&HAS_DATA.to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
    }
    Ok(h)
}

/// Takes the data out of a stream of frames, across any read boundaries.
#[derive(Debug, Default)]
pub(super) struct Deframer {
    /// The header being read, and how much of it has arrived.
    head: [u8; HEADER],
    have: usize,
    /// Bytes of a socket-transfer record still to skip.
    skip: usize,
    /// Data bytes of the current frame still to come.
    data: usize,
}

impl Deframer {
    /// Reads data bytes into `out` through `read`, which reads the raw stream
    /// (0 at its end); returns how many, 0 at the end of the stream. A stream
    /// that ends inside a frame, or a header that is not libuv's, is a
    /// `Protocol` error. An error from `read` loses nothing.
    pub(super) fn read(
        &mut self,
        out: &mut [u8],
        mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.skip > 0 {
                let mut sink = [0u8; XFER_INFO];
                let n = read(&mut sink[..self.skip])?;
                if n == 0 {
                    return Err(cut_short(format!(
                        "{} bytes of a socket-transfer record",
                        self.skip
                    )));
                }
                self.skip -= n;
                continue;
            }
            if self.data > 0 {
                let want = out.len().min(self.data);
                let n = read(&mut out[..want])?;
                if n == 0 {
                    return Err(cut_short(format!("{} bytes of a frame's data", self.data)));
                }
                self.data -= n;
                return Ok(n);
            }
            let n = read(&mut self.head[self.have..])?;
            if n == 0 {
                if self.have == 0 {
                    return Ok(0);
                }
                return Err(cut_short(format!(
                    "{} bytes of a frame header",
                    HEADER - self.have
                )));
            }
            self.have += n;
            if self.have == HEADER {
                self.have = 0;
                self.start_frame()?;
            }
        }
    }

    /// Checks the header just read and sets up its record and data.
    fn start_frame(&mut self) -> io::Result<()> {
        let word = |i: usize| u32::from_le_bytes(self.head[i * 4..i * 4 + 4].try_into().unwrap());
        let (flags, len, reserved) = (word(0), word(2), word(3));
        let valid = HAS_DATA | HAS_SOCKET_XFER | XFER_IS_TCP_CONNECTION;
        if flags & !valid != 0 || reserved != 0 || (flags & HAS_DATA != 0) != (len != 0) {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "the channel's peer sent a frame header that is not libuv's \
                     (flags {flags:#x}, data length {len}, reserved word {reserved:#x}): \
                     is the other end a Node process?"
                ),
            )
            .into());
        }
        if flags & HAS_SOCKET_XFER != 0 {
            // A handle sent with `process.send(msg, handle)`: it cannot be taken
            // here; its message still arrives (Node wraps it as NODE_HANDLE).
            self.skip = XFER_INFO;
        }
        self.data = len as usize;
        Ok(())
    }
}

fn cut_short(what: String) -> io::Error {
    Error::new(
        ErrorKind::Protocol,
        format!("the channel ended in the middle of a libuv frame: {what} were missing"),
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(data: &[u8]) -> Vec<u8> {
        let mut f = header(data.len()).unwrap().to_vec();
        f.extend_from_slice(data);
        f
    }

    /// Everything `Deframer` gives from `raw`, read `step` bytes at a time into
    /// buffers of `out` bytes.
    fn deframe(raw: &[u8], step: usize, out: usize) -> io::Result<Vec<u8>> {
        let mut at = 0;
        let mut d = Deframer::default();
        let mut got = Vec::new();
        let mut buf = vec![0u8; out];
        loop {
            let n = d.read(&mut buf, |b| {
                let n = b.len().min(step).min(raw.len() - at);
                b[..n].copy_from_slice(&raw[at..at + n]);
                at += n;
                Ok(n)
            })?;
            if n == 0 {
                return Ok(got);
            }
            got.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn the_header_is_libuvs() {
        let h = header(0x0102_0304).unwrap();
        assert_eq!(h, [1, 0, 0, 0, 0, 0, 0, 0, 4, 3, 2, 1, 0, 0, 0, 0]);
        assert_eq!(header(0).unwrap(), [0u8; HEADER]);
    }

    #[test]
    fn data_comes_out_whole_whatever_the_read_sizes() {
        let mut raw = frame(b"{\"a\":1}\n");
        raw.extend(frame(b""));
        raw.extend(frame(&[b'x'; 1000]));
        raw.extend(frame(b"\n"));
        let mut want = b"{\"a\":1}\n".to_vec();
        want.extend([b'x'; 1000]);
        want.push(b'\n');
        for step in [1, 3, 16, 17, 4096] {
            for out in [1, 7, 64 * 1024] {
                assert_eq!(deframe(&raw, step, out).unwrap(), want, "{step} {out}");
            }
        }
    }

    #[test]
    fn a_socket_transfer_record_is_skipped() {
        let mut raw = vec![0u8; HEADER];
        raw[0] = (HAS_DATA | HAS_SOCKET_XFER) as u8;
        raw[8] = 3;
        raw.extend([0xAA; XFER_INFO]);
        raw.extend(b"hi\n");
        assert_eq!(deframe(&raw, 100, 10).unwrap(), b"hi\n");
    }

    #[test]
    fn a_foreign_header_is_refused() {
        let e = deframe(b"{\"not\": \"framed\"}\n", 4096, 4096).unwrap_err();
        assert!(e.to_string().contains("not libuv's"), "{e}");
        // Data promised but the flag missing, and the reverse.
        let mut raw = [0u8; HEADER];
        raw[8] = 1;
        assert!(deframe(&raw, 16, 16).is_err());
        let mut raw = [0u8; HEADER];
        raw[0] = HAS_DATA as u8;
        assert!(deframe(&raw, 16, 16).is_err());
    }

    #[test]
    fn a_stream_that_ends_inside_a_frame_says_what_was_missing() {
        let raw = frame(b"hello");
        let e = deframe(&raw[..raw.len() - 2], 4096, 4096).unwrap_err();
        assert!(e.to_string().contains("2 bytes of a frame's data"), "{e}");
        let e = deframe(&raw[..10], 4096, 4096).unwrap_err();
        assert!(e.to_string().contains("6 bytes of a frame header"), "{e}");
    }

    #[test]
    fn a_read_error_loses_nothing() {
        let raw = frame(b"abc");
        let mut d = Deframer::default();
        let mut at = 0;
        let mut calls = 0;
        let mut buf = [0u8; 8];
        let mut got = Vec::new();
        loop {
            let r = d.read(&mut buf, |b| {
                calls += 1;
                if calls % 2 == 0 {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                let n = b.len().min(5).min(raw.len() - at);
                b[..n].copy_from_slice(&raw[at..at + n]);
                at += n;
                Ok(n)
            });
            match r {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
            }
        }
        assert_eq!(got, b"abc");
    }
}
