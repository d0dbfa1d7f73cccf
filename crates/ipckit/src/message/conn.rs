//! The one message-channel contract, over each transport a
//! [`MessageStream`](crate::MessageStream) can run on: the message socket or
//! pipe of the OS, length-prefixed frames on a byte stream (`tcp:`, or any
//! [`Stream`]), and a shared-memory channel (`shm:`). Each arm keeps the same
//! promises (see the module documentation of [`message`](crate::message)):
//! a message arrives whole or not at all, an empty message is a message and
//! the end is `None`, an incoming message over the receiver's limit fails
//! with `FrameTooLarge` and closes the receiving direction, a timeout loses
//! nothing.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Mutex;
use std::time::Instant;

use super::frame::{FrameReader, FrameWriter};
use super::shm::ShmConn;
use super::state::CloseReceiving;
use crate::address::Address;
use crate::error::{Error, Result};
use crate::peer::PeerCredentials;
use crate::plain::too_large;
use crate::security;
use crate::stream::Stream;
use crate::sync::lock;
use crate::sys;

/// A byte stream carrying length-prefixed frames, and the state of the frame
/// each direction is in the middle of.
pub(crate) struct FramedConn {
    pub(crate) stream: Stream,
    reader: Mutex<FrameReader>,
    writer: Mutex<FrameWriter>,
}

pub(crate) enum Conn {
    Local(sys::MsgStream),
    Framed(Box<FramedConn>),
    Shm(Box<ShmConn>),
}

impl Conn {
    pub(crate) fn framed(stream: Stream) -> Conn {
        Conn::Framed(Box::new(FramedConn {
            stream,
            reader: Mutex::default(),
            writer: Mutex::default(),
        }))
    }
}

/// One call's view of a byte stream: every read and write gives up at `limit`.
struct Bounded<'a> {
    stream: &'a Stream,
    limit: Option<Instant>,
}

impl Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read_limited(buf, self.limit)
    }
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write_limited(buf, self.limit)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Conn {
    pub(crate) fn send(&self, msg: &[u8], limit: Option<Instant>) -> io::Result<()> {
        match self {
            Conn::Local(s) => s.send(msg, limit),
            Conn::Framed(f) => lock(&f.writer).write_to(
                &mut Bounded {
                    stream: &f.stream,
                    limit,
                },
                msg,
            ),
            Conn::Shm(c) => c.channel.send(msg, limit),
        }
    }

    pub(crate) fn recv(
        &self,
        out: &mut Vec<u8>,
        max: usize,
        limit: Option<Instant>,
    ) -> io::Result<bool> {
        match self {
            Conn::Local(s) => s.recv(out, max, limit),
            Conn::Framed(f) => lock(&f.reader).read_from(
                &mut Bounded {
                    stream: &f.stream,
                    limit,
                },
                max,
                out,
            ),
            // The channel refuses to its sender what is over the limit it
            // was made with; a handle whose limit was lowered since checks
            // here.
            Conn::Shm(c) => match c.channel.recv(out, limit)? {
                true if out.len() > max => Err(too_large(out.len() as u64, max)),
                more => Ok(more),
            },
        }
    }

    pub(crate) fn peer_credentials(&self, peer: &Address) -> Result<PeerCredentials> {
        match self {
            Conn::Local(s) => security::credentials(s.peer_credentials(), peer),
            Conn::Framed(f) => f.stream.peer_credentials(),
            Conn::Shm(c) => super::shm::credentials(c.peer.as_ref(), peer),
        }
    }

    pub(crate) fn shutdown(&self, how: Shutdown, peer: &Address) -> Result<()> {
        match self {
            Conn::Local(s) => s.shutdown(how),
            Conn::Framed(f) => return f.stream.shutdown(how),
            Conn::Shm(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a shared-memory channel has no half-close: drop every handle to close it",
            )),
        }
        .map_err(|e| Error::io(format!("shut down the message channel to {peer}"), e))
    }
}

impl CloseReceiving for Conn {
    fn close_receiving(&self) {
        match self {
            Conn::Local(s) => drop(s.shutdown(Shutdown::Read)),
            Conn::Framed(f) => drop(f.stream.shutdown(Shutdown::Read)),
            // The state's `closed` alone stops the receives of this process;
            // the peer's sends go on into the ring until it is full.
            Conn::Shm(_) => {}
        }
    }
}
