//! A blocking connection cut into frames, as the blocking client uses it: a
//! reader half and a writer half, each a handle of its own to the same stream
//! or channel, so one thread can read while others write. (Both servers use
//! the async form, `aconn`.)

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use ipckit::{MessageStream, Stream};

use crate::auth::{self, Handshake, HandshakeIo, MAX_HANDSHAKE_FRAME, handshake_timed_out};
use crate::error::{Error, ErrorKind, Result};
use crate::framing::{ContentLengthDecoder, Framing, encode_content_length};

/// The receiving half: a message channel (one message, one frame: a
/// message socket or pipe, shared memory, or length-prefixed frames on a
/// byte stream), or `Content-Length` frames on a byte stream.
pub(crate) enum Reader {
    ContentLength {
        stream: Stream,
        decoder: ContentLengthDecoder,
        buf: Vec<u8>,
    },
    Message(MessageStream),
}

/// The sending half, as [`Reader`].
pub(crate) enum Writer {
    /// `pending`: the part of a frame a timed-out write left, sent first next time.
    ContentLength {
        stream: Stream,
        pending: Vec<u8>,
    },
    Message(MessageStream),
}

/// The next whole `Content-Length` frame the decoder holds, if any;
/// `context` says what was being done with which peer ("receive from ...").
pub(crate) fn next_content_length(
    decoder: &mut ContentLengthDecoder,
    context: &str,
) -> Result<Option<Vec<u8>>> {
    match decoder.next_frame() {
        Ok(frame) => Ok(frame),
        Err(e) if e.too_large.is_some() => Err(Error::new(
            ErrorKind::FrameTooLarge,
            format!("{context}: {}", e.message),
        )),
        Err(e) => Err(Error::new(ErrorKind::Protocol, format!("{context}: {e}"))),
    }
}

/// The end of a `Content-Length` stream: clean between frames, else an error.
pub(crate) fn content_length_end(
    decoder: &ContentLengthDecoder,
    context: &str,
) -> Result<Option<Vec<u8>>> {
    if decoder.is_empty() {
        return Ok(None);
    }
    Err(Error::new(
        ErrorKind::Protocol,
        format!("{context}: the peer closed the stream in the middle of a frame"),
    ))
}

/// A handshake frame from what a receive gave.
pub(crate) fn handshake_frame(got: Result<Option<Vec<u8>>>) -> Result<Vec<u8>> {
    match got {
        Ok(Some(frame)) => Ok(frame),
        Ok(None) => Err(Error::new(
            ErrorKind::Authentication,
            "the peer closed the connection during the handshake (a wrong authkey, or a peer that expects none?)",
        )),
        Err(e) if e.kind() == ErrorKind::FrameTooLarge => Err(Error::new(
            ErrorKind::Authentication,
            format!(
                "a handshake message over {MAX_HANDSHAKE_FRAME} bytes (does the peer use an authkey?): {e}"
            ),
        )),
        Err(e) => Err(e),
    }
}

impl Reader {
    /// The next frame; `None` at a clean end. A timeout is an error of kind
    /// [`ErrorKind::TimedOut`] and loses nothing.
    pub(crate) fn recv(&mut self, peer: &str) -> Result<Option<Vec<u8>>> {
        match self {
            // The context of an error is written only for an error: this is
            // the path of every call.
            Reader::Message(m) => m
                .recv()
                .map_err(|e| Error::ipckit(&format!("receive from {peer}"), e)),
            Reader::ContentLength {
                stream,
                decoder,
                buf,
            } => {
                let context = format!("receive from {peer}");
                loop {
                    if let Some(frame) = next_content_length(decoder, &context)? {
                        return Ok(Some(frame));
                    }
                    let read = stream.read(buf);
                    let n = match read {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(Error::io(&context, &e)),
                    };
                    if n == 0 {
                        return content_length_end(decoder, &context);
                    }
                    decoder.extend(&buf[..n]);
                }
            }
        }
    }

    /// Bounds each later `recv` by `deadline` (`None`: wait for ever).
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        match self {
            Reader::ContentLength { stream, .. } => stream.set_read_deadline(deadline),
            Reader::Message(m) => m.set_read_deadline(deadline),
        }
    }

    /// Bounds each later `recv` (`None`: wait for ever).
    pub(crate) fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        let r = match self {
            Reader::ContentLength { stream, .. } => stream.set_read_timeout(timeout),
            Reader::Message(m) => m.set_read_timeout(timeout),
        };
        r.map_err(|e| Error::ipckit("set the read timeout", e))
    }
}

impl FrameLimit for Reader {
    fn limit(&mut self, max: usize) -> ipckit::Result<()> {
        match self {
            Reader::ContentLength { decoder, .. } => limit_decoder(decoder, max),
            Reader::Message(m) => m.set_max_message_size(max),
        }
    }
}

