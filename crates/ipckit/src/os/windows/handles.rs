//! `AsHandle`/`AsRawHandle` on each type that is one handle on Windows, the
//! pipe handle or socket of the streams (`StreamExt`, `MessageStreamExt`),
//! and `TryFrom<OwnedHandle>` for pipe ends made elsewhere.
//!
//! Only the mailslot receiver and the child channels are one handle
//! (blocking and tokio): a pipe [`Listener`](crate::Listener) is a
//! series of pipe instances (one waits while others are connected), and a
//! [`Stream`](crate::Stream) is a pipe handle or, for `tcp:`, a socket, which
//! is no `HANDLE` to std (`AsSocket`), so neither can promise one handle.
//! The message types are not either, for the same reasons: a
//! [`MessageListener`](crate::MessageListener) is a series of message-mode
//! pipe instances (or a TCP socket), and a
//! [`MessageStream`](crate::MessageStream) is a pipe handle, a TCP socket,
//! or a shared-memory channel (a mapped region and two events). A
//! [`MailslotSender`](crate::MailslotSender) has no `AsHandle` either: it
//! closes its handle once a send has not completed in time (a receiver gone
//! or stopped, whose mailslot the handle would keep alive), so it cannot
//! promise one for as long as it lives; `MailslotSenderExt` lends it for as
//! long as the sender is borrowed mutably (no send meanwhile), until then.

use std::os::windows::io::{
    AsHandle, AsRawHandle, AsSocket, BorrowedHandle, BorrowedSocket, OwnedHandle, RawHandle,
};

use super::{MailslotSenderExt, MessageStreamExt, StreamExt};
use crate::address::Address;
use crate::child::Conn as ChildConn;
use crate::error::{Error, Result};
use crate::limits::DEFAULT_MAX_MESSAGE_SIZE;
use crate::message::conn::Conn;
use crate::sys;
use crate::transport::Either;
use crate::{MailslotReceiver, MailslotSender, MessageStream, Stream};

impl StreamExt for Stream {
    fn try_as_handle(&self) -> Option<BorrowedHandle<'_>> {
        match &self.inner {
            Either::Local(s) => Some(s.handle()),
            Either::Tcp(_) => None,
        }
    }

    fn try_as_socket(&self) -> Option<BorrowedSocket<'_>> {
        match &self.inner {
            Either::Local(_) => None,
            Either::Tcp(s) => Some(s.as_socket()),
        }
    }
}

impl MessageStreamExt for MessageStream {
    fn try_as_handle(&self) -> Option<BorrowedHandle<'_>> {
        match self.state.conn() {
            Conn::Local(s) => Some(s.handle()),
            Conn::Framed(_) | Conn::Shm(_) => None,
        }
    }

    fn try_as_socket(&self) -> Option<BorrowedSocket<'_>> {
        match self.state.conn() {
            Conn::Framed(f) => f.stream.try_as_socket(),
            Conn::Local(_) | Conn::Shm(_) => None,
        }
    }
}

impl MailslotSenderExt for MailslotSender {
    fn try_as_handle(&mut self) -> Option<BorrowedHandle<'_>> {
        self.inner.handle_mut()
    }
}

/// The address an adopted pipe handle shows: `\\.\pipe\NAME` where the
/// OS tells the name, else `\\.\pipe\` alone.
fn pipe_address(name: Option<String>) -> Address {
    Address::PipePath {
        host: ".".into(),
        name: name.unwrap_or_default(),
    }
}

/// Adopts a connected end (client or server) of a byte-mode named pipe,
/// opened for overlapped I/O (`FILE_FLAG_OVERLAPPED`), as std's
/// `From<OwnedHandle>` adopts a file: the caller vouches for the overlapped
/// flag, which Windows cannot be asked about. A handle that is no named pipe,
/// or a message-mode one, is refused (and closed) with an error saying what
/// it is. [`peer_addr`](Stream::peer_addr) is the pipe's path.
impl TryFrom<OwnedHandle> for Stream {
    type Error = Error;

