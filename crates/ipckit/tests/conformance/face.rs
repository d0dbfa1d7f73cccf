//! The faces the suite drives every transport through: the blocking and the
//! tokio byte streams, the blocking and tokio message channels, and the
//! blocking and tokio shared-memory channels, behind one small interface ([`Face`]) so that every case is
//! written once. What only some faces have is a trait of its own
//! ([`Deadlines`], [`Credentials`], [`HalfClose`]); a case that needs it says
//! so in its bound, and runs only on the faces that have it.
//!
//! A tokio face runs each call to completion on one shared runtime
//! (`block_on`): the timeouts, deadlines and retries checked are the tokio
//! types' own.

use std::fmt::Debug;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use ipckit::security::PeerCredentials;
use ipckit::{ConnectOptions, ListenerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// The runtime every tokio face runs on.
fn rt() -> &'static Runtime {
    static RT: LazyLock<Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("build the tokio runtime")
    });
    &RT
}

/// What every face has: an endpoint to bind, accept from and connect to, and
/// a way to pass data and wait for it, with timeouts.
pub(crate) trait Face: 'static {
    type Listener: Send + Debug + 'static;
    type Conn: Send + Debug + 'static;
    /// The sizes `connect_accept` sends: a message channel's include the
    /// empty message, which is a message; a byte stream has no such thing.
    const SIZES: &[usize];

    fn bind(opts: &ListenerOptions, addr: &str) -> ipckit::Result<Self::Listener>;
    fn local_addr(listener: &Self::Listener) -> String;
    fn accept(listener: &mut Self::Listener) -> ipckit::Result<Self::Conn>;
    fn connect(opts: &ConnectOptions, addr: &str) -> ipckit::Result<Self::Conn>;
    fn set_read_timeout(conn: &mut Self::Conn, t: Option<Duration>) -> ipckit::Result<()>;
    fn set_write_timeout(conn: &mut Self::Conn, t: Option<Duration>) -> ipckit::Result<()>;
    /// Sends `data` whole: one message, or every byte written.
    fn put(conn: &mut Self::Conn, data: &[u8]) -> io::Result<()>;
    /// Waits for what one `put` of `len` bytes sent (a message, or `len`
    /// bytes); `None` at the end.
    fn take(conn: &mut Self::Conn, len: usize) -> io::Result<Option<Vec<u8>>>;
}

/// Read deadlines (`set_read_deadline`).
pub(crate) trait Deadlines: Face {
    fn set_read_deadline(conn: &mut Self::Conn, at: Option<Instant>);
}

/// Who the peer is (`peer_credentials`).
pub(crate) trait Credentials: Face {
    fn peer_credentials(conn: &Self::Conn) -> ipckit::Result<PeerCredentials>;
}

/// Shutting down the write half alone (`shutdown(Shutdown::Write)`).
pub(crate) trait HalfClose: Face {
    fn shutdown_write(conn: &mut Self::Conn) -> io::Result<()>;
}

/// `len` bytes read in full from a byte stream, `None` at the end before
/// the first one, an error at the end after it.
fn take_bytes(
    len: usize,
    mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0; len];
    let mut got = 0;
    while got < len {
        match read(&mut buf[got..])? {
            0 if got == 0 => return Ok(None),
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the stream ended after {got} of {len} bytes"),
                ));
            }
            n => got += n,
        }
    }
    Ok(Some(buf))
}

/// `ipckit::{Listener, Stream}`.
pub(crate) struct Blocking;

impl Face for Blocking {
    type Listener = ipckit::Listener;
    type Conn = ipckit::Stream;
    const SIZES: &[usize] = &[1, 100, 4096];

    fn bind(opts: &ListenerOptions, addr: &str) -> ipckit::Result<Self::Listener> {
        opts.bind(addr)
    }
    fn local_addr(listener: &Self::Listener) -> String {
        listener.local_addr().to_string()
    }
    fn accept(listener: &mut Self::Listener) -> ipckit::Result<Self::Conn> {
        listener.accept()
    }
    fn connect(opts: &ConnectOptions, addr: &str) -> ipckit::Result<Self::Conn> {
        opts.connect(addr)
    }
    fn set_read_timeout(conn: &mut Self::Conn, t: Option<Duration>) -> ipckit::Result<()> {
        conn.set_read_timeout(t)
    }
    fn set_write_timeout(conn: &mut Self::Conn, t: Option<Duration>) -> ipckit::Result<()> {
        conn.set_write_timeout(t)
    }
    fn put(conn: &mut Self::Conn, data: &[u8]) -> io::Result<()> {
        conn.write_all(data)
    }
    fn take(conn: &mut Self::Conn, len: usize) -> io::Result<Option<Vec<u8>>> {
        take_bytes(len, |buf| conn.read(buf))
    }
}

impl Deadlines for Blocking {
    fn set_read_deadline(conn: &mut Self::Conn, at: Option<Instant>) {
        conn.set_read_deadline(at);
    }
}

