//! Byte streams through the public API and the platform layer: named pipes on
//! Windows, Unix sockets on Unix, TCP everywhere.

mod util;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::thread;
use std::time::{Duration, Instant};

use ipckit::{ConnectOptions, ErrorKind, Listener, Stream};
use util::{slow_factor, unique_name, watchdog};

fn limit(secs: u64) -> Duration {
    Duration::from_secs(secs * u64::from(slow_factor()))
}

/// Serves one client: echoes every byte back until the client closes.
fn echo_once(listener: Listener) -> thread::JoinHandle<io::Result<u64>> {
    thread::spawn(move || {
        let stream = listener.accept()?;
        let mut reader = stream.try_clone()?;
        let mut writer = &stream;
        io::copy(&mut reader, &mut writer)
    })
}

fn round_trip(addr: &str) {
    let listener = Listener::bind(addr).unwrap();
    let server = echo_once(listener);
    let mut client = Stream::connect(addr).unwrap();
    for size in [1usize, 100, 4096, 65_536] {
        let msg: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
        client.write_all(&msg).unwrap();
        let mut back = vec![0; size];
        client.read_exact(&mut back).unwrap();
        assert_eq!(back, msg, "echo of {size} bytes over {addr}");
    }
    drop(client);
    let echoed = server.join().unwrap().unwrap();
    assert_eq!(echoed, 1 + 100 + 4096 + 65_536);
}

#[test]
fn echo_over_a_portable_name() {
    watchdog(limit(20), || {
        round_trip(&format!("pipe:{}", unique_name("echo")))
    });
}

#[test]
fn echo_over_tcp_loopback() {
    watchdog(limit(20), || {
        let listener = Listener::bind("tcp:127.0.0.1:0").unwrap();
        let addr = listener.local_addr().to_string();
        assert!(!addr.ends_with(":0"), "the OS chose a port: {addr}");
        let server = echo_once(listener);
        let mut client = Stream::connect(addr.as_str()).unwrap();
        client.write_all(b"over tcp").unwrap();
        let mut back = [0; 8];
        client.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"over tcp");
        drop(client);
        assert_eq!(server.join().unwrap().unwrap(), 8);
    });
}

