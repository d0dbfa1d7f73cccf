//! The async server and client, on tokio (the `tokio` feature).
//!
//! The same wire, options and methods as the blocking [`crate::Server`] and
//! [`crate::Client`], on ipckit's tokio transports. Each connection has a
//! reader task and a writer task; the writer takes whole frames from a queue,
//! so a call that is cancelled or times out never tears a frame.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> ipckit_rpc::Result<()> {
//! use ipckit_rpc::Methods;
//! let mut methods = Methods::new();
//! methods.method_async("sleep", |(ms,): (u64,)| async move {
//!     tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
//!     Ok(ms)
//! });
//! let server = ipckit_rpc::tokio::Server::bind("pipe:async-demo", methods)?;
//! let client = ipckit_rpc::tokio::Client::connect("pipe:async-demo").await?;
//! let slept: u64 = client.call("sleep", (10,)).await?;
//! server.shutdown().await;
//! # Ok(()) }
//! ```

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::tokio::io::{AsyncReadExt, AsyncWriteExt};
use ::tokio::sync::{Semaphore, mpsc, oneshot, watch};
use ::tokio::task::{JoinHandle, JoinSet};
use ipckit::stream::AcceptBackoff;
use ipckit::tokio::{Framed, MessageListener, MessageStream, OwnedReadHalf, OwnedWriteHalf};
use ipckit::{Address, ToAddress};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{self, ChallengeDigest, MAX_HANDSHAKE_FRAME};
use crate::client::{
    ClientOptions, Failure, Pending, Reply, ReplyTx, Route, closed_error, end_of, finish, route,
    timed_out, to_params,
};
use crate::conn::{content_length_end, handshake_frame, next_content_length};
use crate::error::{Error, ErrorKind, Result, RpcError};
use crate::framing::{ContentLengthDecoder, Framing, encode_content_length};
use crate::jsonrpc::{Entry, Id, Incoming, Request, Response, decode_incoming};
use crate::methods::{CatchUnwind, Handler, Job, Methods, panicked};
use crate::server::{ServerOptions, accept_pause, lock, reply_timed_out, too_large_response};

/// Frames waiting for the writer task, per connection.
const QUEUE: usize = 64;

enum Reader {
    Framed(Framed<OwnedReadHalf>),
    ContentLength {
        half: OwnedReadHalf,
        decoder: ContentLengthDecoder,
        buf: Vec<u8>,
    },
    Message(MessageStream),
}

enum Writer {
    Framed(Framed<OwnedWriteHalf>),
    ContentLength(OwnedWriteHalf),
    Message(MessageStream),
}

