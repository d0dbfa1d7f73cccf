//! JSON-RPC over ipckit's shared-memory message channels (`shm:NAME`): the
//! blocking server serves each client on a channel of its own (the calls of
//! the other files run over it too, see `every_framing` in `rpc.rs`); here
//! what is particular to it: many clients at once, the authkey handshake,
//! a shutdown with idle clients connected, a frame over the limit, and the
//! async server's refusal.

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ipckit_rpc::{Client, ClientOptions, ErrorKind, Methods, ServerOptions};
use util::{unique_name, watchdog};

fn limit() -> Duration {
    Duration::from_secs(30) * util::slow_factor()
}

fn methods() -> Methods {
    let mut m = Methods::new();
    m.method("add", |(a, b): (i64, i64)| Ok(a + b))
        .method("len", |(s,): (String,)| Ok(s.len()));
    m
}

fn shm_addr(tag: &str) -> String {
    format!("shm:{}", unique_name(tag))
}

#[test]
fn many_clients_each_on_a_channel_of_their_own() {
    watchdog(limit(), || {
        let server = ServerOptions::new()
            .bind(shm_addr("rpc-shm-many"), methods())
            .unwrap();
        let addr = server.local_addr().clone();
        let clients: Vec<Arc<Client>> = (0..4)
            .map(|_| Arc::new(Client::connect(&addr).unwrap()))
            .collect();
        let threads: Vec<_> = clients
            .iter()
            .enumerate()
            .flat_map(|(ci, client)| {
                (0..2i64).map(move |t| {
                    let c = Arc::clone(client);
                    thread::spawn(move || {
                        for i in 0..200i64 {
                            let a = (ci as i64) * 1_000_000 + t * 1000 + i;
                            assert_eq!(c.call::<_, i64>("add", (a, 1)).unwrap(), a + 1);
                        }
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        server.shutdown();
    });
}

#[test]
fn the_authkey_handshake_over_shared_memory() {
    watchdog(limit(), || {
        let mut so = ServerOptions::new();
        so.authkey(b"right key");
        let server = so.bind(shm_addr("rpc-shm-auth"), methods()).unwrap();
        let addr = server.local_addr().clone();
        let good = ClientOptions::new()
            .authkey(b"right key")
            .connect(&addr)
            .unwrap();
        assert_eq!(good.call::<_, i64>("add", (1, 2)).unwrap(), 3);
        let err = ClientOptions::new()
            .authkey(b"wrong key")
            .connect(&addr)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
        assert!(err.to_string().contains("authkeys differ"), "{err}");
        server.shutdown();
    });
}

/// A shutdown ends the accept thread and the connections' threads, idle
/// clients connected or not; the name is free again at once.
#[test]
fn shutdown_with_idle_clients_returns_and_frees_the_name() {
    watchdog(limit(), || {
        let addr = shm_addr("rpc-shm-stop");
        let server = ServerOptions::new().bind(addr.as_str(), methods()).unwrap();
        let idle = Client::connect(addr.as_str()).unwrap();
        assert_eq!(idle.call::<_, i64>("add", (2, 2)).unwrap(), 4);
        let started = Instant::now();
        server.shutdown();
        let took = started.elapsed();
        assert!(took < limit() / 4, "shutdown took {took:?}");
        let err = idle.call::<_, i64>("add", (1, 1)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
        let again = ServerOptions::new().bind(addr.as_str(), methods()).unwrap();
        let client = Client::connect(addr.as_str()).unwrap();
        assert_eq!(client.call::<_, i64>("add", (20, 22)).unwrap(), 42);
        again.shutdown();
    });
}

/// A request over the server's frame limit is refused by the channel before
/// it is sent (the channel knows its receiver's limit): the client's call
/// fails naming both sizes, and the connection goes on.
#[test]
fn a_request_over_the_frame_limit_is_refused_to_the_client() {
    watchdog(limit(), || {
        let mut so = ServerOptions::new();
        so.max_frame_size(1000);
        let server = so.bind(shm_addr("rpc-shm-max"), methods()).unwrap();
        let client = Client::connect(server.local_addr()).unwrap();
        let err = client
            .call::<_, usize>("len", ("x".repeat(2000),))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FrameTooLarge, "{err}");
        assert!(err.to_string().contains("1000"), "{err}");
        assert_eq!(client.call::<_, usize>("len", ("abc",)).unwrap(), 3);
        server.shutdown();
    });
}

/// ipckit's shared-memory channels have no async face yet: the async server
/// and client say so instead of failing later.
#[test]
fn the_async_server_and_client_refuse_shared_memory_clearly() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _in = rt.enter();
    let err = ServerOptions::new()
        .serve_tokio(shm_addr("rpc-shm-async"), methods())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOption, "{err}");
    assert!(err.to_string().contains("ipckit_rpc::Server"), "{err}");
    let server = ServerOptions::new()
        .bind(shm_addr("rpc-shm-async-client"), methods())
        .unwrap();
    let err = rt
        .block_on(ipckit_rpc::tokio::Client::connect(server.local_addr()))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOption, "{err}");
    assert!(err.to_string().contains("ipckit_rpc::Client"), "{err}");
    server.shutdown();
}