impl Credentials for Blocking {
    fn peer_credentials(conn: &Self::Conn) -> ipckit::Result<PeerCredentials> {
        conn.peer_credentials()
    }
}

impl HalfClose for Blocking {
    fn shutdown_write(conn: &mut Self::Conn) -> io::Result<()> {
        Ok(conn.shutdown(Shutdown::Write)?)
    }
}

/// `ipckit::tokio::{Listener, Stream}`.
pub(crate) struct Tokio;

impl Face for Tokio {
    type Listener = ipckit::tokio::Listener;
    type Conn = ipckit::tokio::Stream;
    const SIZES: &[usize] = &[1, 100, 4096];

    fn bind(opts: &ListenerOptions, addr: &str) -> ipckit::Result<Self::Listener> {
        let _in_runtime = rt().enter();
        opts.bind_tokio(addr)
    }
    fn local_addr(listener: &Self::Listener) -> String {
        listener.local_addr().to_string()
    }
    fn accept(listener: &mut Self::Listener) -> ipckit::Result<Self::Conn> {
        rt().block_on(listener.accept())
    }
    fn connect(opts: &ConnectOptions, addr: &str) -> ipckit::Result<Self::Conn> {
        rt().block_on(opts.connect_tokio(addr))
    }
    fn set_read_timeout(conn: &mut Self::Conn, t: Option<Duration>) -> ipckit::Result<()> {
        conn.set_read_timeout(t)
    }
    fn set_write_timeout(conn: &mut Self::Conn, t: Option<Duration>) -> ipckit::Result<()> {
        conn.set_write_timeout(t)
    }
    fn put(conn: &mut Self::Conn, data: &[u8]) -> io::Result<()> {
        rt().block_on(conn.write_all(data))
    }
    fn take(conn: &mut Self::Conn, len: usize) -> io::Result<Option<Vec<u8>>> {
        take_bytes(len, |buf| rt().block_on(conn.read(buf)))
    }
}

impl Deadlines for Tokio {
    fn set_read_deadline(conn: &mut Self::Conn, at: Option<Instant>) {
        conn.set_read_deadline(at);
    }
}

impl Credentials for Tokio {
    fn peer_credentials(conn: &Self::Conn) -> ipckit::Result<PeerCredentials> {
        conn.peer_credentials()
    }
}

impl HalfClose for Tokio {
    fn shutdown_write(conn: &mut Self::Conn) -> io::Result<()> {
        rt().block_on(conn.shutdown())
    }
}

/// `ipckit::{MessageListener, MessageStream}`.
pub(crate) struct BlockingMessages;

impl Face for BlockingMessages {
    type Listener = ipckit::MessageListener;
    type Conn = ipckit::MessageStream;
    const SIZES: &[usize] = &[0, 1, 4096];

    fn bind(opts: &ListenerOptions, addr: &str) -> ipckit::Result<Self::Listener> {
        opts.bind_message(addr)
    }
    fn local_addr(listener: &Self::Listener) -> String {
        listener.local_addr().to_string()
    }
    fn accept(listener: &mut Self::Listener) -> ipckit::Result<Self::Conn> {
        listener.accept()
    }
    fn connect(opts: &ConnectOptions, addr: &str) -> ipckit::Result<Self::Conn> {
        opts.connect_message(addr)
    }
    fn set_read_timeout(conn: &mut Self::Conn, t: Option<Duration>) -> ipckit::Result<()> {
        conn.set_read_timeout(t)
    }
    fn set_write_timeout(conn: &mut Self::Conn, t: Option<Duration>) -> ipckit::Result<()> {
        conn.set_write_timeout(t)
    }
    fn put(conn: &mut Self::Conn, data: &[u8]) -> io::Result<()> {
        Ok(conn.send(data)?)
    }
    fn take(conn: &mut Self::Conn, _len: usize) -> io::Result<Option<Vec<u8>>> {
        Ok(conn.recv()?)
    }
}

impl Deadlines for BlockingMessages {
    fn set_read_deadline(conn: &mut Self::Conn, at: Option<Instant>) {
        conn.set_read_deadline(at);
    }
}

impl Credentials for BlockingMessages {
    fn peer_credentials(conn: &Self::Conn) -> ipckit::Result<PeerCredentials> {
        conn.peer_credentials()
    }
}

impl HalfClose for BlockingMessages {
    fn shutdown_write(conn: &mut Self::Conn) -> io::Result<()> {
        Ok(conn.shutdown(Shutdown::Write)?)
    }
}

/// `ipckit::tokio::{MessageListener, MessageStream}` (no `shutdown`).
pub(crate) struct TokioMessages;

impl Face for TokioMessages {
    type Listener = ipckit::tokio::MessageListener;
    type Conn = ipckit::tokio::MessageStream;
    const SIZES: &[usize] = &[0, 1, 4096];

