//! `ipckit connect -q DUR` (as `nc -q`): after the end of stdin, wait at most
//! DUR for the peer, then exit 0. Against a server that keeps the connection
//! open after the end of the client's input (what a Windows named-pipe server
//! does, which is never told: pipes have no half-close; and any message
//! channel), `connect` without `-q` waits for ever; with it, it leaves on time.
//! The servers here are the library's, holding the accepted connection open.

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

mod common;

use std::io::{Read, Write};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Ipckit, limit};
use ipckit::{Listener, MessageListener};
use util::unique_name;

/// Starts a server on a fresh portable name that accepts one client, sends
/// the first thing it receives to the returned channel, and then holds the
/// connection open (without reading) until the test ends.
fn holding_server(message: bool) -> (String, mpsc::Receiver<Vec<u8>>) {
    let addr = format!("pipe:{}", unique_name("cli-quit"));
    let (tx, rx) = mpsc::channel();
    if message {
        let listener = MessageListener::bind(&addr).expect("bind the message server");
        thread::spawn(move || {
            let channel = listener.accept().expect("accept");
            // Closing the listener removes its socket file (Unix) now, not never:
            // this thread is still asleep when the test program exits.
            drop(listener);
            let _ = tx.send(channel.recv().expect("receive").unwrap_or_default());
            thread::sleep(Duration::from_secs(600));
            drop(channel);
        });
    } else {
        let listener = Listener::bind(&addr).expect("bind the stream server");
        thread::spawn(move || {
            let mut stream = listener.accept().expect("accept");
            drop(listener);
            let mut buf = [0u8; 64];
            let n = stream.read(&mut buf).expect("read");
            let _ = tx.send(buf[..n].to_vec());
            // Neither reads on (so it never sees the half-close) nor closes.
            thread::sleep(Duration::from_secs(600));
            drop(stream);
        });
    }
    (addr, rx)
}

/// Runs `ipckit connect ARGS ADDR` with stdin `hello\n` then closed; returns
/// the process (still running or not) and when stdin was closed.
fn connect(args: &[&str], addr: &str) -> (Ipckit, Instant) {
    let mut argv = vec!["connect"];
    argv.extend_from_slice(args);
    argv.push(addr);
    let mut client = Ipckit::start(&argv);
    let mut stdin = client.stdin.take().expect("stdin piped");
    stdin.write_all(b"hello\n").expect("write stdin");
    drop(stdin);
    (client, Instant::now())
}

fn check_quits_after(message: bool) {
    let mode: &[&str] = if message { &["--message"] } else { &[] };
    let quit = Duration::from_millis(400);

    // Without -q the client waits for the server, which never closes.
    let (addr, got) = holding_server(message);
    let (mut waiting, _) = connect(mode, &addr);
    let first = got.recv_timeout(limit()).expect("the server got the input");
    assert!(first.starts_with(b"hello"), "{first:?}");
    // Four times the -q below: a client that left by then would have left
    // with -q too; this one must still be there.
    thread::sleep(quit * 4);
    assert!(
        waiting.is_running(),
        "connect without -q left a server that holds the connection"
    );
    drop(waiting);

    // With -q it leaves DUR after the end of stdin, exit 0.
    let (addr, got) = holding_server(message);
    let mut args = mode.to_vec();
    args.extend_from_slice(&["-q", "400ms"]);
    let (mut client, closed) = connect(&args, &addr);
    let first = got.recv_timeout(limit()).expect("the server got the input");
    assert!(first.starts_with(b"hello"), "{first:?}");
    let status = client.wait(limit());
    let took = closed.elapsed();
    assert!(
        status.success(),
        "connect -q: {status}: {}",
        client.stderr_to_end()
    );
    assert!(
        took >= quit,
        "left {took:?} after the end of stdin, before -q 400ms"
    );
}

#[test]
fn connect_q_leaves_a_stream_server_that_holds_the_connection() {
    util::watchdog(limit() * 3, || check_quits_after(false));
}

#[test]
fn connect_q_leaves_a_message_server_that_holds_the_channel() {
    util::watchdog(limit() * 3, || check_quits_after(true));
}

#[test]
fn connect_q_0_leaves_at_the_end_of_stdin() {
    util::watchdog(limit() * 3, || {
        let (addr, got) = holding_server(true);
        let (mut client, _) = connect(&["--message", "-q", "0"], &addr);
        let status = client.wait(limit());
        assert!(
            status.success(),
            "connect -q 0: {status}: {}",
            client.stderr_to_end()
        );
        let first = got.recv_timeout(limit()).expect("the server got the input");
        assert_eq!(first, b"hello");
    });
}
