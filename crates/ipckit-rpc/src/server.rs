//! The blocking [`Server`] and the [`ServerOptions`] both servers share.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ipckit::stream::{AcceptBackoff, ConnectionLimit};
use ipckit::{Address, ConnectOptions, ListenerOptions, ToAddress};

use crate::auth::ChallengeDigest;
use crate::budget::{Budget, DEFAULT_MAX_BUFFERED_BYTES};
use crate::conn::{Conn, Halves, Reader, Waker, Writer};
use crate::error::{Error, ErrorKind, Result, RpcError};
use crate::framing::{DEFAULT_MAX_FRAME_SIZE, Framing};
use crate::jsonrpc::{Entry, Id, Incoming, Response, decode_incoming};
use crate::methods::{Job, Methods};
use crate::pool::Pool;

/// How often a reader whose reads cannot be woken (TCP on Windows) looks up
/// to see whether it should stop.
const LOOK_UP: Duration = Duration::from_millis(100);

/// How long `stop` gives an accept thread that waits for a free connection
/// slot to see that the server stops.
const SLOT_WAKE: Duration = Duration::from_millis(20);

/// How long `stop` tries to wake the accept thread, and then waits for it.
const WAKE_LIMIT: Duration = Duration::from_secs(2);

/// The pause after an accept fails with anything but a resource error (those
/// pause as [`AcceptBackoff`] says).
pub(crate) const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// [`ServerOptions::reply_timeout`]'s default.
const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How a server listens and what it asks of its clients; one value serves a
/// whole server, blocking ([`bind`](ServerOptions::bind)) or async
/// (`serve_tokio`, the `tokio` feature).
///
/// # Examples
///
/// ```no_run
/// let mut methods = ipckit_rpc::Methods::new();
/// methods.method("ping", |()| Ok("pong"));
/// let mut opts = ipckit_rpc::ServerOptions::new();
/// opts.authkey(b"secret").max_frame_size(1 << 20);
/// let server = opts.bind("unix:/tmp/rpc.sock", methods)?;
/// # Ok::<(), ipckit_rpc::Error>(())
/// ```
#[derive(Clone)]
pub struct ServerOptions {
    pub(crate) framing: Framing,
    pub(crate) authkey: Option<Vec<u8>>,
    pub(crate) digest: ChallengeDigest,
    pub(crate) max_frame_size: usize,
    pub(crate) max_buffered_bytes: usize,
    pub(crate) max_concurrent_calls: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) reply_timeout: Duration,
    pub(crate) max_connections: Option<usize>,
    pub(crate) on_error: Option<ErrorHook>,
}

/// What [`ServerOptions::on_connection_error`] is given.
pub(crate) type ErrorHook = Arc<dyn Fn(&Error) + Send + Sync>;

impl fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerOptions")
            .field("framing", &self.framing)
            .field("authkey", &self.authkey.as_ref().map(|_| "<hidden>"))
            .field("digest", &self.digest)
            .field("max_frame_size", &self.max_frame_size)
            .field("max_buffered_bytes", &self.max_buffered_bytes)
            .field("max_concurrent_calls", &self.max_concurrent_calls)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("reply_timeout", &self.reply_timeout)
            .field("max_connections", &self.max_connections)
            .field(
                "on_connection_error",
                &self.on_error.as_ref().map(|_| "<fn>"),
            )
            .finish()
    }
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            framing: Framing::default(),
            authkey: None,
            digest: ChallengeDigest::default(),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            max_concurrent_calls: 64,
            handshake_timeout: Duration::from_secs(10),
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            max_connections: None,
            on_error: None,
        }
    }
}

pub(crate) fn check_size(what: &str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::new(
            ErrorKind::InvalidOption,
            format!("a {what} of 0 is not allowed"),
        ));
    }
    Ok(())
}

impl ServerOptions {
    /// The defaults: [`Framing::LengthPrefix`], no authkey, 64 MiB frames,
    /// 256 MiB buffered for unfinished frames, 64 concurrent calls, a 10 s
    /// handshake, at most [`ConnectionLimit::default_max`] connections.
    pub fn new() -> ServerOptions {
        ServerOptions::default()
    }

    /// How each connection is framed.
    pub fn framing(&mut self, framing: Framing) -> &mut Self {
        self.framing = framing;
        self
    }

    /// Requires every client to pass the `multiprocessing.connection` authkey
    /// handshake (see [`auth`](crate::auth)) before its first call.
    pub fn authkey(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        self.authkey = Some(key.as_ref().to_vec());
        self
    }