    fn bind(opts: &ListenerOptions, addr: &str) -> ipckit::Result<Self::Listener> {
        let _in_runtime = rt().enter();
        opts.bind_message_tokio(addr)
    }
    fn local_addr(listener: &Self::Listener) -> String {
        listener.local_addr().to_string()
    }
    fn accept(listener: &mut Self::Listener) -> ipckit::Result<Self::Conn> {
        rt().block_on(listener.accept())
    }
    fn connect(opts: &ConnectOptions, addr: &str) -> ipckit::Result<Self::Conn> {
        rt().block_on(opts.connect_message_tokio(addr))
    }
    fn set_read_timeout(conn: &mut Self::Conn, t: Option<Duration>) -> ipckit::Result<()> {
        conn.set_read_timeout(t)
    }
    fn set_write_timeout(conn: &mut Self::Conn, t: Option<Duration>) -> ipckit::Result<()> {
        conn.set_write_timeout(t)
    }
    fn put(conn: &mut Self::Conn, data: &[u8]) -> io::Result<()> {
        Ok(rt().block_on(conn.send(data))?)
    }
    fn take(conn: &mut Self::Conn, _len: usize) -> io::Result<Option<Vec<u8>>> {
        Ok(rt().block_on(conn.recv())?)
    }
}

impl Deadlines for TokioMessages {
    fn set_read_deadline(conn: &mut Self::Conn, at: Option<Instant>) {
        conn.set_read_deadline(at);
    }
}

impl Credentials for TokioMessages {
    fn peer_credentials(conn: &Self::Conn) -> ipckit::Result<PeerCredentials> {
        conn.peer_credentials()
    }
}

/// `ipckit::shm::{ShmListener, ShmChannel}`: without deadlines, peer
/// credentials or half-close.
pub(crate) struct ShmMessages;

impl Face for ShmMessages {
    type Listener = ipckit::shm::ShmListener;
    type Conn = ipckit::shm::ShmChannel;
    const SIZES: &[usize] = &[0, 1, 4096];

    fn bind(opts: &ListenerOptions, addr: &str) -> ipckit::Result<Self::Listener> {
        opts.bind_shm(addr)
    }
    fn local_addr(listener: &Self::Listener) -> String {
        listener.local_addr().to_string()
    }
    fn accept(listener: &mut Self::Listener) -> ipckit::Result<Self::Conn> {
        listener.accept()
    }
    fn connect(opts: &ConnectOptions, addr: &str) -> ipckit::Result<Self::Conn> {
        opts.connect_shm(addr)
    }
    fn set_read_timeout(conn: &mut Self::Conn, t: Option<Duration>) -> ipckit::Result<()> {
        conn.set_read_timeout(t);
        Ok(())
    }
    fn set_write_timeout(conn: &mut Self::Conn, t: Option<Duration>) -> ipckit::Result<()> {
        conn.set_write_timeout(t);
        Ok(())
    }
    fn put(conn: &mut Self::Conn, data: &[u8]) -> io::Result<()> {
        Ok(conn.send(data)?)
    }
    fn take(conn: &mut Self::Conn, _len: usize) -> io::Result<Option<Vec<u8>>> {
        Ok(conn.recv()?)
    }
}

/// `ipckit::tokio::shm::{ShmListener, ShmChannel}`: as [`ShmMessages`].
pub(crate) struct TokioShmMessages;

impl Face for TokioShmMessages {
    type Listener = ipckit::tokio::shm::ShmListener;
    type Conn = ipckit::tokio::shm::ShmChannel;
    const SIZES: &[usize] = &[0, 1, 4096];

    fn bind(opts: &ListenerOptions, addr: &str) -> ipckit::Result<Self::Listener> {
        opts.bind_shm_tokio(addr)
    }
    fn local_addr(listener: &Self::Listener) -> String {
        listener.local_addr().to_string()
    }
    fn accept(listener: &mut Self::Listener) -> ipckit::Result<Self::Conn> {
        rt().block_on(listener.accept())
    }
    fn connect(opts: &ConnectOptions, addr: &str) -> ipckit::Result<Self::Conn> {
        rt().block_on(opts.connect_shm_tokio(addr))
    }
    fn set_read_timeout(conn: &mut Self::Conn, t: Option<Duration>) -> ipckit::Result<()> {
        conn.set_read_timeout(t);
        Ok(())
    }
    fn set_write_timeout(conn: &mut Self::Conn, t: Option<Duration>) -> ipckit::Result<()> {
        conn.set_write_timeout(t);
        Ok(())
    }
    fn put(conn: &mut Self::Conn, data: &[u8]) -> io::Result<()> {
        Ok(rt().block_on(conn.send(data))?)
    }
    fn take(conn: &mut Self::Conn, _len: usize) -> io::Result<Option<Vec<u8>>> {
        Ok(rt().block_on(conn.recv())?)
    }
}
