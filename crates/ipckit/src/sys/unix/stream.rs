//! Byte streams over `SOCK_STREAM` Unix sockets.

use std::fs;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::io::Errno;
use rustix::net::{SocketAddrUnix, SocketType, sockopt};

use super::claim::{self, BindLock, Holder};
pub(super) use super::cred::peer_credentials;
use super::socket::{new_socket_of, set_up_accepted};
use super::{fdio, runtime_dir};
use crate::sys::peer::PeerCredentials;
use crate::sys::plain::Endpoint;
use crate::sys::plain::{ConnectConfig, Fault, FaultKind, ListenConfig, RetrySchedule, deadline};

pub(super) fn socket_addr(ep: &Endpoint) -> io::Result<SocketAddrUnix> {
    match ep {
        Endpoint::UnixPath { path, .. } => Ok(SocketAddrUnix::new(path.as_path())?),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Endpoint::Abstract(name) => Ok(SocketAddrUnix::new_abstract_name(name)?),
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "not a Unix socket endpoint",
        )),
    }
}

/// The socket file a listener created. Dropping it removes the file if it is
/// still the same file (device and inode), never a newer listener's.
#[derive(Debug)]
pub(super) struct OwnFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for OwnFile {
    fn drop(&mut self) {
        let still_ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if still_ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A listening Unix socket.
#[derive(Debug)]
pub(crate) struct Listener {
    // Declared first, so the file is removed before the socket closes.
    file: Option<OwnFile>,
    sock: UnixListener,
}

impl Listener {
    pub(crate) fn bind(ep: &Endpoint, opts: &ListenConfig) -> io::Result<Listener> {
        let (fd, file) = bind_socket(ep, opts, SocketType::STREAM)?;
        Ok(Listener {
            sock: UnixListener::from(fd),
            file,
        })
    }

    pub(crate) fn accept(&self) -> io::Result<Stream> {
        let (sock, _) = self.sock.accept()?;
        set_up_accepted(&sock)?;
        Ok(Stream { sock })
    }

    /// The socket file's mode, owner and group.
    pub(crate) fn describe_access(&self) -> io::Result<String> {
        match &self.file {
            Some(file) => {
                let meta = fs::symlink_metadata(&file.path)?;
                Ok(format!(
                    "mode {:04o}, owner uid {}, group gid {}",
                    meta.mode() & 0o7777,
                    meta.uid(),
                    meta.gid()
                ))
            }
            None => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "an abstract socket has no file and no access control: any local process may connect",
            )),
        }
    }

    /// The listening socket (blocking) and the guard that removes its file, for
    /// the async layer to adopt.
    #[cfg(feature = "tokio")]
    pub(super) fn into_parts(self) -> (UnixListener, Option<OwnFile>) {
        (self.sock, self.file)
    }
}

/// Creates, binds and (unless it is a datagram socket) listens on a Unix socket
/// of type `ty` at `ep`: the private
/// directory is checked, a stale file replaced, and the file made 0600. The guard
/// removes the file again if anything after `bind` fails, or when dropped.
pub(super) fn bind_socket(
    ep: &Endpoint,
    opts: &ListenConfig,
    ty: SocketType,
) -> io::Result<(OwnedFd, Option<OwnFile>)> {
    if let Endpoint::UnixPath {
        path,
        private: true,
    } = ep
        && let Some(dir) = path.parent()
    {
        runtime_dir::ensure(dir)?;
    }
    if let (Some(mode), Endpoint::Abstract(_)) = (opts.mode, ep) {
        return Err(Fault::io(
            FaultKind::InvalidOption,
            format!(
                "mode {mode:#o}: an abstract socket has no file and no mode (any local process \
                 may connect to it; use current_user_only to refuse other users)"
            ),
        ));
    }
    let addr = socket_addr(ep)?;
    let fd = new_socket_of(ty, false)?;
    prepare(&fd, ty)?;
    // Held until this function returns, after `listen`: racing binders of the
    // same path, stale-file replacement included, go one at a time (see `claim`).
    // Declared before `file`, so a failure below removes the file under the lock.
    let _lock = match ep {
        Endpoint::UnixPath { path, .. } => BindLock::acquire(path)?,
        _ => None,
    };
    match rustix::net::bind(&fd, &addr) {
        Ok(()) => {}
        Err(Errno::ADDRINUSE) => {
            let path = match ep {
                Endpoint::UnixPath { path, .. } => Some(path.as_path()),
                _ => None,
            };
            match (path, claim::holder(&addr)?) {
                (Some(path), Holder::Nobody) if opts.replace_stale => {
                    replace_stale(path)?;
                    rustix::net::bind(&fd, &addr)?;
                }
                (Some(_), Holder::Nobody) => return Err(stale_kept()),
                (_, Holder::Live(live)) => return Err(in_use(live.describe(path))),
                // An abstract name whose socket closed in the meantime.
                (None, Holder::Nobody) => rustix::net::bind(&fd, &addr)?,
            }
        }
        Err(e) => return Err(e.into()),
    }
    let file = match ep {
        Endpoint::UnixPath { path, .. } => {
            // The file is ours from here on; the guard removes it should
            // anything below fail.
            let meta = fs::symlink_metadata(path)?;
            let file = OwnFile {
                path: path.clone(),
                dev: meta.dev(),
                ino: meta.ino(),
            };
            // Before `listen`: until then a connect is refused, so no client
            // gets in under the mode the umask gave the file.
            let mode = opts.mode.unwrap_or(0o600);
            fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
            Some(file)
        }
        _ => None,
    };
    if ty != SocketType::DGRAM {
        rustix::net::listen(&fd, opts.backlog)?;
    }
    Ok((fd, file))
}

