//! A blocking connection cut into frames: a reader half and a writer half, each
//! a handle of its own to the same stream or channel, so one thread can read
//! while others write.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ipckit::{Framed, MessageStream, Stream};

use crate::auth::{self, ChallengeDigest, HandshakeIo, MAX_HANDSHAKE_FRAME};
use crate::budget::{Budget, Meter, Metered, refused};
use crate::error::{Error, ErrorKind, Result};
use crate::framing::{ContentLengthDecoder, Framing, encode_content_length};

/// The receiving half. On a server, the bytes of a frame not yet whole are
/// granted by a [`Meter`] (see [`Reader::set_budget`]).
pub(crate) enum Reader {
    Framed(Framed<Metered>),
    ContentLength {
        stream: Stream,
        decoder: ContentLengthDecoder,
        buf: Vec<u8>,
        meter: Option<Meter>,
    },
    Message(MessageStream),
}

/// A handle to a connection that ends its reads from another thread: the
/// one waiting now, and every later one, find the end of the connection.
pub(crate) enum Waker {
    Stream(Stream),
    Message(MessageStream),
}

impl Waker {
    /// Whether [`wake`](Waker::wake) ends a read waiting now. Not over TCP on
    /// Windows, where `shutdown(SD_RECEIVE)` leaves a blocked `recv` waiting:
    /// there the reader must look up now and then.
    pub(crate) fn wakes_reads(&self) -> bool {
        let addr = match self {
            Waker::Stream(s) => s.peer_addr(),
            Waker::Message(m) => m.peer_addr(),
        };
        !(cfg!(windows) && matches!(addr, ipckit::Address::Tcp { .. }))
    }

    pub(crate) fn wake(&self) {
        // A connection that has ended already has nothing to wake.
        let _ = match self {
            Waker::Stream(s) => s.shutdown(Shutdown::Read),
            Waker::Message(m) => m.shutdown(Shutdown::Read),
        };
    }
}

/// The sending half.
pub(crate) enum Writer {
    Framed(Framed<Stream>),
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
        let context = format!("receive from {peer}");
        match self {
            Reader::Framed(f) => match f.recv() {
                Ok(frame) => {
                    f.get_mut().frame_done();
                    Ok(frame)
                }
                Err(e) => Err(refused(&e, &context).unwrap_or_else(|| Error::io(&context, &e))),
            },
            Reader::Message(m) => m.recv().map_err(|e| Error::ipckit(&context, e)),
            Reader::ContentLength {
                stream,
                decoder,
                buf,
                meter,
            } => loop {
                if let Some(frame) = next_content_length(decoder, &context)? {
                    if let Some(m) = meter {
                        m.hold(decoder.buffered());
                    }
                    return Ok(Some(frame));
                }
                let room = match meter {
                    Some(m) => m.grant(buf.len()),
                    None => buf.len(),
                };
                if let (0, Some(m)) = (room, meter.as_mut()) {
                    let spent = m.spent();
                    return Err(
                        refused(&spent, &context).unwrap_or_else(|| Error::io(&context, &spent))
                    );
                }
                let read = stream.read(&mut buf[..room]);
                if let Some(m) = meter {
                    // Give back the room the read did not fill.
                    m.hold(decoder.buffered() + *read.as_ref().unwrap_or(&0));
                }
                let n = match read {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io(&context, &e)),
                };
                if n == 0 {
                    return content_length_end(decoder, &context);
                }
                decoder.extend(&buf[..n]);
            },
        }
    }

    /// Grants the bytes of every frame not yet whole from `budget`, the
    /// server's (the message framing holds none: a message arrives whole).
    pub(crate) fn set_budget(&mut self, budget: &Arc<Budget>) {
        match self {
            Reader::Framed(f) => f.get_mut().meter = Some(Meter::new(Arc::clone(budget))),
            Reader::ContentLength { meter, .. } => *meter = Some(Meter::new(Arc::clone(budget))),
            Reader::Message(_) => {}
        }
    }

    /// A handle that ends this reader's reads from another thread.
    pub(crate) fn waker(&self) -> Result<Waker> {
        match self {
            Reader::Framed(f) => f.get_ref().stream.try_clone().map(Waker::Stream),
            Reader::ContentLength { stream, .. } => stream.try_clone().map(Waker::Stream),
            Reader::Message(m) => m.try_clone().map(Waker::Message),
        }
        .map_err(|e| Error::ipckit("clone the connection", e))
    }

    /// Bounds each later `recv` by `deadline` (`None`: wait for ever).
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        match self {
            Reader::Framed(f) => f.get_mut().stream.set_read_deadline(deadline),
            Reader::ContentLength { stream, .. } => stream.set_read_deadline(deadline),
            Reader::Message(m) => m.set_read_deadline(deadline),
        }
    }

    /// Bounds each later `recv` (`None`: wait for ever).
    pub(crate) fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        let r = match self {
            Reader::Framed(f) => f.get_mut().stream.set_read_timeout(timeout),
            Reader::ContentLength { stream, .. } => stream.set_read_timeout(timeout),
            Reader::Message(m) => m.set_read_timeout(timeout),
        };
        r.map_err(|e| Error::ipckit("set the read timeout", e))
    }

    fn set_max(&mut self, max: usize) -> Result<()> {
        match self {
            Reader::Framed(f) => f.set_max_message_size(max),
            Reader::ContentLength { decoder, .. } => {
                decoder.set_max(max);
                Ok(())
            }
            Reader::Message(m) => m.set_max_message_size(max),
        }
        .map_err(|e| Error::ipckit("set the maximum frame size", e))
    }
}