#[test]
fn read_timeout_fires_and_the_stream_stays_usable() {
    watchdog(limit(30), || {
        let addr = format!("pipe:{}", unique_name("rto"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let server = thread::spawn(move || {
            let mut s = listener.accept().unwrap();
            go_rx.recv().unwrap();
            s.write_all(b"late").unwrap();
            let mut end = [0; 1];
            s.read(&mut end).unwrap()
        });
        let mut client = Stream::connect(addr.as_str()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let start = Instant::now();
        let err = client.read(&mut [0; 4]).unwrap_err();
        let took = start.elapsed();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(took >= Duration::from_millis(250), "fired early: {took:?}");
        assert!(took < limit(10), "fired late: {took:?}");

        // Nothing was lost and the stream still works once time allows.
        go_tx.send(()).unwrap();
        client.set_read_timeout(None).unwrap();
        client.set_read_deadline(Some(Instant::now() + limit(10)));
        let mut got = [0; 4];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"late");
        drop(client);
        assert_eq!(server.join().unwrap(), 0, "server sees EOF");
    });
}

#[test]
fn a_past_deadline_fails_at_once_and_can_be_moved() {
    watchdog(limit(20), || {
        let addr = format!("pipe:{}", unique_name("dl"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let server = echo_once(listener);
        let mut client = Stream::connect(addr.as_str()).unwrap();
        client.set_deadline(Some(Instant::now() - Duration::from_millis(1)));
        let start = Instant::now();
        assert_eq!(
            client.write(b"x").unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        assert_eq!(
            client.read(&mut [0; 1]).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        assert!(start.elapsed() < limit(2), "a past deadline must not wait");
        client.set_deadline(None);
        client.write_all(b"ok").unwrap();
        let mut back = [0; 2];
        client.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"ok");
        drop(client);
        server.join().unwrap().unwrap();
    });
}

#[test]
fn zero_timeout_is_refused() {
    watchdog(limit(20), || {
        let addr = format!("pipe:{}", unique_name("zero"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let server = echo_once(listener);
        let mut client = Stream::connect(addr.as_str()).unwrap();
        let err = client.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOption);
        assert!(err.to_string().contains("zero"), "{err}");
        drop(client);
        server.join().unwrap().unwrap();
    });
}

#[test]
fn connecting_to_a_missing_name_says_not_found() {
    watchdog(limit(20), || {
        let addr = format!("pipe:{}", unique_name("missing"));
        let err = Stream::connect(addr.as_str()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
        assert!(err.is_temporary());
        assert!(err.raw_os_error().is_some(), "OS code kept: {err:?}");
        assert!(err.to_string().contains(&addr), "names the address: {err}");
        assert!(err.to_string().contains("nobody listens there"), "{err}");
    });
}

#[test]
fn retry_not_found_gives_up_at_the_connect_timeout() {
    watchdog(limit(20), || {
        let addr = format!("pipe:{}", unique_name("retry"));
        let mut opts = ConnectOptions::new();
        opts.timeout(Duration::from_millis(300))
            .retry_not_found(true);
        let start = Instant::now();
        let err = opts.connect(addr.as_str()).unwrap_err();
        let took = start.elapsed();
        assert!(err.is_timeout(), "{err:?}");
        assert!(
            took >= Duration::from_millis(300),
            "gave up early: {took:?}"
        );
        assert!(took < limit(5), "{took:?}");
    });
}

#[test]
fn tcp_retry_not_found_waits_for_the_full_timeout() {
    watchdog(limit(20), || {
        // A port that was just free: nobody listens on it now.
        let port = {
            let l = Listener::bind("tcp:127.0.0.1:0").unwrap();
            match l.local_addr() {
                ipckit::Address::Tcp { port, .. } => *port,
                other => panic!("{other}"),
            }
        };
        let addr = format!("tcp:127.0.0.1:{port}");
        let err = Stream::connect(addr.as_str()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "refused at once: {err:?}");
        let mut opts = ConnectOptions::new();
        opts.timeout(Duration::from_millis(300))
            .retry_not_found(true);
        let start = Instant::now();
        let err = opts.connect(addr.as_str()).unwrap_err();
        let took = start.elapsed();
        assert!(err.is_timeout(), "{err:?}");
        assert!(
            took >= Duration::from_millis(300),
            "gave up early: {took:?}"
        );
        assert!(took < limit(5), "{took:?}");
    });
}

#[test]
fn retry_not_found_connects_once_the_server_appears() {
    watchdog(limit(20), || {
        let addr = format!("pipe:{}", unique_name("late"));
        let server_addr = addr.clone();
        let server = thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            let listener = Listener::bind(server_addr.as_str()).unwrap();
            let mut s = listener.accept().unwrap();
            s.write_all(b"hi").unwrap();
        });
        let mut opts = ConnectOptions::new();
        opts.timeout(limit(10)).retry_not_found(true);
        let mut client = opts.connect(addr.as_str()).unwrap();
        let mut got = [0; 2];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi");
        server.join().unwrap();
    });
}

#[test]
fn shutdown_write_gives_the_peer_eof_or_says_unsupported() {
    watchdog(limit(20), || {
        let addr = format!("pipe:{}", unique_name("shut"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let server = thread::spawn(move || {
            let mut s = listener.accept().unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).unwrap();
            all
        });
        let mut client = Stream::connect(addr.as_str()).unwrap();
        client.write_all(b"bye").unwrap();
        let windows = cfg!(windows);
        match client.shutdown(Shutdown::Write) {
            Ok(()) => assert!(!windows, "pipes have no half-close"),
            Err(e) => {
                assert!(windows, "Unix sockets have half-close: {e}");
                assert_eq!(e.kind(), ErrorKind::Unsupported);
                assert!(e.to_string().contains("half-close"), "{e}");
                drop(client);
            }
        }
        assert_eq!(server.join().unwrap(), b"bye");
    });
}

/// `shutdown(Read)` on a clone wakes a read waiting on another handle, with
/// the end of the stream, and every later read ends too; writing goes on
/// (on Windows too, where a pipe has no half-close).
#[test]
fn shutdown_read_on_a_clone_wakes_a_blocked_reader() {
    watchdog(limit(20), || {
        for addr in [
            format!("pipe:{}", unique_name("shut-rd")),
            "tcp:127.0.0.1:0".to_owned(),
        ] {
            // Winsock's shutdown(SD_RECEIVE) does not wake a recv already
            // waiting (seen under Wine): not promised there.
            if cfg!(windows) && addr.starts_with("tcp:") {
                continue;
            }
            let listener = Listener::bind(addr.as_str()).unwrap();
            let mut client = Stream::connect(listener.local_addr()).unwrap();
            let server = listener.accept().unwrap();
            let waker = server.try_clone().unwrap();
            let reader = thread::spawn(move || {
                let mut server = server;
                let mut buf = [0u8; 16];
                let first = server.read(&mut buf).unwrap();
                let later = server.read(&mut buf).unwrap();
                server.write_all(b"still writes").unwrap();
                (first, later)
            });
            // The reader is (or will be) waiting: nothing was sent.
            waker.shutdown(Shutdown::Read).unwrap();
            assert_eq!(reader.join().unwrap(), (0, 0), "{addr}");
            let mut got = [0u8; 12];
            client.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"still writes", "{addr}");
        }
    });
}

#[test]
fn many_concurrent_clients_each_checksummed() {
    let clients = 200;
    let per_client = 1024 * 1024;
    watchdog(limit(120), move || {
        let addr = format!("pipe:{}", unique_name("many"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let acceptor = thread::spawn(move || {
            let mut servers = Vec::new();
            for _ in 0..clients {
                let s = listener.accept().unwrap();
                servers.push(thread::spawn(move || {
                    let mut reader = s.try_clone().unwrap();
                    io::copy(&mut reader, &mut &s).unwrap()
                }));
            }
            servers.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        });
        let workers: Vec<_> = (0..clients)
            .map(|c| {
                let addr = addr.clone();
                thread::spawn(move || {
                    let mut opts = ConnectOptions::new();
                    opts.timeout(limit(20));
                    let s = opts.connect(addr.as_str()).unwrap();
                    let data: Vec<u8> = (0..per_client).map(|i| (i * 31 + c * 17) as u8).collect();
                    let mut writer = s.try_clone().unwrap();
                    let sent = data.clone();
                    let w = thread::spawn(move || writer.write_all(&sent).unwrap());
                    let mut back = vec![0; per_client];
                    (&s).read_exact(&mut back).unwrap();
                    w.join().unwrap();
                    assert!(back == data, "client {c} got different bytes back");
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(acceptor.join().unwrap(), (clients * per_client) as u64);
    });
}

#[test]
fn a_second_bind_to_a_live_name_is_refused() {
    watchdog(limit(20), || {
        let addr = format!("pipe:{}", unique_name("dup"));
        let _first = Listener::bind(addr.as_str()).unwrap();
        // Under Wine too: Wine ignores FILE_FLAG_FIRST_PIPE_INSTANCE, and bind
        // checks for existing instances first.
        let err = Listener::bind(addr.as_str()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err:?}");
        assert!(err.to_string().contains(&addr), "{err}");
    });
}

#[test]
fn the_other_os_forms_are_refused_with_a_reason() {
    let foreign = if cfg!(windows) {
        "unix:/tmp/x.sock"
    } else {
        r"\\.\pipe\x"
    };
    let err = Listener::bind(foreign).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("pipe:NAME"), "{err}");
}

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

#[test]
fn write_timeout_fires_and_every_written_byte_arrives() {
    watchdog(limit(60), || {
        let addr = format!("pipe:{}", unique_name("wto"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let (total_tx, total_rx) = std::sync::mpsc::channel::<usize>();
        let server = thread::spawn(move || {
            let mut s = listener.accept().unwrap();
            let total = total_rx.recv().unwrap(); // nobody reads until the writer timed out
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            (total, got)
        });
        let mut client = Stream::connect(addr.as_str()).unwrap();
        client
            .set_write_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let chunk = 65_536;
        let mut written = 0usize;
        let start = Instant::now();
        let err = loop {
            let data: Vec<u8> = (written..written + chunk).map(pattern).collect();
            match client.write(&data) {
                Ok(n) => written += n,
                Err(e) => break e,
            }
            assert!(start.elapsed() < limit(20), "the pipe never filled up");
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(written > 0, "some bytes fit before the buffer filled");
        total_tx.send(written).unwrap();
        drop(client);
        let (total, got) = server.join().unwrap();
        assert_eq!(
            got.len(),
            total,
            "exactly the bytes write() reported arrived"
        );
        assert!(
            got.iter().enumerate().all(|(i, &b)| b == pattern(i)),
            "in order, unchanged"
        );
    });
}

#[test]
fn a_64_mib_transfer_arrives_whole() {
    const LEN: usize = 64 << 20;
    watchdog(limit(120), || {
        let addr = format!("pipe:{}", unique_name("big"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let server = thread::spawn(move || {
            let mut s = listener.accept().unwrap();
            let mut got = Vec::with_capacity(LEN);
            s.read_to_end(&mut got).unwrap();
            got
        });
        let data: Vec<u8> = (0..LEN).map(pattern).collect();
        let mut client = Stream::connect(addr.as_str()).unwrap();
        client.write_all(&data).unwrap();
        drop(client);
        let got = server.join().unwrap();
        assert_eq!(got.len(), LEN);
        assert!(got == data, "the bytes arrived unchanged and in order");
    });
}

#[test]
#[cfg(windows)]
fn max_instances_out_of_range_is_refused() {
    use ipckit::os::windows::ListenerOptionsExt;
    for n in [0u8, 255] {
        let err = ipckit::ListenerOptions::new()
            .max_instances(n)
            .bind(format!("pipe:{}", unique_name("max")))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOption);
        assert!(err.to_string().contains("1 to 254"), "{err}");
    }
}

#[test]
fn a_client_connects_while_the_server_is_between_accepts() {
    // Lock-step: each client connects after the server's accept has returned and
    // before it calls accept again. On Windows that works only if an instance is
    // already waiting (else: "not found", or "busy" until the timeout); on Unix
    // the listening socket's backlog holds the client.
    watchdog(limit(60), || {
        let addr = format!("pipe:{}", unique_name("gap"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let (accepted_tx, accepted_rx) = std::sync::mpsc::channel::<()>();
        let (connected_tx, connected_rx) = std::sync::mpsc::channel::<()>();
        let rounds = 20;
        let server = thread::spawn(move || {
            let mut held = Vec::new();
            for _ in 0..rounds {
                connected_rx.recv().unwrap();
                let mut s = listener.accept().unwrap();
                s.write_all(b"k").unwrap();
                held.push(s); // stays connected: the next client needs a new instance
                accepted_tx.send(()).unwrap();
            }
            held.len()
        });
        let mut opts = ConnectOptions::new();
        opts.timeout(limit(5));
        let mut clients = Vec::new();
        for i in 0..rounds {
            let s = opts.connect(addr.as_str()).unwrap_or_else(|e| {
                panic!("client {i} found no waiting instance: {e} ({:?})", e.kind())
            });
            connected_tx.send(()).unwrap();
            accepted_rx.recv().unwrap(); // the server is now outside accept
            clients.push(s);
        }
        for (i, mut c) in clients.into_iter().enumerate() {
            let mut b = [0; 1];
            c.read_exact(&mut b)
                .unwrap_or_else(|e| panic!("client {i}: {e}"));
            assert_eq!(&b, b"k");
        }
        assert_eq!(server.join().unwrap(), rounds);
    });
}
