//! An async byte stream (or one half of it) whose reads and writes are bounded
//! by a `Limit` each, and the one `AsyncRead`/`AsyncWrite` body that
//! [`Stream`](super::Stream) and its halves share (`forward_async_io!`), over
//! a local or a TCP I/O type (`Either`).

use std::time::{Duration, Instant};

use super::limit::Limit;
use crate::error::Result;
use crate::limits::check_timeout;

/// `io` with the read and the write limit of one handle. A half uses the
/// limit of its own direction only; the other stays unset and unpolled.
#[derive(Debug)]
pub(crate) struct Timed<IO> {
    pub(crate) io: IO,
    pub(super) read: Limit,
    pub(super) write: Limit,
}

impl<IO> Timed<IO> {
    pub(super) fn new(io: IO) -> Timed<IO> {
        Timed {
            io,
            read: Limit::default(),
            write: Limit::default(),
        }
    }

    /// `set_read_timeout`: refuses zero, as std does.
    pub(super) fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        check_timeout(timeout, "read")?;
        self.read.set_timeout(timeout);
        Ok(())
    }

    /// `set_write_timeout`: refuses zero, as std does.
    pub(super) fn set_write_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        check_timeout(timeout, "write")?;
        self.write.set_timeout(timeout);
        Ok(())
    }

    /// `set_deadline`: both directions (Go's `SetDeadline`).
    pub(super) fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.read.set_deadline(deadline);
        self.write.set_deadline(deadline);
    }
}

/// `AsyncRead` (`read`) or `AsyncWrite` (`write`) for a public type with a
/// field `inner: Timed<Either<L, T>>`: the I/O of either arm, within the
/// limit of its direction.
macro_rules! forward_async_io {
    (read $ty:ty) => {
        impl ::tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ::tokio::io::ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let inner = &mut self.get_mut().inner;
                let io = &mut inner.io;
                inner.read.poll(cx, "read", |cx| match io {
                    Either::Local(s) => Pin::new(s).poll_read(cx, buf),
                    Either::Tcp(s) => Pin::new(s).poll_read(cx, buf),
                })
            }
        }
    };
    (write $ty:ty) => {
        impl ::tokio::io::AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let inner = &mut self.get_mut().inner;
                let io = &mut inner.io;
                inner.write.poll(cx, "write", |cx| match io {
                    Either::Local(s) => Pin::new(s).poll_write(cx, buf),
                    Either::Tcp(s) => Pin::new(s).poll_write(cx, buf),
                })
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let inner = &mut self.get_mut().inner;
                let io = &mut inner.io;
                inner.write.poll(cx, "write", |cx| match io {
                    Either::Local(s) => Pin::new(s).poll_write_vectored(cx, bufs),
                    Either::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
                })
            }

            fn is_write_vectored(&self) -> bool {
                match &self.inner.io {
                    Either::Local(s) => s.is_write_vectored(),
                    Either::Tcp(s) => s.is_write_vectored(),
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match &mut self.get_mut().inner.io {
                    Either::Local(s) => Pin::new(s).poll_flush(cx),
                    Either::Tcp(s) => Pin::new(s).poll_flush(cx),
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match &mut self.get_mut().inner.io {
                    Either::Local(s) => Pin::new(s).poll_shutdown(cx),
                    Either::Tcp(s) => Pin::new(s).poll_shutdown(cx),
                }
            }
        }
    };
}
pub(super) use forward_async_io;
