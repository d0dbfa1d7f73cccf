//! The shared-memory channel on tokio: the same region, rings and protocol as
//! the blocking ends (`shm_channel`), with the sleep of a waiting side made
//! async (`shm_async`: a waker thread in `futex_waitv` on Linux, a thread-pool
//! wait registration on Windows). A blocking end and an async end talk to
//! each other unchanged.
//!
//! The wake-up protocol is the blocking one, step for step: a waiting side
//! announces itself (`Shared::announce`: `*_waiting` = 1, a full barrier, the
//! heavy barrier, a last look at the ring), then sleeps on the sequence word
//! while it holds the value read *before* the announcement. The notifier
//! publishes, takes its barrier, reads `*_waiting`, and bumps and wakes the
//! word. The sleep differs only in who sleeps: the waker thread compares the
//! word with the value in `futex_waitv` (Linux) exactly as `FUTEX_WAIT` does for
//! a blocking waiter, and a Windows registration waits on the same auto-reset
//! event (a latch) as `WaitForSingleObject` does. So the no-lost-wake-up
//! argument of `shm_channel`'s header (the Dekker pair of announcement and
//! publication, then a sleep that refuses to start once the word has moved)
//! holds unchanged for an async waiter, and the protocol in the region is the
//! same (the loom model of `crates/ipckit-loom` checks the ring under it; the
//! protocol did not change, so neither did the model). A cancelled wait clears
//! its announcement (a later
//! notifier then skips the wake, as after a blocking wait).

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::shm_async::Sleeper;
use super::shm_channel::{
    Received, STATE_WORD, Shared, ShmChannel, ShmReceiver, ShmSender, UNCOVERED_SLEEP, WaitWord,
    peer_exited,
};
use super::shm_join::{Accepted, ShmListener};

/// How long an async side spins before it sleeps: short, since it spins on a
/// runtime thread that other tasks share.
const SPIN: Duration = Duration::from_micros(10);