fn in_use(who: String) -> io::Error {
    io::Error::new(io::ErrorKind::AddrInUse, who)
}

fn stale_kept() -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        "a file nobody listens on (a stale socket file, or not a socket) is there, and \
         replace_stale is off, so it was kept",
    )
}

/// The socket file nobody listens on (a crashed server's leftover) is removed,
/// if it is a socket at all. Called only under the bind lock, after
/// `claim::holder` found nobody serving it.
fn replace_stale(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        // Its server removed it since.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "{} exists and is not a socket; it was left alone",
                path.display()
            ),
        ));
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A connected Unix stream socket.
#[derive(Debug)]
pub(crate) struct Stream {
    sock: UnixStream,
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl Stream {
    /// Adopts a connected stream socket (a child-process channel's end).
    pub(super) fn from_fd(fd: OwnedFd) -> Stream {
        Stream {
            sock: UnixStream::from(fd),
        }
    }

    pub(crate) fn connect(ep: &Endpoint, opts: &ConnectConfig) -> io::Result<Stream> {
        let fd = connect_socket(ep, opts, SocketType::STREAM)?;
        Ok(Stream {
            sock: UnixStream::from(fd),
        })
    }

    pub(crate) fn read(&self, buf: &mut [u8], limit: Option<Instant>) -> io::Result<usize> {
        match limit {
            None => (&self.sock).read(buf),
            Some(limit) => fdio::read_until(self.sock.as_fd(), buf, limit),
        }
    }

    pub(crate) fn write(&self, buf: &[u8], limit: Option<Instant>) -> io::Result<usize> {
        match limit {
            None => (&self.sock).write(buf),
            Some(limit) => fdio::write_until(self.sock.as_fd(), buf, limit),
        }
    }

    pub(crate) fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    pub(crate) fn try_clone(&self) -> io::Result<Stream> {
        Ok(Stream {
            sock: self.sock.try_clone()?,
        })
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.shutdown(how)
    }

    pub(crate) fn peer_credentials(&self) -> io::Result<PeerCredentials> {
        peer_credentials(self.sock.as_fd())
    }
}

/// Connects a Unix socket of type `ty` to `ep`, retrying while nobody listens
/// (with `retry_not_found`) until the connect timeout.
pub(super) fn connect_socket(
    ep: &Endpoint,
    opts: &ConnectConfig,
    ty: SocketType,
) -> io::Result<OwnedFd> {
    let addr = socket_addr(ep)?;
    let limit = deadline(opts.timeout);
    let mut pauses = RetrySchedule::until(limit);
    loop {
        match check_private_dir(ep).and_then(|()| connect_once(&addr, ty, limit)) {
            Err(e) if opts.retry_not_found && is_absent(&e) => match pauses.next() {
                Some(pause) => std::thread::sleep(pause),
                None => return Err(fdio::timed_out("connect (nobody listening yet)")),
            },
            Err(e) if e.raw_os_error() == Some(Errno::PROTOTYPE.raw_os_error()) => {
                return Err(wrong_kind(ty));
            }
            other => return other,
        }
    }
}

/// Sets up a new socket before `bind` or `connect`. A message socket gets
/// `SO_PASSCRED` (Linux): then every record arrives with credentials attached,
/// which tells an empty message from the end of the channel (both read as 0
/// bytes). Set before `connect`, and on the listener (accepted sockets inherit
/// it), so no record can arrive before it is in force.
pub(super) fn prepare(fd: &OwnedFd, ty: SocketType) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if ty == SocketType::SEQPACKET {
        sockopt::set_socket_passcred(fd, true)?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (fd, ty);
    Ok(())
}

/// The listener found serves the other kind of channel.
pub(super) fn wrong_kind(ty: SocketType) -> io::Error {
    let (wanted, found) = if ty == SocketType::STREAM {
        ("a byte stream", "message channels (SOCK_SEQPACKET)")
    } else {
        ("a message channel", "byte streams (SOCK_STREAM)")
    };
    Fault::io(
        FaultKind::Protocol,
        format!("cannot open {wanted} there: the listener serves {found}"),
    )
}

/// Before a client reaches `ep`: a portable name's directory must be ipckit's
/// private one (see [`runtime_dir::check`]); checked again on every attempt, as
/// a directory missing at first (`NotFound`) may appear later.
pub(super) fn check_private_dir(ep: &Endpoint) -> io::Result<()> {
    match ep {
        Endpoint::UnixPath {
            path,
            private: true,
        } => path.parent().map_or(Ok(()), runtime_dir::check),
        _ => Ok(()),
    }
}

pub(super) fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// One connection attempt. A connect to a listener whose backlog is full blocks in
/// the kernel; `SO_SNDTIMEO` bounds that wait on Linux.
fn connect_once(
    addr: &SocketAddrUnix,
    ty: SocketType,
    limit: Option<Instant>,
) -> io::Result<OwnedFd> {
    let fd = new_socket_of(ty, false)?;
    prepare(&fd, ty)?;
    #[cfg(not(target_vendor = "apple"))]
    if ty == SocketType::SEQPACKET {
        super::large_records::bind_marker(fd.as_fd());
    }
    if let Some(limit) = limit {
        let left = limit.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(fdio::timed_out("connect"));
        }
        sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, Some(left))?;
    }
    match rustix::net::connect(&fd, addr) {
        Ok(()) => {}
        Err(Errno::AGAIN | Errno::INPROGRESS) if limit.is_some() => {
            return Err(fdio::timed_out("connect (listener backlog full)"));
        }
        Err(e) => return Err(e.into()),
    }
    if limit.is_some() {
        sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, None)?;
    }
    Ok(fd)
}