impl Writer {
    /// Sends one frame, giving up at `deadline`. A timed-out frame is finished
    /// before the next one, so the peer never sees a torn frame.
    pub(crate) fn send(&mut self, msg: &[u8], deadline: Option<Instant>, peer: &str) -> Result<()> {
        let context = format!("send to {peer}");
        match self {
            Writer::Framed(f) => {
                f.get_mut().set_write_deadline(deadline);
                f.send(msg).map_err(|e| Error::io(&context, &e))
            }
            Writer::Message(m) => {
                m.set_write_deadline(deadline);
                m.send(msg).map_err(|e| Error::ipckit(&context, e))
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
                result.map_err(|e| Error::io(&context, &e))
            }
        }
    }
}

/// Both halves of one connection, and the peer's name for messages.
pub(crate) struct Conn {
    pub(crate) reader: Reader,
    pub(crate) writer: Writer,
    pub(crate) peer: String,
    max: usize,
}

impl Conn {
    /// Frames a byte stream with `framing` (not [`Framing::Message`]).
    pub(crate) fn stream(stream: Stream, framing: Framing, max: usize) -> Result<Conn> {
        let peer = stream.peer_addr().to_string();
        let second = stream
            .try_clone()
            .map_err(|e| Error::ipckit(&format!("clone the stream to {peer}"), e))?;
        let (reader, writer) = match framing {
            Framing::ContentLength => (
                Reader::ContentLength {
                    stream,
                    decoder: ContentLengthDecoder::new(max),
                    buf: vec![0; 64 * 1024],
                    meter: None,
                },
                Writer::ContentLength {
                    stream: second,
                    pending: Vec::new(),
                },
            ),
            _ => (
                Reader::Framed(Framed::new(Metered {
                    stream,
                    meter: None,
                })),
                Writer::Framed(Framed::new(second)),
            ),
        };
        let mut conn = Conn {
            reader,
            writer,
            peer,
            max,
        };
        conn.reader.set_max(max)?;
        Ok(conn)
    }

    /// A message channel: one message, one JSON text.
    pub(crate) fn message(channel: MessageStream, max: usize) -> Result<Conn> {
        let peer = channel.peer_addr().to_string();
        let second = channel
            .try_clone()
            .map_err(|e| Error::ipckit(&format!("clone the channel to {peer}"), e))?;
        let mut conn = Conn {
            reader: Reader::Message(channel),
            writer: Writer::Message(second),
            peer,
            max,
        };
        conn.reader.set_max(max)?;
        Ok(conn)
    }

    /// Runs the authkey handshake, as [`Halves::handshake`].
    pub(crate) fn handshake(
        &mut self,
        key: &[u8],
        digest: ChallengeDigest,
        accepting: bool,
        timeout: Duration,
        stop: Option<&AtomicBool>,
    ) -> Result<()> {
        Halves {
            reader: &mut self.reader,
            writer: &mut self.writer,
            peer: &self.peer,
            max: self.max,
        }
        .handshake(key, digest, accepting, timeout, stop)
    }
}

/// Both halves of a connection, borrowed, for its handshake.
pub(crate) struct Halves<'a> {
    pub(crate) reader: &'a mut Reader,
    pub(crate) writer: &'a mut Writer,
    pub(crate) peer: &'a str,
    /// The maximum frame size after the handshake.
    pub(crate) max: usize,
}

impl Halves<'_> {
    /// Runs the authkey handshake, the accepting side's way round (deliver a
    /// challenge, then answer one) or the connecting side's, within `timeout`.
    /// `stop` set ends a handshake in progress early (the server is stopping
    /// and has woken the reader).
    pub(crate) fn handshake(
        &mut self,
        key: &[u8],
        digest: ChallengeDigest,
        accepting: bool,
        timeout: Duration,
        stop: Option<&AtomicBool>,
    ) -> Result<()> {
        self.reader.set_max(MAX_HANDSHAKE_FRAME)?;
        let deadline = Instant::now() + timeout;
        self.reader.set_deadline(Some(deadline));
        let mut io = HandshakeConn {
            conn: self,
            deadline,
            timeout,
            stop,
        };
        let result = if accepting {
            auth::deliver(&mut io, key, digest).and_then(|()| auth::answer_peer(&mut io, key))
        } else {
            auth::answer_peer(&mut io, key).and_then(|()| auth::deliver(&mut io, key, digest))
        };
        let peer = self.peer;
        result.map_err(|e| Error::new(e.kind(), format!("authkey handshake with {peer}: {e}")))?;
        self.reader.set_deadline(None);
        self.reader.set_max(self.max)
    }
}

struct HandshakeConn<'a, 'b> {
    conn: &'a mut Halves<'b>,
    deadline: Instant,
    timeout: Duration,
    stop: Option<&'a AtomicBool>,
}

impl HandshakeIo for HandshakeConn<'_, '_> {
    fn send_frame(&mut self, frame: &[u8]) -> Result<()> {
        self.conn
            .writer
            .send(frame, Some(self.deadline), self.conn.peer)
    }

    /// Waits until the deadline; a server that stops ends the wait (it
    /// shuts the reading down, see [`Waker`]).
    fn recv_frame(&mut self) -> Result<Vec<u8>> {
        loop {
            let got = self.conn.reader.recv(self.conn.peer);
            if self.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                return Err(Error::new(
                    ErrorKind::Disconnected,
                    "the server is stopping",
                ));
            }
            return match got {
                // A reader that looks up now and then (see `Waker::wakes_reads`).
                Err(e) if e.kind() == ErrorKind::TimedOut && Instant::now() < self.deadline => {
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::TimedOut => Err(Error::new(
                    ErrorKind::TimedOut,
                    format!("the handshake did not finish within {:?}", self.timeout),
                )),
                other => handshake_frame(other),
            };
        }
    }
}
