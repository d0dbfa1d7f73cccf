//! `listen --message` and `connect --message` (and `listen`/`connect` on
//! `shm:NAME`, always message channels): one line of stdin per message, one
//! line of stdout per message; and the message echo server.
//!
//! A message channel cannot be half-closed, and an empty message is data, so the
//! end of stdin cannot be passed on to the peer. When stdin ends the relay stops
//! sending and goes on printing until the peer closes the channel, or, with
//! `--count N`, until it has printed N messages.

use ipckit::registry::Kind;
use std::io::{self, BufRead, Write};
use std::ops::ControlFlow;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ipckit::{Address, ConnectOptions, ErrorKind, MessageListener, MessageStream};

use crate::{serve, stdout_error};

/// `ipckit listen --message [--echo [--max-connections N] | --count N] ADDR`.
pub(crate) fn listen(
    addr: &Address,
    echo: bool,
    count: Option<u64>,
    max: Option<usize>,
    verbose: bool,
) -> Result<()> {
    let kind = match addr {
        Address::Shm(_) => Kind::Shm,
        _ => Kind::Message,
    };
    // The tokio echo server serves message sockets, pipes and TCP; a
    // shared-memory listener (no tokio face yet) is served on threads.
    if echo && !matches!(addr, Address::Shm(_)) {
        return echo_server(addr, max, verbose);
    }
    let listener = crate::serve_at(
        addr,
        kind,
        verbose,
        || Ok(MessageListener::bind(addr)?),
        MessageListener::local_addr,
    )?;
    if echo {
        return crate::threaded::serve_clients(|| listener.accept(), echo_blocking, max, verbose);
    }
    let channel = listener.accept()?;
    // One client only, as for byte streams: later clients are refused.
    drop(listener);
    if verbose {
        eprintln!("accepted a client on {}", channel.peer_addr());
    }
    relay(&channel, count, None)
}

/// `ipckit connect --message [--timeout DUR] [--retry] [--count N] ADDR`.
pub(crate) fn connect(
    opts: &ConnectOptions,
    addr: &Address,
    count: Option<u64>,
    quit_after: Option<Duration>,
    verbose: bool,
) -> Result<()> {
    let channel = opts.connect_message(addr)?;
    if verbose {
        eprintln!("connected to {}", channel.peer_addr());
    }
    relay(&channel, count, quit_after)
}

/// `ipckit listen --message --echo [--max-connections N] ADDR`: every client
/// on a task of one small runtime ([`crate::serve`]).
fn echo_server(addr: &Address, max: Option<usize>, verbose: bool) -> Result<()> {
    serve::run::<ipckit::tokio::MessageListener, _, _>(addr, max, verbose, echo_messages)
}

/// Sends every message back whole until the client closes the channel (a
/// client served on a thread of its own).
fn echo_blocking(channel: &MessageStream) -> Result<String> {
    let mut msg = Vec::new();
    let mut messages = 0u64;
    while channel.recv_into(&mut msg)? {
        channel.send(&msg)?;
        messages += 1;
    }
    Ok(format!("closed after {messages} messages"))
}

/// Sends every message back whole until the client closes the channel.
async fn echo_messages(channel: ipckit::tokio::MessageStream) -> Result<String> {
    let mut messages = 0u64;
    while let Some(msg) = channel.recv().await? {
        channel.send(&msg).await?;
        messages += 1;
    }
    Ok(format!("closed after {messages} messages"))
}

/// What one side of the relay reports when it is done.
enum Event {
    /// All of stdin was sent (or the peer stopped taking messages).
    Stdin(Result<()>),
    /// The receiving side stopped.
    Stdout(Result<Received>),
}

/// Why the receiving side stopped.
enum Received {
    /// It printed `--count` messages.
    Count,
    /// The peer closed the channel after this many messages were printed.
    Closed(u64),
}

/// Sends stdin line by line and prints what arrives, concurrently, on a message
/// stream (one clone of it sends, another receives).
fn relay(channel: &MessageStream, count: Option<u64>, quit_after: Option<Duration>) -> Result<()> {
    let sender = channel.try_clone()?;
    let receiver = channel.try_clone()?;
    relay_with(
        channel.peer_addr(),
        move |msg| sender.send(msg),
        move |buf| receiver.recv_into(buf),
        count,
        quit_after,
    )
}

/// The relay of any message channel: `send` on one thread, `recv` (`false` at
/// the end) on another. Ends when the peer closes the channel (an error if
/// that comes before `count` messages), or once stdin has ended and `count`
/// messages were printed, or `quit_after` after the end of stdin (`connect -q`);
/// a failure on either side ends it at once.
pub(crate) fn relay_with<SendError: Failure + PeerGone, RecvError: Failure>(
    peer: &Address,
    mut send: impl FnMut(&[u8]) -> Result<(), SendError> + Send + 'static,
    recv: impl FnMut(&mut Vec<u8>) -> Result<bool, RecvError> + Send + 'static,
    count: Option<u64>,
    quit_after: Option<Duration>,
) -> Result<()> {
    let (tx, rx) = mpsc::channel();
    let to_main = tx.clone();
    // Detached: it may be blocked reading stdin when the relay ends, and then the
    // process simply exits around it.
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let _ = to_main.send(Event::Stdin(stdin_to_channel(&mut send)));
        })
        .context("start the stdin thread")?;
    thread::Builder::new()
        .name("stdout".into())
        .spawn(move || {
            let _ = tx.send(Event::Stdout(channel_to_stdout(recv, count)));
        })
        .context("start the stdout thread")?;

    let (mut stdin_done, mut count_reached) = (false, false);
    loop {
        let Some(event) = next_event(&rx, stdin_done, quit_after) else {
            return Ok(());
        };
        match event {
            Ok(Event::Stdin(Ok(()))) => stdin_done = true,
            Ok(Event::Stdout(Ok(Received::Count))) => count_reached = true,
            Ok(Event::Stdin(Err(err)) | Event::Stdout(Err(err))) => return Err(err),
            Ok(Event::Stdout(Ok(Received::Closed(printed)))) => match count {
                Some(wanted) if printed < wanted => {
                    bail!(
                        "the peer on {peer} closed the channel after {printed} of {wanted} messages"
                    )
                }
                _ => return Ok(()),
            },
            Err(mpsc::RecvError) => bail!("the relay to {peer} stopped unexpectedly"),
        }
        if stdin_done && count_reached {
            return Ok(());
        }
    }
}

