//! `listen` and `connect`: relay stdin/stdout over one stream, netcat-style, and
//! the echo server; and the accept loop that both echo servers (bytes and
//! messages) share.

use ipckit::registry::Kind;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use ipckit::stream::{AcceptBackoff, ConnectionLimit};
use ipckit::{Address, ConnectOptions, ErrorKind, Listener, Stream};

use crate::message::next_event;
use crate::{one_line, stdout_error};

const BUF_SIZE: usize = 64 * 1024;

/// `ipckit listen [--echo [--max-connections N]] ADDR`.
pub(crate) fn listen(addr: &Address, echo: bool, max: Option<usize>, verbose: bool) -> Result<()> {
    let listener = crate::serve_at(
        addr,
        Kind::Stream,
        verbose,
        || Ok(Listener::bind(addr)?),
        Listener::local_addr,
    )?;
    if echo {
        return serve_clients(
            || listener.accept(),
            |stream| Ok(format!("closed after {} bytes", echo_bytes(stream)?)),
            max,
            verbose,
        );
    }
    let stream = listener.accept()?;
    // One client only, like `nc -l`: stop listening (on Unix this removes the
    // socket file) so later clients are refused instead of left waiting.
    drop(listener);
    if verbose {
        eprintln!("accepted a client on {}", stream.peer_addr());
    }
    relay(stream, None)
}

/// `ipckit connect [--timeout DUR] [--retry] ADDR`.
pub(crate) fn connect(
    opts: &ConnectOptions,
    addr: &Address,
    quit_after: Option<Duration>,
    verbose: bool,
) -> Result<()> {
    let stream = opts.connect(addr)?;
    if verbose {
        eprintln!("connected to {}", stream.peer_addr());
    }
    relay(stream, quit_after)
}

/// Accepts clients with `accept` until the process is killed, and runs `serve` on
/// each in a thread of its own; `serve` returns what to report (with --verbose)
/// when its client is done. A client's failure ends that client only.
///
/// At most `max` clients (default: [`ConnectionLimit::default_max`]) are served
/// at once; at the limit no client is accepted until one is done, so the next
/// ones wait in the listener's backlog. An accept that fails for lack of
/// resources (out of file descriptors) pauses the loop, 5 ms doubling to 1 s,
/// and the loop goes on; with --verbose the first failure of each burst and
/// its end are reported.
pub(crate) fn serve_clients<C, A, S>(
    mut accept: A,
    serve: S,
    max: Option<usize>,
    verbose: bool,
) -> Result<()>
where
    C: Send + 'static,
    A: FnMut() -> ipckit::Result<C>,
    S: Fn(&C) -> Result<String> + Copy + Send + 'static,
{
    let limit = ConnectionLimit::new(max.unwrap_or_else(ConnectionLimit::default_max))?;
    let mut backoff = AcceptBackoff::new();
    let mut clients = 0u64;
    while let Some(slot) = limit.acquire() {
        let conn = match accept() {
            Ok(conn) => conn,
            // A client that gave up while queued, or a signal: not the server's fault.
            Err(err) if is_transient_accept_error(&err) => {
                if verbose {
                    eprintln!("ipckit: {err} (still listening)");
                }
                continue;
            }
            // Out of descriptors (say): the clients we have go on being served.
            Err(err) => match backoff.on_error(&err) {
                Some(pause) => {
                    if verbose && backoff.failures() == 1 {
                        eprintln!(
                            "ipckit: {err} (still listening: new clients wait until \
                             resources are freed; {} clients being served)",
                            limit.in_use() - 1
                        );
                    }
                    thread::sleep(pause);
                    continue;
                }
                None => return Err(err.into()),
            },
        };
        let failed = backoff.on_success();
        if verbose && failed > 0 {
            eprintln!("ipckit: accepting again after {failed} failed accepts");
        }
        clients += 1;
        let client = clients;
        if verbose {
            eprintln!("client {client}: connected");
            if limit.in_use() == limit.max() {
                eprintln!(
                    "ipckit: {} clients, the limit: new clients wait until one is done",
                    limit.max()
                );
            }
        }
        let spawned = thread::Builder::new()
            .name(format!("client-{client}"))
            .spawn(move || {
                // Held until this client is done.
                let _slot = slot;
                let result = serve(&conn);
                if verbose {
                    match result {
                        Ok(summary) => eprintln!("client {client}: {summary}"),
                        Err(err) => eprintln!("client {client}: {}", one_line(&err)),
                    }
                }
            });
        if let Err(err) = spawned {
            // Out of threads: this client is dropped (closed), the server goes on.
            eprintln!("ipckit: client {client}: cannot start a thread: {err}");
        }
    }
    Ok(())
}