    /// Which challenge the server sends (default: the `{sha256}` one of Python 3.12).
    pub fn challenge_digest(&mut self, digest: ChallengeDigest) -> &mut Self {
        self.digest = digest;
        self
    }

    /// The largest incoming frame (a request or a batch); a larger one is
    /// answered with -32600 and the connection closed.
    pub fn max_frame_size(&mut self, bytes: usize) -> &mut Self {
        self.max_frame_size = bytes;
        self
    }

    /// The most bytes the server holds, for all its connections together, in
    /// frames that have not ended yet (default 256 MiB). A request's bytes
    /// count from the first read until the frame is whole. A connection whose
    /// next read would go over it is answered with -32600 (`... the server
    /// holds its limit of N bytes in unfinished requests ...`), reported to
    /// [`on_connection_error`](Self::on_connection_error) as
    /// [`ErrorKind::FrameTooLarge`] and closed; the others go on. So clients
    /// that announce large frames and send them slowly, or never finish them,
    /// cannot make the server hold more than this.
    ///
    /// The length-prefix and `Content-Length` framings are metered, on the
    /// blocking server; a message of the message framing arrives whole from
    /// the OS, so it holds nothing unfinished (over `tcp:`, where it is a
    /// length-prefixed frame inside ipckit, it is not metered). The async
    /// server does not meter yet.
    pub fn max_buffered_bytes(&mut self, bytes: usize) -> &mut Self {
        self.max_buffered_bytes = bytes;
        self
    }

    /// How many calls run at once. On the blocking server this bounds the
    /// calls of the whole server (they run on a pool of at most this many
    /// threads, shared by every connection) and so those of one connection;
    /// on the async server, those of one connection. A request waits to be
    /// read until its connection has a call fewer in flight; a call counts
    /// until its response is sent (default 64).
    pub fn max_concurrent_calls(&mut self, n: usize) -> &mut Self {
        self.max_concurrent_calls = n;
        self
    }