/// Whether a write failed because the peer is gone (its end closed).
pub(crate) fn is_peer_gone(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}

/// The next event of a relay; `None` once `quit_after` has passed since the
/// end of stdin (`connect -q DUR`, as `nc -q`): the relay then ends, exit 0.
pub(crate) fn next_event<T>(
    rx: &mpsc::Receiver<T>,
    stdin_done: bool,
    quit_after: Option<Duration>,
) -> Option<Result<T, mpsc::RecvError>> {
    match quit_after.filter(|_| stdin_done) {
        None => Some(rx.recv()),
        Some(wait) => match rx.recv_timeout(wait) {
            Ok(event) => Some(Ok(event)),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Err(mpsc::RecvError)),
        },
    }
}

/// Sends each line of stdin as one message (see [`each_stdin_line`]) until stdin
/// ends or the peer goes.
fn stdin_to_channel<E: Failure + PeerGone>(
    send: &mut impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<()> {
    each_stdin_line(|msg| match send(msg) {
        Ok(()) => Ok(ControlFlow::Continue(())),
        // The peer is gone: nothing more to send. The receiver sees the close.
        Err(e) if e.peer_gone() => Ok(ControlFlow::Break(())),
        Err(e) => Err(e.into()),
    })
}

/// An error a relay's channel may fail with.
pub(crate) trait Failure: std::error::Error + Send + Sync + 'static {}
impl<E: std::error::Error + Send + Sync + 'static> Failure for E {}

/// Whether a send failed only because the peer is gone: then there is nothing
/// more to send, and the receiving side sees the close.
pub(crate) trait PeerGone {
    fn peer_gone(&self) -> bool;
}

impl PeerGone for ipckit::Error {
    fn peer_gone(&self) -> bool {
        self.kind() == ErrorKind::Disconnected
    }
}

impl PeerGone for io::Error {
    fn peer_gone(&self) -> bool {
        is_peer_gone(self)
    }
}

/// Calls `f` with each line of stdin without its `\n` or `\r\n`, until stdin ends
/// or `f` breaks. A last line without a line ending counts too; an empty stdin
/// makes no call.
pub(crate) fn each_stdin_line(mut f: impl FnMut(&[u8]) -> Result<ControlFlow<()>>) -> Result<()> {
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("read from stdin"),
        }
        if f(strip_line_ending(&line))?.is_break() {
            return Ok(());
        }
    }
}

fn strip_line_ending(line: &[u8]) -> &[u8] {
    match line.strip_suffix(b"\n") {
        Some(line) => line.strip_suffix(b"\r").unwrap_or(line),
        None => line,
    }
}

/// Prints each message, bytes unchanged, followed by `\n`, until `count` messages
/// were printed or the peer closes the channel.
fn channel_to_stdout<E: Failure>(
    mut recv: impl FnMut(&mut Vec<u8>) -> Result<bool, E>,
    count: Option<u64>,
) -> Result<Received> {
    let mut stdout = io::stdout().lock();
    let mut msg = Vec::new();
    let mut printed = 0u64;
    loop {
        if count.is_some_and(|wanted| printed >= wanted) {
            return Ok(Received::Count);
        }
        if !recv(&mut msg)? {
            return Ok(Received::Closed(printed));
        }
        print_message(&mut stdout, &msg)?;
        printed += 1;
    }
}

/// Writes `msg` and a `\n` to stdout, and flushes, so that an interactive reader
/// sees each message as it arrives.
pub(crate) fn print_message(stdout: &mut impl Write, msg: &[u8]) -> Result<()> {
    stdout
        .write_all(msg)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush())
        .map_err(stdout_error)
}

#[cfg(test)]
mod tests {
    use super::strip_line_ending;

    #[test]
    fn a_line_loses_its_line_ending_only() {
        assert_eq!(strip_line_ending(b"abc\n"), b"abc");
        assert_eq!(strip_line_ending(b"abc\r\n"), b"abc");
        assert_eq!(strip_line_ending(b"\n"), b"");
        assert_eq!(strip_line_ending(b"\r\n"), b"");
        // The last line of stdin may have no line ending.
        assert_eq!(strip_line_ending(b"abc"), b"abc");
        // A \r is part of the line ending only before the \n.
        assert_eq!(strip_line_ending(b"a\rb\r\r\n"), b"a\rb\r");
        assert_eq!(strip_line_ending(b"abc\r"), b"abc\r");
    }
}
