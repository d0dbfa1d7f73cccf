//! Message channels on macOS: length-prefixed frames over `SOCK_STREAM` Unix
//! sockets.
//!
//! macOS has no `SOCK_SEQPACKET` for Unix sockets, so a message channel there
//! is a stream socket carrying the frames ipckit speaks over TCP (those of
//! Python's `multiprocessing.connection`, `crate::sys::plain::frame`): a 4-byte
//! big-endian length (or −1 and an 8-byte length), then the message. Message
//! boundaries, empty messages and the end of the channel are all in the frames,
//! and a message of any size goes whole, so nothing like Linux's `memfd` for
//! large records is needed.
//!
//! What a stream cannot do: tell a byte-stream client from a message client.
//! A byte [`Stream`](super::Stream) that connects to a message listener (or
//! the reverse) is not refused as on Linux (`EPROTOTYPE`); it sees frames.
//!
//! A send that times out (or, for the async layer, would block) after part of
//! its frame went out has committed the message: the rest is kept and goes out,
//! whole, before the next frame, so the peer never sees a torn message (as on
//! `tcp:`). A receive that times out keeps the part of the frame it read.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::Instant;

use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};

use super::fdio::Wait;
use super::socket::NO_SIGNAL;
use crate::sys::plain::frame::{FrameReader, FrameWriter};
use crate::sys::sync::lock;

/// A connected stream socket carrying frames, and the frame each direction is
/// in the middle of.
#[derive(Debug)]
pub(crate) struct MsgStream {
    sock: OwnedFd,
    reader: Mutex<FrameReader>,
    writer: Mutex<FrameWriter>,
}

/// One call's view of the socket: reads and writes wait as `wait` says.
struct Io<'a> {
    fd: BorrowedFd<'a>,
    wait: Wait,
}

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let flags = if self.wait.dont_block() {
            RecvFlags::DONTWAIT
        } else {
            RecvFlags::empty()
        };
        loop {
            match rustix::net::recv(self.fd, &mut *buf, flags) {
                Ok((n, _)) => return Ok(n),
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => self.wait.again(self.fd, PollFlags::IN, "receive")?,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut flags = NO_SIGNAL;
        if self.wait.dont_block() {
            flags |= SendFlags::DONTWAIT;
        }
        loop {
            match rustix::net::send(self.fd, buf, flags) {
                Ok(n) => return Ok(n),
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => self.wait.again(self.fd, PollFlags::OUT, "send")?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl MsgStream {
    /// Adopts a connected stream socket.
    pub(crate) fn from_fd(sock: OwnedFd) -> MsgStream {
        MsgStream {
            sock,
            reader: Mutex::default(),
            writer: Mutex::default(),
        }
    }

    /// A client just accepted by a listener.
    pub(crate) fn accepted(sock: OwnedFd) -> MsgStream {
        MsgStream::from_fd(sock)
    }

    /// A socket just connected to a listener.
    pub(crate) fn connected(sock: OwnedFd) -> MsgStream {
        MsgStream::from_fd(sock)
    }

    /// A connected socket a caller gave up (`From<OwnedFd>`).
    pub(crate) fn foreign(sock: OwnedFd) -> MsgStream {
        MsgStream::from_fd(sock)
    }

    /// A child channel's end handed over by the parent.
    pub(crate) fn adopted(sock: OwnedFd) -> MsgStream {
        MsgStream::from_fd(sock)
    }

    /// Nothing to announce: frames carry messages of any size.
    pub(crate) fn listening() {}

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    fn io(&self, wait: Wait) -> Io<'_> {
        Io {
            fd: self.sock.as_fd(),
            wait,
        }
    }

    pub(crate) fn peer_credentials(&self) -> io::Result<crate::sys::peer::PeerCredentials> {
        super::stream::peer_credentials(self.sock.as_fd())
    }

    pub(crate) fn send(&self, msg: &[u8], limit: Option<Instant>) -> io::Result<()> {
        let wait = Wait::from_limit(limit);
        wait.check("send")?;
        lock(&self.writer).write_to(&mut self.io(wait), msg)
    }

    /// Sends without blocking. `WouldBlock` means the message was not taken
    /// (the rest of an earlier frame is still going out); `Ok` means it was:
    /// part of its frame may wait for [`try_flush`](Self::try_flush).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn try_send(&self, msg: &[u8]) -> io::Result<()> {
        let mut writer = lock(&self.writer);
        let mut io = self.io(Wait::Never);
        writer.finish_pending(&mut io)?;
        match writer.write_to(&mut io, msg) {
            // Part of the frame is out: the message is committed.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && writer.has_pending() => Ok(()),
            other => other,
        }
    }

    /// Writes what is left of a committed frame without blocking: `Ok` once
    /// nothing is, `WouldBlock` while the socket has no room.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn try_flush(&self) -> io::Result<()> {
        lock(&self.writer).finish_pending(&mut self.io(Wait::Never))
    }

    pub(crate) fn recv(
        &self,
        out: &mut Vec<u8>,
        max: usize,
        limit: Option<Instant>,
    ) -> io::Result<bool> {
        let wait = Wait::from_limit(limit);
        wait.check("receive")?;
        lock(&self.reader).read_from(&mut self.io(wait), max, out)
    }

    /// Receives without blocking: `WouldBlock` when no whole message is
    /// waiting (the part that is stays read).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn try_recv(&self, out: &mut Vec<u8>, max: usize) -> io::Result<bool> {
        lock(&self.reader).read_from(&mut self.io(Wait::Never), max, out)
    }

    pub(crate) fn close(&self) {
        let _ = rustix::net::shutdown(&self.sock, rustix::net::Shutdown::Both);
    }

    /// Shuts down one direction or both (`shutdown(2)`): after `Read`, a
    /// receive, the one waiting now included, finds the end of the channel.
    pub(crate) fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        super::socket::shutdown(self.sock.as_fd(), how)
    }
}
