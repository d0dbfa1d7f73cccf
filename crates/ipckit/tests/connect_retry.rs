//! `ConnectOptions::retry_not_found` over TCP behaves the same on the blocking
//! and the tokio face (issue 17's drift: the tokio face used to fail with
//! `NotFound` at the first refused attempt, the blocking one retried until
//! its timeout). Real sockets on 127.0.0.1; a closed port is one a listener
//! just held and dropped.
#![cfg(feature = "tokio")]

mod util;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use ipckit::{ConnectOptions, ErrorKind};
use util::{slow_factor, watchdog};

fn limit(secs: u64) -> Duration {
    Duration::from_secs(secs * u64::from(slow_factor()))
}

/// A TCP port on 127.0.0.1 that nobody listens on (a listener held it a
/// moment ago).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn retrying(timeout: Duration) -> ConnectOptions {
    let mut opts = ConnectOptions::new();
    opts.timeout(timeout).retry_not_found(true);
    opts
}

const TIMEOUT: Duration = Duration::from_millis(300);

/// Either face, connecting to a closed port with retries and a 300 ms timeout:
/// a `TimedOut` error after the full timeout (and not much later).
fn check_gives_up_at_the_timeout(face: &str, took: Duration, err: ipckit::Error) {
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{face}: {err}");
    assert!(
        took >= TIMEOUT,
        "{face}: gave up after {took:?}, before {TIMEOUT:?}"
    );
    assert!(
        took < TIMEOUT * 10 * slow_factor(),
        "{face}: gave up only after {took:?}"
    );
}

#[test]
fn blocking_retry_not_found_on_tcp_waits_for_the_timeout() {
    watchdog(limit(20), || {
        let addr = format!("tcp:127.0.0.1:{}", closed_port());
        let start = Instant::now();
        let err = retrying(TIMEOUT).connect(addr.as_str()).unwrap_err();
        check_gives_up_at_the_timeout("blocking", start.elapsed(), err);
    });
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn tokio_retry_not_found_on_tcp_waits_for_the_timeout() {
    watchdog(limit(20), || {
        for face in ["tokio", "tokio message"] {
            let addr = format!("tcp:127.0.0.1:{}", closed_port());
            let opts = retrying(TIMEOUT);
            let start = Instant::now();
            let err = match face {
                "tokio" => block_on(opts.connect_tokio(addr.as_str())).map(drop),
                _ => block_on(opts.connect_message_tokio(addr.as_str())).map(drop),
            }
            .unwrap_err();
            check_gives_up_at_the_timeout(face, start.elapsed(), err);
        }
    });
}

/// A server that starts listening while the client retries is reached, on
/// both faces: the retries really connect, they do not just wait.
#[test]
fn both_faces_reach_a_tcp_server_that_starts_late() {
    watchdog(limit(30), || {
        for face in ["blocking", "tokio"] {
            let port = closed_port();
            let addr = format!("tcp:127.0.0.1:{port}");
            let server = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(150));
                let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
                l.accept().unwrap();
            });
            let opts = retrying(limit(10));
            match face {
                "blocking" => drop(opts.connect(addr.as_str()).unwrap()),
                _ => drop(block_on(opts.connect_tokio(addr.as_str())).unwrap()),
            }
            server.join().unwrap();
        }
    });
}
