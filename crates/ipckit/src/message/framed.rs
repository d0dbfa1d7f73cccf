//! [`Framed`]: message framing on any byte stream.

use std::io::{self, Read, Write};

use super::frame::FrameState;

/// Whole messages over any byte stream you hand in (`Read + Write`), in the
/// length-prefixed frames of Python's `multiprocessing.connection`.
///
/// A Python `Connection.send_bytes(b)` arrives as one [`recv`](Framed::recv), and
/// a [`send`](Framed::send) is read by `Connection.recv_bytes()`. Messages over
/// 2^31 − 1 bytes use the extended header (−1, then an 8-byte length), as Python
/// 3.8+ writes and reads it.
///
/// # Examples
///
/// ```no_run
/// let stream = std::net::TcpStream::connect("127.0.0.1:6000")?;
/// let mut framed = ipckit::Framed::new(stream);
/// framed.send(b"hello")?;
/// let reply = framed.recv()?; // None when the peer closed the stream
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors and timeouts
///
/// An error from the stream (a timeout the stream was set up with, say) in the
/// middle of a frame loses nothing: the part read is kept and the next `recv`
/// goes on from there; the part of a frame not yet written is kept and written
/// first by the next `send`. An incoming message over the maximum message size
/// (default 64 MiB) is an [`ErrorKind::FrameTooLarge`](crate::ErrorKind::FrameTooLarge) error; its body stays
/// unread, so the stream is out of step and this `Framed` refuses any further
/// use with [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected).
pub struct Framed<S> {
    inner: S,
    frames: FrameState,
}

crate::message::frame::framed_face!();

impl<S: Read + Write> Framed<S> {
    /// Sends `msg` as one frame.
    ///
    /// # Errors
    ///
    /// The stream's error; see the type's docs for what a failed send leaves.
    pub fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.frames.check()?;
        self.frames.writer.write_to(&mut self.inner, msg)?;
        self.inner.flush()
    }

    /// Receives the next message; `None` when the stream ended cleanly between
    /// two frames.
    ///
    /// # Errors
    ///
    /// The stream's error (nothing is lost), [`ErrorKind::FrameTooLarge`](crate::ErrorKind::FrameTooLarge) (after
    /// which this `Framed` is closed), or [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) for a negative
    /// length or a stream that ends in the middle of a frame.
    pub fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut msg = Vec::new();
        Ok(self.recv_into(&mut msg)?.then_some(msg))
    }

    /// Receives the next message into `buf`, replacing its contents; `false` at
    /// the end of the stream.
    ///
    /// # Errors
    ///
    /// As for [`recv`](Framed::recv); on an error `buf` is left empty.
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        buf.clear();
        self.frames.check()?;
        let frames = &mut self.frames;
        frames
            .reader
            .read_from(&mut self.inner, frames.max, buf)
            .map_err(|e| {
                buf.clear();
                frames.failed(e)
            })
    }
}
