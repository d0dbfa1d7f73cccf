//! The bare `SOCK_SEQPACKET` loop: a raw socket with no credentials, no
//! framing and no deadline bookkeeping (`SO_RCVTIMEO`/`SO_SNDTIMEO` bound it,
//! as std's sockets are bounded), the limit of ipckit's message channel on the
//! systems where it runs on `SOCK_SEQPACKET`. Elsewhere (macOS, Windows) it
//! fails with `Unsupported`, naming the OS.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Whether this OS has `SOCK_SEQPACKET` Unix sockets.
pub(super) const HAS_SEQPACKET: bool = cfg!(all(unix, not(target_vendor = "apple")));

/// A listening bare `SOCK_SEQPACKET` socket; its file is removed on drop.
pub(super) struct PacketListener {
    sock: imp::Socket,
    path: PathBuf,
}

/// A connected bare `SOCK_SEQPACKET` socket.
pub(super) struct Packet(imp::Socket);

impl PacketListener {
    pub(super) fn bind(path: &Path) -> Result<PacketListener> {
        let sock = imp::bind(path)
            .with_context(|| format!("bind a bare SOCK_SEQPACKET socket at {}", path.display()))?;
        Ok(PacketListener {
            sock,
            path: path.to_owned(),
        })
    }

    /// A clone for the accepting thread (blocking `accept` has no timeout).
    pub(super) fn try_clone(&self) -> io::Result<PacketListener> {
        Ok(PacketListener {
            sock: imp::try_clone(&self.sock)?,
            path: PathBuf::new(),
        })
    }

    pub(super) fn accept(&self, limit: Duration) -> io::Result<Packet> {
        imp::accept(&self.sock, limit).map(Packet)
    }
}

impl Drop for PacketListener {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Packet {
    pub(super) fn connect(path: &Path, limit: Duration) -> Result<Packet> {
        imp::connect(path, limit)
            .map(Packet)
            .with_context(|| format!("connect a bare SOCK_SEQPACKET socket to {}", path.display()))
    }

    pub(super) fn send(&self, msg: &[u8]) -> io::Result<()> {
        let sent = imp::send(&self.0, msg)?;
        if sent != msg.len() {
            return Err(io::Error::other(format!(
                "a record of {} bytes went out as {sent}",
                msg.len()
            )));
        }
        Ok(())
    }

    /// One record of exactly `size` bytes into `buf`; false at the end.
    pub(super) fn recv(&self, buf: &mut Vec<u8>, size: usize) -> Result<bool> {
        buf.resize(size, 0);
        match imp::recv(&self.0, buf)? {
            0 => Ok(false),
            n if n == size => Ok(true),
            n => bail!("a record of {n} bytes where {size} were sent"),
        }
    }
}

#[cfg(all(unix, not(target_vendor = "apple")))]
mod imp {
    use std::io;
    use std::os::fd::OwnedFd;
    use std::path::Path;
    use std::time::Duration;

    use rustix::net::sockopt::{Timeout, set_socket_timeout};
    use rustix::net::{
        self as net, AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketType,
    };

    pub(super) type Socket = OwnedFd;

    fn bounded(sock: OwnedFd, limit: Duration) -> io::Result<OwnedFd> {
        set_socket_timeout(&sock, Timeout::Recv, Some(limit))?;
        set_socket_timeout(&sock, Timeout::Send, Some(limit))?;
        Ok(sock)
    }

    pub(super) fn bind(path: &Path) -> io::Result<OwnedFd> {
        let sock = net::socket(AddressFamily::UNIX, SocketType::SEQPACKET, None)?;
        net::bind(&sock, &SocketAddrUnix::new(path)?)?;
        net::listen(&sock, 4)?;
        Ok(sock)
    }

    pub(super) fn try_clone(sock: &OwnedFd) -> io::Result<OwnedFd> {
        sock.try_clone()
    }

    pub(super) fn accept(sock: &OwnedFd, limit: Duration) -> io::Result<OwnedFd> {
        bounded(net::accept(sock)?, limit)
    }

    pub(super) fn connect(path: &Path, limit: Duration) -> io::Result<OwnedFd> {
        let sock = net::socket(AddressFamily::UNIX, SocketType::SEQPACKET, None)?;
        net::connect(&sock, &SocketAddrUnix::new(path)?)?;
        bounded(sock, limit)
    }

    pub(super) fn send(sock: &OwnedFd, msg: &[u8]) -> io::Result<usize> {
        Ok(net::send(sock, msg, SendFlags::NOSIGNAL)?)
    }

    pub(super) fn recv(sock: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
        Ok(net::recv(sock, buf, RecvFlags::empty())?.0)
    }
}

#[cfg(not(all(unix, not(target_vendor = "apple"))))]
mod imp {
    use std::io;
    use std::path::Path;
    use std::time::Duration;

    pub(super) enum Socket {}

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{} has no SOCK_SEQPACKET Unix sockets for the bare message loop",
                std::env::consts::OS
            ),
        )
    }

    pub(super) fn bind(_: &Path) -> io::Result<Socket> {
        Err(unsupported())
    }

    pub(super) fn try_clone(sock: &Socket) -> io::Result<Socket> {
        match *sock {}
    }

    pub(super) fn accept(sock: &Socket, _: Duration) -> io::Result<Socket> {
        match *sock {}
    }

    pub(super) fn connect(_: &Path, _: Duration) -> io::Result<Socket> {
        Err(unsupported())
    }

    pub(super) fn send(sock: &Socket, _: &[u8]) -> io::Result<usize> {
        match *sock {}
    }

    pub(super) fn recv(sock: &Socket, _: &mut [u8]) -> io::Result<usize> {
        match *sock {}
    }
}
