//! The one server both faces run: the async [`crate::tokio::Server`] on the
//! caller's runtime, the blocking [`crate::Server`] on a small private one.
//! They differ only in where a call runs ([`Calls`]): as a tokio task (sync
//! handlers on tokio's blocking pool), or on the blocking server's bounded
//! [`Pool`].
//!
//! A connection is a task that reads requests (an idle one costs nothing: it
//! waits in the reactor) and a task that writes responses from a queue. A
//! request is read only while its connection has fewer than
//! `max_concurrent_calls` calls whose responses are not yet written, so a
//! client that does not read its responses holds at most that many
//! responses in memory and no thread; once one of them has waited the reply
//! timeout, the connection is closed and reported. The bytes of frames not
//! yet whole come from the server's one [`Budget`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use ::tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
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
use crate::pool::Pool;
use crate::server::{ServerOptions, accept_pause, reply_timed_out, too_large_response};

/// Where the calls of a server run.
pub(crate) enum Calls {
    /// As tokio tasks; sync handlers on tokio's blocking pool.
    Tokio,
    /// On a bounded pool of threads (the blocking server: only sync handlers).
    Pool(Arc<Pool>),
}

/// What a server serves and how.
pub(crate) struct Core {
    pub(crate) methods: Methods,
    pub(crate) opts: ServerOptions,
    budget: Arc<Budget>,
    calls: Calls,
}

/// A bound listener of either kind.
pub(crate) enum Listening {
    Stream(ipckit::tokio::Listener),
    Message(MessageListener),
}

/// A response on its way to the writer, with the connection's slot of the
/// request it answers: the slot is free once the response is written.
struct Reply {
    bytes: Vec<u8>,
    _slot: Option<OwnedSemaphorePermit>,
}

type ReplyTx = mpsc::UnboundedSender<Reply>;

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
        let core = Arc::new(Core {
            methods,
            opts: opts.clone(),
            budget: Budget::new(opts.max_buffered_bytes),
            calls,
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
    let (tx, rx) = mpsc::unbounded_channel();
    let writing = ::tokio::spawn(write_replies(Arc::clone(&core), writer, rx, peer.clone()));
    let mut calls = JoinSet::new();
    read_requests(&core, &mut reader, &peer, &tx, &mut stop, &mut calls).await;
    drop(reader);
    while calls.join_next().await.is_some() {}
    // The writer ends once every call has handed in its response and they
    // are all written (or the client stopped reading them).
    drop(tx);
    let _ = writing.await;
}

/// Reads requests and starts their calls while the connection has a free
/// slot, until it ends, breaks, its writer gives up or the server stops.
async fn read_requests(
    core: &Arc<Core>,
    reader: &mut Reader,
    peer: &str,
    tx: &ReplyTx,
    stop: &mut watch::Receiver<bool>,
    calls: &mut JoinSet<()>,
) {
    let opts = &core.opts;
    let slots = Arc::new(Semaphore::new(opts.max_concurrent_calls));
    loop {
        let got = ::tokio::select! {
            biased;
            _ = stop.changed() => return,
            // The writer gave up: nothing more can be answered.
            () = tx.closed() => return,
            got = async {
                let slot = Arc::clone(&slots).acquire_owned().await.ok();
                (slot, reader.recv(peer).await)
            } => got,
        };
        let (slot, frame) = match got {
            (slot, Ok(Some(frame))) => (slot, frame),
            (_, Ok(None)) => return,
            (slot, Err(e)) if e.kind() == ErrorKind::FrameTooLarge => {
                opts.report(&e);
                let _ = tx.send(Reply {
                    bytes: too_large_response(&e),
                    _slot: slot,
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
                let _ = tx.send(Reply {
                    bytes: resp.encode(),
                    _slot: slot,
                });
                continue;
            }
            Incoming::Single(Entry::Request(req)) => Job::One(req),
            Incoming::Batch(entries) => Job::Batch(entries),
        };
        start_call(core, job, tx.clone(), slot, calls);
        while calls.try_join_next().is_some() {}
    }
}

/// Starts one call (a request or a batch); its response goes to `tx`.
fn start_call(
    core: &Arc<Core>,
    job: Job,
    tx: ReplyTx,
    slot: Option<OwnedSemaphorePermit>,
    calls: &mut JoinSet<()>,
) {
    let c = Arc::clone(core);
    let reply = move |out: Option<Vec<u8>>| {
        if let Some(bytes) = out {
            let _ = tx.send(Reply { bytes, _slot: slot });
        }
    };
    match &core.calls {
        Calls::Pool(pool) => {
            let call = Box::new(move || reply(job.run_sync(&c.methods)));
            // No thread of the pool can take it (none could be started): run
            // it here.
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

/// Writes the responses of one connection in order. A response that takes
/// longer than the reply timeout (a client that does not read) ends the
/// connection and is reported; one to a client that has gone just ends it.
async fn write_replies(
    core: Arc<Core>,
    mut writer: crate::aconn::Writer,
    mut rx: mpsc::UnboundedReceiver<Reply>,
    peer: String,
) {
    let opts = &core.opts;
    let limit = opts.reply_timeout;
    while let Some(reply) = rx.recv().await {
        writer.set_deadline(limit);
        let sent = ::tokio::time::timeout(limit, writer.send(&reply.bytes, &peer))
            .await
            .unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::TimedOut,
                    format!("send to {peer}: timed out"),
                ))
            });
        if let Err(e) = sent {
            if e.kind() == ErrorKind::TimedOut {
                opts.report(&reply_timed_out(&e, limit));
            }
            // Dropping the queue tells the reader (`tx.closed()`) and the
            // calls in flight (their responses go nowhere).
            return;
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
