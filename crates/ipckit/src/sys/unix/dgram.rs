//! Mailslots on Unix: `SOCK_DGRAM` Unix sockets, one datagram per message.
//!
//! A receiver binds a socket file (`NAME.dgram` in the private per-user
//! directory for `mailslot:NAME`); senders connect to it. A full receive queue
//! makes senders wait (nothing is dropped). A broadcast group `NAME` is a
//! directory `NAME.group/` of member sockets, one per receiver; a broadcast
//! sends to each, and removes the file of a member nobody receives on any more.

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, SocketAddrUnix, SocketType};

use super::claim::{self, BindLock, Holder};
use super::fdio::Wait;
use super::runtime_dir;
use super::socket::{NO_SIGNAL, new_socket_of};
use super::stream::{OwnFile, bind_socket, check_private_dir, socket_addr};
use crate::sys::peer::PeerCredentials;
use crate::sys::plain::Broadcast as Delivery;
use crate::sys::plain::Endpoint;
use crate::sys::plain::ListenConfig;
use crate::sys::plain::{Fault, FaultKind, timed_out, too_large};

/// A datagram socket that receives one mailslot's messages.
#[derive(Debug)]
pub(crate) struct MailslotReceiver {
    // Declared first, so the file is removed before the socket closes.
    _file: Option<OwnFile>,
    sock: OwnedFd,
    max: usize,
    /// Held from peek to read, so two receivers cannot split one datagram.
    turn: Mutex<()>,
}

impl MailslotReceiver {
    /// Binds `ep` with `opts` (the maximum message size, and whether a stale
    /// socket file is replaced).
    pub(crate) fn bind(ep: &Endpoint, opts: &ListenConfig) -> io::Result<MailslotReceiver> {
        let (sock, file) = bind_socket(ep, opts, SocketType::DGRAM)?;
        Ok(MailslotReceiver {
            _file: file,
            sock,
            max: opts.max_message_size,
            turn: Mutex::new(()),
        })
    }