    /// How long a client has to pass the handshake.
    pub fn handshake_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long sending one response may take before the server gives up on
    /// the client (10 s by default). A client that sends requests but stops
    /// reading the responses fills the connection's buffer; once a response
    /// has taken this long, the server closes that connection (reported to
    /// [`on_connection_error`](Self::on_connection_error) as
    /// [`ErrorKind::TimedOut`]) and sends it nothing more. This also bounds
    /// how long [`Server::shutdown`] waits for such a client.
    pub fn reply_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.reply_timeout = timeout;
        self
    }

    /// How many connections the server holds at once (default:
    /// [`ConnectionLimit::default_max`], half the soft `RLIMIT_NOFILE` on Unix,
    /// 4096 on Windows). At the limit the server queues: it accepts nobody
    /// until a connection closes, so new clients wait in the listener's
    /// backlog (or for a pipe instance on Windows) and are then served in
    /// turn; their `connect` succeeds, their first call waits. Clients that
    /// arrive once the backlog is full are refused by the OS.
    pub fn max_connections(&mut self, n: usize) -> &mut Self {
        self.max_connections = Some(n);
        self
    }

    /// The connection limit a server starts with.
    pub(crate) fn connection_limit(&self) -> usize {
        self.max_connections
            .unwrap_or_else(ConnectionLimit::default_max)
    }

    /// Calls `hook` with the error that ends a connection early: a failed
    /// handshake (a wrong authkey, say), a frame over the limit, broken
    /// framing, a client that stopped reading its responses. The server has no other way to tell; by default nothing is
    /// reported. The hook runs on a thread (or task) of the server.
    ///
    /// It is also called with the first error of each burst of accepts that
    /// fail for lack of resources (out of file descriptors, say): the server
    /// pauses (5 ms doubling to 1 s, see [`AcceptBackoff`]) and goes on
    /// accepting, its connections unharmed; that hook call runs on the accept
    /// thread (or task).
    pub fn on_connection_error(
        &mut self,
        hook: impl Fn(&Error) + Send + Sync + 'static,
    ) -> &mut Self {
        self.on_error = Some(Arc::new(hook));
        self
    }

    pub(crate) fn report(&self, err: &Error) {
        if let Some(hook) = &self.on_error {
            hook(err);
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        check_size("maximum frame size", self.max_frame_size)?;
        check_size("maximum of buffered bytes", self.max_buffered_bytes)?;
        check_size(
            "maximum number of concurrent calls",
            self.max_concurrent_calls,
        )?;
        check_size("maximum number of connections", self.connection_limit())?;
        if self.handshake_timeout.is_zero() {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                "a handshake timeout of zero is not allowed",
            ));
        }
        if self.reply_timeout.is_zero() {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                "a reply timeout of zero is not allowed",
            ));
        }
        Ok(())
    }

    /// Binds `addr` and serves `methods` on it, a thread per connection and a
    /// pool of threads for the calls, until [`shutdown`](Server::shutdown).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] for a zero option or an async method (serve
    /// those with the async server), and [`ErrorKind::Transport`] when the
    /// address cannot be bound.
    pub fn bind(&self, addr: impl ToAddress, methods: Methods) -> Result<Server> {
        self.check()?;
        if let Some(name) = methods.first_async() {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!(
                    "{name:?} is an async method: serve it with the async server (the tokio feature), not the blocking one"
                ),
            ));
        }
        let mut lopts = ListenerOptions::new();
        lopts.max_message_size(self.max_frame_size);
        let addr = addr
            .to_address()
            .map_err(|e| Error::ipckit("bind the RPC server", e))?;
        let listener = if self.framing.is_message() {
            Listening::Message(lopts.bind_message(addr.clone()))
        } else {
            Listening::Stream(lopts.bind(addr.clone()))
        }
        .ok()
        .map_err(Error::from_ipckit)?;
        let local = listener.local_addr().clone();
        let limit = ConnectionLimit::new(self.connection_limit())
            .map_err(|e| Error::ipckit("bind the RPC server", e))?;
        let shared = Arc::new(Shared {
            methods,
            opts: self.clone(),
            limit,
            stopping: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            live: Mutex::new(Live::default()),
            pool: Pool::new(self.max_concurrent_calls),
            budget: Budget::new(self.max_buffered_bytes),
        });
        let s = Arc::clone(&shared);
        let (ended_tx, ended_rx) = mpsc::channel::<()>();
        let accept = thread::Builder::new()
            .name("ipckit-rpc-accept".into())
            .spawn(move || {
                // Dropped when the thread ends: `stop` waits for that.
                let _ended = ended_tx;
                accept_loop(&s, &listener);
            })
            .map_err(|e| Error::io("start the accept thread", &e))?;
        Ok(Server {
            shared,
            accept: Some((accept, Mutex::new(ended_rx))),
            local,
        })
    }
}

enum Listening<S, M> {
    Stream(S),
    Message(M),
}

impl<S, M> Listening<ipckit::Result<S>, ipckit::Result<M>> {
    fn ok(self) -> ipckit::Result<Listening<S, M>> {
        Ok(match self {
            Listening::Stream(s) => Listening::Stream(s?),
            Listening::Message(m) => Listening::Message(m?),
        })
    }
}

impl Listening<ipckit::Listener, ipckit::MessageListener> {
    fn local_addr(&self) -> &Address {
        match self {
            Listening::Stream(l) => l.local_addr(),
            Listening::Message(l) => l.local_addr(),
        }
    }
}

struct Shared {
    methods: Methods,
    opts: ServerOptions,
    /// The connections held, at most `max_connections`.
    limit: ConnectionLimit,
    stopping: AtomicBool,
    conns: Mutex<Vec<JoinHandle<()>>>,
    /// The connections being served, to wake their readers when stopping.
    live: Mutex<Live>,
    pool: Arc<Pool>,
    budget: Arc<Budget>,
}

/// The connections being served, by a number of their own.
#[derive(Default)]
struct Live {
    next: u64,
    conns: HashMap<u64, Arc<Served>>,
}