impl Reader {
    async fn recv(&mut self, peer: &str) -> Result<Option<Vec<u8>>> {
        let context = format!("receive from {peer}");
        match self {
            Reader::Framed(f) => f.recv().await.map_err(|e| Error::io(&context, &e)),
            Reader::Message(m) => m.recv().await.map_err(|e| Error::ipckit(&context, e)),
            Reader::ContentLength { half, decoder, buf } => loop {
                if let Some(frame) = next_content_length(decoder, &context)? {
                    return Ok(Some(frame));
                }
                let n = half.read(buf).await.map_err(|e| Error::io(&context, &e))?;
                if n == 0 {
                    return content_length_end(decoder, &context);
                }
                decoder.extend(&buf[..n]);
            },
        }
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
    async fn send(&mut self, msg: &[u8], peer: &str) -> Result<()> {
        let context = format!("send to {peer}");
        match self {
            Writer::Framed(f) => f.send(msg).await.map_err(|e| Error::io(&context, &e)),
            Writer::Message(m) => m.send(msg).await.map_err(|e| Error::ipckit(&context, e)),
            Writer::ContentLength(half) => {
                let frame = encode_content_length(msg);
                half.write_all(&frame)
                    .await
                    .map_err(|e| Error::io(&context, &e))?;
                half.flush().await.map_err(|e| Error::io(&context, &e))
            }
        }
    }
}

struct Conn {
    reader: Reader,
    writer: Writer,
    peer: String,
    max: usize,
}

impl Conn {
    fn stream(stream: ipckit::tokio::Stream, framing: Framing, max: usize) -> Result<Conn> {
        let peer = stream.peer_addr().to_string();
        let (r, w) = stream.into_split();
        let (reader, writer) = match framing {
            Framing::ContentLength => (
                Reader::ContentLength {
                    half: r,
                    decoder: ContentLengthDecoder::new(max),
                    buf: vec![0; 64 * 1024],
                },
                Writer::ContentLength(w),
            ),
            _ => (
                Reader::Framed(Framed::new(r)),
                Writer::Framed(Framed::new(w)),
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

    fn message(channel: MessageStream, max: usize) -> Result<Conn> {
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

    async fn recv_handshake(&mut self) -> Result<Vec<u8>> {
        handshake_frame(self.reader.recv(&self.peer).await)
    }

    async fn deliver(&mut self, key: &[u8], digest: ChallengeDigest) -> Result<()> {
        let msg = auth::new_challenge(digest)?;
        let peer = self.peer.clone();
        self.writer
            .send(&[auth::CHALLENGE, &msg].concat(), &peer)
            .await?;
        let response = self.recv_handshake().await?;
        match auth::verify(key, &msg, &response) {
            Ok(()) => self.writer.send(auth::WELCOME, &peer).await,
            Err(e) => {
                let _ = self.writer.send(auth::FAILURE, &peer).await;
                Err(e)
            }
        }
    }

    async fn answer(&mut self, key: &[u8]) -> Result<()> {
        let challenge = self.recv_handshake().await?;
        let peer = self.peer.clone();
        self.writer
            .send(&auth::answer(key, &challenge)?, &peer)
            .await?;
        auth::check_verdict(&self.recv_handshake().await?)
    }

    async fn handshake(
        &mut self,
        key: &[u8],
        digest: ChallengeDigest,
        accepting: bool,
        timeout: Duration,
    ) -> Result<()> {
        self.reader.set_max(MAX_HANDSHAKE_FRAME)?;
        let steps = async {
            if accepting {
                self.deliver(key, digest).await?;
                self.answer(key).await
            } else {
                self.answer(key).await?;
                self.deliver(key, digest).await
            }
        };
        let result = match ::tokio::time::timeout(timeout, steps).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::TimedOut,
                format!("the handshake did not finish within {timeout:?}"),
            )),
        };
        result.map_err(|e| {
            Error::new(
                e.kind(),
                format!("authkey handshake with {}: {e}", self.peer),
            )
        })?;
        self.reader.set_max(self.max)
    }
}

/// Starts the writer task of a connection: it sends the frames it is given, in
/// order, until every sender is gone; `on_error` runs if a send fails or one
/// frame takes longer than `limit`, and the task ends (the senders then see
/// the channel closed).
fn spawn_writer(
    mut writer: Writer,
    peer: String,
    limit: Option<Duration>,
    on_error: impl FnOnce(Error) + Send + 'static,
) -> (mpsc::Sender<Vec<u8>>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let task = ::tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            let sent = match limit {
                None => writer.send(&frame, &peer).await,
                Some(limit) => ::tokio::time::timeout(limit, writer.send(&frame, &peer))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Error::new(
                            ErrorKind::TimedOut,
                            format!("send to {peer}: timed out"),
                        ))
                    }),
            };
            if let Err(e) = sent {
                on_error(e);
                return;
            }
        }
    });
    (tx, task)
}

// ---------------------------------------------------------------- server

