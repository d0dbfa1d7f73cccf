//! The blocking [`Server`] and the [`ServerOptions`] both servers share.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ipckit::stream::{AcceptBackoff, ConnectionLimit};
use ipckit::{Address, ConnectOptions, ListenerOptions, ToAddress};

use crate::auth::ChallengeDigest;
use crate::conn::{Conn, Reader, Writer};
use crate::error::{Error, ErrorKind, Result, RpcError};
use crate::framing::{DEFAULT_MAX_FRAME_SIZE, Framing};
use crate::jsonrpc::{Entry, Id, Incoming, Response, decode_incoming};
use crate::methods::{Job, Methods};

/// How often a blocked reader looks up to see whether it should stop.
pub(crate) const TICK: Duration = Duration::from_millis(100);

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
    /// The defaults: [`Framing::LengthPrefix`], no authkey, 64 MiB frames, 64
    /// concurrent calls per connection, a 10 s handshake, at most
    /// [`ConnectionLimit::default_max`] connections.
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

    /// How many calls of one connection run at once; the next request waits
    /// to be read until one finishes.
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
    /// reported. The hook runs on the connection's thread (or task).
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
    /// thread per call, until [`shutdown`](Server::shutdown).
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
}

/// A blocking JSON-RPC server: a thread accepts connections, a thread per
/// connection reads its requests, and each request runs on a thread of its own
/// (at most [`max_concurrent_calls`](ServerOptions::max_concurrent_calls) at once
/// per connection), so calls of one client finish in any order and each
/// response goes back, matched by id, as soon as it is ready. A batch runs on
/// one thread, its entries in order.
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
        // An accept loop waiting for a free connection slot stops there.
        self.shared.limit.close();
        // Wake the accept loop with a connection of our own; it sees the flag
        // and drops it.
        let mut copts = ConnectOptions::new();
        copts.timeout(WAKE_LIMIT);
        let woken = if self.shared.opts.framing.is_message() {
            copts.connect_message(&self.local).map(drop)
        } else {
            copts.connect(&self.local).map(drop)
        };
        // If the address no longer leads to the listener (its socket file was
        // removed, say), nothing can wake the accept thread: it is left
        // blocked, and ends at its next connection without serving it. The
        // rest of the shutdown does not wait for it.
        if woken.is_ok()
            && matches!(
                ended
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner)
                    .recv_timeout(WAKE_LIMIT),
                Err(RecvTimeoutError::Disconnected)
            )
        {
            let _ = accept.join();
        }
        let conns = std::mem::take(&mut *lock(&self.shared.conns));
        for conn in conns {
            let _ = conn.join();
        }
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

/// How many threads serve one connection, bounded.
#[derive(Default)]
struct Workers {
    n: Mutex<usize>,
    changed: Condvar,
}

