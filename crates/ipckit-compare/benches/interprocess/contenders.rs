//! The contenders (ipckit, interprocess and, on Unix, std), how each connects
//! a pair over its local socket, and the loops both measurements run.

use std::io::{self, Read, Write};
use std::thread::{self, JoinHandle};

use interprocess::local_socket::prelude::*;
use interprocess::local_socket::{ListenerOptions, Stream as LocalStream};

/// The round trip's message size.
pub(crate) const MSG: usize = 64;
/// The throughput test's write size.
pub(crate) const CHUNK: usize = 64 * 1024;

/// What is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// MSG bytes there, the same MSG bytes back.
    RoundTrip,
    /// CHUNK-byte writes one way, one byte of acknowledgement per batch.
    Throughput,
}

/// Who is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Contender {
    Ipckit,
    Interprocess,
    #[cfg(unix)]
    Std,
}

impl Contender {
    /// Every contender on this OS, ipckit first.
    pub(crate) fn all() -> Vec<Contender> {
        vec![
            Contender::Ipckit,
            Contender::Interprocess,
            #[cfg(unix)]
            Contender::Std,
        ]
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Contender::Ipckit => "ipckit",
            Contender::Interprocess => "interprocess",
            #[cfg(unix)]
            Contender::Std => "std",
        }
    }

    /// A connected client whose server end runs `kind`'s server loop on a
    /// thread of its own (which first runs `on_server_thread`, e.g. to pin
    /// itself to a core); the thread ends when the client is dropped.
    pub(crate) fn connect(
        self,
        kind: Kind,
        tag: &str,
        on_server_thread: fn(),
    ) -> (Box<dyn Duplex>, JoinHandle<()>) {
        fn start<S: Duplex + 'static>(
            (c, s): (S, S),
            kind: Kind,
            on_server_thread: fn(),
        ) -> (Box<dyn Duplex>, JoinHandle<()>) {
            let server = thread::spawn(move || {
                on_server_thread();
                match kind {
                    Kind::RoundTrip => echo(s),
                    Kind::Throughput => sink(s),
                }
            });
            (Box::new(c), server)
        }
        match self {
            Contender::Ipckit => start(ipckit_pair(tag), kind, on_server_thread),
            Contender::Interprocess => start(interprocess_pair(tag), kind, on_server_thread),
            #[cfg(unix)]
            Contender::Std => start(std_pair(tag), kind, on_server_thread),
        }
    }
}

/// A connected local socket of any contender.
pub(crate) trait Duplex: Read + Write + Send {}
impl<T: Read + Write + Send> Duplex for T {}

fn tag(what: &str) -> String {
    format!("ipckit-compare-{what}-{}", std::process::id())
}

/// Connects a client and accepts it on another thread (a Windows pipe client
/// may need the server to be accepting), returning (client, server).
fn connect_pair<C, S>(
    connect: impl FnOnce() -> io::Result<C>,
    accept: impl FnOnce() -> io::Result<S> + Send + 'static,
) -> (C, S)
where
    S: Send + 'static,
{
    let server = thread::spawn(accept);
    let client = connect().expect("connect");
    (
        client,
        server.join().expect("accept thread").expect("accept"),
    )
}

pub(crate) fn ipckit_pair(what: &str) -> (ipckit::Stream, ipckit::Stream) {
    let addr = if cfg!(unix) {
        format!(
            "unix:{}",
            std::env::temp_dir()
                .join(format!("{}.sock", tag(what)))
                .display()
        )
    } else {
        format!("pipe:{}", tag(what))
    };
    let listener = ipckit::Listener::bind(addr.as_str()).expect("bind ipckit");
    let connect_to = addr.clone();
    connect_pair(
        move || ipckit::Stream::connect(connect_to.as_str()).map_err(io::Error::from),
        move || {
            let s = listener.accept().map_err(io::Error::from);
            // The listener goes here: on Unix its socket file is removed.
            drop(listener);
            s
        },
    )
}

pub(crate) fn interprocess_pair(what: &str) -> (LocalStream, LocalStream) {
    #[cfg(unix)]
    let (name, path) = {
        use interprocess::local_socket::GenericFilePath;
        let path = std::env::temp_dir().join(format!("{}-ip.sock", tag(what)));
        let _ = std::fs::remove_file(&path);
        (
            path.clone().to_fs_name::<GenericFilePath>().expect("name"),
            Some(path),
        )
    };
    #[cfg(windows)]
    let (name, path) = {
        use interprocess::local_socket::GenericNamespaced;
        (
            tag(what).to_ns_name::<GenericNamespaced>().expect("name"),
            None::<std::path::PathBuf>,
        )
    };
    let listener = ListenerOptions::new()
        .name(name.clone())
        .create_sync()
        .expect("bind interprocess");
    let name = name.into_owned();
    let pair = connect_pair(
        move || LocalStream::connect(name),
        move || {
            let s = listener.accept();
            drop(listener);
            s
        },
    );
    if let Some(path) = path {
        let _ = std::fs::remove_file(path);
    }
    pair
}

#[cfg(unix)]
pub(crate) fn std_pair(
    what: &str,
) -> (
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
) {
    let path = std::env::temp_dir().join(format!("{}-std.sock", tag(what)));
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind std");
    let connect_to = path.clone();
    let pair = connect_pair(
        move || std::os::unix::net::UnixStream::connect(connect_to),
        move || listener.accept().map(|(s, _)| s),
    );
    let _ = std::fs::remove_file(path);
    pair
}

/// Echoes MSG-byte messages until the client closes.
pub(crate) fn echo<S: Read + Write>(mut s: S) {
    let mut buf = [0u8; MSG];
    while s.read_exact(&mut buf).is_ok() {
        if s.write_all(&buf).is_err() {
            return;
        }
    }
}

/// Reads a count N, then N chunks, then acknowledges with one byte; until the
/// client closes.
pub(crate) fn sink<S: Read + Write>(mut s: S) {
    let mut count = [0u8; 8];
    let mut chunk = vec![0u8; CHUNK];
    while s.read_exact(&mut count).is_ok() {
        for _ in 0..u64::from_le_bytes(count) {
            if s.read_exact(&mut chunk).is_err() {
                return;
            }
        }
        if s.write_all(&[1]).is_err() {
            return;
        }
    }
}

/// `n` round trips of MSG bytes through an [`echo`] server; checks the last
/// echo.
pub(crate) fn round_trips<S: Read + Write + ?Sized>(c: &mut S, n: u64) {
    let msg = [0x5au8; MSG];
    let mut back = [0u8; MSG];
    for _ in 0..n {
        c.write_all(&msg).expect("write");
        c.read_exact(&mut back).expect("read");
    }
    assert_eq!(back, msg, "the echo differs");
}

/// One batch of `n` CHUNK-byte writes to a [`sink`] server, until its
/// acknowledgement.
pub(crate) fn batch<S: Read + Write + ?Sized>(c: &mut S, chunk: &[u8], n: u64) {
    c.write_all(&n.to_le_bytes()).expect("write count");
    for _ in 0..n {
        c.write_all(chunk).expect("write");
    }
    let mut ack = [0u8; 1];
    c.read_exact(&mut ack).expect("read ack");
}