/// A blocking JSON-RPC server: a thread accepts connections, a thread per
/// connection reads its requests (blocked in the OS while the client is
/// silent: an idle connection costs no CPU), and the calls run on a pool of
/// at most [`max_concurrent_calls`](ServerOptions::max_concurrent_calls)
/// threads shared by all connections, so calls of one client finish in any
/// order and each response goes back, matched by id, as soon as it is ready.
/// A batch runs as one call, its entries in order. However many clients
/// connect and whatever they send or fail to read, the server has one thread
/// per connection, its accept thread and at most `max_concurrent_calls`
/// more.
///
/// # Examples
///
/// ```no_run
/// use ipckit_rpc::{Client, Methods, Server};
/// let mut methods = Methods::new();
/// methods.method("add", |(a, b): (i64, i64)| Ok(a + b));
/// let server = Server::bind("pipe:calc", methods)?;
/// let client = Client::connect("pipe:calc")?;
/// let sum: i64 = client.call("add", (2, 3))?;
/// assert_eq!(sum, 5);
/// server.shutdown();
/// # Ok::<(), ipckit_rpc::Error>(())
/// ```
pub struct Server {
    shared: Arc<Shared>,
    /// The accept thread, and what tells that it has ended.
    /// (In a mutex only to keep `Server` `Sync`.)
    accept: Option<(JoinHandle<()>, Mutex<mpsc::Receiver<()>>)>,
    local: Address,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local)
            .field("methods", &self.shared.methods)
            .field("options", &self.shared.opts)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds `addr` with the default [`ServerOptions`].
    ///
    /// # Errors
    ///
    /// As for [`ServerOptions::bind`].
    pub fn bind(addr: impl ToAddress, methods: Methods) -> Result<Server> {
        ServerOptions::new().bind(addr, methods)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> &Address {
        &self.local
    }

    /// Stops gracefully: accepts no more connections and reads no more
    /// requests, lets every call in flight finish and send its response, then
    /// closes every connection. Returns when all of that is done; a client
    /// that does not read its responses holds it up for at most the
    /// [`reply_timeout`](ServerOptions::reply_timeout). Dropping the server
    /// does the same.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some((accept, mut ended)) = self.accept.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // An accept loop waiting for a free connection slot stops there, at
        // once: give it a moment. Waking it with a connection of our own
        // would then be wrong: at the limit on Windows no pipe instance is
        // waiting, so that connect would wait its whole timeout.
        self.shared.limit.close();
        let ended = ended.get_mut().unwrap_or_else(PoisonError::into_inner);
        let gone = |r: std::result::Result<(), RecvTimeoutError>| {
            matches!(r, Err(RecvTimeoutError::Disconnected))
        };
        if gone(ended.recv_timeout(SLOT_WAKE)) {
            let _ = accept.join();
        } else {
            // Wake the accept loop with a connection of our own; it sees the
            // flag and drops it.
            let mut copts = ConnectOptions::new();
            copts.timeout(WAKE_LIMIT);
            let woken = if self.shared.opts.framing.is_message() {
                copts.connect_message(&self.local).map(drop)
            } else {
                copts.connect(&self.local).map(drop)
            };
            // If the address no longer leads to the listener (its socket file
            // was removed, say), nothing can wake the accept thread: it is
            // left blocked, and ends at its next connection without serving
            // it. The rest of the shutdown does not wait for it.
            if woken.is_ok() && gone(ended.recv_timeout(WAKE_LIMIT)) {
                let _ = accept.join();
            }
        }
        // Wake every reader: it reads no more requests, lets its calls in
        // flight finish and send their responses, then closes.
        {
            let live = lock(&self.shared.live);
            for served in live.conns.values() {
                served.stop_reading();
            }
        }
        let conns = std::mem::take(&mut *lock(&self.shared.conns));
        for conn in conns {
            let _ = conn.join();
        }
        self.shared.pool.close();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    shared: &Arc<Shared>,
    listener: &Listening<ipckit::Listener, ipckit::MessageListener>,
) {
    let max = shared.opts.max_frame_size;
    let mut backoff = AcceptBackoff::new();
    // At the connection limit, wait for a connection to close (or the stop).
    while let Some(slot) = shared.limit.acquire() {
        let accepted = match listener {
            Listening::Stream(l) => l
                .accept()
                .map(|s| Conn::stream(s, shared.opts.framing, max)),
            Listening::Message(l) => l.accept().map(|m| Conn::message(m, max)),
        };
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let conn = match accepted {
            Ok(accepted) => {
                backoff.on_success();
                match accepted {
                    Ok(conn) => conn,
                    // A client that failed on the way in (gone already, say)
                    // is its own problem.
                    Err(_) => continue,
                }
            }
            // Out of descriptors (say): pause, longer while it lasts, and go
            // on; another failure of the listener gets a breather.
            Err(e) => {
                thread::sleep(accept_pause(&shared.opts, &mut backoff, e));
                continue;
            }
        };
        let s = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("ipckit-rpc-conn".into())
            .spawn(move || {
                // Held until the connection is done.
                let _slot = slot;
                serve_conn(&s, conn);
            });
        let mut conns = lock(&shared.conns);
        conns.retain(|h| !h.is_finished());
        if let Ok(handle) = spawned {
            conns.push(handle);
        }
    }
}

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

