//! Async mailslot receivers, on the blocking pool.
//!
//! A mailslot handle cannot be registered with tokio's reactor as a named pipe
//! can, so each `recv` runs the blocking layer's overlapped read on the
//! blocking pool, kept in flight across a dropped future (`tokio_blocking`):
//! no message is taken and lost. Dropping the receiver gives up the read still
//! waiting (the blocking layer's `abort`), so no blocking thread outlives it.
//!
//! Senders need no async form: a mailslot `WriteFile` never waits for the
//! receiver.

use std::io;
use std::sync::Arc;

use ::tokio::sync::Mutex;
use ::tokio::task::JoinHandle;

use super::mailslot;
use crate::sys::tokio_blocking::{Received, recv_in_flight};

/// An async mailslot receiver: the blocking receiver, driven on the blocking
/// pool.
#[derive(Debug)]
pub(crate) struct MailslotReceiver {
    inner: Arc<mailslot::MailslotReceiver>,
    /// The `recv` in flight, if any.
    receiving: Mutex<Option<JoinHandle<Received<()>>>>,
}

/// The mailslot handle (`CreateMailslotW`), shared with the `recv` in
/// flight on the blocking pool.
impl std::os::windows::io::AsHandle for MailslotReceiver {
    fn as_handle(&self) -> std::os::windows::io::BorrowedHandle<'_> {
        self.inner.as_handle()
    }
}

impl MailslotReceiver {
    /// Never fails; a `Result` as on Unix, where registering with the reactor
    /// can.
    pub(crate) fn new(inner: mailslot::MailslotReceiver) -> io::Result<MailslotReceiver> {
        Ok(MailslotReceiver {
            inner: Arc::new(inner),
            receiving: Mutex::new(None),
        })
    }

    /// Receives one whole message, appended to `out` (which callers pass
    /// empty); waits as long as it takes. Cancel safe (see the module docs).
    pub(crate) async fn recv(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let inner = Arc::clone(&self.inner);
        let (result, msg) =
            recv_in_flight(&self.receiving, move |msg| inner.recv(msg, None)).await?;
        if out.is_empty() {
            *out = msg;
        } else {
            out.extend_from_slice(&msg);
        }
        result
    }

    /// See the blocking layer's `pending`.
    pub(crate) fn pending(&self) -> io::Result<(Option<usize>, Option<usize>)> {
        self.inner.pending()
    }
}

impl Drop for MailslotReceiver {
    fn drop(&mut self) {
        self.inner.abort();
    }
}
