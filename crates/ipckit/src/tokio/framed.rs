//! Length-prefixed frames on async byte streams: the frame codec of the
//! blocking layer, driven by polls. A pending poll becomes a `WouldBlock` the
//! codec keeps its place on, so a dropped future loses nothing.

use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::message::frame::{FrameReader, FrameState, FrameWriter};

/// A blocking-style reader over one poll: `Pending` reads as `WouldBlock`.
struct PollRead<'a, 'b, R> {
    io: Pin<&'a mut R>,
    cx: &'a mut Context<'b>,
}

impl<R: AsyncRead> Read for PollRead<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut rb = ReadBuf::new(buf);
        match self.io.as_mut().poll_read(self.cx, &mut rb) {
            Poll::Ready(Ok(())) => Ok(rb.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// A blocking-style writer over one poll: `Pending` reads as `WouldBlock`.
struct PollWrite<'a, 'b, W> {
    io: Pin<&'a mut W>,
    cx: &'a mut Context<'b>,
}

impl<W: AsyncWrite> Write for PollWrite<'_, '_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.io.as_mut().poll_write(self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A TCP stream driven through `&TcpStream`: readiness from tokio's reactor
/// (`poll_read_ready`, `poll_write_ready`), then a non-blocking `try_read` or
/// `try_write`, the loop tokio's own `AsyncRead` of a `TcpStream` runs. The
/// two directions keep separate wakers, so one task may read while another
/// writes; each direction must have one user at a time (the framed channel's
/// locks see to that). It never shuts the stream down: the channel does, when
/// dropped.
pub(super) struct TcpRef<'a>(pub(super) &'a ::tokio::net::TcpStream);

impl AsyncRead for TcpRef<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            std::task::ready!(self.0.poll_read_ready(cx))?;
            // `try_read` clears the readiness on `WouldBlock`, so the next
            // `poll_read_ready` waits for the reactor again.
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for TcpRef<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            std::task::ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return Poll::Ready(other),
            }
        }
    }

    /// TCP sends what it is given; there is nothing to flush.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Not through this view: the channel shuts its stream down when dropped.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a framed channel's socket is not shut down through a reference",
        )))
    }
}

fn pending_on_would_block<T>(result: io::Result<T>) -> Poll<io::Result<T>> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        other => Poll::Ready(other),
    }
}

/// Reads the next frame into `out`; `false` at a clean end of stream.
/// Cancel safe: a partial frame stays in `reader`.
pub(super) async fn read_frame<R: AsyncRead + Unpin>(
    io: &mut R,
    reader: &mut FrameReader,
    max: usize,
    out: &mut Vec<u8>,
) -> io::Result<bool> {
    poll_fn(|cx| {
        let mut shim = PollRead {
            io: Pin::new(&mut *io),
            cx,
        };
        pending_on_would_block(reader.read_from(&mut shim, max, out))
    })
    .await
}

/// Queues `msg` as one frame and writes until nothing is pending. A future
/// dropped before it finishes leaves the rest of the frame queued: it goes out,
/// whole, before the next frame.
pub(super) async fn write_frame<W: AsyncWrite + Unpin>(
    io: &mut W,
    writer: &mut FrameWriter,
    msg: &[u8],
) -> io::Result<()> {
    writer.queue(msg);
    poll_fn(|cx| {
        let mut shim = PollWrite {
            io: Pin::new(&mut *io),
            cx,
        };
        pending_on_would_block(writer.finish_pending(&mut shim))
    })
    .await?;
    poll_fn(|cx| Pin::new(&mut *io).poll_flush(cx)).await
}

/// Whole messages over any async byte stream you hand in, in the
/// length-prefixed frames of Python's `multiprocessing.connection`: the async
/// form of [`crate::Framed`].
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let stream = tokio::net::TcpStream::connect("127.0.0.1:6000").await?;
/// let mut framed = ipckit::tokio::Framed::new(stream);
/// framed.send(b"hello").await?;
/// let reply = framed.recv().await?; // None when the peer closed the stream
/// # Ok(()) }
/// ```
///
/// # Cancel safety
///
/// `recv` is cancel safe: a dropped `recv` keeps the part of a frame it read,
/// and the next `recv` goes on from there. A dropped `send` may still deliver its
/// message: once queued, the frame is finished, whole, by the next `send`.
///
/// An incoming message over the maximum message size (default 64 MiB) is an
/// [`ErrorKind::FrameTooLarge`](crate::ErrorKind::FrameTooLarge) error, after which this `Framed` refuses any
/// further use with [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected).
pub struct Framed<S> {
    inner: S,
    frames: FrameState,
}

crate::message::frame::framed_face!();

/// Sending needs only the write side: a `Framed` of a write half
/// (`OwnedWriteHalf`) sends while one of the read half receives.
impl<S: AsyncWrite + Unpin> Framed<S> {
    /// Sends `msg` as one frame.
    ///
    /// # Errors
    ///
    /// The stream's error.
    pub async fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.frames.check()?;
        write_frame(&mut self.inner, &mut self.frames.writer, msg).await
    }
}

/// Receiving needs only the read side.
impl<S: AsyncRead + Unpin> Framed<S> {
    /// Receives the next message; `None` when the stream ended cleanly between
    /// two frames.
    ///
    /// # Errors
    ///
    /// The stream's error, [`ErrorKind::FrameTooLarge`](crate::ErrorKind::FrameTooLarge) or
    /// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) (after which this `Framed` is closed).
    pub async fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.frames.check()?;
        let mut out = Vec::new();
        let max = self.frames.max;
        match read_frame(&mut self.inner, &mut self.frames.reader, max, &mut out).await {
            Ok(more) => Ok(more.then_some(out)),
            Err(e) => Err(self.frames.failed(e)),
        }
    }
}
