//! The async server and client, on tokio (the `tokio` feature).
//!
//! The same wire, options and methods as the blocking [`crate::Server`] and
//! [`crate::Client`], on ipckit's tokio transports. A client's connection has
//! a reader task, and its requests go out through an outbox (as the server's
//! responses): written at once by the calling task when nothing is queued
//! and the OS takes it without waiting, else by a writer task; a send is an
//! owned future, finished even if its call is dropped, so a call that is
//! cancelled or times out never tears a frame. The server is the one the
//! blocking [`crate::Server`] runs too.
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
use std::sync::Arc;
use std::time::Duration;

use ::tokio::sync::{Semaphore, oneshot, watch};
use ::tokio::task::JoinHandle;
use ipckit::{Address, ToAddress};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::aconn::Conn;
use crate::client::ClientOptions;
use crate::core::{Calls, Core, accept_loop};
use crate::error::{Error, ErrorKind, Result};
use crate::methods::Methods;
use crate::options::{ServerOptions, lock, refuse_async_shm};
use crate::outbox::{Outbox, Reply as OutgoingFrame};
use crate::pending::{
    Begun, Failure, Ledger, Reply, ReplyTx, closed_error, debug_client, end_of, finish, route,
    timed_out,
};
use crate::serving;

/// Requests of a client not yet written, per connection: a call or
/// notification waits for one of these slots.
const QUEUE: usize = 64;

// ---------------------------------------------------------------- server

impl ServerOptions {
    /// Binds `addr` and serves `methods` on it from tokio tasks: sync handlers
    /// on tokio's blocking pool (or at once, when the method's last call took
    /// at most 50 µs), async ones as tasks. Must be called within a tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// As for [`ServerOptions::bind`], except that async methods are welcome.
    pub fn serve_tokio(&self, addr: impl ToAddress, methods: Methods) -> Result<Server> {
        self.check()?;
        let addr = addr
            .to_address()
            .map_err(|e| Error::ipckit("bind the RPC server", e))?;
        let (core, listener) = Core::bind(self, addr, methods, Calls::Tokio)?;
        let local = listener.local_addr().clone();
        let (stop_tx, stop_rx) = watch::channel(false);
        let id = core.id;
        let task = ::tokio::spawn(accept_loop(core, listener, stop_rx));
        Ok(Server {
            id,
            stop: stop_tx,
            task,
            local,
        })
    }
}

/// An async JSON-RPC server: a task accepts connections, a task per connection
/// reads its requests and one writes its responses, and each request runs as
/// a task of its own (at most
/// [`max_concurrent_calls`](ServerOptions::max_concurrent_calls) per
/// connection), so calls finish in any order. The blocking [`crate::Server`]
/// is this same server on a private runtime.
pub struct Server {
    id: serving::Id,
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
    ///
    /// # From one of its own handlers
    ///
    /// Awaited inside one of this server's handlers (a `"shutdown"` method),
    /// it starts the same stop and returns at once, since the call in flight
    /// that asked cannot finish before it returns: that call's response is
    /// still sent, and the server finishes stopping in the background.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if serving::inside(self.id) {
            return;
        }
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
        refuse_async_shm(&addr, "client")?;
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
                None,
            )?
        };
        if let Some(hs) = self.handshake(started) {
            conn.handshake(hs).await?;
        }
        Ok(Client::start(conn, self.timeout))
    }
}

/// The calls of an async client's connection.
type ClientShared = Ledger<oneshot::Sender<Reply>>;

impl ReplyTx for oneshot::Sender<Reply> {
    fn reply(self, reply: Reply) {
        // The call may have given up (timed out); then nobody wants it.
        let _ = self.send(reply);
    }
}

/// An async JSON-RPC client: one connection, any number of calls in flight on
/// it from any number of tasks (`Send + Sync`; share it in an `Arc`), matched
/// by id. When the connection ends every call in flight fails at once.
///
/// # Cancel safety
///
/// A dropped `call` future drops its pending entry; the request may still have
/// been sent (whole: a frame begun is finished by the connection's writer
/// task), and its late response is dropped.
pub struct Client {
    shared: Arc<ClientShared>,
    outbox: Arc<Outbox>,
    /// The slots of requests not yet written ([`QUEUE`]).
    sends: Arc<Semaphore>,
    reader: JoinHandle<()>,
    timeout: Option<Duration>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_client(f, &self.shared.peer, self.timeout)
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
        let shared = Arc::new(ClientShared::new(peer.clone()));
        let outbox = Outbox::new(writer, &peer, None);
        // Without a limit on a send, nothing times out.
        ::tokio::spawn(Arc::clone(&outbox).run(|_| {}));
        let (s, out) = (Arc::clone(&shared), Arc::clone(&outbox));
        let reader = ::tokio::spawn(async move {
            let broken = out.broken();
            ::tokio::pin!(broken);
            loop {
                let got = ::tokio::select! {
                    why = &mut broken => {
                        return s.close(
                            ErrorKind::Disconnected,
                            format!("the connection failed: {why}"),
                        );
                    }
                    got = reader.recv(&s.peer) => got,
                };
                match got {
                    Ok(Some(frame)) => {
                        if let Some(why) = s.deliver(route(&frame)) {
                            s.close(ErrorKind::Protocol, why);
                        }
                    }
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
            outbox,
            sends: Arc::new(Semaphore::new(QUEUE)),
            reader,
            timeout,
        }
    }

    /// Sends `bytes` after the requests before it, once fewer than [`QUEUE`]
    /// wait to be written (dropped once the connection has failed).
    async fn send(&self, bytes: Vec<u8>) {
        // The semaphore is never closed.
        let slot = Arc::clone(&self.sends).acquire_owned().await.ok();
        self.outbox.deliver(OutgoingFrame { bytes, slot });
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
        let (tx, rx) = oneshot::channel();
        let Begun { context, id, frame } = self.shared.call(method, params, tx)?;
        let _guard = Forget {
            shared: &self.shared,
            id,
        };
        let exchange = async {
            // A frame the outbox cannot send (the connection failed) fails
            // this call when the reader closes the connection for it.
            self.send(frame).await;
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
        if let Err(Failure::Closed(..)) = &reply
            && let Some(closed) = &lock(&self.shared.pending).closed
        {
            return Err(closed_error(&context, closed));
        }
        finish(&context, reply)
    }

    /// Sends a notification.
    ///
    /// # Errors
    ///
    /// As for [`crate::Client::notify`].
    pub async fn notify<P: Serialize>(&self, method: &str, params: P) -> Result<()> {
        let (_, frame) = self.shared.notification(method, params)?;
        self.send(frame).await;
        Ok(())
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
        self.shared.forget(self.id);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
        // The requests queued still go out; then the writer is dropped, and
        // the server sees the end.
        self.outbox.close();
    }
}