impl Writer {
    /// Sends one frame, giving up at `deadline`. A timed-out frame is finished
    /// before the next one, so the peer never sees a torn frame.
    pub(crate) fn send(&mut self, msg: &[u8], deadline: Option<Instant>, peer: &str) -> Result<()> {
        let context = || format!("send to {peer}");
        match self {
            Writer::Message(m) => {
                m.set_write_deadline(deadline);
                m.send(msg).map_err(|e| Error::ipckit(&context(), e))
            }
            Writer::ContentLength { stream, pending } => {
                stream.set_write_deadline(deadline);
                pending.extend_from_slice(&encode_content_length(msg));
                let mut sent = 0;
                let result = loop {
                    if sent == pending.len() {
                        break stream.flush();
                    }
                    match stream.write(&pending[sent..]) {
                        Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => sent += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                pending.drain(..sent);
                result.map_err(|e| Error::io(&context(), &e))
            }
        }
    }
}

/// Both halves of one connection, and the peer's name for messages: the
/// blocking halves ([`Conn`]) or the async ones (`aconn::Conn`).
pub(crate) struct Halves<R, W> {
    pub(crate) reader: R,
    pub(crate) writer: W,
    pub(crate) peer: String,
    /// The largest frame after the handshake.
    pub(crate) max: usize,
}

/// A reader half whose largest frame can be set (smaller for the handshake).
pub(crate) trait FrameLimit {
    /// Sets the largest frame: the decoder's of a reader that cuts the frames
    /// itself, else the channel's.
    fn limit(&mut self, max: usize) -> ipckit::Result<()>;

    /// [`limit`](FrameLimit::limit), its failure said as such.
    fn set_max(&mut self, max: usize) -> Result<()> {
        self.limit(max)
            .map_err(|e| Error::ipckit("set the maximum frame size", e))
    }
}

/// Sets the largest frame of a `Content-Length` reader (which cannot fail).
pub(crate) fn limit_decoder(decoder: &mut ContentLengthDecoder, max: usize) -> ipckit::Result<()> {
    decoder.set_max(max);
    Ok(())
}

impl<R: FrameLimit, W> Halves<R, W> {
    /// Both halves of a connection to `peer`, the reader held to `max`.
    pub(crate) fn new(reader: R, writer: W, peer: String, max: usize) -> Result<Self> {
        let mut conn = Halves {
            reader,
            writer,
            peer,
            max,
        };
        conn.reader.set_max(max)?;
        Ok(conn)
    }

    /// Holds the reader to the handshake's frame limit, for the handshake.
    pub(crate) fn begin_handshake(&mut self) -> Result<()> {
        self.reader.set_max(MAX_HANDSHAKE_FRAME)
    }

    /// Ends the handshake that gave `result`: a failure says with whom;
    /// after a success the reader takes the connection's frames again.
    pub(crate) fn end_handshake(&mut self, result: Result<()>) -> Result<()> {
        let peer = &self.peer;
        result.map_err(|e| Error::new(e.kind(), format!("authkey handshake with {peer}: {e}")))?;
        self.reader.set_max(self.max)
    }
}

/// The writer's handle of a message channel to `peer`: what cloning the
/// reader's gave.
pub(crate) fn second_handle<M>(cloned: ipckit::Result<M>, peer: &str) -> Result<M> {
    cloned.map_err(|e| Error::ipckit(&format!("clone the channel to {peer}"), e))
}

/// A blocking connection.
pub(crate) type Conn = Halves<Reader, Writer>;

impl Conn {
    /// Frames a byte stream with `framing`: `Content-Length` headers, or
    /// else length-prefixed frames (the message channel over a byte stream).
    pub(crate) fn stream(stream: Stream, framing: Framing, max: usize) -> Result<Conn> {
        if framing != Framing::ContentLength {
            return Conn::message(MessageStream::from_stream(stream), max);
        }
        let peer = stream.peer_addr().to_string();
        let second = stream
            .try_clone()
            .map_err(|e| Error::ipckit(&format!("clone the stream to {peer}"), e))?;
        let reader = Reader::ContentLength {
            stream,
            decoder: ContentLengthDecoder::new(max),
            buf: vec![0; 64 * 1024],
        };
        let writer = Writer::ContentLength {
            stream: second,
            pending: Vec::new(),
        };
        Conn::new(reader, writer, peer, max)
    }

    /// A message channel: one message, one JSON text.
    pub(crate) fn message(channel: MessageStream, max: usize) -> Result<Conn> {
        let peer = channel.peer_addr().to_string();
        let second = second_handle(channel.try_clone(), &peer)?;
        Conn::new(Reader::Message(channel), Writer::Message(second), peer, max)
    }

    /// Runs the authkey handshake `hs`, each of its reads and writes bounded
    /// by its deadline.
    pub(crate) fn handshake(&mut self, hs: Handshake<'_>) -> Result<()> {
        self.begin_handshake()?;
        let (key, digest, timeout) = (hs.key, hs.digest, hs.timeout);
        let deadline = Instant::now() + timeout;
        self.reader.set_deadline(Some(deadline));
        let mut io = HandshakeConn {
            conn: self,
            deadline,
            timeout,
        };
        let result = if hs.accepting {
            auth::deliver(&mut io, key, digest).and_then(|()| auth::answer_peer(&mut io, key))
        } else {
            auth::answer_peer(&mut io, key).and_then(|()| auth::deliver(&mut io, key, digest))
        };
        if result.is_ok() {
            self.reader.set_deadline(None);
        }
        self.end_handshake(result)
    }
}

struct HandshakeConn<'a> {
    conn: &'a mut Conn,
    deadline: Instant,
    timeout: Duration,
}

impl HandshakeIo for HandshakeConn<'_> {
    fn send_frame(&mut self, frame: &[u8]) -> Result<()> {
        let conn = &mut *self.conn;
        conn.writer.send(frame, Some(self.deadline), &conn.peer)
    }

    /// Waits until the deadline.
    fn recv_frame(&mut self) -> Result<Vec<u8>> {
        match self.conn.reader.recv(&self.conn.peer) {
            Err(e) if e.kind() == ErrorKind::TimedOut => Err(handshake_timed_out(self.timeout)),
            other => handshake_frame(other),
        }
    }
}
