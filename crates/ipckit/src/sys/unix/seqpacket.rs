//! Message channels over `SOCK_SEQPACKET` Unix sockets.
//!
//! One record is one message. The receiver learns a record's size first
//! (`MSG_PEEK | MSG_TRUNC`), so a record larger than any buffer is read whole,
//! and one over the limit is refused before a byte of it is taken.
//!
//! A message larger than one record can be goes through a sealed `memfd`, to an
//! ipckit peer only; see `large_records` for the kernel's limit and for how each
//! end learns whether the other is ipckit. Only a record with exactly that
//! payload and one descriptor is taken for such a message; descriptors on any
//! other record are closed unread.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::net::sockopt::{Timeout, set_socket_timeout};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendFlags};

use super::fdio::{self, Wait};
use super::large_records::{self as large, GREETING, LARGE_MAGIC, LARGE_RECORD, Peer};
use crate::sys::plain::too_large;

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

/// A receive whose deadline is at least this far waits in the kernel's
/// `recvmsg` bounded by `SO_RCVTIMEO` rather than in `poll` (see `peek`).
const KERNEL_WAIT_FROM: Duration = Duration::from_millis(50);
/// How much sooner than the deadline `SO_RCVTIMEO` ends: the kernel rounds
/// it up to a scheduler tick (at most 10 ms), and the rest is waited in `poll`.
const KERNEL_WAIT_MARGIN: Duration = Duration::from_millis(20);

/// A connected `SOCK_SEQPACKET` socket.
#[derive(Debug)]
pub(crate) struct MsgStream {
    sock: OwnedFd,
    /// Held from peek to read (see `recv_with`).
    recv_turn: Mutex<()>,
    /// Whether the peer is ipckit, and may be sent memfd records.
    peer: Peer,
    /// The socket's `SO_RCVTIMEO` in nanoseconds, 0 while unset (see `peek`).
    recv_timeout: AtomicU64,
}

/// `DONTWAIT` unless the call blocks in the kernel.
fn recv_flags(wait: Wait) -> RecvFlags {
    if wait.dont_block() {
        RecvFlags::DONTWAIT
    } else {
        RecvFlags::empty()
    }
}

impl MsgStream {
    /// A client just accepted by a listener (`msg_socket`); one that is
    /// ipckit (see `large_records`) is greeted.
    pub(crate) fn accepted(sock: OwnedFd) -> MsgStream {
        let addr = rustix::net::getpeername(&sock).ok().flatten();
        let ipckit = large::is_marker(addr);
        if ipckit {
            large::greet(sock.as_fd());
        }
        MsgStream::with_peer(sock, Peer::known(ipckit))
    }

    /// A socket just connected to a listener (`msg_socket`).
    pub(crate) fn connected(sock: OwnedFd) -> MsgStream {
        MsgStream::with_peer(sock, Peer::server())
    }

    /// Called once a listener is bound: lets this process's clients learn
    /// that their server is ipckit (see `large_records`).
    pub(crate) fn listening() {
        large::advertise_server();
    }

    /// Adopts a connected socket whose peer greets this end if it is ipckit
    /// (the parent's end of a child channel).
    pub(crate) fn from_fd(sock: OwnedFd) -> MsgStream {
        MsgStream::with_peer(sock, Peer::greeted())
    }

    /// Adopts a connected socket a caller gave up (`From<OwnedFd>`): its peer
    /// is taken for foreign, so it is never sent an ipckit-private record.
    pub(crate) fn foreign(sock: OwnedFd) -> MsgStream {
        MsgStream::with_peer(sock, Peer::known(false))
    }

    /// Adopts a child channel's end handed over by an ipckit parent, and greets
    /// the parent.
    pub(crate) fn adopted(sock: OwnedFd) -> MsgStream {
        large::greet(sock.as_fd());
        MsgStream::with_peer(sock, Peer::known(true))
    }

