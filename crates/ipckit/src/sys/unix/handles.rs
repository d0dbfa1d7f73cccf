//! The adoption of a connected socket that a caller owns (`From<OwnedFd>` of
//! the public `Stream` and `MessageStream`). The `AsFd` impls of the `sys`
//! types sit beside them.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::{self, UnixStream};
use std::path::PathBuf;

use rustix::net::AddressFamily;

use super::MsgStream;
use super::stream::Stream;

/// The name of the peer of an adopted Unix socket.
#[derive(Debug)]
pub(crate) enum UnixName {
    /// A socket file.
    Path(PathBuf),
    /// A Linux abstract name.
    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    Abstract(String),
    /// No name (a `socketpair` end, a client that did not bind).
    Unnamed,
}

/// A connected stream socket a caller gave up, by family.
#[derive(Debug)]
pub(crate) enum Adopted {
    /// A Unix stream socket and the name of its peer (else its own).
    Unix(Stream, UnixName),
    /// A TCP connection and its peer's address, where the OS tells it.
    Tcp(TcpStream, Option<SocketAddr>),
}

/// Adopts `fd`, a connected stream socket: a TCP stream if it is an Internet
/// socket, a Unix stream otherwise (as std's `From<OwnedFd>`, trusting the
/// caller that it is a connected stream socket).
pub(crate) fn adopt_stream(fd: OwnedFd) -> Adopted {
    let family = rustix::net::getsockname(&fd).map(|a| a.address_family());
    if matches!(family, Ok(AddressFamily::INET | AddressFamily::INET6)) {
        let tcp = TcpStream::from(fd);
        let peer = tcp.peer_addr().ok();
        return Adopted::Tcp(tcp, peer);
    }
    let (fd, name) = socket_name(fd);
    Adopted::Unix(Stream::from_fd(fd), name)
}

/// Adopts `fd`, a connected message socket of this OS's kind (see
/// `MSG_SOCKET`), trusting the caller as [`adopt_stream`] does; with the name
/// of its peer (else its own).
pub(crate) fn adopt_message(fd: OwnedFd) -> (MsgStream, UnixName) {
    let (fd, name) = socket_name(fd);
    (MsgStream::foreign(fd), name)
}

/// The name of the peer of a Unix socket, else its own, else `Unnamed`
/// (std's `UnixStream` asks the OS the same of any Unix socket type).
fn socket_name(fd: OwnedFd) -> (OwnedFd, UnixName) {
    let unix = UnixStream::from(fd);
    let name = [unix.peer_addr(), unix.local_addr()]
        .into_iter()
        .flatten()
        .map(|a| unix_name(&a))
        .find(|n| !matches!(n, UnixName::Unnamed))
        .unwrap_or(UnixName::Unnamed);
    (OwnedFd::from(unix), name)
}

fn unix_name(addr: &net::SocketAddr) -> UnixName {
    if let Some(path) = addr.as_pathname() {
        return UnixName::Path(path.to_path_buf());
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        #[cfg(target_os = "android")]
        use std::os::android::net::SocketAddrExt;
        #[cfg(target_os = "linux")]
        use std::os::linux::net::SocketAddrExt;
        if let Some(name) = addr.as_abstract_name() {
            return UnixName::Abstract(String::from_utf8_lossy(name).into_owned());
        }
    }
    UnixName::Unnamed
}
