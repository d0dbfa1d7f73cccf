//! Messages larger than one default `SOCK_SEQPACKET` record, and who may be sent
//! ipckit's private record for them.
//!
//! # The kernel's limit
//!
//! A record must fit the sender's `SO_SNDBUF` (less 32 bytes, else `EMSGSIZE`).
//! The default buffer (`net.core.wmem_default`, 208 KiB) is far below what the
//! kernel can carry, so the first time a record does not fit, the socket's
//! `SO_SNDBUF` is raised as far as an unprivileged process may: the kernel caps
//! the request at `net.core.wmem_max` and doubles it. No privilege is relied on
//! (`SO_SNDBUFFORCE`). Beyond the buffer there is a second ceiling: the kernel
//! allocates a record's head in one piece, which fails with `ENOBUFS` above
//! about 4 MiB (the page allocator's largest block, plus 17 pages of
//! fragments) whatever `net.core.wmem_max` says. The receiver's `SO_RCVBUF` is
//! not consulted for a connected `SOCK_SEQPACKET` socket, so the receiving side
//! raises nothing.
//!
//! # Beyond it: the memfd record, for ipckit peers only
//!
//! A larger message is written to a sealed `memfd`, and one record carries
//! [`LARGE_MAGIC`] and the length as payload with the descriptor as
//! `SCM_RIGHTS`. A program that is not ipckit would take that record for a
//! 24-byte message, so it is sent only to a peer known to be ipckit. Each end
//! learns that without showing a foreign peer anything:
//!
//! - A connecting ipckit client binds its socket to an abstract name that starts
//!   with `MARKER` (`ipckit-msg-1/`) before it connects. The socket would be bound anyway (Linux
//!   autobinds a socket with `SO_PASSCRED` to a random abstract name when it
//!   connects), so a foreign server sees a peer address of another form, nothing
//!   more. The ipckit server reads the name from `accept` and knows at once.
//! - The ipckit server then sends the client [`GREETING`] as its first record.
//!   Only a client that bound the marker is greeted, so no foreign client ever
//!   receives it, and the ipckit client takes it out of its stream of records:
//!   its `recv` never returns it.
//! - A child-process channel: the child that adopts the channel through ipckit
//!   knows its parent is ipckit (only ipckit hands the channel over that way),
//!   and greets the parent the same way.
//!
//! - A process that binds a message listener also binds one datagram socket
//!   named `ipckit-msg-1/server/<pid>` in the abstract namespace, for its whole
//!   life. A client that must send a message over the limit before it was
//!   greeted (its server has not accepted it yet, say: it is busy) takes the
//!   server's pid from `SO_PEERCRED` (the process that listens) and connects a
//!   datagram socket to that name, which the owner does not notice: if it
//!   exists, the server is ipckit. (Across network or pid namespaces the name
//!   is not found, and the client falls back on the greeting.)
//!
//! A child channel's parent, or a client that found no such name, knows its
//! peer once the first record has arrived. A message over the limit sent before
//! that waits for the first record for up to [`GREETING_WAIT`] after the
//! channel was made, or less if the send's own timeout says so. A first record
//! other than the greeting, or no record in that time, means a foreign peer,
//! and the send fails with `FrameTooLarge`, naming the limit and the sysctl;
//! nothing is sent. Receiving a memfd record needs no such knowledge: it is
//! taken from any peer, exactly as before.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, SocketAddrAny, sockopt};

use crate::sys::plain::{Fault, FaultKind};

/// The payload of a record that passes a large message as a `memfd`, followed
/// by the message length (8 bytes, little-endian).
pub(super) const LARGE_MAGIC: &[u8; 16] = b"\0ipckit-memfd-1\0";
pub(super) const LARGE_RECORD: usize = LARGE_MAGIC.len() + 8;

/// The first record an ipckit end sends to a peer it knows is ipckit: "memfd
/// records welcome here".
pub(super) const GREETING: &[u8; 16] = b"\0ipckit-hello-1\0";

/// How an ipckit client's abstract name begins (after the leading NUL).
#[cfg(any(target_os = "linux", target_os = "android"))]
const MARKER: &[u8] = b"ipckit-msg-1/";

