//! The accept loop of the echo servers (`listen --echo`, `listen --message
//! --echo`): every client is a task on one small tokio runtime, so an idle
//! client costs a few hundred bytes and no thread (issue 19: 10,000 idle
//! clients on a handful of threads).

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, Result};
use ipckit::Address;
use ipckit::registry::Kind;
use ipckit::stream::ConnectionLimit;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

use crate::accepting::{Accepting, AfterError};
use crate::one_line;

/// The runtime's worker threads: the clients' I/O on two cores at most.
const WORKERS: usize = 2;

/// Blocking-pool threads beyond one per client. On Unix nothing of the echo
/// servers runs there; on Windows the tokio message face waits for each
/// message-mode pipe operation on the blocking pool (a `recv` holds a thread
/// while its client is idle), so the pool must have room for every client the
/// limit lets in, and for the pending accept and the sends.
const BLOCKING_SPARE: usize = 8;

/// The runtime a server of at most `max` clients runs on.
fn runtime(max: usize) -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .max_blocking_threads(max.saturating_add(BLOCKING_SPARE))
        .thread_name("ipckit-serve")
        .enable_all()
        .build()
        .context("start the server's runtime")
}

/// The `--max-connections` limit, or its default.
fn max_clients(max: Option<usize>) -> Result<usize> {
    let limit = ConnectionLimit::new(max.unwrap_or_else(ConnectionLimit::default_max))?;
    Ok(limit.max().min(Semaphore::MAX_PERMITS))
}

/// A listener of one of ipckit's tokio faces.
pub(crate) trait Accept: Sized {
    /// What `accept` gives: a client's stream or channel.
    type Conn: Send + 'static;
    /// The registry's name for what it serves.
    const KIND: Kind;
    /// Binds it (within a runtime).
    fn bind(addr: &Address) -> ipckit::Result<Self>;
    /// Where it listens.
    fn local_addr(&self) -> &Address;
    /// Waits for the next client.
    fn accept(&self) -> impl Future<Output = ipckit::Result<Self::Conn>>;
}

impl Accept for ipckit::tokio::Listener {
    type Conn = ipckit::tokio::Stream;
    const KIND: Kind = Kind::Stream;
    fn bind(addr: &Address) -> ipckit::Result<Self> {
        ipckit::tokio::Listener::bind(addr)
    }
    fn local_addr(&self) -> &Address {
        ipckit::tokio::Listener::local_addr(self)
    }
    fn accept(&self) -> impl Future<Output = ipckit::Result<Self::Conn>> {
        ipckit::tokio::Listener::accept(self)
    }
}

impl Accept for ipckit::tokio::MessageListener {
    type Conn = ipckit::tokio::MessageStream;
    const KIND: Kind = Kind::Message;
    fn bind(addr: &Address) -> ipckit::Result<Self> {
        ipckit::tokio::MessageListener::bind(addr)
    }
    fn local_addr(&self) -> &Address {
        ipckit::tokio::MessageListener::local_addr(self)
    }
    fn accept(&self) -> impl Future<Output = ipckit::Result<Self::Conn>> {
        ipckit::tokio::MessageListener::accept(self)
    }
}

/// Binds an `L` at `addr` (made known as [`crate::serve_at`] says) and serves
/// its clients with `serve` until the process is killed, at most `max`
/// (`--max-connections`) at once.
pub(crate) fn run<L, S, F>(
    addr: &Address,
    max: Option<usize>,
    verbose: bool,
    serve: S,
) -> Result<()>
where
    L: Accept,
    S: Fn(L::Conn) -> F,
    F: Future<Output = Result<String>> + Send + 'static,
{
    let max = max_clients(max)?;
    let runtime = runtime(max)?;
    let _in = runtime.enter();
    let listener = crate::serve_at(addr, L::KIND, verbose, || Ok(L::bind(addr)?), L::local_addr)?;
    runtime.block_on(serve_clients(&listener, serve, max, verbose))
}

/// Accepts clients from `listener` until the process is killed, and runs
/// `serve` on each in a task of its own; `serve` returns what to report (with
/// --verbose) when its client is done. A client's failure ends that client
/// only. Runs within the server's runtime (`block_on`).
///
/// At most `max` clients are served at once; at the limit no client is
/// accepted until one is done, so the next ones wait in the listener's backlog.
/// An accept that fails for lack of resources (out of file descriptors) pauses
/// the loop, 5 ms doubling to 1 s, and the loop goes on; with --verbose the
/// first failure of each burst and its end are reported.
async fn serve_clients<L, S, F>(listener: &L, serve: S, max: usize, verbose: bool) -> Result<()>
where
    L: Accept,
    S: Fn(L::Conn) -> F,
    F: Future<Output = Result<String>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max));
    let in_use = |slots: &Semaphore| max - slots.available_permits();
    let mut accepting = Accepting::new(max, verbose);
    loop {
        let slot = Arc::clone(&slots)
            .acquire_owned()
            .await
            .context("the connection limit was closed")?;
        let conn = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => match accepting.failed(err, in_use(&slots) - 1) {
                AfterError::Again => continue,
                AfterError::Pause(pause) => {
                    drop(slot);
                    tokio::time::sleep(pause).await;
                    continue;
                }
                AfterError::Fail(err) => return Err(err.into()),
            },
        };
        let client = accepting.accepted(in_use(&slots));
        let serving = serve(conn);
        tokio::spawn(async move {
            // Held until this client is done.
            let _slot = slot;
            let result = serving.await;
            if verbose {
                match result {
                    Ok(summary) => eprintln!("client {client}: {summary}"),
                    Err(err) => eprintln!("client {client}: {}", one_line(&err)),
                }
            }
        });
    }
}