/// One connection, shared by its reader thread and the calls of it that run
/// on the pool.
struct Served {
    writer: Mutex<Writer>,
    /// Responses waiting for the writer, and whether a thread is sending them.
    outbox: Mutex<Outbox>,
    /// Requests read whose response has not been sent (or dropped) yet.
    in_flight: Mutex<usize>,
    /// Signalled when `in_flight` drops, and when the reader should stop.
    changed: Condvar,
    /// Ends the reader's reads from another thread.
    waker: Waker,
    /// The server's pool, told when a thread of it sends.
    pool: Arc<Pool>,
    peer: String,
    /// A response could not be sent (the client is gone, or stopped reading
    /// for the reply timeout): nothing more is sent, or read.
    broken: AtomicBool,
}

#[derive(Default)]
struct Outbox {
    queue: VecDeque<Vec<u8>>,
    sending: bool,
}

impl Served {
    /// Ends the reader's wait, for a read or for a free slot: the server is
    /// stopping, or the connection broke.
    fn stop_reading(&self) {
        self.waker.wake();
        let _held = lock(&self.in_flight);
        self.changed.notify_all();
    }

    /// Counts `n` requests answered.
    fn answered(&self, n: usize) {
        let mut in_flight = lock(&self.in_flight);
        *in_flight -= n;
        self.changed.notify_all();
    }

    /// Sends the response to one request (`None`: a notification, nothing to
    /// send), unless an earlier send failed. Only one thread sends at a time;
    /// a response that comes while one does is queued for it, and once that
    /// thread is stuck in its send it no longer counts against the pool: a
    /// client that stops reading holds one thread (until the reply timeout),
    /// but no place in the pool.
    fn respond(&self, opts: &ServerOptions, bytes: Option<Vec<u8>>) {
        let Some(bytes) = bytes.filter(|_| !self.broken.load(Ordering::SeqCst)) else {
            return self.answered(1);
        };
        {
            let mut outbox = lock(&self.outbox);
            outbox.queue.push_back(bytes);
            if outbox.sending {
                return;
            }
            outbox.sending = true;
        }
        let _sending = self.pool.sending();
        let mut writer = lock(&self.writer);
        loop {
            let batch: Vec<Vec<u8>> = {
                let mut outbox = lock(&self.outbox);
                if outbox.queue.is_empty() {
                    outbox.sending = false;
                    return;
                }
                outbox.queue.drain(..).collect()
            };
            let n = batch.len();
            for bytes in batch {
                self.send(&mut writer, opts, &bytes);
            }
            self.answered(n);
        }
    }

    /// Sends a response. A failed send ends the connection: a client that has
    /// gone cannot get it, which is not the server's failure; one that stopped
    /// reading is reported.
    fn send(&self, writer: &mut Writer, opts: &ServerOptions, bytes: &[u8]) {
        if self.broken.load(Ordering::SeqCst) {
            return;
        }
        let deadline = Instant::now() + opts.reply_timeout;
        if let Err(e) = writer.send(bytes, Some(deadline), &self.peer) {
            self.broken.store(true, Ordering::SeqCst);
            self.stop_reading();
            if e.kind() == ErrorKind::TimedOut {
                opts.report(&reply_timed_out(&e, opts.reply_timeout));
            }
        }
    }
}

/// What [`ServerOptions::on_connection_error`] gets for a response that could
/// not be sent within the reply timeout.
pub(crate) fn reply_timed_out(err: &Error, timeout: Duration) -> Error {
    Error::new(
        ErrorKind::TimedOut,
        format!(
            "{err} (the response took longer than the reply timeout, {timeout:?}: the client is not reading); closing the connection"
        ),
    )
}

/// The error response for a frame over the limit, sent before the connection
/// is closed (the stream is out of step after it).
pub(crate) fn too_large_response(err: &Error) -> Vec<u8> {
    Response::error(
        Id::Null,
        RpcError::invalid_request(format!("invalid request: {err}; closing the connection")),
    )
    .encode()
}

