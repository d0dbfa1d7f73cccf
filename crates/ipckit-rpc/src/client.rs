//! The blocking [`Client`] and the [`ClientOptions`] both clients share
//! (what both do with their calls is in `pending`).

use std::fmt;
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{ChallengeDigest, Handshake};
use crate::conn::{Conn, Reader, Writer};
use crate::error::{Error, ErrorKind, Result};
use crate::framing::{DEFAULT_MAX_FRAME_SIZE, Framing};
use crate::options::{DEFAULT_HANDSHAKE_TIMEOUT, check_size, debug_wire, lock, wire_setters};
use crate::pending::{
    Begun, Failure, Ledger, Reply, ReplyTx, Route, closed_error, debug_client, end_of, finish,
    route, timed_out,
};
use crate::signal::Signal;
use ipckit::security::UserId;
use ipckit::{ConnectOptions, ToAddress};

/// How often a client's call that waits for its turn to read, or reads until
/// a deadline, looks up (for a hand-over it missed, or its reply).
const TICK: Duration = Duration::from_millis(100);

/// How a client connects, and the defaults of its calls; one value serves any
/// number of connections, blocking ([`connect`](ClientOptions::connect)) or
/// async (`connect_tokio`, the `tokio` feature).
#[derive(Clone)]
pub struct ClientOptions {
    pub(crate) framing: Framing,
    pub(crate) authkey: Option<Vec<u8>>,
    pub(crate) digest: ChallengeDigest,
    pub(crate) max_frame_size: usize,
    pub(crate) timeout: Option<Duration>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) handshake_timeout: Duration,
    /// The transport options the setters below pass through (the server's
    /// user); the rest of the transport options come from the fields above.
    pub(crate) server_check: ConnectOptions,
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_wire!(f, "ClientOptions", self)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("server_check", &self.server_check)
            .finish()
    }
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            framing: Framing::default(),
            authkey: None,
            digest: ChallengeDigest::default(),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            timeout: None,
            connect_timeout: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            server_check: ConnectOptions::new(),
        }
    }
}

impl ClientOptions {
    /// The defaults: [`Framing::LengthPrefix`], no authkey, 64 MiB frames,
    /// calls without a timeout, a 10 s handshake.
    pub fn new() -> ClientOptions {
        ClientOptions::default()
    }

    wire_setters! {
        // framing:
        /// How the connection is framed; it must match the server's.
        ;
        // authkey:
        /// Passes the `multiprocessing.connection` authkey handshake on connecting.
        ;
        // challenge_digest:
        /// Which challenge the client sends the server (default: `{sha256}`).
        ;
        // max_frame_size:
        /// The largest response accepted; a larger one closes the connection and
        /// fails every call in flight with [`ErrorKind::FrameTooLarge`].
        ;
        // handshake_timeout:
        /// How long the server has to pass the handshake.
        ;
    }

    /// The timeout of [`Client::call`] (default: none).
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long to try connecting (default: the transport's own). With an
    /// [`authkey`](Self::authkey) the handshake is part of connecting: it
    /// must finish within what is left of this too.
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Refuse a server that does not run as `user`: see
    /// [`ipckit::ConnectOptions::require_server_user`]. By default a client
    /// checks that the server of a portable name (`NAME`, `pipe:NAME`) runs as
    /// the current user, and accepts any server on an address written out in
    /// full.
    pub fn require_server_user(&mut self, user: UserId) -> &mut Self {
        self.server_check.require_server_user(user);
        self
    }

    /// Refuse a server that does not run as the current user, on any address
    /// that can tell: see [`ipckit::ConnectOptions::server_user_is_current`].
    pub fn server_user_is_current(&mut self) -> &mut Self {
        self.server_check.server_user_is_current();
        self
    }

    /// Accept a server run by any user, turning off the default check on
    /// portable names: see [`ipckit::ConnectOptions::server_user_any`].
    pub fn server_user_any(&mut self) -> &mut Self {
        self.server_check.server_user_any();
        self
    }

    pub(crate) fn check(&self) -> Result<()> {
        check_size("maximum frame size", self.max_frame_size)?;
        for (what, t) in [
            ("call", self.timeout),
            ("connect", self.connect_timeout),
            ("handshake", Some(self.handshake_timeout)),
        ] {
            if t == Some(Duration::ZERO) {
                return Err(Error::new(
                    ErrorKind::InvalidOption,
                    format!("a {what} timeout of zero is not allowed"),
                ));
            }
        }
        Ok(())
    }

    /// How long the handshake may take, connecting having begun at `started`:
    /// the handshake timeout, within what is left of the connect timeout.
    pub(crate) fn handshake_limit(&self, started: Instant) -> Duration {
        match self.connect_timeout {
            None => self.handshake_timeout,
            Some(t) => self
                .handshake_timeout
                .min(t.saturating_sub(started.elapsed()))
                .max(Duration::from_millis(1)),
        }
    }

    /// The handshake of a connection begun at `started`, if the client has an
    /// authkey: within [`handshake_limit`](Self::handshake_limit).
    pub(crate) fn handshake(&self, started: Instant) -> Option<Handshake<'_>> {
        self.authkey.as_deref().map(|key| Handshake {
            key,
            digest: self.digest,
            accepting: false,
            timeout: self.handshake_limit(started),
        })
    }