impl ServerOptions {
    /// Binds `addr` and serves `methods` on it from tokio tasks: sync handlers
    /// on tokio's blocking pool, async ones as tasks. Must be called within a
    /// tokio runtime.
    ///
    /// # Errors
    ///
    /// As for [`ServerOptions::bind`], except that async methods are welcome.
    pub fn serve_tokio(&self, addr: impl ToAddress, methods: Methods) -> Result<Server> {
        self.check()?;
        let addr = addr
            .to_address()
            .map_err(|e| Error::ipckit("bind the RPC server", e))?;
        let mut lopts = ipckit::ListenerOptions::new();
        lopts.max_message_size(self.max_frame_size);
        let listener = if self.framing.is_message() {
            Listening::Message(lopts.bind_message_tokio(addr).map_err(Error::from_ipckit)?)
        } else {
            Listening::Stream(lopts.bind_tokio(addr).map_err(Error::from_ipckit)?)
        };
        let local = match &listener {
            Listening::Stream(l) => l.local_addr().clone(),
            Listening::Message(l) => l.local_addr().clone(),
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(AsyncShared {
            methods,
            opts: self.clone(),
        });
        let task = ::tokio::spawn(accept_loop(shared, listener, stop_rx));
        Ok(Server {
            stop: stop_tx,
            task,
            local,
        })
    }
}

enum Listening {
    Stream(ipckit::tokio::Listener),
    Message(MessageListener),
}

struct AsyncShared {
    methods: Methods,
    opts: ServerOptions,
}

/// An async JSON-RPC server: a task accepts connections, a task per connection
/// reads its requests, and each request runs as a task of its own (at most
/// [`max_concurrent_calls`](ServerOptions::max_concurrent_calls) per
/// connection), so calls finish in any order.
pub struct Server {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    local: Address,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds `addr` with the default [`ServerOptions`].
    ///
    /// # Errors
    ///
    /// As for [`ServerOptions::serve_tokio`].
    pub fn bind(addr: impl ToAddress, methods: Methods) -> Result<Server> {
        ServerOptions::new().serve_tokio(addr, methods)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> &Address {
        &self.local
    }

    /// Stops gracefully: no more connections or requests, every call in flight
    /// finishes and sends its response, then every connection is closed (a
    /// client that does not read its responses holds this up for at most the
    /// [`reply_timeout`](ServerOptions::reply_timeout)). Dropping the server
    /// instead stops it at once (its tasks are aborted).
    ///
    /// # Cancel safety
    ///
    /// Dropping this future leaves the server stopping in the background.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !*self.stop.borrow() {
            self.task.abort();
        }
    }
}