impl Workers {
    /// Counts one more worker if there are fewer than `max`.
    fn try_add(&self, max: usize) -> bool {
        let mut n = lock(&self.n);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn remove(&self) {
        *lock(&self.n) -= 1;
        self.changed.notify_all();
    }

    fn wait_none(&self) {
        let mut n = lock(&self.n);
        while *n > 0 {
            n = self.changed.wait(n).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// One connection, shared by the threads that serve it. They take turns to
/// read (leader/follower): the thread that has read a request hands the turn
/// on and runs the call itself, so a reply leaves from the thread that read
/// its request, with no hand-over on the way, while the next request is read
/// by another thread (one is started when none is waiting, up to
/// `max_concurrent_calls`), so a slow call holds up no other.
struct Served {
    reader: Mutex<Reader>,
    writer: Mutex<Writer>,
    peer: String,
    /// Threads waiting for their turn to read.
    waiting: AtomicUsize,
    workers: Workers,
    /// The connection has ended (or broke): nothing more is read.
    ended: AtomicBool,
    /// A response could not be sent (the client is gone, or stopped reading
    /// for the reply timeout): nothing more is sent either.
    broken: AtomicBool,
}

impl Served {
    /// Sends a response, unless an earlier one failed. A failed send ends
    /// the connection: a client that has gone cannot get it, which is not
    /// the server's failure; one that stopped reading is reported.
    fn send(&self, opts: &ServerOptions, bytes: &[u8]) {
        if self.broken.load(Ordering::SeqCst) {
            return;
        }
        let mut writer = lock(&self.writer);
        if self.broken.load(Ordering::SeqCst) {
            return;
        }
        let deadline = Instant::now() + opts.reply_timeout;
        if let Err(e) = writer.send(bytes, Some(deadline), &self.peer) {
            self.broken.store(true, Ordering::SeqCst);
            self.ended.store(true, Ordering::SeqCst);
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

fn serve_conn(shared: &Arc<Shared>, mut conn: Conn) {
    let opts = &shared.opts;
    if let Some(key) = &opts.authkey {
        if conn
            .handshake(
                key,
                opts.digest,
                true,
                opts.handshake_timeout,
                Some(&shared.stopping),
            )
            .map_err(|e| opts.report(&e))
            .is_err()
        {
            return;
        }
    }
    if conn.reader.set_timeout(Some(TICK)).is_err() {
        return;
    }
    let Conn {
        reader,
        writer,
        peer,
        ..
    } = conn;
    let served = Arc::new(Served {
        reader: Mutex::new(reader),
        writer: Mutex::new(writer),
        peer,
        waiting: AtomicUsize::new(0),
        workers: Workers::default(),
        ended: AtomicBool::new(false),
        broken: AtomicBool::new(false),
    });
    // This thread is the first worker; the connection is done when the last
    // has finished its call.
    served.workers.try_add(usize::MAX);
    work(shared, &served);
    served.workers.wait_none();
}

/// A worker: reads a request in its turn, then runs it.
fn work(shared: &Arc<Shared>, served: &Arc<Served>) {
    while let Some(frame) = next_frame(shared, served) {
        if served.waiting.load(Ordering::SeqCst) == 0 {
            start_worker(shared, served);
        }
        dispatch(shared, &frame, served);
    }
    served.workers.remove();
}

/// Another worker, if the connection may have one more; without it, this
/// thread reads again once its call is done.
fn start_worker(shared: &Arc<Shared>, served: &Arc<Served>) {
    if !served.workers.try_add(shared.opts.max_concurrent_calls) {
        return;
    }
    let (s, c) = (Arc::clone(shared), Arc::clone(served));
    let spawned = thread::Builder::new()
        .name("ipckit-rpc-call".into())
        .spawn(move || work(&s, &c));
    if spawned.is_err() {
        served.workers.remove();
    }
}

/// The next request, in this thread's turn to read; `None` once the
/// connection has ended or the server stops.
fn next_frame(shared: &Arc<Shared>, served: &Served) -> Option<Vec<u8>> {
    served.waiting.fetch_add(1, Ordering::SeqCst);
    let mut reader = lock(&served.reader);
    served.waiting.fetch_sub(1, Ordering::SeqCst);
    let opts = &shared.opts;
    while !served.ended.load(Ordering::SeqCst) && !shared.stopping.load(Ordering::SeqCst) {
        match reader.recv(&served.peer) {
            Ok(Some(frame)) => return Some(frame),
            Ok(None) => break,
            Err(e) if e.kind() == ErrorKind::TimedOut => {}
            Err(e) if e.kind() == ErrorKind::FrameTooLarge => {
                opts.report(&e);
                served.send(opts, &too_large_response(&e));
                break;
            }
            Err(e) => {
                if e.kind() == ErrorKind::Protocol {
                    opts.report(&e);
                }
                break;
            }
        }
    }
    served.ended.store(true, Ordering::SeqCst);
    None
}

/// Runs one request (or batch) and sends its reply from this thread.
fn dispatch(shared: &Arc<Shared>, frame: &[u8], served: &Served) {
    let opts = &shared.opts;
    let job = match decode_incoming(frame) {
        Incoming::Invalid(resp) | Incoming::Single(Entry::Invalid(resp)) => {
            return served.send(opts, &resp.encode());
        }
        Incoming::Single(Entry::Request(req)) => Job::One(req),
        Incoming::Batch(entries) => Job::Batch(entries),
    };
    if let Some(bytes) = job.run_sync(&shared.methods) {
        served.send(opts, &bytes);
    }
}