    /// The options of the connection: a message channel takes the frame
    /// limit; over a byte stream the framing enforces it.
    pub(crate) fn transport(&self) -> ConnectOptions {
        let mut c = self.server_check.clone();
        if self.framing.is_message() {
            c.max_message_size(self.max_frame_size);
        }
        if let Some(t) = self.connect_timeout {
            c.timeout(t);
        }
        c
    }

    /// Connects to a server at `addr`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Transport`] when nobody listens there (or the connection
    /// fails), [`ErrorKind::Authentication`] when the handshake fails, and
    /// [`ErrorKind::InvalidOption`] for a zero option.
    pub fn connect(&self, addr: impl ToAddress) -> Result<Client> {
        self.check()?;
        let started = Instant::now();
        let addr = addr
            .to_address()
            .map_err(|e| Error::ipckit("connect the RPC client", e))?;
        let copts = self.transport();
        let max = self.max_frame_size;
        // A shared-memory channel carries messages whatever the framing.
        let message = self.framing.is_message() || matches!(addr, ipckit::Address::Shm(_));
        let mut conn = if message {
            Conn::message(
                copts.connect_message(&addr).map_err(Error::from_ipckit)?,
                max,
            )?
        } else {
            Conn::stream(
                copts.connect(&addr).map_err(Error::from_ipckit)?,
                self.framing,
                max,
            )?
        };
        if let Some(hs) = self.handshake(started) {
            conn.handshake(hs)?;
        }
        Client::start(conn, self.timeout)
    }
}

/// Where a blocking call's reply is left, and how its caller is woken (for
/// the reply, or for its turn to read).
#[derive(Default)]
struct Mailbox {
    reply: Mutex<Option<Reply>>,
    woken: Signal,
}

impl ReplyTx for Arc<Mailbox> {
    fn reply(self, reply: Reply) {
        // The call may have given up (timed out); then nobody takes it.
        *lock(&self.reply) = Some(reply);
        self.woken.notify_all();
    }
}

struct Shared {
    /// `None` once the connection is closed: dropping the writer closes the
    /// last handle, so the server sees the end.
    writer: Mutex<Option<Writer>>,
    /// The reading half, taken in turn by the calls waiting for replies; `None`
    /// once the connection has ended.
    reader: Mutex<Option<Reader>>,
    calls: Ledger<Arc<Mailbox>>,
}

impl Shared {
    /// Closes the connection: every call in flight fails at once with `why`.
    fn close(&self, kind: ErrorKind, why: String) {
        lock(&self.writer).take();
        self.calls.close(kind, why);
    }

    fn send(&self, frame: &[u8], deadline: Option<Instant>) -> Result<()> {
        match &mut *lock(&self.writer) {
            Some(w) => w.send(frame, deadline, &self.calls.peer),
            None => Err(Error::new(
                ErrorKind::Disconnected,
                "the connection is closed",
            )),
        }
    }

    fn deliver(&self, route: Route) {
        if let Some(why) = self.calls.deliver(route) {
            self.close(ErrorKind::Protocol, why);
        }
    }

