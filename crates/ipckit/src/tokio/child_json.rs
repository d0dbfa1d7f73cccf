//! Node's `json` channel on the async face: the blocking face's line codec
//! ([`Lines`], one JSON value per line, libuv's frames on Windows) run on
//! tokio's blocking pool, as the Windows message pipes are.
//!
//! A `recv` in flight keeps its task in a slot when its future is dropped, and
//! the next `recv` awaits that task instead of starting another, so no line is
//! taken and lost (`sys::tokio_blocking`). A `send` runs to its end (or its
//! limit) on the pool even if its future is dropped; a line it began is
//! finished before the next one, never torn. When the last handle is dropped,
//! reading is shut down, which ends a `recv` still waiting with the end of the
//! channel, so no blocking thread outlives the channel.

use std::io;
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Instant;

use ::tokio::sync::Mutex;
use ::tokio::task::{JoinHandle, spawn_blocking};

use crate::child::Lines;
use crate::sys::tokio_blocking::{Received, recv_in_flight};

/// A json channel whose calls wait on the blocking pool.
#[derive(Debug)]
pub(crate) struct JsonLines {
    lines: Arc<Lines>,
    /// The `recv` in flight, if any.
    receiving: Mutex<Option<JoinHandle<Received<bool>>>>,
}

impl JsonLines {
    /// The lines' byte stream (for the OS handle impls of `os`).
    pub(crate) fn lines(&self) -> &Lines {
        &self.lines
    }

    pub(super) fn new(lines: Lines) -> JsonLines {
        JsonLines {
            lines: Arc::new(lines),
            receiving: Mutex::new(None),
        }
    }

    /// Cancel safe (see the module docs). The caller bounds the wait.
    pub(super) async fn recv(&self, out: &mut Vec<u8>, max: usize) -> io::Result<bool> {
        let lines = Arc::clone(&self.lines);
        let (result, msg) =
            recv_in_flight(&self.receiving, move |msg| lines.recv(msg, max, None)).await?;
        *out = msg;
        result
    }

    /// Sends one JSON value as a line, to the end or to `limit`.
    pub(super) async fn send(&self, msg: &[u8], limit: Option<Instant>) -> io::Result<()> {
        let lines = Arc::clone(&self.lines);
        let msg = msg.to_vec();
        spawn_blocking(move || lines.send(&msg, limit))
            .await
            .map_err(io::Error::other)?
    }

    pub(super) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.lines.shutdown(how)
    }
}

impl Drop for JsonLines {
    fn drop(&mut self) {
        let _ = self.lines.shutdown(Shutdown::Read);
    }
}