    fn try_from(handle: OwnedHandle) -> Result<Stream> {
        let (s, name) = sys::Stream::adopt(handle)
            .map_err(|e| Error::io("adopt a pipe handle as a Stream", e))?;
        Ok(Stream::new(Either::Local(s), pipe_address(name)))
    }
}

/// Adopts a connected end (client or server) of a message-mode named pipe
/// (`PIPE_TYPE_MESSAGE`), opened for overlapped I/O, and reads it in message
/// mode from now on (`PIPE_READMODE_MESSAGE`). As for [`Stream`], the caller
/// vouches for the overlapped flag; a handle that is no named pipe, or a
/// byte-mode one, is refused (and closed). The peer is taken for a foreign
/// program; the maximum incoming message is the default (64 MiB).
impl TryFrom<OwnedHandle> for MessageStream {
    type Error = Error;

    fn try_from(handle: OwnedHandle) -> Result<MessageStream> {
        let (s, name) = sys::MsgStream::adopt(handle)
            .map_err(|e| Error::io("adopt a pipe handle as a MessageStream", e))?;
        Ok(MessageStream::new(
            Conn::Local(s),
            pipe_address(name),
            DEFAULT_MAX_MESSAGE_SIZE,
        ))
    }
}

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

/// As the blocking [`Stream`]'s: the pipe handle, or `tcp:`'s socket.
#[cfg(feature = "tokio")]
impl StreamExt for crate::tokio::Stream {
    fn try_as_handle(&self) -> Option<BorrowedHandle<'_>> {
        match &self.inner.io {
            Either::Local(s) => Some(s.handle()),
            Either::Tcp(_) => None,
        }
    }

    fn try_as_socket(&self) -> Option<BorrowedSocket<'_>> {
        match &self.inner.io {
            Either::Local(_) => None,
            Either::Tcp(s) => Some(s.as_socket()),
        }
    }
}

/// As the blocking [`MessageStream`]'s: the message-mode pipe handle, or
/// `tcp:`'s socket; neither for `shm:`.
#[cfg(feature = "tokio")]
impl MessageStreamExt for crate::tokio::MessageStream {
    fn try_as_handle(&self) -> Option<BorrowedHandle<'_>> {
        use crate::tokio::message::Conn;
        match self.state.conn() {
            Conn::Local(s) => Some(s.handle()),
            Conn::Framed(_) | Conn::Shm(_) => None,
        }
    }

    fn try_as_socket(&self) -> Option<BorrowedSocket<'_>> {
        use crate::tokio::message::Conn;
        match self.state.conn() {
            Conn::Framed(f) => Some(f.stream.as_socket()),
            Conn::Local(_) | Conn::Shm(_) => None,
        }
    }
}

/// The pipe to the other process: a message-mode pipe (ipckit's messages)
/// or a byte pipe (Node's JSON lines). Wait on it; do not read it (the
/// channel's framing and its buffered bytes are the channel's).
impl AsHandle for crate::child::ChildChannel {
    fn as_handle(&self) -> BorrowedHandle<'_> {
        match &self.shared.conn {
            ChildConn::Messages(s) => s.handle(),
            ChildConn::Json(l) => l.stream().handle(),
        }
    }
}

impl AsRawHandle for crate::child::ChildChannel {
    fn as_raw_handle(&self) -> RawHandle {
        self.as_handle().as_raw_handle()
    }
}

/// The pipe to the other process, as the blocking channel's.
#[cfg(feature = "tokio")]
impl AsHandle for crate::tokio::child::ChildChannel {
    fn as_handle(&self) -> BorrowedHandle<'_> {
        match &self.shared.conn {
            ChildConn::Messages(s) => s.handle(),
            ChildConn::Json(l) => l.lines().stream().handle(),
        }
    }
}

#[cfg(feature = "tokio")]
impl AsRawHandle for crate::tokio::child::ChildChannel {
    fn as_raw_handle(&self) -> RawHandle {
        self.as_handle().as_raw_handle()
    }
}
