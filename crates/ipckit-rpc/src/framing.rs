//! How JSON texts are cut out of a connection: the [`Framing`] of each
//! connection, and the `Content-Length` header codec.
//!
//! The 4-byte length prefix is ipckit's own codec ([`ipckit::Framed`],
//! `ipckit::tokio::Framed` with the `tokio` feature); the message framing is
//! an ipckit message channel. The `Content-Length` codec is here: a
//! [`ContentLengthDecoder`] that is fed bytes and yields whole frames, so a
//! read that times out in the middle of a frame loses nothing.

use std::fmt;

/// How the JSON texts of one connection are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum Framing {
    /// A byte stream ([`ipckit::Stream`]) with each text behind a 4-byte
    /// big-endian length, as Python's `multiprocessing.connection`
    /// `send_bytes`/`recv_bytes` write and read it (−1 and an 8-byte length for
    /// a text over 2^31 − 1 bytes).
    #[default]
    LengthPrefix,
    /// A byte stream with each text behind `Content-Length: N\r\n\r\n` headers,
    /// as the Language Server Protocol frames it.
    ContentLength,
    /// An ipckit message channel ([`ipckit::MessageStream`]): one message is
    /// one JSON text.
    Message,
}

impl Framing {
    /// Whether this framing runs over a message channel rather than a byte stream.
    pub fn is_message(self) -> bool {
        self == Framing::Message
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Framing::LengthPrefix => "length-prefix",
            Framing::ContentLength => "content-length",
            Framing::Message => "message",
        })
    }
}

impl std::str::FromStr for Framing {
    type Err = String;

    fn from_str(s: &str) -> Result<Framing, String> {
        match s {
            "length-prefix" | "length" => Ok(Framing::LengthPrefix),
            "content-length" | "lsp" => Ok(Framing::ContentLength),
            "message" => Ok(Framing::Message),
            _ => Err(format!(
                "unknown framing {s:?} (expected length-prefix, content-length or message)"
            )),
        }
    }
}

/// The default maximum frame size: 64 MiB, as ipckit's message channels.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 64 << 20;

/// The most header bytes a `Content-Length` frame may start with.
pub const MAX_HEADER_SIZE: usize = 8 * 1024;

/// Why a `Content-Length` stream cannot be read on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderError {
    /// The frame is larger than the maximum frame size (`len` bytes).
    pub too_large: Option<u64>,
    /// What is wrong, in full.
    pub message: String,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HeaderError {}

fn header_error(message: String) -> HeaderError {
    HeaderError {
        too_large: None,
        message,
    }
}

