//! The transports of the suite: how to name a fresh endpoint of each, and what
//! each can do. The table of rows that runs them is in `main.rs`.

use std::net::TcpListener;
#[cfg(unix)]
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};

use crate::util::unique_name;

/// One kind of endpoint, named by the address text users write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// `unix:/path`: a socket file at a path of the test's choosing (Unix).
    #[cfg(unix)]
    UnixPath,
    /// `pipe:NAME`: the portable local name (a named pipe on Windows, a
    /// socket file in ipckit's private runtime directory on Unix).
    Portable,
    /// `@NAME`: a Linux abstract socket.
    #[cfg(target_os = "linux")]
    Abstract,
    /// `tcp:127.0.0.1:PORT`: loopback TCP (messages are length-prefixed frames).
    Tcp,
    /// `shm:NAME`: a shared-memory channel (messages only): a
    /// `MessageListener`'s, many clients through its rendezvous (blocking
    /// only), or a one-peer `ShmListener`'s (blocking and tokio).
    Shm,
}

impl Transport {
    /// An address of this transport that nobody serves, for a listener that
    /// binds it (TCP: port 0, the OS picks one).
    pub(crate) fn bind_addr(self, tag: &str) -> String {
        match self {
            Transport::Tcp => "tcp:127.0.0.1:0".to_owned(),
            _ => self.unserved_addr(tag),
        }
    }

    /// An address of this transport that nobody serves and that a listener
    /// can bind later under that same text (TCP: see [`unserved_port`]).
    pub(crate) fn unserved_addr(self, tag: &str) -> String {
        let name = unique_name(tag);
        match self {
            #[cfg(unix)]
            Transport::UnixPath => format!("unix:{}", socket_path(&name).display()),
            Transport::Portable => format!("pipe:{name}"),
            #[cfg(target_os = "linux")]
            Transport::Abstract => format!("@{name}"),
            Transport::Tcp => format!("tcp:127.0.0.1:{}", unserved_port()),
            Transport::Shm => format!("shm:{name}"),
        }
    }

    /// Whether the OS can say who the peer is (not over TCP).
    pub(crate) fn has_credentials(self) -> bool {
        self != Transport::Tcp
    }

    /// Whether a write half can be shut down alone: Windows named pipes and
    /// shared-memory channels cannot (the documented `Unsupported`); TCP and
    /// Unix sockets can.
    pub(crate) fn half_closes(self) -> bool {
        match self {
            Transport::Tcp => true,
            Transport::Shm => false,
            _ => !cfg!(windows),
        }
    }
}

/// A socket file path in the temporary directory, short enough for `sun_path`.
#[cfg(unix)]
fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{name}.sock"))
}

/// A loopback port nobody listens on, below the ephemeral ranges (Linux
/// 32768-60999, Windows 49152-65535): a `tcp:127.0.0.1:0` listener of a test
/// running in parallel is never handed it, as it would be a port freed from
/// the ephemeral range. Free when probed; ports differ per process and call.
fn unserved_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    let base = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + base.wrapping_add(n.wrapping_mul(7)) % SPAN;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + SPAN);
}
