//! Message channels over `SOCK_SEQPACKET` Unix sockets.
//!
//! One record is one message. The receiver learns a record's size first
//! (`MSG_PEEK | MSG_TRUNC`), so a record larger than any buffer is read whole,
//! and one over the limit is refused before a byte of it is taken.
//!
//! A record cannot exceed the sender's `SO_SNDBUF` (`EMSGSIZE`). On Linux a larger
//! message goes through a sealed `memfd`: the record carries [`LARGE_MAGIC`] and
//! the length as payload, and the file descriptor as `SCM_RIGHTS`; the receiver
//! reads the message back from the file. Only a record with exactly that payload
//! and one descriptor is taken for such a message; descriptors on any other
//! record are closed unread.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::Instant;

use rustix::buffer::spare_capacity;
use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendFlags, SocketFlags,
    SocketType,
};

use super::fdio::Wait;
use super::stream::{OwnFile, bind_socket, connect_socket};
use crate::sys::plain::Endpoint;
use crate::sys::plain::{ConnectConfig, ListenConfig};
use crate::sys::plain::{Fault, FaultKind, too_large};

/// The payload of a record that passes a large message as a `memfd`, followed
/// by the message length (8 bytes, little-endian).
const LARGE_MAGIC: &[u8; 16] = b"\0ipckit-memfd-1\0";
const LARGE_RECORD: usize = LARGE_MAGIC.len() + 8;

/// A listening `SOCK_SEQPACKET` socket.
#[derive(Debug)]
pub(crate) struct MsgListener {
    // Declared first, so the file is removed before the socket closes.
    _file: Option<OwnFile>,
    sock: OwnedFd,
}

impl MsgListener {
    pub(crate) fn bind(ep: &Endpoint, opts: &ListenConfig) -> io::Result<MsgListener> {
        let (sock, file) = bind_socket(ep, opts, SocketType::SEQPACKET)?;
        Ok(MsgListener { _file: file, sock })
    }

    /// Makes `accept` fail with `WouldBlock` instead of waiting (the async layer).
    #[cfg(feature = "tokio")]
    pub(crate) fn set_nonblocking(&self) -> io::Result<()> {
        Ok(rustix::io::ioctl_fionbio(&self.sock, true)?)
    }

    pub(crate) fn accept(&self) -> io::Result<MsgStream> {
        loop {
            match rustix::net::accept_with(&self.sock, SocketFlags::CLOEXEC) {
                Ok(sock) => return Ok(MsgStream::from_fd(sock)),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl std::os::fd::AsRawFd for MsgListener {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.sock)
    }
}

impl std::os::fd::AsRawFd for MsgStream {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.sock)
    }
}

/// What `peek` found next.
enum Next {
    /// The peer has closed the channel and every record was read.
    End,
    /// A record of `len` bytes, with or without descriptors attached.
    Record { len: usize, has_fds: bool },
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const CRED_SPACE: usize = rustix::cmsg_space!(ScmCredentials(1));
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const CRED_SPACE: usize = 0;

/// A connected `SOCK_SEQPACKET` socket.
#[derive(Debug)]
pub(crate) struct MsgStream {
    sock: OwnedFd,
    /// Held from peek to read (see `recv_with`).
    recv_turn: Mutex<()>,
}

/// `DONTWAIT` unless the call blocks in the kernel.
fn recv_flags(wait: Wait) -> RecvFlags {
    if wait.dont_block() {
        RecvFlags::DONTWAIT
    } else {
        RecvFlags::empty()
    }
}

fn protocol(message: String) -> io::Error {
    Fault::io(FaultKind::Protocol, message)
}

impl MsgStream {
    pub(crate) fn connect(ep: &Endpoint, opts: &ConnectConfig) -> io::Result<MsgStream> {
        let sock = connect_socket(ep, opts, SocketType::SEQPACKET)?;
        Ok(MsgStream::from_fd(sock))
    }

    /// Adopts a connected socket.
    pub(crate) fn from_fd(sock: OwnedFd) -> MsgStream {
        MsgStream {
            sock,
            recv_turn: Mutex::new(()),
        }
    }

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    pub(crate) fn peer_credentials(&self) -> io::Result<crate::sys::peer::PeerCredentials> {
        super::stream::peer_credentials(self.sock.as_fd())
    }

    pub(crate) fn send(&self, msg: &[u8], limit: Option<Instant>) -> io::Result<()> {
        self.send_with(msg, Wait::from_limit(limit))
    }

    /// Sends without blocking: `WouldBlock` when the socket has no room.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn try_send(&self, msg: &[u8]) -> io::Result<()> {
        self.send_with(msg, Wait::Never)
    }