    fn with_peer(sock: OwnedFd, peer: Peer) -> MsgStream {
        MsgStream {
            sock,
            recv_turn: Mutex::new(()),
            peer,
            recv_timeout: AtomicU64::new(0),
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

    /// Sends one record; a message too large for one goes by memfd to an
    /// ipckit peer, and fails with `TooLarge` to any other (see
    /// `large_records`).
    fn send_with(&self, msg: &[u8], wait: Wait) -> io::Result<()> {
        let mut result = self.send_record(&[IoSlice::new(msg)], None, wait);
        if matches!(&result, Err(e) if large::record_too_large(e))
            && large::raise_send_buffer(self.as_fd(), &self.peer)?
        {
            result = self.send_record(&[IoSlice::new(msg)], None, wait);
        }
        match result {
            Err(e) if large::record_too_large(&e) => {
                if !self.peer_is_ipckit(wait)? {
                    return Err(large::over_limit(self.as_fd(), msg.len(), e));
                }
                let file = large::memfd_of(msg)?;
                let header = large::large_header(msg.len());
                self.send_record(&large::large_iov(&header), Some(file.as_fd()), wait)
            }
            other => other,
        }
    }

    /// Whether the peer is known to be ipckit, waiting for its first record
    /// until the greeting deadline (or `wait`'s limit, if sooner) when that is
    /// not known yet. Without waiting (the async layer), `greeting_pending`.
    fn peer_is_ipckit(&self, wait: Wait) -> io::Result<bool> {
        let until = self.peer.greeting_deadline();
        self.peer.ask_server(self.as_fd());
        loop {
            if self.peer.is_known() || self.learn_from_first_record()? {
                return Ok(self.peer.is_ipckit());
            }
            if Instant::now() >= until {
                return Ok(false);
            }
            match wait {
                Wait::Never => return Err(greeting_pending()),
                Wait::Until(limit) if limit < until => {
                    fdio::wait(self.as_fd(), PollFlags::IN, limit, "send")?;
                }
                _ => match fdio::wait(self.as_fd(), PollFlags::IN, until, "send") {
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(false),
                    other => other?,
                },
            }
        }
    }

    /// Until when a message over the kernel's limit waits to learn whether
    /// the peer is ipckit.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn greeting_deadline(&self) -> Instant {
        self.peer.greeting_deadline()
    }

    /// Looks (without taking it) at the first record, if one has arrived, and
    /// learns from it who the peer is; whether something was learned (the end
    /// of the channel counts: nothing more will come).
    pub(crate) fn learn_from_first_record(&self) -> io::Result<bool> {
        if self.peer.is_known() {
            return Ok(true);
        }
        match self.peek_greeting(RecvFlags::DONTWAIT)? {
            Some(greeting) => {
                self.peer.learn(greeting);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Looks at the next record without taking it: whether it is a greeting;
    /// `None` when none is waiting. The end of the channel counts as a record
    /// that is not a greeting.
    fn peek_greeting(&self, flags: RecvFlags) -> io::Result<Option<bool>> {
        let mut head = [0u8; GREETING.len()];
        let mut space = [MaybeUninit::uninit(); CRED_SPACE];
        let flags = flags | RecvFlags::PEEK | RecvFlags::TRUNC;
        loop {
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [IoSliceMut::new(&mut head)];
            match rustix::net::recvmsg(&self.sock, &mut iov, &mut control, flags) {
                Ok(r) => {
                    let fds = r.flags.contains(ReturnFlags::CTRUNC);
                    return Ok(Some(r.bytes == GREETING.len() && !fds && &head == GREETING));
                }
                Err(Errno::INTR | Errno::CONNRESET) => continue,
                Err(Errno::AGAIN) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
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
        let mut flags = super::socket::NO_SIGNAL;
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
        let (len, has_fds) = loop {
            let (len, has_fds) = match self.peek(wait)? {
                Next::End => return Ok(false),
                Next::Record { len, has_fds } => (len, has_fds),
            };
            if !self.peer.take_greeting_turn() {
                break (len, has_fds);
            }
            // The first record: a greeting says the peer is ipckit, and is
            // taken here, never delivered. Learned before it is taken, so a
            // sender that looks next finds the peer known.
            let greeting = self.peek_greeting(RecvFlags::DONTWAIT)? == Some(true);
            self.peer.learn(greeting);
            if !greeting {
                break (len, has_fds);
            }
            self.take_record()?;
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
                    return Err(large::protocol(format!(
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
    ///
    /// A receive with a deadline waits in `recvmsg` itself while the deadline
    /// is [`KERNEL_WAIT_FROM`] or more away, bounded by `SO_RCVTIMEO` (set only
    /// when the deadline is nearer than the value in force, and then with room
    /// to spare, so a fixed read timeout sets it once), and in `poll` for the
    /// last stretch, whose timer is precise. Waiting in `poll` first cost two
    /// system calls per message more (a `recvmsg` that finds nothing, and the
    /// `poll`): `ipckit bench message`, docs/BENCHMARKS.md. A receive without a
    /// deadline that meets a `SO_RCVTIMEO` left by another clone's receive
    /// simply waits again.
    fn peek(&self, wait: Wait) -> io::Result<Next> {
        let mut space = [MaybeUninit::uninit(); CRED_SPACE];
        loop {
            let flags = RecvFlags::PEEK | RecvFlags::TRUNC | self.recv_wait(wait)?;
            let mut control = RecvAncillaryBuffer::new(&mut space);
            match rustix::net::recvmsg(&self.sock, &mut [], &mut control, flags) {
                Ok(r) => {
                    let has_fds = r.flags.contains(ReturnFlags::CTRUNC);
                    // (Outside Linux a non-empty record reads as 0 bytes, cut.)
                    let is_record = r.bytes > 0
                        || has_fds
                        || r.flags.contains(ReturnFlags::TRUNC)
                        || self.was_record(&mut control)?;
                    return Ok(if is_record {
                        Next::Record {
                            len: super::fdio::full_len(self.as_fd(), r.bytes, r.flags)?,
                            has_fds,
                        }
                    } else {
                        Next::End
                    });
                }
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) if flags.contains(RecvFlags::DONTWAIT) => {
                    wait.again(self.as_fd(), PollFlags::IN, "receive")?;
                }
                // The kernel's wait (`SO_RCVTIMEO`) ended: go on as `wait`
                // says (`recv_wait` fails it once its deadline has passed).
                Err(Errno::AGAIN) => continue,
                // The peer closed with records of ours unread. Linux reports
                // that once, ahead of the records the peer sent before closing:
                // go on to those, then the end.
                Err(Errno::CONNRESET) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// How the next `recvmsg` of `peek` waits: `DONTWAIT` to wait in `poll`
    /// (or not at all), none to wait in the kernel, `SO_RCVTIMEO` lowered
    /// first if the deadline is nearer than it.
    fn recv_wait(&self, wait: Wait) -> io::Result<RecvFlags> {
        let Wait::Until(limit) = wait else {
            return Ok(recv_flags(wait));
        };
        let left = limit.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(super::fdio::timed_out("receive"));
        }
        if left < KERNEL_WAIT_FROM {
            return Ok(RecvFlags::DONTWAIT);
        }
        let bound = left - KERNEL_WAIT_MARGIN;
        let now = self.recv_timeout.load(Ordering::Relaxed);
        if now == 0 || u128::from(now) > bound.as_nanos() {
            // Room to spare: the next call's deadline, a little nearer than
            // this one's, finds it in force.
            let set = bound - bound / 16;
            set_socket_timeout(&self.sock, Timeout::Recv, Some(set))?;
            let nanos = u64::try_from(set.as_nanos()).unwrap_or(u64::MAX).max(1);
            self.recv_timeout.store(nanos, Ordering::Relaxed);
        }
        Ok(RecvFlags::empty())
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
        self.take_record().map(|()| true)
    }

    /// Takes the record `peek` found, its bytes discarded.
    fn take_record(&self) -> io::Result<()> {
        loop {
            match rustix::net::recv(&self.sock, &mut [0u8; 0][..], RecvFlags::DONTWAIT) {
                Ok(_) | Err(Errno::AGAIN) => return Ok(()),
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
        large::read_file(&fds[0], len as usize, out)?;
        Ok(true)
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

/// The error `try_send` gives while a message over the kernel's limit waits
/// to learn whether the peer is ipckit: the async layer waits for the peer's
/// first record (see `awaits_greeting`), then tries again.
#[derive(Debug)]
struct GreetingPending;

impl std::fmt::Display for GreetingPending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("waiting for the peer's first record, to learn whether it is ipckit")
    }
}

impl std::error::Error for GreetingPending {}

fn greeting_pending() -> io::Error {
    io::Error::other(GreetingPending)
}

/// Whether `try_send` is waiting to learn who the peer is.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) fn awaits_greeting(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|e| e.is::<GreetingPending>())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustix::net::SocketType;

    use super::*;

    fn pair() -> (MsgStream, MsgStream) {
        let (a, b) = super::super::socket::pair(SocketType::SEQPACKET).unwrap();
        super::super::stream::prepare(&a, SocketType::SEQPACKET).unwrap();
        super::super::stream::prepare(&b, SocketType::SEQPACKET).unwrap();
        let known = |s| MsgStream::with_peer(s, Peer::known(false));
        (known(a), known(b))
    }

    /// A receive with a far deadline waits in the kernel under `SO_RCVTIMEO`,
    /// set once for a fixed timeout, and still ends at its deadline (the last
    /// stretch in `poll`); a record that comes while it waits is taken, and a
    /// receive without a deadline afterwards is not cut short by what the
    /// earlier one left set.
    #[test]
    fn a_receive_waits_in_the_kernel_until_its_deadline() {
        let (a, b) = pair();
        let timeout = Duration::from_millis(300);
        let mut out = Vec::new();
        let started = Instant::now();
        let err = b.recv(&mut out, 1024, Some(started + timeout)).unwrap_err();
        let took = started.elapsed();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(took >= timeout && took < timeout * 3, "{took:?}");
        let set = b.recv_timeout.load(Ordering::Relaxed);
        assert!(set > 0 && u128::from(set) < timeout.as_nanos(), "{set}");

        // The same timeout again: SO_RCVTIMEO stays as it was.
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            a.send(b"late", None).unwrap();
            a
        });
        let more = b
            .recv(&mut out, 1024, Some(Instant::now() + timeout))
            .unwrap();
        assert!(more && out == b"late", "{out:?}");
        assert_eq!(b.recv_timeout.load(Ordering::Relaxed), set);
        let a = sender.join().unwrap();

        // Without a deadline: waits past SO_RCVTIMEO for the record. (A
        // watchdog: a wrong loop here would hang.)
        let sender = std::thread::spawn(move || {
            std::thread::sleep(timeout);
            a.send(b"", None).unwrap();
            a
        });
        let (done_tx, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            out.clear();
            let first = b.recv(&mut out, 1024, None).unwrap() && out.is_empty();
            let _ = done_tx.send(first);
            let _ = done_tx.send(!b.recv(&mut out, 1024, None).unwrap());
        });
        let watchdog = Duration::from_secs(20);
        assert!(done.recv_timeout(watchdog).unwrap(), "the empty record");
        drop(sender.join().unwrap());
        assert!(
            done.recv_timeout(watchdog).unwrap(),
            "the end after the peer closed"
        );
    }
}
