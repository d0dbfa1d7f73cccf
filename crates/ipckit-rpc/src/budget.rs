//! The server-wide cap on bytes buffered for frames not yet whole
//! ([`ServerOptions::max_buffered_bytes`](crate::ServerOptions::max_buffered_bytes)).
//!
//! Every byte a server reads into a frame that has not ended is granted from
//! one [`Budget`] before it is read, through the connection's [`Meter`], and
//! given back when the frame is whole (then it is a request, no longer a
//! partial frame) or the connection ends. A connection whose next read would
//! find nothing left is refused: a client that announces a large frame and
//! trickles it, or never finishes it, holds at most what it has sent, and all
//! such clients together at most the cap.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use crate::error::{Error, ErrorKind};
use crate::options::lock;

/// The most one read is granted: a reader waiting for bytes holds its grant,
/// so this bounds what a connection that is silent in the middle of a frame
/// holds beyond what it sent.
pub(crate) const GRANT: usize = 64 * 1024;

/// The bytes all the connections of one server may hold in unfinished frames.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicUsize,
    max: usize,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            max,
        })
    }

    /// Takes up to `want` bytes; how many it got (0: none left).
    fn take(&self, want: usize) -> usize {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let got = want.min(self.max.saturating_sub(used));
            if got == 0 {
                return 0;
            }
            match self.used.compare_exchange_weak(
                used,
                used + got,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return got,
                Err(now) => used = now,
            }
        }
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// How many bytes are held now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// One connection's part of the [`Budget`]; it gives back what it holds when
/// dropped.
#[derive(Debug)]
pub(crate) struct Meter {
    budget: Arc<Budget>,
    held: usize,
}

impl Meter {
    pub(crate) fn new(budget: Arc<Budget>) -> Meter {
        Meter { budget, held: 0 }
    }

    /// Grants up to `want` more bytes (at most [`GRANT`]) for reading; 0
    /// when the budget is spent.
    pub(crate) fn grant(&mut self, want: usize) -> usize {
        let got = self.budget.take(want.min(GRANT));
        self.held += got;
        got
    }

    /// Now holds `n` bytes (at most what it held): gives back the rest.
    pub(crate) fn hold(&mut self, n: usize) {
        let back = self.held.saturating_sub(n);
        self.budget.give(back);
        self.held -= back;
    }

    /// The error of a read the budget has no room for. The connection is
    /// closed for it, so what it holds is given back at once: the others go
    /// on.
    pub(crate) fn spent(&mut self) -> io::Error {
        self.hold(0);
        io::Error::new(io::ErrorKind::OutOfMemory, SpentBudget(self.budget.max))
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.budget.give(self.held);
    }
}

/// Why a read was refused: the budget of this many bytes is spent.
#[derive(Debug)]
struct SpentBudget(usize);

impl std::fmt::Display for SpentBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server holds its limit of {} bytes in unfinished requests from all its clients (max_buffered_bytes); this request would go over it",
            self.0
        )
    }
}

impl std::error::Error for SpentBudget {}

/// The error of a receive that `e` ended, if the budget refused it:
/// [`ErrorKind::FrameTooLarge`], so the server answers it as a frame over
/// the limit (-32600, then it closes the connection).
pub(crate) fn refused(e: &io::Error, context: &str) -> Option<Error> {
    let spent = e.get_ref()?.downcast_ref::<SpentBudget>()?;
    Some(Error::new(
        ErrorKind::FrameTooLarge,
        format!("{context}: {spent}"),
    ))
}

/// A read half whose reads are granted by a [`Meter`], if it has one: the
/// reading half of a length-prefixed or `Content-Length` connection on a
/// server. The meter sits in a mutex only so that the holder of a shared
/// reference (`ipckit::tokio::Framed::get_ref`) can say a frame is whole; a
/// read takes it without locking.
#[derive(Debug)]
pub(crate) struct Metered<R> {
    pub(crate) io: R,
    meter: Mutex<Option<Meter>>,
}

impl<R> Metered<R> {
    pub(crate) fn new(io: R, budget: Option<&Arc<Budget>>) -> Metered<R> {
        Metered {
            io,
            meter: Mutex::new(budget.map(|b| Meter::new(Arc::clone(b)))),
        }
    }

    /// The connection now holds `n` bytes of a frame not yet whole (0 once
    /// `ipckit::tokio::Framed` has returned a frame: it reads nothing past
    /// one).
    pub(crate) fn holds(&self, n: usize) {
        if let Some(m) = &mut *lock(&self.meter) {
            m.hold(n);
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Metered<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let meter = this.meter.get_mut().unwrap_or_else(|p| p.into_inner());
        let Some(meter) = meter else {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        };
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let granted = meter.grant(buf.remaining());
        if granted == 0 {
            return Poll::Ready(Err(meter.spent()));
        }
        let mut part = ReadBuf::new(buf.initialize_unfilled_to(granted));
        let polled = Pin::new(&mut this.io).poll_read(cx, &mut part);
        let n = match polled {
            Poll::Ready(Ok(())) => part.filled().len(),
            _ => 0,
        };
        buf.advance(n);
        // Give back what was granted and not read.
        let held = meter.held - (granted - n);
        meter.hold(held);
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meters_share_the_budget_and_give_back_on_drop() {
        let budget = Budget::new(100);
        let mut a = Meter::new(Arc::clone(&budget));
        let mut b = Meter::new(Arc::clone(&budget));
        assert_eq!(a.grant(60), 60);
        assert_eq!(b.grant(60), 40, "only what is left");
        assert_eq!(b.grant(1), 0);
        a.hold(10);
        assert_eq!(budget.used(), 50);
        assert_eq!(b.grant(60), 50);
        drop(b);
        assert_eq!(budget.used(), 10);
        a.hold(0);
        assert_eq!(budget.used(), 0);
    }
}
