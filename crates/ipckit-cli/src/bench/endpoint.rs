//! Both ends of a measurement: what the bench binds for each transport, the
//! connection it accepts, and the peer's connection.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ipckit::shm::baseline::BareRing;
use ipckit::{
    Address, Listener, MailslotReceiver, MailslotSender, MessageListener, MessageStream, Stream,
};

use super::Transport;
use super::bare::{Packet, PacketListener};

/// Bounds every read and write, and the peer's start.
pub(super) const IO_LIMIT: Duration = Duration::from_secs(20);
/// The largest message the datagram transport carries here (a Unix datagram
/// must fit the socket's send buffer; a Windows mailslot message is at most
/// 64 KiB between processes of one machine in practice).
pub(super) const MAX_DATAGRAM: usize = 64 * 1024;

/// A connected end: the byte streams carry fixed-size messages.
pub(super) enum Conn {
    Bytes(Box<dyn Duplex>),
    Message(MessageStream),
    Packet(Packet),
    Datagram {
        rx: MailslotReceiver,
        tx: MailslotSender,
    },
    /// Two bare rings, ours to send on and the peer's.
    Ring {
        tx: BareRing,
        rx: BareRing,
    },
}

pub(super) trait Duplex: Read + Write + Send {}
impl<T: Read + Write + Send> Duplex for T {}

impl Conn {
    pub(super) fn send(&mut self, msg: &[u8]) -> Result<()> {
        match self {
            Conn::Bytes(s) => s.write_all(msg)?,
            Conn::Message(m) => m.send(msg)?,
            Conn::Packet(p) => p.send(msg)?,
            Conn::Datagram { tx, .. } => tx.send(msg)?,
            Conn::Ring { tx, .. } => tx.send(msg),
        }
        Ok(())
    }