/// How long after a channel was made a message over the kernel's limit waits
/// for the peer's first record, to learn whether the peer is ipckit.
pub(super) const GREETING_WAIT: Duration = Duration::from_secs(2);

const UNKNOWN: u8 = 0;
const IPCKIT: u8 = 1;
const FOREIGN: u8 = 2;

/// What this end knows about the program on the other end.
#[derive(Debug)]
pub(super) struct Peer {
    kind: AtomicU8,
    /// The peer is a listening server's (this end connected), whose process
    /// may be asked whether it is ipckit (`server_advertised`).
    server: bool,
    /// The next record taken may be the peer's greeting (this end is a client
    /// or a parent that has taken no record yet).
    greeting_expected: AtomicBool,
    /// Whether `SO_SNDBUF` was raised already.
    raised: AtomicBool,
    born: Instant,
}

impl Peer {
    fn new(kind: u8, greeting_expected: bool) -> Peer {
        Peer {
            kind: AtomicU8::new(kind),
            server: false,
            greeting_expected: AtomicBool::new(greeting_expected),
            raised: AtomicBool::new(false),
            born: Instant::now(),
        }
    }

    /// The server this end connected to: it greets if it is ipckit, and its
    /// process may be asked.
    pub(super) fn server() -> Peer {
        Peer {
            server: MEMFD,
            ..Peer::greeted()
        }
    }

    /// A peer that announces itself with a greeting, or never does (a
    /// parent).
    pub(super) fn greeted() -> Peer {
        if MEMFD {
            Peer::new(UNKNOWN, true)
        } else {
            Peer::new(FOREIGN, false)
        }
    }

    /// A peer this end knows, and that sends no greeting.
    pub(super) fn known(ipckit: bool) -> Peer {
        Peer::new(if ipckit && MEMFD { IPCKIT } else { FOREIGN }, false)
    }

    pub(super) fn is_ipckit(&self) -> bool {
        self.kind.load(Ordering::Acquire) == IPCKIT
    }

    pub(super) fn is_known(&self) -> bool {
        self.kind.load(Ordering::Acquire) != UNKNOWN
    }

    /// The first record says who the peer is; once learned it stays.
    pub(super) fn learn(&self, greeting: bool) {
        let kind = if greeting { IPCKIT } else { FOREIGN };
        let _ = self
            .kind
            .compare_exchange(UNKNOWN, kind, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Whether the next record may be a greeting; after this call no later
    /// one is (called by the receiver, in its turn, for each record).
    pub(super) fn take_greeting_turn(&self) -> bool {
        self.greeting_expected.swap(false, Ordering::AcqRel)
    }

    /// Asks the process of the server this end connected to whether it is
    /// ipckit (see the module docs); learns it if so.
    pub(super) fn ask_server(&self, fd: BorrowedFd<'_>) {
        if self.server && !self.is_known() && server_advertised(fd) {
            self.learn(true);
        }
    }

    /// Until when a message over the limit waits to learn who the peer is.
    pub(super) fn greeting_deadline(&self) -> Instant {
        self.born + GREETING_WAIT
    }
}

/// Whether this OS has the memfd record.
const MEMFD: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// The abstract names that let each end learn the other is ipckit (Linux;
/// where the OS has no abstract names every peer counts as foreign, and the
/// memfd record is never used).
#[cfg(any(target_os = "linux", target_os = "android"))]
mod names {
    use super::*;
    use rustix::net::SocketAddrUnix;

    /// Binds a new client socket to a unique abstract name that tells an ipckit
    /// server the client is ipckit. Failing to bind only costs the memfd path.
    pub(crate) fn bind_marker(fd: BorrowedFd<'_>) {
        use std::sync::atomic::AtomicU64;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        for _ in 0..4 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let mut name = MARKER.to_vec();
            name.extend_from_slice(format!("{pid:x}-{n:x}-{nanos:x}").as_bytes());
            let Ok(addr) = SocketAddrUnix::new_abstract_name(&name) else {
                return;
            };
            match rustix::net::bind(fd, &addr) {
                Err(Errno::ADDRINUSE) => continue,
                _ => return,
            }
        }
    }

    /// The abstract name by which process `pid` says it serves ipckit message
    /// channels.
    fn server_name(pid: u32) -> io::Result<SocketAddrUnix> {
        let mut name = MARKER.to_vec();
        name.extend_from_slice(format!("server/{pid}").as_bytes());
        Ok(SocketAddrUnix::new_abstract_name(&name)?)
    }

    /// Binds, once per process and for its whole life, the name that tells
    /// clients this process's message listeners are ipckit's. Failing costs only
    /// the memfd path before a client is greeted.
    pub(crate) fn advertise_server() {
        use std::sync::OnceLock;
        static ADVERTISED: OnceLock<Option<OwnedFd>> = OnceLock::new();
        ADVERTISED.get_or_init(|| {
            let fd = datagram_socket().ok()?;
            rustix::net::bind(&fd, &server_name(std::process::id()).ok()?).ok()?;
            Some(fd)
        });
    }

    /// Whether the process listening at the other end of `fd` (`SO_PEERCRED`)
    /// has bound its ipckit name: connecting a datagram socket to it sends
    /// nothing and tells only whether it exists.
    pub(crate) fn server_advertised(fd: BorrowedFd<'_>) -> bool {
        let Ok(cred) = sockopt::socket_peercred(fd) else {
            return false;
        };
        let (Ok(name), Ok(probe)) = (
            server_name(cred.pid.as_raw_nonzero().get() as u32),
            datagram_socket(),
        ) else {
            return false;
        };
        rustix::net::connect(&probe, &name).is_ok()
    }

    fn datagram_socket() -> io::Result<OwnedFd> {
        use rustix::net::{AddressFamily, SocketFlags, SocketType};
        Ok(rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )?)
    }

