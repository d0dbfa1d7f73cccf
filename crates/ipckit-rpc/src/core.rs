//! The one server both faces run: the async [`crate::tokio::Server`] on the
//! caller's runtime, the blocking [`crate::Server`] on a small private one.
//! They differ only in where a call runs ([`Calls`]): as a tokio task (sync
//! handlers on tokio's blocking pool), or on the blocking server's bounded
//! [`Pool`].
//!
//! A connection is a task that reads requests (an idle one costs nothing: it
//! waits in the reactor) and an [`Outbox`] for its responses. A
//! request is read only while its connection has fewer than
//! `max_concurrent_calls` calls whose responses are not yet written, so a
//! client that does not read its responses holds at most that many
//! responses in memory and no thread; once one of them has waited the reply
//! timeout, the connection is closed and reported. The bytes of frames not
//! yet whole come from the server's one [`Budget`].

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ::tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use ::tokio::task::JoinSet;
use ipckit::stream::AcceptBackoff;
use ipckit::tokio::MessageListener;
use ipckit::{Address, ListenerOptions};

use crate::aconn::{Conn, Reader};
use crate::budget::Budget;
use crate::error::{Error, ErrorKind, Result, RpcError};
use crate::framing::Framing;
use crate::jsonrpc::{Entry, Incoming, Request, Response, decode_incoming};
use crate::methods::{CatchUnwind, Handler, Job, Methods, panicked};
use crate::outbox::{Outbox, Reply};
use crate::pool::Pool;
use crate::server::{ServerOptions, accept_pause, reply_timed_out, too_large_response};

/// A call of the blocking server whose method's last call took at most this
/// long runs at once on the connection's own thread (the hand-over to the
/// pool and back would cost more than the call); others run on the pool.
const INLINE: Duration = Duration::from_micros(50);

/// Where the calls of a server run.
pub(crate) enum Calls {
    /// As tokio tasks; sync handlers on tokio's blocking pool (the async
    /// server, public with the `tokio` feature).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    Tokio,
    /// On a bounded pool of threads (the blocking server: only sync
    /// handlers), or at once when they are quick (see [`INLINE`]).
    Pool(Arc<Pool>),
}

/// Per method of the blocking server: whether its last call was quick.
type Quick = HashMap<String, Arc<AtomicBool>>;

/// What a server serves and how.
pub(crate) struct Core {
    pub(crate) methods: Methods,
    pub(crate) opts: ServerOptions,
    budget: Arc<Budget>,
    calls: Calls,
    quick: Quick,
}

/// A bound listener of either kind.
pub(crate) enum Listening {
    Stream(ipckit::tokio::Listener),
    Message(MessageListener),
}

impl Core {
    /// Binds `addr` (within a tokio runtime) for `methods`.
    pub(crate) fn bind(
        opts: &ServerOptions,
        addr: Address,
        methods: Methods,
        calls: Calls,
    ) -> Result<(Arc<Core>, Listening)> {
        let mut lopts = ListenerOptions::new();
        lopts.max_message_size(opts.max_frame_size);
        // Over a byte stream (`tcp:`) a message channel sends length-prefixed
        // frames: served as such, so that its unfinished frames are metered.
        let listener = if opts.framing.is_message() && !is_tcp(&addr) {
            Listening::Message(lopts.bind_message_tokio(addr).map_err(Error::from_ipckit)?)
        } else {
            Listening::Stream(lopts.bind_tokio(addr).map_err(Error::from_ipckit)?)
        };
        // A method is taken for slow until a call of it shows otherwise.
        let quick = methods
            .names()
            .into_iter()
            .map(|name| (name.to_owned(), Arc::new(AtomicBool::new(false))))
            .collect();
        let core = Arc::new(Core {
            methods,
            opts: opts.clone(),
            budget: Budget::new(opts.max_buffered_bytes),
            calls,
            quick,
        });
        Ok((core, listener))
    }
}

fn is_tcp(addr: &Address) -> bool {
    matches!(addr, Address::Tcp { .. })
}

impl Listening {
    pub(crate) fn local_addr(&self) -> &Address {
        match self {
            Listening::Stream(l) => l.local_addr(),
            Listening::Message(l) => l.local_addr(),
        }
    }

