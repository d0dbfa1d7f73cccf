//! What a message channel does the same on every Unix but for its socket
//! type (`super::MSG_SOCKET`: `SOCK_SEQPACKET`, or `SOCK_STREAM` carrying
//! frames on macOS): listening, accepting and connecting. Sending and
//! receiving are the OS's `MsgStream` (`seqpacket.rs`, `stream_msg.rs`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::MsgStream;
use super::stream::{OwnFile, bind_socket, connect_socket};
use crate::sys::plain::{ConnectConfig, Endpoint, ListenConfig};

/// A listening message socket.
#[derive(Debug)]
pub(crate) struct MsgListener {
    // Declared first, so the file is removed before the socket closes.
    _file: Option<OwnFile>,
    sock: OwnedFd,
}

impl MsgListener {
    pub(crate) fn bind(ep: &Endpoint, opts: &ListenConfig) -> io::Result<MsgListener> {
        let (sock, file) = bind_socket(ep, opts, super::MSG_SOCKET)?;
        MsgStream::listening();
        Ok(MsgListener { _file: file, sock })
    }

    /// Makes `accept` fail with `WouldBlock` instead of waiting (the async layer).
    #[cfg(feature = "tokio")]
    pub(crate) fn set_nonblocking(&self) -> io::Result<()> {
        Ok(rustix::io::ioctl_fionbio(&self.sock, true)?)
    }

    pub(crate) fn accept(&self) -> io::Result<MsgStream> {
        super::socket::accept(self.sock.as_fd()).map(MsgStream::accepted)
    }
}

impl AsFd for MsgListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl AsRawFd for MsgListener {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl MsgStream {
    pub(crate) fn connect(ep: &Endpoint, opts: &ConnectConfig) -> io::Result<MsgStream> {
        let sock = connect_socket(ep, opts, super::MSG_SOCKET)?;
        Ok(MsgStream::connected(sock))
    }
}

impl AsRawFd for MsgStream {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}