    /// Waits for the reply of call `id` until `deadline`: reads the
    /// connection itself while no other call does, handing every reply it
    /// reads to its call (leader/follower: no reader thread, so a reply
    /// reaches its caller with no hand-over when one call is in flight).
    fn wait(&self, id: u64, mailbox: &Arc<Mailbox>, deadline: Option<Instant>) -> Option<Reply> {
        loop {
            let mut reply = lock(&mailbox.reply);
            if let Some(r) = reply.take() {
                return Some(r);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // This call may have been woken to take the turn to read: pass
                // it on, or the others wait a tick for nothing.
                drop(reply);
                self.hand_over(id);
                return None;
            }
            let turn = match self.reader.try_lock() {
                Ok(turn) => Some(turn),
                // A call that panicked while reading (decoding a reply, after
                // its frame was read) left the reader between frames; without
                // this every call would wait for a turn that never comes.
                Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            match turn {
                Some(mut turn) => {
                    drop(reply);
                    let got = self.read_until(&mut turn, mailbox, deadline);
                    drop(turn);
                    self.hand_over(id);
                    if got.is_some() {
                        return got;
                    }
                }
                None => {
                    // Another call reads; it wakes this one when it leaves
                    // (this mailbox's lock is held until the wait begins, so
                    // that wake-up cannot be missed) or hands over a reply.
                    let slice = deadline.map_or(TICK, |d| {
                        d.saturating_duration_since(Instant::now()).min(TICK)
                    });
                    drop(mailbox.woken.wait_timeout(reply, slice));
                }
            }
        }
    }

    /// Reads while it is this call's turn, until its reply has come (given
    /// back), the deadline passed or the connection ended (`None`).
    fn read_until(
        &self,
        turn: &mut Option<Reader>,
        mailbox: &Mailbox,
        deadline: Option<Instant>,
    ) -> Option<Reply> {
        loop {
            if let Some(r) = lock(&mailbox.reply).take() {
                return Some(r);
            }
            let Some(reader) = turn.as_mut() else {
                // Ended: `close` has failed every call, this one included,
                // unless it was failed already and taken; say why again.
                let closed = lock(&self.calls.pending).closed.clone();
                let (kind, why) =
                    closed.unwrap_or((ErrorKind::Disconnected, "the connection has ended".into()));
                return Some(Err(Failure::Closed(kind, why)));
            };
            // Wait no longer than the deadline (and a tick, to look again).
            // A call without a deadline reads with none: one blocking read
            // (a read with a timeout is a try, a wait and a read), which ends
            // with a frame, or with the connection. Its reply comes only
            // through this reader, which keeps the turn until it has it.
            let slice = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    Some(left.min(TICK))
                }
                None => None,
            };
            if let Err(e) = reader.set_timeout(slice) {
                let (kind, why) = end_of(&e);
                *turn = None;
                self.close(kind, why);
                continue;
            }
            match reader.recv(&self.calls.peer) {
                Ok(Some(frame)) => self.deliver(route(&frame)),
                Ok(None) => {
                    *turn = None;
                    self.close(
                        ErrorKind::Disconnected,
                        "the server closed the connection".into(),
                    );
                }
                Err(e) if e.kind() == ErrorKind::TimedOut => {}
                Err(e) => {
                    *turn = None;
                    let (kind, why) = end_of(&e);
                    self.close(kind, why);
                }
            }
        }
    }

    /// Wakes another call in flight to take its turn to read.
    fn hand_over(&self, leaving: u64) {
        let next = lock(&self.calls.pending)
            .calls
            .iter()
            .find(|(id, _)| **id != leaving)
            .map(|(_, m)| Arc::clone(m));
        if let Some(m) = next {
            let _held = lock(&m.reply);
            m.woken.notify_all();
        }
    }
}