    fn send_with(&self, msg: &[u8], wait: Wait) -> io::Result<()> {
        match self.send_record(&[IoSlice::new(msg)], None, wait) {
            Err(e) if e.raw_os_error() == Some(Errno::MSGSIZE.raw_os_error()) => {
                self.send_large(msg, wait, e)
            }
            other => other,
        }
    }

    /// Sends one record (with a descriptor attached, if given), waiting for room
    /// as `wait` says.
    fn send_record(
        &self,
        iov: &[IoSlice<'_>],
        fd: Option<BorrowedFd<'_>>,
        wait: Wait,
    ) -> io::Result<()> {
        wait.check("send")?;
        let mut flags = SendFlags::NOSIGNAL;
        if wait.dont_block() {
            flags |= SendFlags::DONTWAIT;
        }
        let fds = fd.map(|fd| [fd]);
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        loop {
            let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
            if let Some(fds) = &fds {
                control.push(rustix::net::SendAncillaryMessage::ScmRights(fds));
            }
            match rustix::net::sendmsg(&self.sock, iov, &mut control, flags) {
                Ok(_) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => wait.again(self.as_fd(), PollFlags::OUT, "send")?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A message too large for one record: written to a sealed memfd whose
    /// descriptor travels in a record of its own.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn send_large(&self, msg: &[u8], wait: Wait, _: io::Error) -> io::Result<()> {
        use rustix::fs::{MemfdFlags, SealFlags};
        let file = rustix::fs::memfd_create(
            "ipckit-message",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut done = 0;
        while done < msg.len() {
            match rustix::io::pwrite(&file, &msg[done..], done as u64) {
                Ok(n) => done += n,
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        rustix::fs::fcntl_add_seals(
            &file,
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
        )?;
        let len = (msg.len() as u64).to_le_bytes();
        self.send_record(
            &[IoSlice::new(LARGE_MAGIC), IoSlice::new(&len)],
            Some(file.as_fd()),
            wait,
        )
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn send_large(&self, msg: &[u8], _: Wait, e: io::Error) -> io::Result<()> {
        Err(io::Error::new(
            e.kind(),
            format!(
                "a message of {} bytes is larger than a SOCK_SEQPACKET record can be here ({e})",
                msg.len()
            ),
        ))
    }

    pub(crate) fn recv(
        &self,
        out: &mut Vec<u8>,
        max: usize,
        limit: Option<Instant>,
    ) -> io::Result<bool> {
        self.recv_with(out, max, Wait::from_limit(limit))
    }

    /// Receives without blocking: `WouldBlock` when no record is waiting.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn try_recv(&self, out: &mut Vec<u8>, max: usize) -> io::Result<bool> {
        self.recv_with(out, max, Wait::Never)
    }

    /// Peeks the next record's size, then takes it: one receiver at a time, so
    /// two cannot peek the same record and then take different ones.
    fn recv_with(&self, out: &mut Vec<u8>, max: usize, wait: Wait) -> io::Result<bool> {
        wait.check("receive")?;
        let _turn = crate::sys::sync::lock(&self.recv_turn);
        let next = self.peek(wait)?;
        let (len, has_fds) = match next {
            Next::End => return Ok(false),
            Next::Record { len, has_fds } => (len, has_fds),
        };
        if len == 0 && !has_fds {
            return self.take_empty();
        }
        if has_fds && len == LARGE_RECORD {
            return self.recv_large(out, max);
        }
        if len > max {
            return Err(too_large(len as u64, max));
        }
        out.reserve_exact(len.max(1));
        loop {
            // The record is waiting (peeked), so this does not block.
            match rustix::net::recv(&self.sock, spare_capacity(out), RecvFlags::DONTWAIT) {
                Ok((_, got)) if got == len => return Ok(true),
                Ok((_, got)) => {
                    return Err(protocol(format!(
                        "a record changed size between peek and read ({len} then {got} bytes): \
                         is another process reading this socket?"
                    )));
                }
                // The peer closed, with records of ours unread, after the peek:
                // Linux reports that once; the record peeked is still there.
                Err(Errno::INTR | Errno::CONNRESET) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The size of the next record, and whether it carries descriptors, waiting
    /// for one as `wait` says.
    ///
    /// The kernel reads an empty record and the end of the channel alike (0
    /// bytes). On Linux every record carries credentials (`SO_PASSCRED`, see
    /// `stream::prepare`) and the end carries none, which tells them apart.
    /// Elsewhere a 0-byte read is taken for an empty message while the peer is
    /// connected, and for the end once it has hung up.
    fn peek(&self, wait: Wait) -> io::Result<Next> {
        let flags = RecvFlags::PEEK | RecvFlags::TRUNC | recv_flags(wait);
        let mut space = [MaybeUninit::uninit(); CRED_SPACE];
        loop {
            let mut control = RecvAncillaryBuffer::new(&mut space);
            match rustix::net::recvmsg(&self.sock, &mut [], &mut control, flags) {
                Ok(r) => {
                    let has_fds = r.flags.contains(ReturnFlags::CTRUNC);
                    let is_record = r.bytes > 0 || has_fds || self.was_record(&mut control)?;
                    return Ok(if is_record {
                        Next::Record {
                            len: r.bytes,
                            has_fds,
                        }
                    } else {
                        Next::End
                    });
                }
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => wait.again(self.as_fd(), PollFlags::IN, "receive")?,
                // The peer closed with records of ours unread. Linux reports
                // that once, ahead of the records the peer sent before closing:
                // go on to those, then the end.
                Err(Errno::CONNRESET) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Whether a peeked 0-byte read was a record: on Linux, whether it carried
    /// credentials.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn was_record(&self, control: &mut RecvAncillaryBuffer<'_>) -> io::Result<bool> {
        Ok(control
            .drain()
            .any(|m| matches!(m, RecvAncillaryMessage::ScmCredentials(_))))
    }

    /// Whether a peeked 0-byte read was a record: elsewhere, whether the peer
    /// is still connected (an empty message sent just before closing reads as
    /// the end).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn was_record(&self, _: &mut RecvAncillaryBuffer<'_>) -> io::Result<bool> {
        Ok(!super::fdio::hung_up(self.as_fd())?)
    }

    /// Takes the empty record `peek` found.
    fn take_empty(&self) -> io::Result<bool> {
        loop {
            match rustix::net::recv(&self.sock, &mut [0u8; 0][..], RecvFlags::DONTWAIT) {
                Ok(_) | Err(Errno::AGAIN) => return Ok(true),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Takes a record that carries control data and may pass a large message.
    fn recv_large(&self, out: &mut Vec<u8>, max: usize) -> io::Result<bool> {
        let mut payload = [0u8; LARGE_RECORD];
        // Room for the descriptor and for the credentials that come first.
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1)) + CRED_SPACE];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = loop {
            let mut iov = [IoSliceMut::new(&mut payload)];
            match rustix::net::recvmsg(&self.sock, &mut iov, &mut control, RecvFlags::DONTWAIT) {
                Ok(r) => break r,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let mut fds: Vec<OwnedFd> = Vec::new();
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = msg {
                fds.extend(received);
            }
        }
        let payload = &payload[..got.bytes.min(LARGE_RECORD)];
        let large = fds.len() == 1
            && !got.flags.contains(ReturnFlags::CTRUNC)
            && payload.len() == LARGE_RECORD
            && payload.starts_with(LARGE_MAGIC);
        if !large {
            // Somebody else's record that happens to carry descriptors: deliver
            // its bytes; the descriptors close when `fds` drops.
            if payload.len() > max {
                return Err(too_large(payload.len() as u64, max));
            }
            out.extend_from_slice(payload);
            return Ok(true);
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&payload[LARGE_MAGIC.len()..]);
        let len = u64::from_le_bytes(len);
        if len > max as u64 {
            return Err(too_large(len, max));
        }
        read_file(&fds[0], len as usize, out)?;
        Ok(true)
    }

    pub(crate) fn close(&self) {
        let _ = rustix::net::shutdown(&self.sock, rustix::net::Shutdown::Both);
    }

    /// Shuts down one direction or both (`shutdown(2)`): after `Read`, a
    /// receive, the one waiting now included, finds the end of the channel.
    pub(crate) fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        let how = match how {
            std::net::Shutdown::Read => rustix::net::Shutdown::Read,
            std::net::Shutdown::Write => rustix::net::Shutdown::Write,
            std::net::Shutdown::Both => rustix::net::Shutdown::Both,
        };
        Ok(rustix::net::shutdown(&self.sock, how)?)
    }
}

/// Reads `len` bytes from the start of a passed memfd into `out`.
fn read_file(file: &OwnedFd, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
    let size = rustix::fs::fstat(file)?.st_size;
    if u64::try_from(size).ok() != Some(len as u64) {
        return Err(protocol(format!(
            "a large message's file holds {size} bytes, not the {len} its record announced"
        )));
    }
    out.reserve_exact(len);
    while out.len() < len {
        let at = out.len() as u64;
        match rustix::io::pread(file, spare_capacity(out), at) {
            Ok(0) => {
                return Err(protocol(format!(
                    "a large message's file ended after {} of {len} bytes",
                    out.len()
                )));
            }
            Ok(_) => {}
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    out.truncate(len);
    Ok(())
}
