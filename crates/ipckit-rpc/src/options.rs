//! What a server is told: [`ServerOptions`], one value for the blocking and
//! the async server, and the small helpers every layer above uses.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipckit::stream::ConnectionLimit;

use crate::auth::{ChallengeDigest, Handshake};
use crate::error::{Error, ErrorKind, Result, RpcError};
use crate::framing::{DEFAULT_MAX_FRAME_SIZE, Framing};
use crate::jsonrpc::{Id, Response};

/// [`ServerOptions::reply_timeout`]'s default.
const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// [`ServerOptions::max_buffered_bytes`]'s default.
pub(crate) const DEFAULT_MAX_BUFFERED_BYTES: usize = 256 << 20;

/// The handshake timeout of both options' defaults.
pub(crate) const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The setters of what both ends of a connection are told alike
/// ([`ServerOptions`] and `ClientOptions`: the framing, the authkey and its
/// challenge, the frame limit, the handshake timeout), each with the doc its
/// side gives it: five doc blocks in that order, each ended by `;`. The
/// options keep these in fields of the same names.
macro_rules! wire_setters {
    (
        $(#[$framing:meta])* ;
        $(#[$authkey:meta])* ;
        $(#[$digest:meta])* ;
        $(#[$max:meta])* ;
        $(#[$handshake:meta])* ;
    ) => {
        $(#[$framing])*
        pub fn framing(&mut self, framing: $crate::Framing) -> &mut Self {
            self.framing = framing;
            self
        }

        $(#[$authkey])*
        pub fn authkey(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
            self.authkey = Some(key.as_ref().to_vec());
            self
        }

        $(#[$digest])*
        pub fn challenge_digest(&mut self, digest: $crate::ChallengeDigest) -> &mut Self {
            self.digest = digest;
            self
        }

        $(#[$max])*
        pub fn max_frame_size(&mut self, bytes: usize) -> &mut Self {
            self.max_frame_size = bytes;
            self
        }

        $(#[$handshake])*
        pub fn handshake_timeout(&mut self, timeout: std::time::Duration) -> &mut Self {
            self.handshake_timeout = timeout;
            self
        }
    };
}
pub(crate) use wire_setters;

/// The `Debug` of either options (`$opts`, named `$name`), begun with the
/// fields set by [`wire_setters!`] but the handshake timeout: the framing,
/// the authkey (hidden), the digest and the frame limit.
macro_rules! debug_wire {
    ($f:expr, $name:literal, $opts:expr) => {
        $f.debug_struct($name)
            .field("framing", &$opts.framing)
            .field("authkey", &$opts.authkey.as_ref().map(|_| "<hidden>"))
            .field("digest", &$opts.digest)
            .field("max_frame_size", &$opts.max_frame_size)
    };
}
pub(crate) use debug_wire;

/// Locks `m`, whether or not a thread panicked while holding it (the data of
/// every lock here stays consistent across a panic).
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
        debug_wire!(f, "ServerOptions", self)
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
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
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

    wire_setters! {
        // framing:
        /// How each connection is framed.
        ;
        // authkey:
        /// Requires every client to pass the `multiprocessing.connection` authkey
        /// handshake (see [`auth`](crate::auth)) before its first call.
        ;
        // challenge_digest:
        /// Which challenge the server sends (default: the `{sha256}` one of Python 3.12).
        ;
        // max_frame_size:
        /// The largest incoming frame (a request or a batch); a larger one is
        /// answered with -32600 and the connection closed.
        ;
        // handshake_timeout:
        /// How long a client has to pass the handshake.
        ;
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
    /// Both servers meter the length-prefix and `Content-Length` framings,
    /// and the message framing over `tcp:` (there a message is a
    /// length-prefixed frame on a byte stream); a message of a message
    /// channel (Unix `SOCK_SEQPACKET`, a Windows message-mode pipe) arrives
    /// whole from the OS, so it holds nothing unfinished.
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

    /// How long sending one response may take before the server gives up on
    /// the client (10 s by default). A client that sends requests but stops
    /// reading the responses fills the connection's buffer; the server keeps
    /// at most [`max_concurrent_calls`](Self::max_concurrent_calls) responses
    /// of that connection waiting (it reads no more requests from it
    /// meanwhile) and no thread; once a response has waited this long, the
    /// server closes that connection (reported to
    /// [`on_connection_error`](Self::on_connection_error) as
    /// [`ErrorKind::TimedOut`]) and sends it nothing more. This also bounds
    /// how long [`Server::shutdown`](crate::Server::shutdown) waits for such a client.
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
    /// pauses (5 ms doubling to 1 s, see [`AcceptBackoff`](ipckit::stream::AcceptBackoff)) and goes on
    /// accepting, its connections unharmed; that hook call runs on the accept
    /// thread (or task).
    pub fn on_connection_error(
        &mut self,
        hook: impl Fn(&Error) + Send + Sync + 'static,
    ) -> &mut Self {
        self.on_error = Some(Arc::new(hook));
        self
    }

    /// The handshake of each connection, if the server has an authkey.
    pub(crate) fn handshake(&self) -> Option<Handshake<'_>> {
        self.authkey.as_deref().map(|key| Handshake {
            key,
            digest: self.digest,
            accepting: true,
            timeout: self.handshake_timeout,
        })
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

/// Refuses `addr` to the async server or client (`who`) when it is a
/// shared-memory channel: ipckit has no async face for those yet.
pub(crate) fn refuse_async_shm(addr: &ipckit::Address, who: &str) -> Result<()> {
    if let ipckit::Address::Shm(_) = addr {
        return Err(Error::new(
            ErrorKind::InvalidOption,
            format!(
                "the async {who} cannot use {addr}: ipckit's shared-memory channels have \
                 no async face yet; use the blocking {who} (ipckit_rpc::{})",
                if who == "server" { "Server" } else { "Client" }
            ),
        ));
    }
    Ok(())
}
