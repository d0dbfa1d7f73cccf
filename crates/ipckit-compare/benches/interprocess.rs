//! ipckit's stream against the `interprocess` crate's local sockets (and, on
//! Unix, a plain `std::os::unix::net` loop), in the same run, with criterion.
//!
//! `cargo bench -p ipckit-compare --bench interprocess` (add `-- --quick` for
//! a short run).
//!
//! Every contender carries the same bytes through the same loop between two
//! threads over its local socket: on Unix a socket file in the temp directory
//! (ipckit `unix:/path`, interprocess `GenericFilePath`, std `UnixStream`), on
//! Windows a named pipe (ipckit `pipe:NAME`, interprocess `GenericNamespaced`).
//!
//! - `round_trip_64B`: write 64 bytes, read the 64-byte echo.
//! - `throughput_64KiB`: write 64 KiB chunks one way; the other side reads
//!   them all and acknowledges with one byte, which ends the timed batch.
//!
//! Each is run in three passes, the order rotated (see [`PASSES`]).

use std::io::{self, Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use interprocess::local_socket::prelude::*;
use interprocess::local_socket::{ListenerOptions, Stream as LocalStream};

const MSG: usize = 64;
const CHUNK: usize = 64 * 1024;

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

fn ipckit_pair(what: &str) -> (ipckit::Stream, ipckit::Stream) {
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

fn interprocess_pair(what: &str) -> (LocalStream, LocalStream) {
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
fn std_pair(
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
fn echo<S: Read + Write>(mut s: S) {
    let mut buf = [0u8; MSG];
    while s.read_exact(&mut buf).is_ok() {
        if s.write_all(&buf).is_err() {
            return;
        }
    }
}

/// Reads a count N, then N chunks, then acknowledges with one byte; until the
/// client closes.
fn sink<S: Read + Write>(mut s: S) {
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

fn round_trips<S>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, (mut c, s): (S, S))
where
    S: Read + Write + Send + 'static,
{
    let server = thread::spawn(move || echo(s));
    let msg = [0x5au8; MSG];
    let mut back = [0u8; MSG];
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                c.write_all(&msg).expect("write");
                c.read_exact(&mut back).expect("read");
            }
            started.elapsed()
        });
    });
    assert_eq!(back, msg, "{name}: the echo differs");
    drop(c);
    server.join().expect("echo thread");
}

fn throughput<S>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, (mut c, s): (S, S))
where
    S: Read + Write + Send + 'static,
{
    let server = thread::spawn(move || sink(s));
    let chunk = vec![0xa5u8; CHUNK];
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            c.write_all(&iters.to_le_bytes()).expect("write count");
            for _ in 0..iters {
                c.write_all(&chunk).expect("write");
            }
            let mut ack = [0u8; 1];
            c.read_exact(&mut ack).expect("read ack");
            started.elapsed()
        });
    });
    drop(c);
    server.join().expect("sink thread");
}

/// Each contender is measured in each of `PASSES` passes, the order rotated
/// from pass to pass (A B C, B C A, C A B), so that neither a burst of load
/// from the rest of the machine nor a place in the order falls on one
/// contender alone; compare the passes' medians (`ipckit/1`,
/// `interprocess/1`, ...), or their median.
const PASSES: usize = 3;

#[derive(Clone, Copy)]
enum Kind {
    RoundTrip,
    Throughput,
}

#[derive(Clone, Copy)]
enum Contender {
    Ipckit,
    Interprocess,
    #[cfg(unix)]
    Std,
}

/// Measures every contender once, in pass `pass`'s order.
fn measure_pass(group: &mut BenchmarkGroup<'_, WallTime>, pass: usize, kind: Kind) {
    let mut all = vec![Contender::Ipckit, Contender::Interprocess];
    #[cfg(unix)]
    all.push(Contender::Std);
    let n = all.len();
    all.rotate_left((pass - 1) % n);
    for who in all {
        let (name, tag) = match who {
            Contender::Ipckit => ("ipckit", "ipckit"),
            Contender::Interprocess => ("interprocess", "ip"),
            #[cfg(unix)]
            Contender::Std => ("std", "std"),
        };
        let id = format!("{name}/{pass}");
        let tag = format!("{tag}-{pass}");
        match (who, kind) {
            (Contender::Ipckit, Kind::RoundTrip) => round_trips(group, &id, ipckit_pair(&tag)),
            (Contender::Ipckit, Kind::Throughput) => throughput(group, &id, ipckit_pair(&tag)),
            (Contender::Interprocess, Kind::RoundTrip) => {
                round_trips(group, &id, interprocess_pair(&tag));
            }
            (Contender::Interprocess, Kind::Throughput) => {
                throughput(group, &id, interprocess_pair(&tag));
            }
            #[cfg(unix)]
            (Contender::Std, Kind::RoundTrip) => round_trips(group, &id, std_pair(&tag)),
            #[cfg(unix)]
            (Contender::Std, Kind::Throughput) => throughput(group, &id, std_pair(&tag)),
        }
    }
}

fn compare(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip_64B");
    group.throughput(Throughput::Elements(1));
    for pass in 1..=PASSES {
        measure_pass(&mut group, pass, Kind::RoundTrip);
    }
    group.finish();

    let mut group = c.benchmark_group("throughput_64KiB");
    group.throughput(Throughput::Bytes(CHUNK as u64));
    for pass in 1..=PASSES {
        measure_pass(&mut group, pass, Kind::Throughput);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = compare
}
criterion_main!(benches);
