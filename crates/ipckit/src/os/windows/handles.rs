//! `AsHandle`/`AsRawHandle` on each type that is one handle on Windows.
//!
//! Only the mailslot receiver is (blocking and tokio): a pipe [`Listener`](crate::Listener) is a
//! series of pipe instances (one waits while others are connected), and a
//! [`Stream`](crate::Stream) is a pipe handle or, for `tcp:`, a socket, which
//! is no `HANDLE` to std (`AsSocket`), so neither can promise one handle.
//! The message types are not either, for the same reasons: a
//! [`MessageListener`](crate::MessageListener) is a series of message-mode
//! pipe instances (or a TCP socket), and a
//! [`MessageStream`](crate::MessageStream) is a pipe handle, a TCP socket,
//! or a shared-memory channel (a mapped region and two events).

use std::os::windows::io::{AsHandle, AsRawHandle, BorrowedHandle, RawHandle};

use crate::MailslotReceiver;

/// The mailslot handle (`CreateMailslotW`) the messages arrive on.
impl AsHandle for MailslotReceiver {
    fn as_handle(&self) -> BorrowedHandle<'_> {
        self.inner.as_handle()
    }
}

impl AsRawHandle for MailslotReceiver {
    fn as_raw_handle(&self) -> RawHandle {
        self.as_handle().as_raw_handle()
    }
}

/// The mailslot handle the messages arrive on (a waiting `recv` reads it on
/// tokio's blocking pool).
#[cfg(feature = "tokio")]
impl AsHandle for crate::tokio::MailslotReceiver {
    fn as_handle(&self) -> BorrowedHandle<'_> {
        self.inner.as_handle()
    }
}

#[cfg(feature = "tokio")]
impl AsRawHandle for crate::tokio::MailslotReceiver {
    fn as_raw_handle(&self) -> RawHandle {
        self.as_handle().as_raw_handle()
    }
}