    async fn accept(&self, core: &Core) -> ipckit::Result<Result<Conn>> {
        let (opts, max) = (&core.opts, core.opts.max_frame_size);
        match self {
            Listening::Stream(l) => {
                let framing = match opts.framing {
                    Framing::Message => Framing::LengthPrefix,
                    other => other,
                };
                let s = l.accept().await?;
                Ok(Conn::stream(s, framing, max, Some(&core.budget)))
            }
            Listening::Message(l) => Ok(Conn::message(l.accept().await?, max)),
        }
    }
}

/// Accepts and serves connections until `stop` says so; then lets every
/// connection finish (see [`serve_conn`]).
pub(crate) async fn accept_loop(
    core: Arc<Core>,
    listener: Listening,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    let limit = core.opts.connection_limit().min(Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(limit));
    let mut backoff = AcceptBackoff::new();
    while !*stop.borrow_and_update() {
        // At the connection limit, wait for a connection to close (or the stop).
        let slot = ::tokio::select! {
            _ = stop.changed() => break,
            slot = Arc::clone(&slots).acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
        let accepted = ::tokio::select! {
            _ = stop.changed() => break,
            a = listener.accept(&core) => a,
        };
        match accepted {
            Ok(accepted) => {
                backoff.on_success();
                // A client that failed on the way in (gone already, say) is
                // its own problem.
                if let Ok(conn) = accepted {
                    let serving = serve_conn(Arc::clone(&core), conn, stop.clone());
                    conns.spawn(async move {
                        // Held until the connection is done.
                        let _slot = slot;
                        serving.await;
                    });
                }
            }
            // Out of descriptors (say): pause, longer while it lasts, and go
            // on; another failure of the listener gets a breather.
            Err(e) => {
                let pause = accept_pause(&core.opts, &mut backoff, e);
                ::tokio::select! {
                    _ = stop.changed() => break,
                    () = ::tokio::time::sleep(pause) => {}
                }
            }
        }
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// Serves one connection: the handshake, then its requests until it ends,
/// breaks or the server stops; then lets its calls finish and their
/// responses go out, and closes it.
async fn serve_conn(core: Arc<Core>, mut conn: Conn, mut stop: watch::Receiver<bool>) {
    let opts = &core.opts;
    if let Some(key) = &opts.authkey {
        // A handshake in progress is abandoned when the server stops.
        let passed = ::tokio::select! {
            _ = stop.changed() => false,
            r = conn.handshake(key, opts.digest, true, opts.handshake_timeout) => {
                r.map_err(|e| opts.report(&e)).is_ok()
            }
        };
        if !passed {
            return;
        }
    }
    let Conn {
        mut reader,
        writer,
        peer,
        ..
    } = conn;
    let outbox = Outbox::new(writer, &peer, opts.reply_timeout);
    let reporter = Arc::clone(&core);
    let writing = ::tokio::spawn(Arc::clone(&outbox).run(move |e| {
        let opts = &reporter.opts;
        opts.report(&reply_timed_out(e, opts.reply_timeout));
    }));
    let most = opts
        .max_concurrent_calls
        .min(Semaphore::MAX_PERMITS)
        .min(u32::MAX as usize);
    let slots = Arc::new(Semaphore::new(most));
    let mut calls = JoinSet::new();
    let conn = Connection {
        core: &core,
        outbox: &outbox,
        slots: &slots,
    };
    conn.read_requests(&mut reader, &peer, &mut stop, &mut calls)
        .await;
    drop(reader);
    while calls.join_next().await.is_some() {}
    // Every call has handed in its response and they are all written (or
    // dropped: the client stopped reading them) once every slot is free.
    let _all = slots.acquire_many(most as u32).await;
    outbox.close();
    let _ = writing.await;
}

/// What the reading of one connection needs.
struct Connection<'a> {
    core: &'a Arc<Core>,
    outbox: &'a Arc<Outbox>,
    /// A slot per request whose response is not yet written.
    slots: &'a Arc<Semaphore>,
}

impl Connection<'_> {
    /// Reads requests and starts their calls while the connection has a
    /// free slot, until it ends, breaks, its writer gives up or the server
    /// stops.
    async fn read_requests(
        &self,
        reader: &mut Reader,
        peer: &str,
        stop: &mut watch::Receiver<bool>,
        calls: &mut JoinSet<()>,
    ) {
        let opts = &self.core.opts;
        loop {
            let got = ::tokio::select! {
                biased;
                _ = stop.changed() => return,
                // The writer gave up: nothing more can be answered.
                () = self.outbox.broken() => return,
                got = async {
                    let slot = Arc::clone(self.slots).acquire_owned().await.ok();
                    (slot, reader.recv(peer).await)
                } => got,
            };
            let (slot, frame) = match got {
                (slot, Ok(Some(frame))) => (slot, frame),
                (_, Ok(None)) => return,
                (slot, Err(e)) if e.kind() == ErrorKind::FrameTooLarge => {
                    opts.report(&e);
                    self.outbox.deliver(Reply {
                        bytes: too_large_response(&e),
                        slot,
                    });
                    return;
                }
                (_, Err(e)) => {
                    if e.kind() == ErrorKind::Protocol {
                        opts.report(&e);
                    }
                    return;
                }
            };
            let job = match decode_incoming(&frame) {
                Incoming::Invalid(resp) | Incoming::Single(Entry::Invalid(resp)) => {
                    self.outbox.deliver(Reply {
                        bytes: resp.encode(),
                        slot,
                    });
                    continue;
                }
                Incoming::Single(Entry::Request(req)) => Job::One(req),
                Incoming::Batch(entries) => Job::Batch(entries),
            };
            self.start_call(job, slot, calls);
            while calls.try_join_next().is_some() {}
        }
    }

    /// Starts one call (a request or a batch); its response goes to the
    /// outbox.
    fn start_call(&self, job: Job, slot: Option<OwnedSemaphorePermit>, calls: &mut JoinSet<()>) {
        let (c, outbox) = (Arc::clone(self.core), Arc::clone(self.outbox));
        let reply = move |out: Option<Vec<u8>>| {
            if let Some(bytes) = out {
                outbox.deliver(Reply { bytes, slot });
            }
        };
        match &self.core.calls {
            Calls::Pool(pool) => {
                let quick = match &job {
                    Job::One(req) => c.quick.get(&req.method).cloned(),
                    Job::Batch(_) => None,
                };
                let now = quick.as_ref().is_some_and(|q| q.load(Ordering::Relaxed));
                let timed = move || {
                    let started = Instant::now();
                    let out = job.run_sync(&c.methods);
                    if let Some(q) = &quick {
                        q.store(started.elapsed() <= INLINE, Ordering::Relaxed);
                    }
                    reply(out);
                };
                if now {
                    return timed();
                }
                let call = Box::new(timed);
                // No thread of the pool can take it (none could be started):
                // run it here.
                if let Some(call) = pool.submit(call) {
                    call();
                }
            }
            Calls::Tokio => {
                calls.spawn(async move {
                    let out = match job {
                        Job::One(req) => run(&c.methods, req).await.map(|r| r.encode()),
                        Job::Batch(entries) => {
                            let mut responses = Vec::new();
                            for e in entries {
                                match e {
                                    Entry::Invalid(r) => responses.push(r),
                                    Entry::Request(req) => {
                                        responses.extend(run(&c.methods, req).await);
                                    }
                                }
                            }
                            (!responses.is_empty()).then(|| Response::encode_batch(&responses))
                        }
                    };
                    reply(out);
                });
            }
        }
    }
}

/// Runs one call: a sync handler on tokio's blocking pool, an async one here;
/// a panic in either becomes -32603 for this caller.
async fn run(methods: &Methods, req: Request) -> Option<Response> {
    let name = req.method.clone();
    let outcome = match methods.get(&req.method).cloned() {
        None => Err(RpcError::method_not_found(&req.method)),
        Some(Handler::Sync(f)) => {
            let params = req.params;
            let ran =
                ::tokio::task::spawn_blocking(move || catch_unwind(AssertUnwindSafe(|| f(params))))
                    .await;
            match ran {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(payload)) => Err(panicked(&name, &*payload)),
                Err(e) => Err(RpcError::internal(format!(
                    "internal error: the call of {name:?} did not finish: {e}"
                ))),
            }
        }
        Some(Handler::Async(f)) => {
            let params = req.params;
            match catch_unwind(AssertUnwindSafe(|| f(params))) {
                Ok(fut) => match CatchUnwind(fut).await {
                    Ok(outcome) => outcome,
                    Err(payload) => Err(panicked(&name, &*payload)),
                },
                Err(payload) => Err(panicked(&name, &*payload)),
            }
        }
    };
    req.id.map(|id| Response { id, outcome })
}
