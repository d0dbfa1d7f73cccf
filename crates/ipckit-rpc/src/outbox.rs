//! A connection's responses on their way out, in order, whole, and never
//! with a thread waiting for the client (the async client's requests go out
//! the same way).
//!
//! A response goes out at once, on the thread that has it (a thread of the
//! call pool, say), when nothing is queued before it and the OS takes it
//! without waiting: one write, no hand-over, as fast as a blocking server
//! writing it itself. Otherwise the connection's writer task sends it (it
//! finishes a send begun that way, which keeps the frame whole), within the
//! reply timeout; a client that does not read its responses therefore holds
//! memory (its queued responses, at most one per slot of the connection) but
//! no thread, and once a response has waited the reply timeout the
//! connection is broken off and reported.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ::tokio::runtime::Handle;
use ::tokio::sync::{Notify, OwnedSemaphorePermit, watch};

use crate::aconn::Writer;
use crate::error::{Error, ErrorKind, Result};
use crate::options::lock;

/// A response, with the connection's slot of the request it answers: the
/// slot is free once the response is written (or dropped).
pub(crate) struct Reply {
    pub(crate) bytes: Vec<u8>,
    pub(crate) slot: Option<OwnedSemaphorePermit>,
}

/// A send in progress; it gives the writer back when done.
type Sending = Pin<Box<dyn Future<Output = (Writer, Result<()>)> + Send>>;

struct State {
    /// The writer, when no send is in progress.
    writer: Option<Writer>,
    /// A send begun by [`Outbox::deliver`] that could not finish at once.
    begun: Option<(Sending, Option<OwnedSemaphorePermit>)>,
    queue: VecDeque<Reply>,
    /// A send failed: nothing more is sent.
    broken: bool,
    /// The connection is done: the writer task ends once all is sent.
    closing: bool,
}

pub(crate) struct Outbox {
    state: Mutex<State>,
    work: Notify,
    /// Why a send failed, once one has.
    broken: watch::Sender<Option<Arc<str>>>,
    peer: Arc<str>,
    /// The runtime of the connection, entered by a thread outside it that
    /// sends (a transport's timers and threads belong to it).
    handle: Handle,
    /// How long one send may take (`None`: no bound).
    limit: Option<Duration>,
}

fn send_owned(
    mut writer: Writer,
    bytes: Vec<u8>,
    peer: Arc<str>,
    limit: Option<Duration>,
) -> Sending {
    Box::pin(async move {
        if let Some(limit) = limit {
            writer.set_deadline(limit);
        }
        let sent = writer.send(&bytes, &peer).await;
        (writer, sent)
    })
}

impl Outbox {
    /// The outbox of a connection to `peer`, whose responses may each take
    /// `limit` (the reply timeout; `None`: as long as they take). Call within
    /// the connection's runtime.
    pub(crate) fn new(writer: Writer, peer: &str, limit: Option<Duration>) -> Arc<Outbox> {
        Arc::new(Outbox {
            state: Mutex::new(State {
                writer: Some(writer),
                begun: None,
                queue: VecDeque::new(),
                broken: false,
                closing: false,
            }),
            work: Notify::new(),
            broken: watch::channel(None).0,
            peer: Arc::from(peer),
            handle: Handle::current(),
            limit,
        })
    }

    /// Sends `reply` after those before it: here and now if nothing is
    /// queued and the OS takes it without waiting, else from the writer task.
    /// Dropped if the connection has broken off.
    pub(crate) fn deliver(&self, reply: Reply) {
        let mut state = lock(&self.state);
        if state.broken {
            return;
        }
        if state.queue.is_empty()
            && state.begun.is_none()
            && let Some(writer) = state.writer.take()
        {
            let _runtime = self.handle.enter();
            let mut sending = send_owned(writer, reply.bytes, Arc::clone(&self.peer), self.limit);
            match sending
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
            {
                Poll::Ready((writer, Ok(()))) => {
                    state.writer = Some(writer);
                    return;
                }
                // The client has gone: not the server's failure.
                Poll::Ready((_, Err(e))) => return self.break_off(&mut state, &e),
                Poll::Pending => state.begun = Some((sending, reply.slot)),
            }
            drop(state);
            self.work.notify_one();
            return;
        }
        state.queue.push_back(reply);
        drop(state);
        self.work.notify_one();
    }

    /// Sends nothing more and drops what waits (freeing its slots); `why`
    /// is the failed send's error.
    fn break_off(&self, state: &mut State, why: &Error) {
        state.broken = true;
        state.begun = None;
        state.queue.clear();
        self.broken.send_replace(Some(why.to_string().into()));
        self.work.notify_one();
    }

    /// Resolves once a send has failed, with its error.
    pub(crate) async fn broken(&self) -> Arc<str> {
        let mut rx = self.broken.subscribe();
        // The outbox holds the sender, so the wait ends only with a failure.
        let why = rx
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|w| w.clone());
        why.unwrap_or_else(|| "a send failed".into())
    }

    /// The connection is done: the writer task ends once everything is sent.
    pub(crate) fn close(&self) {
        lock(&self.state).closing = true;
        self.work.notify_one();
    }

    /// The writer task: sends what [`deliver`](Self::deliver) could not,
    /// in order, until [`close`](Self::close) and all is sent, or a send
    /// fails; `on_timeout` is told of a response that took longer than the
    /// limit.
    pub(crate) async fn run(self: Arc<Self>, on_timeout: impl Fn(&Error)) {
        loop {
            // Made before the state is looked at, so no notice is missed.
            let notified = self.work.notified();
            let next = {
                let mut state = lock(&self.state);
                if state.broken {
                    return;
                }
                if let Some(begun) = state.begun.take() {
                    Some(begun)
                } else if state.writer.is_some() && !state.queue.is_empty() {
                    let (writer, reply) = (state.writer.take(), state.queue.pop_front());
                    writer.zip(reply).map(|(writer, reply)| {
                        let peer = Arc::clone(&self.peer);
                        (
                            send_owned(writer, reply.bytes, peer, self.limit),
                            reply.slot,
                        )
                    })
                } else if state.closing && state.queue.is_empty() {
                    return;
                } else {
                    None
                }
            };
            let Some((sending, slot)) = next else {
                notified.await;
                continue;
            };
            let sent = match self.limit {
                Some(limit) => ::tokio::time::timeout(limit, sending).await,
                None => Ok(sending.await),
            };
            let mut state = lock(&self.state);
            match sent {
                Ok((writer, Ok(()))) => state.writer = Some(writer),
                Ok((_, Err(e))) => return self.break_off(&mut state, &e),
                Err(_) => {
                    let e = Error::new(
                        ErrorKind::TimedOut,
                        format!("send to {}: timed out", self.peer),
                    );
                    self.break_off(&mut state, &e);
                    drop(state);
                    return on_timeout(&e);
                }
            }
            drop(slot);
        }
    }
}