    /// Receives one message of `size` bytes into `buf`; false at the peer's end.
    pub(super) fn recv(&mut self, buf: &mut Vec<u8>, size: usize) -> Result<bool> {
        match self {
            Conn::Bytes(s) => {
                buf.resize(size, 0);
                let mut got = 0;
                while got < size {
                    match s.read(&mut buf[got..]) {
                        Ok(0) if got == 0 => return Ok(false),
                        Ok(0) => bail!("the stream ended {got} bytes into a message"),
                        Ok(n) => got += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(true)
            }
            Conn::Message(m) => Ok(m.recv_into(buf)?),
            Conn::Packet(p) => p.recv(buf, size),
            Conn::Datagram { rx, .. } => {
                rx.recv_into(buf, Some(IO_LIMIT))?;
                Ok(true)
            }
            // A ring has no end: the peer's QUIT ends it.
            Conn::Ring { rx, .. } => {
                buf.resize(size, 0);
                let n = rx.recv(buf);
                ensure!(n == size, "a message of {n} bytes where {size} were sent");
                Ok(true)
            }
        }
    }
}

/// The capacity of each bare ring: room for several messages of `size`.
fn ring_capacity(size: usize) -> usize {
    (4 * size + 64).max(1 << 20)
}

/// The names of the two bare rings at `base` (`shm:NAME`): the bench's
/// (to the peer) and the peer's (back).
pub(super) fn ring_names(base: &str) -> [String; 2] {
    [format!("{base}-a"), format!("{base}-b")]
}

/// What the parent bound for one transport.
pub(super) enum Bound {
    #[cfg(unix)]
    Std(std::os::unix::net::UnixListener, PathBuf),
    Tcp(std::net::TcpListener),
    Packet(PacketListener),
    Stream(Listener),
    Message(MessageListener),
    /// Taken by the connection once the peer is ready.
    Datagram(Option<MailslotReceiver>),
    /// Both rings, made before the peer starts; taken by the connection.
    Ring(Option<(BareRing, BareRing)>),
}

impl Drop for Bound {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Bound::Std(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A socket file in the temporary directory, for the bare Unix loops.
fn temp_socket(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{name}.sock"))
}

/// Binds `transport` at a fresh name; returns it and the address the peer uses.
pub(super) fn bind(transport: Transport, tag: &str, size: usize) -> Result<(Bound, String)> {
    let name = format!("{tag}-{}", transport.name());
    Ok(match transport {
        #[cfg(unix)]
        Transport::Std => {
            let path = temp_socket(&name);
            let addr: Address = format!("unix:{}", path.display()).parse()?;
            let pending = crate::cleanup::pending();
            let listener = std::os::unix::net::UnixListener::bind(&path)
                .with_context(|| format!("bind std's UnixListener at {}", path.display()))?;
            pending.socket_of(&addr);
            let shown = path.display().to_string();
            (Bound::Std(listener, path), shown)
        }
        #[cfg(not(unix))]
        Transport::Std => bind_tcp()?,
        Transport::StdTcp => bind_tcp()?,
        Transport::Seqpacket => {
            let path = temp_socket(&name);
            let addr: Address = format!("unix:{}", path.display()).parse()?;
            let pending = crate::cleanup::pending();
            let listener = PacketListener::bind(&path)?;
            pending.socket_of(&addr);
            (Bound::Packet(listener), path.display().to_string())
        }
        Transport::Stream | Transport::Tcp => {
            let text = if transport == Transport::Tcp {
                "tcp:127.0.0.1:0".to_owned()
            } else {
                format!("pipe:{name}")
            };
            let addr: Address = text.parse()?;
            let pending = crate::cleanup::pending();
            let listener = Listener::bind(&addr)?;
            pending.socket_of(&addr);
            let local = listener.local_addr().to_string();
            (Bound::Stream(listener), local)
        }
        Transport::Message | Transport::Shm => {
            let scheme = if transport == Transport::Shm {
                "shm"
            } else {
                "pipe"
            };
            let addr: Address = format!("{scheme}:{name}").parse()?;
            let pending = crate::cleanup::pending();
            let listener = MessageListener::bind(&addr)?;
            pending.socket_of(&addr);
            (Bound::Message(listener), addr.to_string())
        }
        Transport::Ring => {
            let base = format!("shm:{name}");
            let [a, b] = ring_names(&base);
            let cap = ring_capacity(size);
            let tx = BareRing::create(&a, cap)?;
            let rx = BareRing::create(&b, cap)?;
            (Bound::Ring(Some((tx, rx))), base)
        }
        Transport::Datagram => {
            // Our inbox (the replies); the peer binds its own and says so.
            let addr: Address = format!("mailslot:{name}-a").parse()?;
            let mut opts = ipckit::ListenerOptions::new();
            opts.max_message_size(MAX_DATAGRAM);
            let pending = crate::cleanup::pending();
            let rx = opts.bind_mailslot(&addr)?;
            pending.socket_of(&addr);
            (Bound::Datagram(Some(rx)), addr.to_string())
        }
    })
}

fn bind_tcp() -> Result<(Bound, String)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("bind std's TcpListener on 127.0.0.1")?;
    let addr = listener.local_addr()?.to_string();
    Ok((Bound::Tcp(listener), addr))
}

/// Applies the time limit to std's Unix stream's reads and writes.
#[cfg(unix)]
fn bounded_unix(s: std::os::unix::net::UnixStream) -> io::Result<Conn> {
    s.set_read_timeout(Some(IO_LIMIT))?;
    s.set_write_timeout(Some(IO_LIMIT))?;
    Ok(Conn::Bytes(Box::new(s)))
}

/// Applies the time limit, and no delay, to std's TCP stream.
fn bounded_tcp(s: std::net::TcpStream) -> io::Result<Conn> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_LIMIT))?;
    s.set_write_timeout(Some(IO_LIMIT))?;
    Ok(Conn::Bytes(Box::new(s)))
}

