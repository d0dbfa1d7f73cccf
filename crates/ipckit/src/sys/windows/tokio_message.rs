//! Async message channels over named pipes in message mode.
//!
//! tokio's named-pipe types cannot carry them: mio reads a pipe ahead into
//! buffers of its own size, so a message larger than one buffer reaches the
//! reader in pieces with nothing to say where it ends. Instead each call runs
//! the blocking layer's overlapped I/O on tokio's blocking pool.
//!
//! Cancel safety comes from keeping the call in flight (`tokio_blocking`): a
//! `recv` (or `accept`) whose future is dropped leaves its task in a slot, and
//! the next call awaits that task instead of starting another, so no message
//! (or client) is taken and lost. When the last handle is dropped, the stop
//! event of the blocking layer gives up whatever is still waiting, so no
//! blocking thread outlives it.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use ::tokio::sync::Mutex;
use ::tokio::task::{JoinHandle, spawn_blocking};

use super::message;
use crate::sys::plain::Endpoint;
use crate::sys::plain::{ConnectConfig, ListenConfig};
use crate::sys::tokio_blocking::{Received, in_flight, recv_in_flight};

/// An async message channel: the blocking channel, driven on the blocking pool.
#[derive(Debug)]
pub(crate) struct MsgStream {
    inner: Arc<message::MsgStream>,
    /// The `recv` in flight, if any.
    receiving: Mutex<Option<JoinHandle<Received<bool>>>>,
}

impl MsgStream {
    /// The message-mode pipe handle (for the OS handle impls of `os`).
    pub(crate) fn handle(&self) -> std::os::windows::io::BorrowedHandle<'_> {
        self.inner.handle()
    }

    fn new(inner: message::MsgStream) -> MsgStream {
        MsgStream {
            inner: Arc::new(inner),
            receiving: Mutex::new(None),
        }
    }

    /// Adopts a blocking channel (a child-process channel's end).
    pub(crate) fn from_blocking(inner: message::MsgStream) -> io::Result<MsgStream> {
        Ok(MsgStream::new(inner))
    }

    /// Cancel safe (see the module docs).
    pub(crate) async fn recv(&self, out: &mut Vec<u8>, max: usize) -> io::Result<bool> {
        let inner = Arc::clone(&self.inner);
        let (result, msg) =
            recv_in_flight(&self.receiving, move |msg| inner.recv(msg, max, None)).await?;
        *out = msg;
        result
    }

    /// The write runs to the end (or to `limit`) on the blocking pool, even if
    /// this future is dropped.
    pub(crate) async fn send(&self, msg: &[u8], limit: Option<Instant>) -> io::Result<()> {
        let inner = Arc::clone(&self.inner);
        let msg = msg.to_vec();
        spawn_blocking(move || inner.send(&msg, limit))
            .await
            .map_err(io::Error::other)?
    }

    pub(crate) fn close(&self) {
        self.inner.close();
    }

    /// Receives no more; the peer is not told (a pipe has no half-close).
    pub(crate) fn close_receiving(&self) {
        let _ = self.inner.shutdown(std::net::Shutdown::Read);
    }

    pub(crate) fn peer_credentials(&self) -> io::Result<crate::sys::peer::PeerCredentials> {
        self.inner.peer_credentials()
    }
}

impl Drop for MsgStream {
    fn drop(&mut self) {
        self.inner.abort();
    }
}

/// An async message-mode pipe server.
#[derive(Debug)]
pub(crate) struct MsgListener {
    inner: Arc<message::MsgListener>,
    /// The `accept` in flight, if any.
    accepting: Mutex<Option<JoinHandle<io::Result<message::MsgStream>>>>,
}

impl MsgListener {
    pub(crate) fn bind(ep: &Endpoint, opts: &ListenConfig) -> io::Result<MsgListener> {
        Ok(MsgListener {
            inner: Arc::new(message::MsgListener::bind(ep, opts)?),
            accepting: Mutex::new(None),
        })
    }

    /// Cancel safe (see the module docs).
    pub(crate) async fn accept(&self) -> io::Result<MsgStream> {
        let accepted = in_flight(&self.accepting, || {
            let inner = Arc::clone(&self.inner);
            spawn_blocking(move || inner.accept())
        })
        .await??;
        Ok(MsgStream::new(accepted))
    }
}

impl Drop for MsgListener {
    fn drop(&mut self) {
        self.inner.abort();
    }
}

/// Connects on the blocking pool (busy pipes and `retry_not_found` as in the
/// blocking layer); dropping the future closes what it connected.
pub(crate) async fn connect_message(ep: &Endpoint, opts: &ConnectConfig) -> io::Result<MsgStream> {
    let (ep, opts) = (ep.clone(), opts.clone());
    let inner = spawn_blocking(move || message::MsgStream::connect(&ep, &opts))
        .await
        .map_err(io::Error::other)??;
    Ok(MsgStream::new(inner))
}