/// Polls both futures; done when either is.
pub(crate) async fn first(a: impl Future<Output = ()>, b: impl Future<Output = ()>) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    std::future::poll_fn(|cx| {
        if a.as_mut().poll(cx).is_ready() || b.as_mut().poll(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// Clears an announcement when the wait ends, cancelled or not.
struct Announced<'a, 'b>(&'a WaitWord<'b>);

impl Drop for Announced<'_, '_> {
    fn drop(&mut self) {
        self.0.waiting.store(0, Ordering::Relaxed);
    }
}

/// Waits until `ready()`: spins for [`SPIN`], then sleeps on `word` after
/// announcing itself, until woken or the peer exits.
async fn wait(
    shared: &Arc<Shared>,
    sleeper: &mut Sleeper,
    ready: impl Fn() -> bool,
    word: &WaitWord<'_>,
) -> io::Result<()> {
    let spin_end = Instant::now() + SPIN;
    while Instant::now() < spin_end {
        for _ in 0..64 {
            if ready() {
                return Ok(());
            }
            std::hint::spin_loop();
        }
    }
    loop {
        let Some(sleep) = shared.announce(&ready, word) else {
            return Ok(());
        };
        let announced = Announced(word);
        if shared.peer_exited() {
            return Err(peer_exited());
        }
        let keep = Arc::clone(shared) as super::shm_async::Keep;
        let slept = sleeper.sleep(
            &shared.wakers,
            Some(&shared.peer),
            word.index,
            word.seq,
            sleep.seen,
            keep,
        );
        if sleep.covered {
            slept.await?;
        } else {
            // A light notifier may go unseen: look again soon.
            let mut result = Ok(());
            first(
                async { result = slept.await },
                tokio::time::sleep(UNCOVERED_SLEEP),
            )
            .await;
            result?;
        }
        drop(announced);
        if ready() {
            return Ok(());
        }
        if shared.peer_exited() {
            return Err(peer_exited());
        }
    }
}

/// Waits for the peer of `listener`, then returns the channel.
pub(crate) async fn accept(listener: &mut ShmListener) -> io::Result<ShmChannel> {
    let mut sleeper = Sleeper::new();
    loop {
        let (parts, state) = match listener.try_accept()? {
            Accepted::Channel(ch) => return Ok(*ch),
            Accepted::Waiting(parts, state) => (parts, state),
        };
        let keep = Arc::clone(&parts) as super::shm_async::Keep;
        sleeper
            .sleep(&parts.wakers, None, STATE_WORD, parts.state(), state, keep)
            .await?;
    }
}

/// The sending half of an async end.
#[derive(Debug)]
pub(crate) struct AsyncSender {
    inner: ShmSender,
    sleeper: Sleeper,
    /// The rest of a long message whose first chunk is in the ring: a send
    /// cancelled after that keeps it here, and it goes out first.
    pending: Vec<u8>,
    pending_at: usize,
    /// Messages committed: whole in the ring, or begun with the rest pending.
    committed: u64,
}

/// Writes one chunk, waiting for room.
async fn put(
    inner: &mut ShmSender,
    sleeper: &mut Sleeper,
    chunk: &[u8],
    more: bool,
) -> io::Result<()> {
    let shared = Arc::clone(&inner.shared);
    while !shared.try_send_chunk(&mut inner.read_seen, chunk, more)? {
        wait(
            &shared,
            sleeper,
            || shared.room_ready(chunk.len()),
            &shared.room_word(),
        )
        .await?;
    }
    Ok(())
}

impl AsyncSender {
    pub(crate) fn new(inner: ShmSender) -> AsyncSender {
        AsyncSender {
            inner,
            sleeper: Sleeper::new(),
            pending: Vec::new(),
            pending_at: 0,
            committed: 0,
        }
    }

    /// Sends `msg` whole. Cancelled before its first chunk is in the ring, it
    /// sent nothing; after that (only a message longer than one chunk), the
    /// message is committed and its rest goes out before anything else.
    pub(crate) async fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.flush().await?;
        let shared = Arc::clone(&self.inner.shared);
        shared.check_size(msg.len())?;
        let max = shared.max_chunk();
        let (head, rest) = msg.split_at(msg.len().min(max));
        put(&mut self.inner, &mut self.sleeper, head, !rest.is_empty()).await?;
        self.committed += 1;
        if !rest.is_empty() {
            self.pending.extend_from_slice(rest);
            self.pending_at = 0;
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends the rest of a message whose send was cancelled after it began.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        let max = self.inner.shared.max_chunk();
        while self.pending_at < self.pending.len() {
            let rest = &self.pending[self.pending_at..];
            let n = rest.len().min(max);
            put(
                &mut self.inner,
                &mut self.sleeper,
                &rest[..n],
                n < rest.len(),
            )
            .await?;
            self.pending_at += n;
        }
        self.pending.clear();
        self.pending_at = 0;
        Ok(())
    }

    /// How many messages this half has committed.
    pub(crate) fn committed(&self) -> u64 {
        self.committed
    }

    /// The largest message the peer accepts.
    pub(crate) fn max_message_size(&self) -> usize {
        self.inner.max_message_size()
    }
}

/// The receiving half of an async end.
#[derive(Debug)]
pub(crate) struct AsyncReceiver {
    inner: ShmReceiver,
    sleeper: Sleeper,
}

impl AsyncReceiver {
    pub(crate) fn new(inner: ShmReceiver) -> AsyncReceiver {
        AsyncReceiver {
            inner,
            sleeper: Sleeper::new(),
        }
    }

    /// Receives one whole message into `out` (replacing its contents); `false`
    /// at the end of the channel. Cancelled, it loses nothing: the part of a
    /// message read so far stays in the half for the next call.
    pub(crate) async fn recv(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        out.clear();
        let shared = Arc::clone(&self.inner.shared);
        loop {
            let rx = &mut self.inner;
            match shared.try_recv(&mut rx.partial, &mut rx.reader, out)? {
                Received::Message => return Ok(true),
                Received::End => return Ok(false),
                Received::Nothing => {
                    let reader = &rx.reader;
                    wait(
                        &shared,
                        &mut self.sleeper,
                        || shared.data_ready(reader),
                        &shared.data_word(),
                    )
                    .await?;
                }
            }
        }
    }

    /// The largest message this end accepts.
    pub(crate) fn max_message_size(&self) -> usize {
        self.inner.max_message_size()
    }
}
