//! `listen` and `connect`: relay stdin/stdout over one stream, netcat-style, and
//! the byte echo server.

use ipckit::registry::Kind;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context as TaskContext, Poll};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use ipckit::{Address, ConnectOptions, ErrorKind, Listener, Stream};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

use crate::message::{is_peer_gone, next_event};
use crate::{serve, stdout_error};

const BUF_SIZE: usize = 64 * 1024;

/// `ipckit listen [--echo [--max-connections N]] ADDR`.
pub(crate) fn listen(addr: &Address, echo: bool, max: Option<usize>, verbose: bool) -> Result<()> {
    if echo {
        return echo_server(addr, max, verbose);
    }
    let listener = crate::serve_at(
        addr,
        Kind::Stream,
        verbose,
        || Ok(Listener::bind(addr)?),
        Listener::local_addr,
    )?;
    let stream = listener.accept()?;
    // One client only, like `nc -l`: stop listening (on Unix this removes the
    // socket file) so later clients are refused instead of left waiting.
    drop(listener);
    if verbose {
        eprintln!("accepted a client on {}", stream.peer_addr());
    }
    relay(stream, None)
}

/// `ipckit listen --echo [--max-connections N] ADDR`: every client on a task of
/// one small runtime ([`crate::serve`]).
fn echo_server(addr: &Address, max: Option<usize>, verbose: bool) -> Result<()> {
    serve::run::<ipckit::tokio::Listener, _, _>(addr, max, verbose, |stream| async move {
        Ok(format!("closed after {} bytes", echo_bytes(stream).await?))
    })
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

/// Sends back every byte until the client's end of stream; returns the count.
///
/// While the client is quiet no buffer is held: one is taken when a read
/// finds bytes and given back when the next read would wait, so 10,000 idle
/// clients do not hold 10,000 buffers.
async fn echo_bytes(mut stream: ipckit::tokio::Stream) -> io::Result<u64> {
    let mut buf = Vec::new();
    let mut total = 0;
    loop {
        let n = match poll_fn(|cx| read_some(&mut stream, &mut buf, cx)).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A peer that closed its end is the end of the stream, even where
            // the OS reports it as a broken pipe (Windows pipes).
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(e),
        };
        stream.write_all(&buf[..n]).await?;
        total += n as u64;
    }
    // Tell the client everything has been sent; on Windows pipes, which cannot
    // half-close, dropping the stream does it.
    let _ = stream.shutdown().await;
    Ok(total)
}

/// One poll of a read into `buf`, which is filled in only when the stream has
/// bytes and emptied when the read must wait.
fn read_some(
    stream: &mut ipckit::tokio::Stream,
    buf: &mut Vec<u8>,
    cx: &mut TaskContext<'_>,
) -> Poll<io::Result<usize>> {
    if buf.is_empty() {
        buf.resize(BUF_SIZE, 0);
    }
    let mut read = ReadBuf::new(buf);
    match Pin::new(stream).poll_read(cx, &mut read) {
        Poll::Ready(result) => Poll::Ready(result.map(|()| read.filled().len())),
        Poll::Pending => {
            *buf = Vec::new();
            Poll::Pending
        }
    }
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
