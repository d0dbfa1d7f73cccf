//! The blocking [`Server`]: the [`Core`] on a small private runtime, its
//! calls on a bounded [`Pool`].

use std::fmt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::tokio::runtime::Runtime;
use ::tokio::sync::watch;
use ipckit::{Address, ToAddress};

use crate::core::{Calls, Core, accept_loop};
use crate::error::{Error, ErrorKind, Result};
use crate::methods::Methods;
use crate::options::{ServerOptions, lock};
use crate::pool::Pool;
use crate::serving;

/// The threads of the blocking server's runtime that serve all its
/// connections.
const IO_THREADS: usize = 2;

/// The most threads the blocking server's runtime starts for transports
/// whose operations wait on a thread (message-mode pipes on Windows).
const BLOCKING_THREADS: usize = 4;

/// How long `stop` waits for the runtime's threads to end.
const THREADS_END: Duration = Duration::from_secs(2);

impl ServerOptions {
    /// Binds `addr` and serves `methods` on it, the connections on two
    /// threads of the server and the calls on a pool of threads, until
    /// [`shutdown`](Server::shutdown).
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
        let addr = addr
            .to_address()
            .map_err(|e| Error::ipckit("bind the RPC server", e))?;
        let runtime = ::tokio::runtime::Builder::new_multi_thread()
            .worker_threads(IO_THREADS)
            .max_blocking_threads(BLOCKING_THREADS)
            .thread_name("ipckit-rpc-io")
            .enable_all()
            .build()
            .map_err(|e| Error::io("start the RPC server's I/O threads", &e))?;
        let pool = Pool::new(self.max_concurrent_calls);
        let bound = {
            let _in = runtime.enter();
            Core::bind(self, addr, methods, Calls::Pool(Arc::clone(&pool)))
        };
        let (core, listener) = match bound {
            Ok(bound) => bound,
            Err(e) => {
                dispose(runtime);
                return Err(e);
            }
        };
        let local = listener.local_addr().clone();
        let (stop, stop_rx) = watch::channel(false);
        let (ended_tx, ended) = mpsc::channel::<()>();
        let serving = accept_loop(Arc::clone(&core), listener, stop_rx);
        runtime.spawn(async move {
            serving.await;
            drop(ended_tx);
        });
        Ok(Server {
            core,
            pool,
            runtime: Some(runtime),
            stop,
            ended: Mutex::new(ended),
            local,
        })
    }
}

/// Ends a runtime: waits for its threads, unless that is not allowed here
/// (within another runtime), where they end in the background.
fn dispose(runtime: Runtime) {
    if ::tokio::runtime::Handle::try_current().is_ok() {
        runtime.shutdown_background();
    } else {
        runtime.shutdown_timeout(THREADS_END);
    }
}

/// A blocking JSON-RPC server. Its connections are served by a few threads
/// of its own, whatever their number (the async `tokio::Server`, on
/// a private tokio runtime of two threads): an idle connection
/// costs no CPU and no thread, and a client that does not read its responses
/// holds no thread either (see
/// [`reply_timeout`](ServerOptions::reply_timeout)). The calls run on a pool
/// of at most [`max_concurrent_calls`](ServerOptions::max_concurrent_calls)
/// threads shared by all connections, so calls of one client finish in any
/// order and each response goes back, matched by id, as soon as it is ready.
/// A batch runs as one call, its entries in order. So however many clients
/// connect and whatever they send or fail to read, the server has at most
/// `max_concurrent_calls` threads for calls and a handful more (the two of
/// the runtime, and up to four for transports that wait on a thread:
/// message-mode pipes on Windows).
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
    core: Arc<Core>,
    pool: Arc<Pool>,
    /// `None` once stopped.
    runtime: Option<Runtime>,
    stop: watch::Sender<bool>,
    /// Disconnected when the accept loop, and so every connection, has ended.
    /// (In a mutex only to keep `Server` `Sync`.)
    ended: Mutex<mpsc::Receiver<()>>,
    local: Address,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local)
            .field("methods", &self.core.methods)
            .field("options", &self.core.opts)
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
    ///
    /// # From one of its own handlers
    ///
    /// Called (or the server dropped) inside one of this server's handlers
    /// (a `"shutdown"` method), it starts the same stop and returns at once,
    /// since the call in flight that asked cannot finish before it returns:
    /// that call's response is still sent, and a thread of the server's
    /// finishes the stop once it has.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let _ = self.stop.send(true);
        let rest = Rest {
            // Disconnected when the accept loop, and so every connection, has
            // ended; the server keeps a receiver that is so already.
            ended: std::mem::replace(&mut *lock(&self.ended), mpsc::channel().1),
            pool: Arc::clone(&self.pool),
            runtime: Some(runtime),
        };
        if !serving::inside(self.core.id) {
            return rest.finish();
        }
        let spawned = std::thread::Builder::new()
            .name("ipckit-rpc-stop".into())
            .spawn(move || rest.finish());
        // Without a thread (none could be started) the rest is dropped,
        // which stops the runtime without waiting for it.
        drop(spawned);
    }
}

/// What a stop waits for after telling the server to stop.
struct Rest {
    ended: mpsc::Receiver<()>,
    pool: Arc<Pool>,
    /// `None` once disposed of.
    runtime: Option<Runtime>,
}

impl Rest {
    fn finish(mut self) {
        let _ = self.ended.recv();
        self.pool.close();
        if let Some(runtime) = self.runtime.take() {
            dispose(runtime);
        }
    }
}

impl Drop for Rest {
    fn drop(&mut self) {
        // Only when `finish` never ran: a stop must not block here (this may
        // be a thread of the runtime itself).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
            drop(self.pool.end());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