    /// Whether an accepted client's address is an ipckit client's marker.
    pub(crate) fn is_marker(addr: Option<SocketAddrAny>) -> bool {
        let Some(unix) = addr.and_then(|a| SocketAddrUnix::try_from(a).ok()) else {
            return false;
        };
        unix.abstract_name().is_some_and(|n| n.starts_with(MARKER))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod names {
    use super::*;

    pub(crate) fn bind_marker(_: BorrowedFd<'_>) {}

    pub(crate) fn advertise_server() {}

    pub(crate) fn server_advertised(_: BorrowedFd<'_>) -> bool {
        false
    }

    pub(crate) fn is_marker(_: Option<SocketAddrAny>) -> bool {
        false
    }
}

use names::server_advertised;
pub(super) use names::{advertise_server, bind_marker, is_marker};

/// Greets a peer known to be ipckit. A failure (the peer already gone) is left
/// for the next call on the channel to report.
pub(super) fn greet(fd: BorrowedFd<'_>) {
    let _ = rustix::net::send(fd, GREETING, SendFlags::DONTWAIT | SendFlags::NOSIGNAL);
}

/// Whether `e` is a send's failure for want of room in one record.
pub(super) fn record_too_large(e: &io::Error) -> bool {
    let code = e.raw_os_error();
    code == Some(Errno::MSGSIZE.raw_os_error()) || code == Some(Errno::NOBUFS.raw_os_error())
}

/// Raises the socket's send buffer as far as the kernel allows, once; whether
/// it grew.
pub(super) fn raise_send_buffer(fd: BorrowedFd<'_>, peer: &Peer) -> io::Result<bool> {
    if peer.raised.swap(true, Ordering::AcqRel) {
        return Ok(false);
    }
    let before = sockopt::socket_send_buffer_size(fd)?;
    // The kernel takes min(value, wmem_max) and doubles it: ask for the most.
    let ask = wmem_max().unwrap_or(i32::MAX as usize / 2);
    if before >= ask.saturating_mul(2) {
        return Ok(false);
    }
    sockopt::set_socket_send_buffer_size(fd, ask)?;
    Ok(sockopt::socket_send_buffer_size(fd)? > before)
}

/// `net.core.wmem_max`, if this system shows it.
fn wmem_max() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/net/core/wmem_max")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The error for a message over the kernel's record limit to a peer not known
/// to be ipckit, or `cause` itself when the message is within the limit (an
/// allocation that failed for want of memory).
pub(super) fn over_limit(fd: BorrowedFd<'_>, len: usize, cause: io::Error) -> io::Error {
    let sndbuf = sockopt::socket_send_buffer_size(fd).unwrap_or(0);
    let by_buffer = sndbuf.saturating_sub(32);
    // The buffer's limit, or the allocation's when that is lower: found by
    // trying, as the kernel does not say it.
    let limit = largest_record().map_or(by_buffer, |l| l.min(by_buffer));
    if len <= limit {
        // Within the limit: an allocation that failed for want of memory.
        return cause;
    }
    let sysctl = match wmem_max() {
        Some(max) if limit < by_buffer => format!(
            "net.core.wmem_max is {max}, but the kernel cannot allocate a larger record in one \
             piece, whatever that sysctl says"
        ),
        Some(max) => format!(
            "SO_SNDBUF {sndbuf}, capped at twice net.core.wmem_max ({max}): raise it with \
             `sysctl -w net.core.wmem_max=BYTES`"
        ),
        None => format!("SO_SNDBUF {sndbuf}"),
    };
    Fault::io(
        FaultKind::TooLarge,
        format!(
            "a message of {len} bytes is larger than the kernel's limit for one SOCK_SEQPACKET \
             record here, {limit} bytes ({sysctl}); the peer is not known to be ipckit, so it \
             cannot take the message through a memfd either; nothing was sent"
        ),
    )
}

/// The largest record this kernel carries on a socket whose send buffer is
/// raised as far as it goes, found by trying on a socket pair of our own.
fn largest_record() -> io::Result<usize> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let ask = wmem_max().unwrap_or(i32::MAX as usize / 2);
    sockopt::set_socket_send_buffer_size(&a, ask)?;
    let buf = vec![0u8; sockopt::socket_send_buffer_size(&a)?];
    let (mut fits, mut fails) = (0, buf.len().saturating_sub(31));
    while fails - fits > 1 {
        let mid = fits + (fails - fits) / 2;
        match rustix::net::send(&a, &buf[..mid], SendFlags::DONTWAIT) {
            Ok(_) => {
                fits = mid;
                rustix::net::recv(&b, &mut [0u8; 0][..], RecvFlags::TRUNC)?;
            }
            Err(Errno::MSGSIZE | Errno::NOBUFS) => fails = mid,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(fits)
}

/// Writes `msg` to a sealed memfd and sends its descriptor in one record (the
/// peer is known to be ipckit).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn memfd_of(msg: &[u8]) -> io::Result<OwnedFd> {
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
    Ok(file)
}

/// Never called: without memfd no peer is ever known to be ipckit.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn memfd_of(_: &[u8]) -> io::Result<OwnedFd> {
    Err(io::ErrorKind::Unsupported.into())
}

/// The payload of the record that passes a message of `len` bytes by memfd.
pub(super) fn large_header(len: usize) -> [u8; 8] {
    (len as u64).to_le_bytes()
}

/// The two parts of a memfd record's payload.
pub(super) fn large_iov(header: &[u8; 8]) -> [IoSlice<'_>; 2] {
    [IoSlice::new(LARGE_MAGIC), IoSlice::new(header)]
}

/// Reads `len` bytes from the start of a passed memfd into `out`.
pub(super) fn read_file(file: &OwnedFd, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
    let size = rustix::fs::fstat(file)?.st_size;
    if u64::try_from(size).ok() != Some(len as u64) {
        return Err(protocol(format!(
            "a large message's file holds {size} bytes, not the {len} its record announced"
        )));
    }
    out.reserve_exact(len);
    while out.len() < len {
        let at = out.len() as u64;
        match rustix::io::pread(file.as_fd(), spare_capacity(out), at) {
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

pub(super) fn protocol(message: String) -> io::Error {
    Fault::io(FaultKind::Protocol, message)
}