    /// `timeout`: `Some(ZERO)` polls, `Some(d)` waits up to `d`, `None` forever.
    pub(crate) fn recv(&self, out: &mut Vec<u8>, timeout: Option<Duration>) -> io::Result<()> {
        let wait = match timeout {
            None => Wait::Block,
            Some(d) if d.is_zero() => Wait::Never,
            Some(d) => Wait::Until(Instant::now() + d),
        };
        match self.recv_with(out, wait) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(timed_out("receive")),
            other => other,
        }
    }

    /// Receives without blocking: `WouldBlock` when nothing is queued.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn try_recv(&self, out: &mut Vec<u8>) -> io::Result<()> {
        self.recv_with(out, Wait::Never)
    }

    /// Takes the turn only to look and to take, never while waiting: a
    /// `try_recv` or `pending` on another thread is not held up by a `recv`
    /// that waits.
    fn recv_with(&self, out: &mut Vec<u8>, wait: Wait) -> io::Result<()> {
        wait.check("receive")?;
        loop {
            {
                let _turn = crate::sys::sync::lock(&self.turn);
                match self.peek() {
                    Ok(len) if len > self.max => {
                        // Refused whole: the datagram is dropped, the receiver
                        // goes on.
                        self.take(&mut Vec::new(), 0)?;
                        return Err(too_large(len as u64, self.max));
                    }
                    Ok(len) => return self.take(out, len),
                    // Nothing queued, or another receiver took it first.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            self.wait_readable(wait)?;
        }
    }

    /// Waits, without the turn, until a datagram may be queued, as `wait` says.
    fn wait_readable(&self, wait: Wait) -> io::Result<()> {
        match wait {
            Wait::Block => loop {
                let mut fds = [PollFd::new(&self.sock, PollFlags::IN)];
                match rustix::event::poll(&mut fds, None) {
                    Ok(_) => return Ok(()),
                    Err(Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            },
            other => other.again(self.sock.as_fd(), PollFlags::IN, "receive"),
        }
    }

    /// The size of the next datagram, without waiting (`WouldBlock` when none
    /// is queued).
    fn peek(&self) -> io::Result<usize> {
        super::fdio::peek_len(self.sock.as_fd())
    }

    /// Takes the datagram `peek` found (`len` bytes) into `out`.
    fn take(&self, out: &mut Vec<u8>, len: usize) -> io::Result<()> {
        out.reserve_exact(len.max(1));
        loop {
            match rustix::net::recv(&self.sock, spare_capacity(out), RecvFlags::DONTWAIT) {
                Ok(_) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next datagram's size, and how many are queued: 0 when none is, and
    /// unknown (`None`) otherwise, as Unix does not count datagrams.
    pub(crate) fn pending(&self) -> io::Result<(Option<usize>, Option<usize>)> {
        let _turn = crate::sys::sync::lock(&self.turn);
        match self.peek() {
            Ok(len) => Ok((Some(len), None)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok((None, Some(0))),
            Err(e) => Err(e),
        }
    }
}

impl AsRawFd for MailslotReceiver {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// A datagram socket connected to one receiver.
#[derive(Debug)]
pub(crate) struct MailslotSender {
    sock: OwnedFd,
    /// The owner of the receiver's socket file, read just before connecting
    /// (`None` for an abstract name, which has no file).
    owner: Option<(u32, u32)>,
}

impl AsFd for MailslotSender {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl AsFd for MailslotReceiver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl MailslotSender {
    /// Connects to the receiver at `ep`; a portable name's directory is
    /// checked first, and the owner of the socket file is recorded.
    pub(crate) fn connect(ep: &Endpoint) -> io::Result<MailslotSender> {
        check_private_dir(ep)?;
        let addr = socket_addr(ep)?;
        let owner = match ep {
            Endpoint::UnixPath { path, .. } => {
                let meta = fs::symlink_metadata(path)?;
                Some((meta.uid(), meta.gid()))
            }
            _ => None,
        };
        let sock = new_socket_of(SocketType::DGRAM, false)?;
        rustix::net::connect(&sock, &addr)?;
        Ok(MailslotSender { sock, owner })
    }

    /// The user that owns the receiver's socket file: a datagram socket has no
    /// peer credentials (`SO_PEERCRED`), but only the receiver's user (or root)
    /// can have created the file.
    pub(crate) fn receiver_credentials(&self) -> io::Result<PeerCredentials> {
        match self.owner {
            Some((uid, gid)) => Ok(PeerCredentials {
                pid: None,
                uid: Some(uid),
                gid: Some(gid),
                sid: None,
            }),
            None => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "an abstract datagram socket has no file, so no owner to read",
            )),
        }
    }

    /// Sends one datagram; waits while the receiver's queue is full.
    pub(crate) fn send(&self, msg: &[u8]) -> io::Result<()> {
        send_to(&self.sock, None, msg, false)
    }
}

/// One datagram on `sock` (to `to`, or where it is connected), waiting
/// while the receiver's queue is full, or with `dont_wait` failing with
/// `WouldBlock` then.
fn send_to(
    sock: &OwnedFd,
    to: Option<&SocketAddrUnix>,
    msg: &[u8],
    dont_wait: bool,
) -> io::Result<()> {
    let flags = if dont_wait {
        NO_SIGNAL | SendFlags::DONTWAIT
    } else {
        NO_SIGNAL
    };
    loop {
        let sent = match to {
            None => rustix::net::send(sock, msg, flags),
            Some(to) => rustix::net::sendto(sock, msg, flags, to),
        };
        match sent {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(Errno::MSGSIZE) => {
                return Err(Fault::io(
                    FaultKind::TooLarge,
                    format!(
                        "a message of {} bytes is more than a Unix datagram carries here \
                         (the sending socket's SO_SNDBUF bounds it)",
                        msg.len()
                    ),
                ));
            }
            Err(Errno::CONNREFUSED) if to.is_none() => {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "the receiver has gone (ECONNREFUSED)",
                ));
            }
            Err(Errno::AGAIN) => return Err(io::ErrorKind::WouldBlock.into()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The directory of broadcast group `name`'s members (`name` is checked by
/// the portable layer: one plain path component).
fn group_dir(name: &str) -> PathBuf {
    runtime_dir::path().join(format!("{name}.group"))
}

/// Joins broadcast group `name`: a receiver on a member socket of its own.
pub(crate) fn join_group(name: &str, opts: &ListenConfig) -> io::Result<MailslotReceiver> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = group_dir(name);
    if let Some(parent) = dir.parent() {
        runtime_dir::ensure(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let member = format!(
        "{}-{}.dgram",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let ep = Endpoint::UnixPath {
        path: dir.join(member),
        private: false,
    };
    MailslotReceiver::bind(&ep, opts)
}

/// Sends `msg` to every live member of group `name`, never waiting for one:
/// returns how many got it, how many dead members (sockets nobody receives
/// on) were removed, and which live members were skipped because their
/// queue was full. Every member is tried; the first other error, naming its
/// member, is returned after all were.
pub(crate) fn broadcast(name: &str, msg: &[u8]) -> io::Result<Delivery> {
    let dir = group_dir(name);
    let checked = dir
        .parent()
        .map_or(Ok(()), runtime_dir::check)
        .and_then(|()| fs::read_dir(&dir));
    let entries = match checked {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Delivery::default()),
        Err(e) => return Err(e),
    };
    let sock = new_socket_of(SocketType::DGRAM, false)?;
    let mut done = Delivery::default();
    let mut first_error = None;
    for entry in entries {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_ok_and(|t| t.is_socket()) {
            continue;
        }
        let path = entry.path();
        let member_error =
            |e: io::Error| io::Error::new(e.kind(), format!("member {}: {e}", path.display()));
        let sent = SocketAddrUnix::new(path.as_path())
            .map_err(io::Error::from)
            .and_then(|to| send_to(&sock, Some(&to), msg, true));
        match sent {
            Ok(()) => done.delivered += 1,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                done.full += 1;
                let file = entry.file_name();
                let file = file.to_string_lossy();
                let member = file.strip_suffix(".dgram").unwrap_or(&file);
                done.full_members.push(member.to_owned());
            }
            Err(e) if e.raw_os_error() == Some(Errno::CONNREFUSED.raw_os_error()) => {
                // A member that died without removing its file.
                match remove_dead_member(&path) {
                    Ok(true) => done.dead += 1,
                    Ok(false) => {}
                    Err(e) => {
                        first_error.get_or_insert(member_error(e));
                    }
                }
            }
            // It left between the listing and the send.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                first_error.get_or_insert(member_error(e));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// Removes the file of a member that refused a datagram, unless somebody
/// receives on it after all: under its bind lock, which a member holds from
/// before its `bind` until that returned (see `claim`), so a member that was
/// binding at that instant, or a new one on the path of a dead one with the same
/// pid, is found live and kept. True if the file was removed.
fn remove_dead_member(path: &Path) -> io::Result<bool> {
    let Some(_lock) = BindLock::acquire(path)? else {
        return Ok(false);
    };
    match claim::holder(&SocketAddrUnix::new(path)?)? {
        Holder::Live(_) => Ok(false),
        Holder::Nobody => match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        },
    }
}
