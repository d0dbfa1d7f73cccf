//! `ServerOptions::max_connections`, blocking and async: at the limit the
//! server queues, so a client beyond it connects but is answered only once
//! an earlier one has gone.

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ipckit_rpc::{Client, ClientOptions, ErrorKind, Methods, ServerOptions};
use util::{unique_name, watchdog};

fn limit() -> Duration {
    Duration::from_secs(30) * util::slow_factor()
}

/// How long a client that must wait is given to show that it is not served.
const NOT_SERVED_WITHIN: Duration = Duration::from_millis(500);

fn methods() -> Methods {
    let mut m = Methods::new();
    m.method("add", |(a, b): (i64, i64)| Ok(a + b));
    m
}

fn client(addr: &str) -> Client {
    let mut opts = ClientOptions::new();
    opts.timeout(limit());
    opts.connect(addr).expect("connect")
}

/// Three clients are served by a server limited to three connections; a
/// fourth gets no answer until one of the three closes.
fn fourth_client_waits(addr: &str) {
    let served: Vec<Client> = (0..3)
        .map(|i| {
            let c = client(addr);
            assert_eq!(c.call::<_, i64>("add", (i, 1)).expect("call"), i + 1);
            c
        })
        .collect();
    let (tx, rx) = mpsc::channel();
    let fourth = addr.to_owned();
    thread::spawn(move || {
        let _ = tx.send(client(&fourth).call::<_, i64>("add", (40, 2)).ok());
    });
    assert!(
        matches!(
            rx.recv_timeout(NOT_SERVED_WITHIN),
            Err(mpsc::RecvTimeoutError::Timeout)
        ),
        "a fourth client was served while three were connected"
    );
    drop(served);
    assert_eq!(rx.recv_timeout(limit()), Ok(Some(42)));
}

#[test]
fn blocking_server_queues_at_max_connections() {
    watchdog(limit(), || {
        let addr = format!("pipe:{}", unique_name("rpc-maxconn"));
        let server = ServerOptions::new()
            .max_connections(3)
            .bind(addr.as_str(), methods())
            .expect("bind");
        fourth_client_waits(&addr);
        server.shutdown();
    });
}

#[test]
fn blocking_server_shuts_down_while_at_max_connections() {
    watchdog(limit(), || {
        let addr = format!("pipe:{}", unique_name("rpc-maxconn-stop"));
        let server = ServerOptions::new()
            .max_connections(1)
            .bind(addr.as_str(), methods())
            .expect("bind");
        let c = client(&addr);
        assert_eq!(c.call::<_, i64>("add", (1, 1)).expect("call"), 2);
        // The accept thread waits for a free slot; shutdown wakes it there at
        // once, rather than giving up on it after its 2 s try to wake it with
        // a connection of its own (which would queue behind the limit).
        let start = Instant::now();
        server.shutdown();
        let took = start.elapsed();
        assert!(took < Duration::from_millis(1500), "shutdown took {took:?}");
        drop(c);
    });
}

#[test]
fn async_server_queues_at_max_connections() {
    watchdog(limit(), || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let addr = format!("pipe:{}", unique_name("rpc-maxconn-async"));
        let server = rt
            .block_on(async {
                ServerOptions::new()
                    .max_connections(3)
                    .serve_tokio(addr.as_str(), methods())
            })
            .expect("serve");
        fourth_client_waits(&addr);
        rt.block_on(server.shutdown());
    });
}

#[test]
fn zero_max_connections_is_refused() {
    for kind in ["blocking", "async"] {
        let addr = format!("pipe:{}", unique_name("rpc-maxconn-0"));
        let mut opts = ServerOptions::new();
        opts.max_connections(0);
        let err = if kind == "blocking" {
            opts.bind(addr.as_str(), methods()).unwrap_err()
        } else {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async { opts.serve_tokio(addr.as_str(), methods()) })
                .unwrap_err()
        };
        assert_eq!(err.kind(), ErrorKind::InvalidOption, "{kind}: {err}");
        assert!(
            err.to_string().contains("maximum number of connections"),
            "{kind}: {err}"
        );
    }
}