/// A blocking JSON-RPC client: one connection, any number of calls in flight
/// on it from any number of threads (it is `Send + Sync`; share it in an
/// `Arc`), each matched to its response by id.
///
/// The calls waiting for replies take turns to read them (there is no reader
/// thread). When the connection ends (the server closed it or went away, or
/// broke the framing) every call in flight fails at once with
/// [`ErrorKind::Disconnected`] (or the kind of the failure), and so does every
/// later call; with no call in flight that is noticed by the next one. A call that times out leaves the connection usable;
/// its late response, if one comes, is dropped.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// let client = ipckit_rpc::Client::connect("unix:/tmp/rpc.sock")?;
/// let sum: i64 = client.call("add", (2, 3))?;
/// let echoed: serde_json::Value =
///     client.call_timeout("echo", ["hi"], Some(Duration::from_secs(1)))?;
/// client.notify("log", ["done"])?;
/// # Ok::<(), ipckit_rpc::Error>(())
/// ```
pub struct Client {
    shared: Arc<Shared>,
    timeout: Option<Duration>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_client(f, &self.shared.calls.peer, self.timeout)
    }
}

impl Client {
    /// Connects to `addr` with the default [`ClientOptions`].
    ///
    /// # Errors
    ///
    /// As for [`ClientOptions::connect`].
    pub fn connect(addr: impl ToAddress) -> Result<Client> {
        ClientOptions::new().connect(addr)
    }

    fn start(conn: Conn, timeout: Option<Duration>) -> Result<Client> {
        let Conn {
            mut reader,
            writer,
            peer,
            ..
        } = conn;
        reader
            .set_timeout(Some(TICK))
            .map_err(|e| Error::new(e.kind(), format!("connect to {peer}: {e}")))?;
        let shared = Arc::new(Shared {
            writer: Mutex::new(Some(writer)),
            reader: Mutex::new(Some(reader)),
            calls: Ledger::new(peer),
        });
        Ok(Client { shared, timeout })
    }

    /// Calls `method` with `params` and waits for its result, for at most the
    /// client's timeout ([`ClientOptions::timeout`]).
    ///
    /// # Errors
    ///
    /// As for [`call_timeout`](Client::call_timeout).
    pub fn call<P: Serialize, R: DeserializeOwned>(&self, method: &str, params: P) -> Result<R> {
        self.call_timeout(method, params, self.timeout)
    }

    /// Calls `method` with `params` (a tuple or `Vec` for positional params, a
    /// struct or map for named ones, `()` for none) and waits at most `timeout`
    /// (`None`: until the response comes or the connection ends).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Rpc`] with the server's error ([`Error::rpc_error`]),
    /// [`ErrorKind::TimedOut`], [`ErrorKind::Disconnected`] when the connection
    /// ends first, [`ErrorKind::Serialization`] for params that are not an array
    /// or object or a result that does not fit `R`.
    pub fn call_timeout<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: P,
        timeout: Option<Duration>,
    ) -> Result<R> {
        let s = &self.shared;
        let mailbox = Arc::new(Mailbox::default());
        let Begun { context, id, frame } = s.calls.call(method, params, Arc::clone(&mailbox))?;
        let deadline = timeout.map(|t| Instant::now() + t);
        if let Err(e) = s.send(&frame, deadline) {
            let mut p = lock(&s.calls.pending);
            p.calls.remove(&id);
            // Closed meanwhile: say why, not just that it is.
            if let Some(closed) = &p.closed {
                return Err(closed_error(&context, closed));
            }
            return Err(Error::new(e.kind(), format!("{context}: {e}")));
        }
        let reply = match s.wait(id, &mailbox, deadline) {
            Some(reply) => reply,
            None => {
                s.calls.forget(id);
                // The reply may have come in the meantime.
                match lock(&mailbox.reply).take() {
                    Some(reply) => reply,
                    None => {
                        let t = timeout.unwrap_or_default();
                        return Err(timed_out(&context, t));
                    }
                }
            }
        };
        finish(&context, reply)
    }

    /// Sends a notification: `method` is run, and nothing comes back.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] when the connection has ended, and the
    /// params errors of [`call_timeout`](Client::call_timeout).
    pub fn notify<P: Serialize>(&self, method: &str, params: P) -> Result<()> {
        let (context, frame) = self.shared.calls.notification(method, params)?;
        self.shared
            .send(&frame, None)
            .map_err(|e| Error::new(e.kind(), format!("{context}: {e}")))
    }

    /// The address of the server.
    pub fn peer(&self) -> &str {
        &self.shared.calls.peer
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // No call is in flight (they borrow the client): closing the writing
        // half ends the connection for the server.
        self.shared
            .close(ErrorKind::Disconnected, "the client was dropped".into());
    }
}