/// Accepts the peer (with the time limit) and returns our end.
pub(super) fn accept(bound: &mut Bound, peer_ready: &dyn Fn() -> Result<String>) -> Result<Conn> {
    Ok(match bound {
        #[cfg(unix)]
        Bound::Std(l, _) => {
            let l = l.try_clone()?;
            let (s, _) = accept_within(move || l.accept())?;
            bounded_unix(s)?
        }
        Bound::Tcp(l) => {
            let l = l.try_clone()?;
            let (s, _) = accept_within(move || l.accept())?;
            bounded_tcp(s)?
        }
        Bound::Packet(l) => {
            let l = l.try_clone()?;
            Conn::Packet(accept_within(move || l.accept(IO_LIMIT))?)
        }
        Bound::Stream(l) => {
            let mut s = l.accept()?;
            s.set_read_timeout(Some(IO_LIMIT))?;
            s.set_write_timeout(Some(IO_LIMIT))?;
            Conn::Bytes(Box::new(s))
        }
        Bound::Message(l) => {
            let mut m = l.accept()?;
            m.set_read_timeout(Some(IO_LIMIT))?;
            m.set_write_timeout(Some(IO_LIMIT))?;
            Conn::Message(m)
        }
        Bound::Datagram(rx) => {
            let theirs = peer_ready()?;
            Conn::Datagram {
                rx: rx
                    .take()
                    .context("the datagram receiver was taken already")?,
                tx: MailslotSender::connect(theirs.as_str())?,
            }
        }
        Bound::Ring(rings) => {
            let (tx, rx) = rings.take().context("the rings were taken already")?;
            Conn::Ring { tx, rx }
        }
    })
}

/// A blocking accept without a timeout: run it on a thread and wait for it
/// within [`IO_LIMIT`]. A peer that never connects fails the transport; the
/// thread is left blocked until the process exits.
fn accept_within<T: Send + 'static>(
    accept: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("bench-accept".into())
        .spawn(move || {
            let _ = tx.send(accept());
        })
        .context("start the accepting thread")?;
    match rx.recv_timeout(IO_LIMIT) {
        Ok(accepted) => Ok(accepted?),
        Err(_) => bail!("the peer did not connect within {IO_LIMIT:?}"),
    }
}

/// The peer's end: connects to `addr` (the datagram peer binds its inbox
/// there and replies to `reply`, and says "ready" on stdout).
pub(super) fn connect(transport: Transport, addr: &str, reply: Option<&str>) -> Result<Conn> {
    Ok(match transport {
        #[cfg(unix)]
        Transport::Std => {
            let s = std::os::unix::net::UnixStream::connect(addr)
                .with_context(|| format!("connect std's UnixStream to {addr}"))?;
            bounded_unix(s)?
        }
        #[cfg(not(unix))]
        Transport::Std => connect_tcp(addr)?,
        Transport::StdTcp => connect_tcp(addr)?,
        Transport::Seqpacket => Conn::Packet(Packet::connect(addr.as_ref(), IO_LIMIT)?),
        Transport::Stream | Transport::Tcp => {
            let mut s = Stream::connect(addr)?;
            s.set_read_timeout(Some(IO_LIMIT))?;
            s.set_write_timeout(Some(IO_LIMIT))?;
            Conn::Bytes(Box::new(s))
        }
        Transport::Message | Transport::Shm => {
            let mut opts = ipckit::ConnectOptions::new();
            opts.timeout(IO_LIMIT);
            let mut m = opts.connect_message(addr)?;
            m.set_read_timeout(Some(IO_LIMIT))?;
            m.set_write_timeout(Some(IO_LIMIT))?;
            Conn::Message(m)
        }
        Transport::Ring => {
            let [a, b] = ring_names(addr);
            Conn::Ring {
                rx: BareRing::open(&a)?,
                tx: BareRing::open(&b)?,
            }
        }
        Transport::Datagram => {
            let reply = reply.context("the datagram peer needs the address to reply to")?;
            let ours: Address = addr.parse()?;
            let mut opts = ipckit::ListenerOptions::new();
            opts.max_message_size(MAX_DATAGRAM);
            let pending = crate::cleanup::pending();
            let rx = opts.bind_mailslot(&ours)?;
            pending.socket_of(&ours);
            let tx = MailslotSender::connect(reply)?;
            let mut out = io::stdout().lock();
            writeln!(out, "ready").and_then(|()| out.flush())?;
            Conn::Datagram { rx, tx }
        }
    })
}

fn connect_tcp(addr: &str) -> Result<Conn> {
    let s = std::net::TcpStream::connect(addr)
        .with_context(|| format!("connect std's TcpStream to {addr}"))?;
    Ok(bounded_tcp(s)?)
}