/// The frame for `body`: `Content-Length: N\r\n\r\n` and the body.
pub fn encode_content_length(body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// Cuts `Content-Length` frames out of the bytes it is fed.
///
/// Header names are matched without regard to case; `Content-Type` and any
/// other header are tolerated and ignored. A missing, repeated-and-different,
/// non-decimal or oversized `Content-Length`, a header line without a colon, or
/// headers longer than [`MAX_HEADER_SIZE`] are errors, after which the stream is
/// out of step and must be closed.
///
/// ```
/// use ipckit_rpc::framing::ContentLengthDecoder;
/// let mut d = ContentLengthDecoder::new(1024);
/// d.extend(b"Content-Length: 2\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{}Cont");
/// assert_eq!(d.next_frame().unwrap(), Some(b"{}".to_vec()));
/// assert_eq!(d.next_frame().unwrap(), None); // waits for more bytes
/// ```
#[derive(Debug, Clone)]
pub struct ContentLengthDecoder {
    buf: Vec<u8>,
    /// The body length once the headers of the current frame are read, and
    /// where its body starts in `buf`.
    body: Option<(usize, usize)>,
    max: usize,
}

impl ContentLengthDecoder {
    /// A decoder that refuses frames over `max` bytes.
    pub fn new(max: usize) -> ContentLengthDecoder {
        ContentLengthDecoder {
            buf: Vec::new(),
            body: None,
            max,
        }
    }

    /// Changes the limit for the frames not yet started; bytes already
    /// buffered are kept.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Adds bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// True when no part of a frame is buffered (the stream may end here).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// How many bytes are buffered: the part of a frame read so far, and any
    /// bytes of the next.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame's body, or `None` until more bytes come.
    ///
    /// # Errors
    ///
    /// A [`HeaderError`] naming the broken rule.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, HeaderError> {
        let (len, start) = match self.body {
            Some(b) => b,
            None => match self.parse_headers()? {
                Some(b) => {
                    self.body = Some(b);
                    b
                }
                None => return Ok(None),
            },
        };
        if self.buf.len() - start < len {
            return Ok(None);
        }
        let body = self.buf[start..start + len].to_vec();
        self.buf.drain(..start + len);
        self.body = None;
        Ok(Some(body))
    }

    fn parse_headers(&mut self) -> Result<Option<(usize, usize)>, HeaderError> {
        let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            if self.buf.len() > MAX_HEADER_SIZE {
                return Err(header_error(format!(
                    "the headers of a Content-Length frame exceed {MAX_HEADER_SIZE} bytes without ending in an empty line"
                )));
            }
            return Ok(None);
        };
        if end > MAX_HEADER_SIZE {
            return Err(header_error(format!(
                "the headers of a Content-Length frame are {end} bytes, over the limit of {MAX_HEADER_SIZE}"
            )));
        }
        let head = std::str::from_utf8(&self.buf[..end])
            .map_err(|_| header_error("the headers of a frame are not UTF-8 text".into()))?;
        let mut length: Option<u64> = None;
        for line in head.split("\r\n") {
            let Some((name, value)) = line.split_once(':') else {
                return Err(header_error(format!(
                    "the header line {line:?} has no ':' (expected `Content-Length: N`)"
                )));
            };
            if !name.trim().eq_ignore_ascii_case("content-length") {
                continue; // Content-Type, or anything else: tolerated.
            }
            let value = value.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(header_error(format!(
                    "invalid Content-Length {value:?}: the length is a decimal number of bytes"
                )));
            }
            let n: u64 = value.parse().map_err(|_| {
                header_error(format!(
                    "invalid Content-Length {value:?}: too large a number"
                ))
            })?;
            if length.is_some_and(|old| old != n) {
                return Err(header_error(format!(
                    "two different Content-Length headers ({} and {n})",
                    length.unwrap_or_default()
                )));
            }
            length = Some(n);
        }
        let Some(len) = length else {
            return Err(header_error(format!(
                "a frame's headers have no Content-Length: {head:?}"
            )));
        };
        if len > self.max as u64 {
            return Err(HeaderError {
                too_large: Some(len),
                message: format!(
                    "an incoming frame of {len} bytes exceeds the maximum frame size of {} bytes",
                    self.max
                ),
            });
        }
        Ok(Some((len as usize, end + 4)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8], max: usize) -> Result<Vec<Vec<u8>>, HeaderError> {
        let mut d = ContentLengthDecoder::new(max);
        let mut out = Vec::new();
        // Byte by byte: the worst case for a decoder that must keep its place.
        for b in bytes {
            d.extend(std::slice::from_ref(b));
            while let Some(f) = d.next_frame()? {
                out.push(f);
            }
        }
        Ok(out)
    }

    #[test]
    fn frames_round_trip_byte_by_byte() {
        let msgs: Vec<&[u8]> = vec![b"{}", b"", b"[1,2,3]", "é\r\n\r\n".as_bytes()];
        let bytes: Vec<u8> = msgs.iter().flat_map(|m| encode_content_length(m)).collect();
        assert_eq!(decode_all(&bytes, 100).unwrap(), msgs);
    }

    #[test]
    fn tolerates_content_type_and_case() {
        let bytes = b"content-type: application/vscode-jsonrpc; charset=utf-8\r\nCONTENT-LENGTH:  3 \r\n\r\nabc";
        assert_eq!(decode_all(bytes, 100).unwrap(), vec![b"abc".to_vec()]);
    }

    #[test]
    fn refuses_bad_headers_with_the_rule_broken() {
        for (bytes, needle) in [
            (&b"Content-Type: x\r\n\r\n{}"[..], "no Content-Length"),
            (
                b"Content-Length: -1\r\n\r\n",
                "invalid Content-Length \"-1\"",
            ),
            (b"Content-Length: 0x10\r\n\r\n", "invalid Content-Length"),
            (b"Content-Length: \r\n\r\n", "invalid Content-Length \"\""),
            (
                b"Content-Length: 99999999999999999999999\r\n\r\n",
                "too large a number",
            ),
            (
                b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "two different",
            ),
            (b"garbage\r\n\r\n", "has no ':'"),
            (
                b"Content-Length: 101\r\n\r\n",
                "exceeds the maximum frame size of 100 bytes",
            ),
        ] {
            let err = decode_all(bytes, 100).unwrap_err();
            assert!(
                err.message.contains(needle),
                "{:?}: {err}",
                String::from_utf8_lossy(bytes)
            );
        }
        let err = decode_all(b"Content-Length: 101\r\n\r\n", 100).unwrap_err();
        assert_eq!(err.too_large, Some(101));
        let endless = vec![b'a'; MAX_HEADER_SIZE + 1];
        let err = decode_all(&endless, 100).unwrap_err();
        assert!(err.message.contains("without ending"), "{err}");
    }

    #[test]
    fn framing_names_parse() {
        for f in [
            Framing::LengthPrefix,
            Framing::ContentLength,
            Framing::Message,
        ] {
            assert_eq!(f.to_string().parse::<Framing>(), Ok(f));
        }
        assert!(
            "x".parse::<Framing>()
                .unwrap_err()
                .contains("unknown framing \"x\"")
        );
    }
}