fn is_transient_accept_error(err: &ipckit::Error) -> bool {
    err.io_error().is_some_and(|e| {
        matches!(
            e.kind(),
            io::ErrorKind::Interrupted
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
        )
    })
}

/// Sends back every byte until the client's end of stream; returns the count.
fn echo_bytes(mut stream: &Stream) -> io::Result<u64> {
    let mut buf = vec![0; BUF_SIZE];
    let mut total = 0;
    loop {
        let n = match read_stream(stream, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(&buf[..n])?;
        total += n as u64;
    }
    // Tell the client everything has been sent; on Windows pipes, which cannot
    // half-close, dropping the stream does it.
    let _ = stream.shutdown(Shutdown::Write);
    Ok(total)
}

/// Reads from a stream; a peer that closed its end is the end of the stream, even
/// where the OS reports it as a broken pipe (Windows pipes).
fn read_stream(mut stream: &Stream, buf: &mut [u8]) -> io::Result<usize> {
    match stream.read(buf) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        other => other,
    }
}

/// What ended one direction of the relay.
enum Done {
    /// stdin reached its end (or the peer stopped taking bytes).
    Stdin(Result<()>),
    /// The peer closed the stream (or stdout was closed).
    Stream(Result<()>),
}

/// Copies stdin to the stream and the stream to stdout, concurrently, until the
/// peer closes the stream.
fn relay(stream: Stream, quit_after: Option<Duration>) -> Result<()> {
    let peer = stream.peer_addr().clone();
    let writer = stream.try_clone()?;
    let (tx, rx) = mpsc::channel();
    let to_peer = tx.clone();
    // Detached: it may be blocked reading stdin when the peer closes, and then the
    // process simply exits around it.
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let _ = to_peer.send(Done::Stdin(stdin_to_stream(&writer)));
        })
        .context("start the stdin thread")?;
    thread::Builder::new()
        .name("stdout".into())
        .spawn(move || {
            let _ = tx.send(Done::Stream(stream_to_stdout(&stream)));
        })
        .context("start the stdout thread")?;
    let mut stdin_done = false;
    loop {
        let Some(event) = next_event(&rx, stdin_done, quit_after) else {
            return Ok(());
        };
        match event {
            Ok(Done::Stdin(Ok(()))) => stdin_done = true,
            Ok(Done::Stdin(Err(err)) | Done::Stream(Err(err))) => return Err(err),
            Ok(Done::Stream(Ok(()))) => return Ok(()),
            Err(mpsc::RecvError) => anyhow::bail!("the relay to {peer} stopped unexpectedly"),
        }
    }
}

fn stdin_to_stream(mut stream: &Stream) -> Result<()> {
    let peer = stream.peer_addr();
    let mut stdin = io::stdin().lock();
    let mut buf = vec![0; BUF_SIZE];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("read from stdin"),
        };
        match stream.write_all(&buf[..n]) {
            Ok(()) => {}
            // The peer is gone or stopped reading: nothing more to send. Whether
            // that ends the run is up to the other direction (it sees the close).
            Err(e) if is_peer_gone(&e) => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("write to {peer}")),
        }
    }
    match stream.shutdown(Shutdown::Write) {
        Ok(()) => Ok(()),
        // Windows named pipes have no half-close: keep reading until the peer closes.
        Err(e) if e.kind() == ErrorKind::Unsupported => Ok(()),
        // The peer closed first: the other direction is ending too.
        Err(e) if e.kind() == ErrorKind::Disconnected => Ok(()),
        Err(e)
            if e.io_error()
                .is_some_and(|e| e.kind() == io::ErrorKind::NotConnected) =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn is_peer_gone(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}

fn stream_to_stdout(stream: &Stream) -> Result<()> {
    let peer = stream.peer_addr();
    let mut stdout = io::stdout().lock();
    let mut buf = vec![0; BUF_SIZE];
    loop {
        let n = match read_stream(stream, &mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("read from {peer}")),
        };
        // Flush each chunk: an interactive reader sees bytes as they arrive.
        stdout
            .write_all(&buf[..n])
            .and_then(|()| stdout.flush())
            .map_err(stdout_error)?;
    }
}