/// Serves one connection on the thread it was accepted for: the handshake,
/// then its requests, until it ends or the server stops; then waits for its
/// calls in flight to send their responses, and closes it.
fn serve_conn(shared: &Arc<Shared>, mut conn: Conn) {
    conn.reader.set_budget(&shared.budget);
    let Ok(waker) = conn.reader.waker() else {
        return;
    };
    if !waker.wakes_reads() && conn.reader.set_timeout(Some(LOOK_UP)).is_err() {
        return;
    }
    let Conn {
        mut reader,
        writer,
        peer,
        ..
    } = conn;
    let served = Arc::new(Served {
        writer: Mutex::new(writer),
        outbox: Mutex::new(Outbox::default()),
        in_flight: Mutex::new(0),
        changed: Condvar::new(),
        waker,
        pool: Arc::clone(&shared.pool),
        peer,
        broken: AtomicBool::new(false),
    });
    // Registered before anything is read, so a stop can wake the reads; under
    // the lock `stop` takes to wake them, so none is missed.
    let id = {
        let mut live = lock(&shared.live);
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        live.next += 1;
        let id = live.next;
        live.conns.insert(id, Arc::clone(&served));
        id
    };
    let refused = if handshake(shared, &mut reader, &served) {
        read_requests(shared, &mut reader, &served)
    } else {
        None
    };
    // What the reader holds (a frame refused half read) goes first.
    drop(reader);
    if let Some(e) = refused {
        *lock(&served.in_flight) += 1;
        served.respond(&shared.opts, Some(too_large_response(&e)));
    }
    let mut in_flight = lock(&served.in_flight);
    while *in_flight > 0 {
        in_flight = served
            .changed
            .wait(in_flight)
            .unwrap_or_else(|p| p.into_inner());
    }
    drop(in_flight);
    lock(&shared.live).conns.remove(&id);
}

/// The authkey handshake, if the server asks for one; whether it passed.
fn handshake(shared: &Shared, reader: &mut Reader, served: &Served) -> bool {
    let opts = &shared.opts;
    let Some(key) = &opts.authkey else {
        return true;
    };
    let result = Halves {
        reader,
        writer: &mut lock(&served.writer),
        peer: &served.peer,
        max: opts.max_frame_size,
    }
    .handshake(
        key,
        opts.digest,
        true,
        opts.handshake_timeout,
        Some(&shared.stopping),
    );
    match result {
        Ok(()) => true,
        Err(e) => {
            if !shared.stopping.load(Ordering::SeqCst) {
                opts.report(&e);
            }
            false
        }
    }
}

/// Reads requests and hands each to the pool, while the connection has a
/// free slot, until it ends, breaks or the server stops; returns the error
/// of a frame refused for its size (reported), to be answered.
fn read_requests(shared: &Arc<Shared>, reader: &mut Reader, served: &Arc<Served>) -> Option<Error> {
    let opts = &shared.opts;
    let ended = || served.broken.load(Ordering::SeqCst) || shared.stopping.load(Ordering::SeqCst);
    loop {
        {
            let mut in_flight = lock(&served.in_flight);
            while *in_flight >= opts.max_concurrent_calls && !ended() {
                in_flight = served
                    .changed
                    .wait(in_flight)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
        if ended() {
            return None;
        }
        let frame = match reader.recv(&served.peer) {
            // A request read as the server began to stop is not run.
            _ if ended() => return None,
            Ok(Some(frame)) => frame,
            // A reader that looks up now and then (see `LOOK_UP`).
            Err(e) if e.kind() == ErrorKind::TimedOut => continue,
            Ok(None) => return None,
            Err(e) if e.kind() == ErrorKind::FrameTooLarge => {
                opts.report(&e);
                return Some(e);
            }
            Err(e) => {
                if e.kind() == ErrorKind::Protocol {
                    opts.report(&e);
                }
                return None;
            }
        };
        *lock(&served.in_flight) += 1;
        let (s, c) = (Arc::clone(shared), Arc::clone(served));
        let call = Box::new(move || c.respond(&s.opts, run(&s.methods, &frame)));
        if let Some(call) = shared.pool.submit(call) {
            call();
        }
    }
}

/// Runs one request (or batch): its response, if it has one.
fn run(methods: &Methods, frame: &[u8]) -> Option<Vec<u8>> {
    let job = match decode_incoming(frame) {
        Incoming::Invalid(resp) | Incoming::Single(Entry::Invalid(resp)) => {
            return Some(resp.encode());
        }
        Incoming::Single(Entry::Request(req)) => Job::One(req),
        Incoming::Batch(entries) => Job::Batch(entries),
    };
    job.run_sync(methods)
}