async fn accept_loop(
    shared: Arc<AsyncShared>,
    listener: Listening,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    let max = shared.opts.max_frame_size;
    let limit = shared.opts.connection_limit().min(Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(limit));
    let mut backoff = AcceptBackoff::new();
    loop {
        // At the connection limit, wait for a connection to close (or the stop).
        let slot = ::tokio::select! {
            _ = stop.changed() => break,
            slot = Arc::clone(&slots).acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
        let accepted = ::tokio::select! {
            _ = stop.changed() => break,
            a = async {
                match &listener {
                    Listening::Stream(l) => l.accept().await.map(|s| Conn::stream(s, shared.opts.framing, max)),
                    Listening::Message(l) => l.accept().await.map(|m| Conn::message(m, max)),
                }
            } => a,
        };
        match accepted {
            Ok(accepted) => {
                backoff.on_success();
                if let Ok(conn) = accepted {
                    let serving = serve_conn(Arc::clone(&shared), conn, stop.clone());
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
                let pause = accept_pause(&shared.opts, &mut backoff, e);
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

async fn serve_conn(shared: Arc<AsyncShared>, mut conn: Conn, mut stop: watch::Receiver<bool>) {
    let opts = &shared.opts;
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
    let reporter = Arc::clone(&shared);
    let (tx, writer_task) =
        spawn_writer(writer, peer.clone(), Some(opts.reply_timeout), move |e| {
            // A client that has gone cannot get its response, which is not
            // the server's failure; one that stopped reading is reported.
            if e.kind() == ErrorKind::TimedOut {
                let opts = &reporter.opts;
                opts.report(&reply_timed_out(&e, opts.reply_timeout));
            }
        });
    let slots = Arc::new(Semaphore::new(opts.max_concurrent_calls));
    let mut calls = JoinSet::new();
    loop {
        let got = ::tokio::select! {
            _ = stop.changed() => break,
            // The writer gave up: nothing more can be answered.
            () = tx.closed() => break,
            got = reader.recv(&peer) => got,
        };
        let frame = match got {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) if e.kind() == ErrorKind::FrameTooLarge => {
                opts.report(&e);
                let _ = tx.send(too_large_response(&e)).await;
                break;
            }
            Err(e) => {
                if e.kind() == ErrorKind::Protocol {
                    opts.report(&e);
                }
                break;
            }
        };
        let job = match decode_incoming(&frame) {
            Incoming::Invalid(resp) | Incoming::Single(Entry::Invalid(resp)) => {
                let _ = tx.send(resp.encode()).await;
                continue;
            }
            Incoming::Single(Entry::Request(req)) => Job::One(req),
            Incoming::Batch(entries) => Job::Batch(entries),
        };
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let (s, tx) = (Arc::clone(&shared), tx.clone());
        calls.spawn(async move {
            let out = match job {
                Job::One(req) => run(&s.methods, req).await.map(|r| r.encode()),
                Job::Batch(entries) => {
                    let mut responses = Vec::new();
                    for e in entries {
                        match e {
                            Entry::Invalid(r) => responses.push(r),
                            Entry::Request(req) => responses.extend(run(&s.methods, req).await),
                        }
                    }
                    (!responses.is_empty()).then(|| Response::encode_batch(&responses))
                }
            };
            if let Some(bytes) = out {
                let _ = tx.send(bytes).await;
            }
            drop(permit);
        });
        while calls.try_join_next().is_some() {}
    }
    drop(reader);
    while calls.join_next().await.is_some() {}
    drop(tx);
    let _ = writer_task.await;
}

/// Runs one call: a sync handler on the blocking pool, an async one here; a
/// panic in either becomes -32603 for this caller.
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

// ---------------------------------------------------------------- client

impl ClientOptions {
    /// Connects an async client to a server at `addr`. Must be called within
    /// a tokio runtime.
    ///
    /// # Errors
    ///
    /// As for [`ClientOptions::connect`].
    pub async fn connect_tokio(&self, addr: impl ToAddress) -> Result<Client> {
        self.check()?;
        let started = std::time::Instant::now();
        let addr = addr
            .to_address()
            .map_err(|e| Error::ipckit("connect the RPC client", e))?;
        let copts = self.transport();
        let max = self.max_frame_size;
        let mut conn = if self.framing.is_message() {
            Conn::message(
                copts
                    .connect_message_tokio(&addr)
                    .await
                    .map_err(Error::from_ipckit)?,
                max,
            )?
        } else {
            Conn::stream(
                copts
                    .connect_tokio(&addr)
                    .await
                    .map_err(Error::from_ipckit)?,
                self.framing,
                max,
            )?
        };
        if let Some(key) = &self.authkey {
            let limit = self.handshake_limit(started);
            conn.handshake(key, self.digest, false, limit).await?;
        }
        Ok(Client::start(conn, self.timeout))
    }
}

struct ClientShared {
    pending: Mutex<Pending<oneshot::Sender<Reply>>>,
    next_id: AtomicU64,
    peer: String,
}

impl ReplyTx for oneshot::Sender<Reply> {
    fn reply(self, reply: Reply) {
        // The call may have given up (timed out); then nobody wants it.
        let _ = self.send(reply);
    }
}

impl ClientShared {
    fn close(&self, kind: ErrorKind, why: String) {
        Pending::close(&self.pending, kind, why);
    }

    fn deliver(&self, route: Route) {
        if let Some(why) = Pending::deliver(&self.pending, route) {
            self.close(ErrorKind::Protocol, why);
        }
    }
}

/// An async JSON-RPC client: one connection, any number of calls in flight on
/// it from any number of tasks (`Send + Sync`; share it in an `Arc`), matched
/// by id. When the connection ends every call in flight fails at once.
///
/// # Cancel safety
///
/// A dropped `call` future drops its pending entry; the request may still have
/// been sent (whole: frames go out from a writer task), and its late response
/// is dropped.
pub struct Client {
    shared: Arc<ClientShared>,
    tx: mpsc::Sender<Vec<u8>>,
    reader: JoinHandle<()>,
    timeout: Option<Duration>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.shared.peer)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `addr` with the default [`ClientOptions`].
    ///
    /// # Errors
    ///
    /// As for [`ClientOptions::connect`].
    pub async fn connect(addr: impl ToAddress) -> Result<Client> {
        ClientOptions::new().connect_tokio(addr).await
    }

    fn start(conn: Conn, timeout: Option<Duration>) -> Client {
        let Conn {
            mut reader,
            writer,
            peer,
            ..
        } = conn;
        let shared = Arc::new(ClientShared {
            pending: Mutex::new(Pending::default()),
            next_id: AtomicU64::new(1),
            peer: peer.clone(),
        });
        let s = Arc::clone(&shared);
        let (tx, _writer) = spawn_writer(writer, peer, None, move |e| {
            s.close(
                ErrorKind::Disconnected,
                format!("the connection failed: {e}"),
            );
        });
        let s = Arc::clone(&shared);
        let reader = ::tokio::spawn(async move {
            loop {
                match reader.recv(&s.peer).await {
                    Ok(Some(frame)) => s.deliver(route(&frame)),
                    Ok(None) => {
                        return s.close(
                            ErrorKind::Disconnected,
                            "the server closed the connection".into(),
                        );
                    }
                    Err(e) => {
                        let (kind, why) = end_of(&e);
                        return s.close(kind, why);
                    }
                }
            }
        });
        Client {
            shared,
            tx,
            reader,
            timeout,
        }
    }

    /// Calls `method` with `params`, waiting at most the client's timeout.
    ///
    /// # Errors
    ///
    /// As for [`crate::Client::call_timeout`].
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: P,
    ) -> Result<R> {
        self.call_timeout(method, params, self.timeout).await
    }

    /// Calls `method` with `params`, waiting at most `timeout` (`None`: until
    /// the response comes or the connection ends).
    ///
    /// # Errors
    ///
    /// As for [`crate::Client::call_timeout`].
    pub async fn call_timeout<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: P,
        timeout: Option<Duration>,
    ) -> Result<R> {
        let s = &self.shared;
        let context = format!("call {method:?} on {}", s.peer);
        let params = to_params(&context, params)?;
        let id = s.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        Pending::register(&s.pending, id, tx, &context)?;
        let _guard = Forget { shared: s, id };
        let req = Request {
            method: method.to_owned(),
            params,
            id: Some(Id::from(id)),
        };
        let exchange = async {
            if self.tx.send(req.encode()).await.is_err() {
                return Err(Failure::Closed(
                    ErrorKind::Disconnected,
                    "the connection is closed".into(),
                ));
            }
            rx.await.unwrap_or_else(|_| {
                Err(Failure::Closed(
                    ErrorKind::Disconnected,
                    "the connection is closed".into(),
                ))
            })
        };
        let reply = match timeout {
            None => exchange.await,
            Some(t) => match ::tokio::time::timeout(t, exchange).await {
                Ok(reply) => reply,
                Err(_) => return Err(timed_out(&context, t)),
            },
        };
        if let Err(Failure::Closed(..)) = &reply {
            if let Some(closed) = &lock(&s.pending).closed {
                return Err(closed_error(&context, closed));
            }
        }
        finish(&context, reply)
    }

    /// Sends a notification.
    ///
    /// # Errors
    ///
    /// As for [`crate::Client::notify`].
    pub async fn notify<P: Serialize>(&self, method: &str, params: P) -> Result<()> {
        let s = &self.shared;
        let context = format!("notify {method:?} on {}", s.peer);
        let params = to_params(&context, params)?;
        Pending::check_open(&s.pending, &context)?;
        let req = Request {
            method: method.to_owned(),
            params,
            id: None,
        };
        self.tx.send(req.encode()).await.map_err(|_| {
            Error::new(
                ErrorKind::Disconnected,
                format!("{context}: the connection is closed"),
            )
        })
    }

    /// The address of the server.
    pub fn peer(&self) -> &str {
        &self.shared.peer
    }
}

/// Removes a call's pending entry however the call ends.
struct Forget<'a> {
    shared: &'a ClientShared,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        lock(&self.shared.pending).calls.remove(&self.id);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
