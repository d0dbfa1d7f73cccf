//! The one server both faces run: the async [`crate::tokio::Server`] on the
//! caller's runtime, the blocking [`crate::Server`] on a small private one.
//! They differ only in where a call runs ([`Calls`]): on the connection's
//! task or as a tokio task (slow sync handlers on tokio's blocking pool), or
//! on the blocking server's bounded [`Pool`]; a quick sync call runs at once
//! on either (see [`INLINE`]).
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
use std::task::Poll;
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
use crate::jsonrpc::{Entry, Request, Response};
use crate::methods::{CatchUnwind, Handler, Job, Methods, panicked};
use crate::options::{ServerOptions, refuse_async_shm, reply_timed_out, too_large_response};
use crate::outbox::{Outbox, Reply};
use crate::pool::Pool;
use crate::serving;
use crate::threaded::{self, Accepts};

/// A sync call whose method's last call took at most this long runs at once
/// where its request was read (the hand-over to the blocking server's pool,
/// or to tokio's blocking pool, and back would cost more than the call);
/// others run on the pool.
const INLINE: Duration = Duration::from_micros(50);

/// Where the calls of a server run.
pub(crate) enum Calls {
    /// On the connection's task, or as tokio tasks of their own when they
    /// wait; sync handlers on tokio's blocking pool unless quick (see
    /// [`INLINE`]) (the async server, public with the `tokio` feature).
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
    /// Which server this is (see [`serving`]).
    pub(crate) id: serving::Id,
    pub(crate) methods: Methods,
    pub(crate) opts: ServerOptions,
    budget: Arc<Budget>,
    calls: Calls,
    quick: Quick,
}

/// A bound listener: a byte stream or a message channel of the runtime, or
/// a message channel served on threads (`shm:`, see [`threaded`]).
pub(crate) enum Listening {
    Stream(ipckit::tokio::Listener),
    Message(MessageListener),
    Threaded(Accepts),
}

/// A connection just accepted.
enum Accepted {
    /// Served by a task of the runtime.
    Task(Box<Conn>),
    /// Served on a thread of its own.
    Thread(ipckit::MessageStream),
}

