//! `listen` and `connect` relaying bytes: the echo server, netcat-style
//! exchanges, `--retry`, and Python's socket module as a foreign peer (Unix).

#[cfg(unix)]
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;
use crate::util::{self, unique_name, watchdog};

/// `listen --echo` + `connect` with piped stdin: the bytes come back unchanged.
fn echo_round_trip(addr: &str) {
    let kids = Children::new();
    kids.clean_up(addr);
    let mut server = kids.ipckit(&["-v", "listen", "--echo", addr]);
    let addr = watchdog(limit(), move || server.listening_on());
    let mut client = kids.ipckit(&["connect", &addr]);
    let data = payload(300 * 1024);
    let check = half_close(&addr);
    watchdog(limit(), move || {
        let feeder = client.feed_stdin(data.clone());
        if check {
            // stdin's end shuts down the write half; the server's close ends the run.
            let back = client.stdout_to_end();
            assert!(
                back == data,
                "got {} bytes back, sent {}",
                back.len(),
                data.len()
            );
            let status = client.wait(limit());
            assert!(
                status.success(),
                "connect: {status}: {}",
                client.stderr_to_end()
            );
        } else {
            // A Windows pipe cannot half-close: the echo is checked, then we hang up.
            let back = client.stdout_exact(data.len());
            assert!(back == data, "the echo differs");
            client.kill();
        }
        feeder.join().expect("feeder");
    });
}

#[test]
fn echo_round_trip_over_a_portable_name() {
    echo_round_trip(&format!("pipe:{}", unique_name("cli-echo")));
}

#[test]
fn echo_round_trip_over_tcp_with_an_os_chosen_port() {
    echo_round_trip("tcp:127.0.0.1:0");
}

#[test]
fn echo_serves_clients_concurrently() {
    let addr = format!("pipe:{}", unique_name("cli-many"));
    let kids = Children::new();
    kids.clean_up(&addr);
    let mut server = kids.ipckit(&["-v", "listen", "--echo", &addr]);
    let addr = watchdog(limit(), move || server.listening_on());
    let clients: Vec<Proc> = (0..3).map(|_| kids.ipckit(&["connect", &addr])).collect();
    let check = half_close(&addr);
    watchdog(limit(), move || {
        let mut clients = clients;
        // Every client is connected and gets its echo while the others stay open.
        for (i, client) in clients.iter_mut().enumerate() {
            client.write_stdin(format!("hello from client {i}\n").as_bytes());
        }
        for (i, client) in clients.iter_mut().enumerate() {
            assert_eq!(client.stdout_line(), format!("hello from client {i}\n"));
        }
        for client in &mut clients {
            client.close_stdin();
            if check {
                assert!(client.wait(limit()).success());
                assert!(client.stdout_to_end().is_empty());
            } else {
                client.kill();
            }
        }
    });
}

/// Netcat-style `listen` and `connect`: each side's stdin reaches the other's
/// stdout. When one side's stdin ends, it shuts down its write half; the other side
/// sees the end of the stream and exits 0, and that close ends the first side too,
/// whatever is still open on the second side's stdin.
fn exchange_both_ways(addr: &str, client_ends: bool) {
    let kids = Children::new();
    kids.clean_up(addr);
    let server = kids.ipckit(&["-v", "listen", addr]);
    let (addr, mut server) = watchdog(limit(), move || {
        let mut server = server;
        (server.listening_on(), server)
    });
    let mut client = kids.ipckit(&["connect", &addr]);
    let check = half_close(&addr);
    watchdog(limit(), move || {
        server.write_stdin(b"from the server\n");
        client.write_stdin(b"from the client\n");
        assert_eq!(client.stdout_line(), "from the server\n");
        assert_eq!(server.stdout_line(), "from the client\n");
        // And again: the relay keeps going both ways.
        client.write_stdin(b"client again\n");
        assert_eq!(server.stdout_line(), "client again\n");
        server.write_stdin(b"server again\n");
        assert_eq!(client.stdout_line(), "server again\n");
        if !check {
            // A Windows pipe cannot half-close: ending stdin ends nothing.
            client.kill();
            server.kill();
            return;
        }
        let (ender, other) = if client_ends {
            (&mut client, &mut server)
        } else {
            (&mut server, &mut client)
        };
        ender.close_stdin();
        for proc in [other, ender] {
            assert!(proc.stdout_to_end().is_empty());
            let status = proc.wait(limit());
            assert!(status.success(), "{status}: {}", proc.stderr_to_end());
        }
    });
}