impl Core {
    /// Binds `addr` (within a tokio runtime) for `methods`.
    pub(crate) fn bind(
        opts: &ServerOptions,
        addr: Address,
        methods: Methods,
        calls: Calls,
    ) -> Result<(Arc<Core>, Listening)> {
        // Over a byte stream (`tcp:`) a message channel sends length-prefixed
        // frames: served as such, so that its unfinished frames are metered
        // (by the framing, which has the limit: a byte-stream listener takes
        // no maximum message size).
        let mut lopts = ListenerOptions::new();
        lopts.max_message_size(opts.max_frame_size);
        let listener = if let Address::Shm(_) = &addr {
            if matches!(calls, Calls::Tokio) {
                refuse_async_shm(&addr, "server")?;
            }
            let listener = lopts.bind_message(addr).map_err(Error::from_ipckit)?;
            let addr = listener.local_addr().to_string();
            Listening::Threaded(
                Accepts::start(listener)
                    .map_err(|e| Error::io(&format!("start accepting on {addr}"), &e))?,
            )
        } else if opts.framing.is_message() && !is_tcp(&addr) {
            Listening::Message(lopts.bind_message_tokio(addr).map_err(Error::from_ipckit)?)
        } else {
            Listening::Stream(
                ListenerOptions::new()
                    .bind_tokio(addr)
                    .map_err(Error::from_ipckit)?,
            )
        };
        // A method is taken for slow until a call of it shows otherwise.
        let quick = methods
            .names()
            .into_iter()
            .map(|name| (name.to_owned(), Arc::new(AtomicBool::new(false))))
            .collect();
        let core = Arc::new(Core {
            id: serving::Id::next(),
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
            Listening::Threaded(a) => a.local_addr(),
        }
    }

    async fn accept(&self, core: &Core) -> ipckit::Result<Result<Accepted>> {
        let (opts, max) = (&core.opts, core.opts.max_frame_size);
        match self {
            Listening::Stream(l) => {
                let framing = match opts.framing {
                    Framing::Message => Framing::LengthPrefix,
                    other => other,
                };
                let s = l.accept().await?;
                Ok(Conn::stream(s, framing, max, Some(&core.budget))
                    .map(|c| Accepted::Task(Box::new(c))))
            }
            Listening::Message(l) => {
                Ok(Conn::message(l.accept().await?, max).map(|c| Accepted::Task(Box::new(c))))
            }
            Listening::Threaded(a) => Ok(Ok(Accepted::Thread(a.accept().await?))),
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
                match (accepted, &core.calls) {
                    (Ok(Accepted::Task(conn)), _) => {
                        // Boxed: moved into the task's future, an unboxed one
                        // would be stored twice there (the captured value and
                        // the awaited one: ~3 KiB more for every connection).
                        let serving = Box::pin(serve_conn(Arc::clone(&core), *conn, stop.clone()));
                        conns.spawn(async move {
                            // Held until the connection is done.
                            let _slot = slot;
                            serving.await;
                        });
                    }
                    (Ok(Accepted::Thread(channel)), Calls::Pool(pool)) => {
                        let (c, pool) = (Arc::clone(&core), Arc::clone(pool));
                        let run = move |job, reply| c.run_pooled(&pool, job, reply);
                        let done = threaded::spawn(
                            core.opts.clone(),
                            channel,
                            stop.clone(),
                            Arc::new(run),
                        );
                        conns.spawn(async move {
                            let _slot = slot;
                            let _ = done.await;
                        });
                    }
                    // `bind` serves threaded listeners with a pool only.
                    (Ok(Accepted::Thread(_)), Calls::Tokio) | (Err(_), _) => {}
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
    if let Some(hs) = opts.handshake() {
        // A handshake in progress is abandoned when the server stops. Boxed:
        // inline, its state would be part of every connection's task for the
        // connection's whole life.
        let passed = ::tokio::select! {
            _ = stop.changed() => false,
            r = Box::pin(conn.handshake(hs)) => {
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
    let outbox = Outbox::new(writer, &peer, Some(opts.reply_timeout));
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
                _ = self.outbox.broken() => return,
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
            let job = match Job::from_frame(&frame) {
                Ok(job) => job,
                Err(bytes) => {
                    self.outbox.deliver(Reply { bytes, slot });
                    continue;
                }
            };
            self.start_call(job, slot, calls).await;
            while calls.try_join_next().is_some() {}
        }
    }

    /// Starts one call (a request or a batch); its response goes to the
    /// outbox. The async server polls the call once here: one that is done
    /// at once (a quick sync method, see [`INLINE`], or an async one that
    /// does not wait) costs no task; the others go on as tasks of their own.
    async fn start_call(
        &self,
        job: Job,
        slot: Option<OwnedSemaphorePermit>,
        calls: &mut JoinSet<()>,
    ) {
        let (c, outbox) = (Arc::clone(self.core), Arc::clone(self.outbox));
        let reply = move |out: Option<Vec<u8>>| {
            if let Some(bytes) = out {
                outbox.deliver(Reply { bytes, slot });
            }
        };
        match &self.core.calls {
            Calls::Pool(pool) => c.run_pooled(pool, job, reply),
            Calls::Tokio => {
                let mut call = Box::pin(async move {
                    let out = match job {
                        Job::Plain(call) => run(&c, call.into_request()).await.map(|r| r.encode()),
                        Job::One(req) => run(&c, req).await.map(|r| r.encode()),
                        Job::Batch(entries) => {
                            let mut responses = Vec::new();
                            for e in entries {
                                match e {
                                    Entry::Invalid(r) => responses.push(r),
                                    Entry::Request(req) => {
                                        responses.extend(run(&c, req).await);
                                    }
                                }
                            }
                            (!responses.is_empty()).then(|| Response::encode_batch(&responses))
                        }
                    };
                    reply(out);
                });
                let done =
                    std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx).is_ready())).await;
                if !done {
                    calls.spawn(call);
                }
            }
        }
    }
}

impl Core {
    /// Runs `job` of the blocking server: here and now when its method's
    /// last call was quick (see [`INLINE`]), else on `pool` (or here when no
    /// thread of the pool can take it); `reply` gets its response.
    pub(crate) fn run_pooled(
        self: &Arc<Core>,
        pool: &Arc<Pool>,
        job: Job,
        reply: impl FnOnce(Option<Vec<u8>>) + Send + 'static,
    ) {
        let quick = match &job {
            Job::Plain(call) => self.quick.get(&call.method).cloned(),
            Job::One(req) => self.quick.get(&req.method).cloned(),
            Job::Batch(_) => None,
        };
        let now = quick.as_ref().is_some_and(|q| q.load(Ordering::Relaxed));
        let c = Arc::clone(self);
        let call = move || {
            let out = serving::run_sync(c.id, || {
                timed(quick.as_deref(), || job.run_sync(&c.methods))
            });
            reply(out);
        };
        if now {
            return call();
        }
        // No thread of the pool can take it (none could be started): run it
        // here.
        if let Some(call) = pool.submit(Box::new(call)) {
            call();
        }
    }
}

/// Runs `f`, and notes in `quick` (if given) whether it took at most [`INLINE`].
fn timed<T>(quick: Option<&AtomicBool>, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    if let Some(q) = quick {
        q.store(started.elapsed() <= INLINE, Ordering::Relaxed);
    }
    out
}

/// Runs one call of the async server: a sync handler here when its last call
/// was quick (see [`INLINE`]), else on tokio's blocking pool; an async one
/// here. A panic in either becomes -32603 for this caller.
async fn run(core: &Core, req: Request) -> Option<Response> {
    let name = req.method.clone();
    let outcome = match core.methods.get(&req.method).cloned() {
        None => Err(RpcError::method_not_found(&req.method)),
        Some(Handler::Sync(f, _)) => {
            let params = req.params;
            let quick = core.quick.get(&name).cloned();
            let now = quick.as_ref().is_some_and(|q| q.load(Ordering::Relaxed));
            let id = core.id;
            let call = move || {
                serving::run_sync(id, || {
                    timed(quick.as_deref(), || {
                        catch_unwind(AssertUnwindSafe(|| f(params)))
                    })
                })
            };
            let ran = if now {
                Ok(call())
            } else {
                ::tokio::task::spawn_blocking(call).await
            };
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
                Ok(fut) => match serving::run_async(core.id, CatchUnwind(fut)).await {
                    Ok(outcome) => outcome,
                    Err(payload) => Err(panicked(&name, &*payload)),
                },
                Err(payload) => Err(panicked(&name, &*payload)),
            }
        }
    };
    req.id.map(|id| Response { id, outcome })
}

/// The pause after an accept fails with anything but a resource error (those
/// pause as [`AcceptBackoff`] says).
pub(crate) const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// How long an accept loop pauses after `err`, which it reports when it starts
/// a burst of resource errors.
pub(crate) fn accept_pause(
    opts: &ServerOptions,
    backoff: &mut AcceptBackoff,
    err: ipckit::Error,
) -> Duration {
    match backoff.on_error(&err) {
        Some(pause) => {
            if backoff.failures() == 1 {
                opts.report(&Error::ipckit(
                    "accept a connection (the server pauses and goes on accepting)",
                    err,
                ));
            }
            pause
        }
        None => ACCEPT_ERROR_PAUSE,
    }
}