#[test]
fn netcat_exchange_both_ways_over_a_portable_name() {
    exchange_both_ways(&format!("pipe:{}", unique_name("cli-nc")), true);
}

#[test]
fn netcat_exchange_both_ways_over_tcp() {
    exchange_both_ways("tcp:127.0.0.1:0", false);
}

#[test]
fn connect_retry_waits_for_a_late_listener() {
    let addr = format!("pipe:{}", unique_name("cli-late"));
    let kids = Children::new();
    kids.clean_up(&addr);
    let mut client = kids.ipckit(&["connect", "--retry", "--timeout", "20s", &addr]);
    thread::sleep(Duration::from_millis(200));
    let _server = kids.ipckit(&["listen", "--echo", &addr]);
    let check = half_close(&addr);
    watchdog(limit(), move || {
        client.write_stdin(b"late but there\n");
        assert_eq!(client.stdout_line(), "late but there\n");
        client.close_stdin();
        if check {
            assert!(client.wait(limit()).success());
        }
    });
}

#[test]
fn connect_to_nobody_fails_fast_naming_the_address() {
    let addr = format!("pipe:{}", unique_name("cli-nobody"));
    let fast = Duration::from_secs(5) * util::slow_factor();

    let start = Instant::now();
    let (status, stdout, stderr) = run(&["connect", "--timeout", "300ms", &addr]);
    assert!(start.elapsed() < fast, "took {:?}", start.elapsed());
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty());
    assert_one_line_error(&stderr, &[&addr]);

    // With --retry it keeps trying until the timeout, then fails the same way.
    let start = Instant::now();
    let (status, _, stderr) = run(&["connect", "--retry", "--timeout", "300ms", &addr]);
    let took = start.elapsed();
    // (The library stops retrying when less than one retry pause is left, so it
    // may give up a few milliseconds before the 300 ms.)
    assert!(
        took >= Duration::from_millis(250) && took < fast,
        "took {took:?}"
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_one_line_error(&stderr, &[&addr]);
}

#[cfg(unix)]
#[test]
fn python_socket_is_a_real_peer_of_the_echo_server() {
    const CLIENTS: &str = r#"
import socket, sys, threading

path = sys.argv[1]
results = {}

def client(i):
    data = bytes((j * 7 + i) % 251 for j in range(256 * 1024))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    def send():
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    sender = threading.Thread(target=send)
    sender.start()
    got = bytearray()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    sender.join()
    s.close()
    results[i] = bytes(got) == data

threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("ok" if results == {0: True, 1: True, 2: True} else "FAILED %r" % results)
"#;
    let path = std::env::temp_dir().join(format!("{}.sock", unique_name("cli-py")));
    let addr = format!("unix:{}", path.display());
    let kids = Children::new();
    kids.clean_up(&addr);
    let mut server = kids.ipckit(&["-v", "listen", "--echo", &addr]);
    let _ = watchdog(limit(), move || server.listening_on());
    let mut python = Command::new("python3");
    python.arg("-c").arg(CLIENTS).arg(&path);
    let mut python = match kids.spawn(python) {
        Ok(proc) => proc,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: python3 is not installed");
            return;
        }
        Err(e) => panic!("start python3: {e}"),
    };
    watchdog(limit(), move || {
        python.close_stdin();
        let out = String::from_utf8(python.stdout_to_end()).expect("UTF-8");
        let err = python.stderr_to_end();
        let status = python.wait(limit());
        assert!(status.success(), "python3: {status}: {err}");
        assert_eq!(out.trim(), "ok", "{err}");
    });
    drop(kids);
    assert!(
        std::fs::symlink_metadata(&path).is_err(),
        "{} was left behind",
        path.display()
    );
}
