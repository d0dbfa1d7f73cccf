//! The async server and client over real pipes and sockets: sync and async
//! handlers, out-of-order completion, panics, timeouts, a server that goes
//! away, graceful shutdown, the authkey handshake, and the async client
//! against the blocking server (and the reverse).

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipckit_rpc::tokio::{Client, Server};
use ipckit_rpc::{ClientOptions, ErrorKind, Framing, Methods, RpcError, ServerOptions};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use util::{unique_name, watchdog};

mod no_reader;

fn limit() -> Duration {
    Duration::from_secs(30) * util::slow_factor()
}

/// Runs an async test on its own runtime, under the watchdog.
fn run<F: Future<Output = ()> + Send + 'static>(test: F) {
    watchdog(limit(), move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(test)
    });
}

/// `wait` blocks until `open` is called (or the test notifies the gate);
/// `entered` tells the test that a `wait` is inside its handler.
fn methods(gate: Arc<Notify>, entered: mpsc::UnboundedSender<()>) -> Methods {
    let mut m = Methods::new();
    let g = Arc::clone(&gate);
    m.method("add", |(a, b): (i64, i64)| Ok(a + b))
        .method("boom", |()| -> Result<(), RpcError> { panic!("sync boom") })
        .method_async("aboom", |()| async {
            panic!("async boom") as Result<(), RpcError>
        })
        .method_async("echo", |p: Value| async move { Ok(p) })
        .method_async("wait", move |()| {
            let g = Arc::clone(&g);
            let _ = entered.send(());
            async move {
                g.notified().await;
                Ok("waited")
            }
        })
        .method("open", move |()| {
            gate.notify_one();
            Ok(true)
        });
    m
}

fn addr(tag: &str) -> String {
    format!("pipe:{}", unique_name(tag))
}

#[test]
fn async_calls_in_every_framing() {
    run(async {
        for framing in [
            Framing::LengthPrefix,
            Framing::ContentLength,
            Framing::Message,
        ] {
            let (tx, mut entered_rx) = mpsc::unbounded_channel();
            let mut so = ServerOptions::new();
            so.framing(framing);
            let server = so
                .serve_tokio(addr("trpc"), methods(Arc::new(Notify::new()), tx))
                .unwrap();
            let mut co = ClientOptions::new();
            co.framing(framing);
            let client = co.connect_tokio(server.local_addr()).await.unwrap();
            assert_eq!(
                client.call::<_, i64>("add", (2, 3)).await.unwrap(),
                5,
                "{framing}"
            );
            let v: Value = client.call("echo", json!([1, {"a": null}])).await.unwrap();
            assert_eq!(v, json!([1, {"a": null}]));
            for (method, needle) in [("boom", "sync boom"), ("aboom", "async boom")] {
                let err = client.call::<_, ()>(method, ()).await.unwrap_err();
                assert_eq!(err.rpc_error().unwrap().code, RpcError::INTERNAL_ERROR);
                assert!(err.to_string().contains(needle), "{err}");
            }
            let err = client.call::<_, ()>("missing", ()).await.unwrap_err();
            assert_eq!(err.rpc_error().unwrap().code, RpcError::METHOD_NOT_FOUND);
            // A notification is run, and nothing comes back for it.
            client.notify("wait", ()).await.unwrap();
            entered_rx.recv().await.unwrap();
            assert!(client.call::<_, bool>("open", ()).await.unwrap());
            assert_eq!(client.call::<_, i64>("add", (1, 1)).await.unwrap(), 2);
            server.shutdown().await;
        }
    });
}

#[test]
fn async_calls_complete_out_of_order_and_time_out() {
    run(async {
        let (tx, mut entered) = mpsc::unbounded_channel();
        let server =
            Server::bind(addr("trpc-order"), methods(Arc::new(Notify::new()), tx)).unwrap();
        let client = Arc::new(Client::connect(server.local_addr()).await.unwrap());
        let c = Arc::clone(&client);
        let slow = tokio::spawn(async move { c.call::<_, String>("wait", ()).await });
        entered.recv().await.unwrap();
        // A sequential server would never run `open`, which releases `wait`.
        assert!(client.call::<_, bool>("open", ()).await.unwrap());
        assert_eq!(slow.await.unwrap().unwrap(), "waited");

        let start = Instant::now();
        let err = client
            .call_timeout::<_, String>("wait", (), Some(Duration::from_millis(300)))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(start.elapsed() >= Duration::from_millis(300));
        entered.recv().await.unwrap();
        assert!(client.call::<_, bool>("open", ()).await.unwrap());
        assert_eq!(client.call::<_, i64>("add", (2, 2)).await.unwrap(), 4);
        server.shutdown().await;
    });
}

#[test]
fn graceful_shutdown_finishes_the_call_in_flight() {
    run(async {
        let (tx, mut entered) = mpsc::unbounded_channel();
        let gate = Arc::new(Notify::new());
        let server = Server::bind(addr("trpc-stop"), methods(Arc::clone(&gate), tx)).unwrap();
        let local = server.local_addr().clone();
        let client = Arc::new(Client::connect(&local).await.unwrap());
        let c = Arc::clone(&client);
        let in_flight = tokio::spawn(async move { c.call::<_, String>("wait", ()).await });
        entered.recv().await.unwrap();
        let stopping = tokio::spawn(server.shutdown());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !stopping.is_finished(),
            "shutdown returned with a call in flight"
        );
        gate.notify_one();
        assert_eq!(in_flight.await.unwrap().unwrap(), "waited");
        stopping.await.unwrap();
        let err = client.call::<_, i64>("add", (1, 1)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
        assert!(Client::connect(&local).await.is_err());
    });
}

#[test]
fn every_pending_async_call_fails_when_the_server_goes_away() {
    run(async {
        let a = addr("trpc-gone");
        let listener = ipckit::tokio::Listener::bind(a.as_str()).unwrap();
        let server = tokio::spawn(async move {
            let mut f = ipckit::tokio::Framed::new(listener.accept().await.unwrap());
            for _ in 0..3 {
                f.recv().await.unwrap().unwrap();
            }
        });
        let client = Arc::new(Client::connect(a.as_str()).await.unwrap());
        let calls: Vec<_> = (0..3)
            .map(|i| {
                let c = Arc::clone(&client);
                tokio::spawn(async move { c.call::<_, Value>("echo", [i]).await })
            })
            .collect();
        server.await.unwrap();
        for call in calls {
            let err = call.await.unwrap().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
            assert!(
                err.to_string().contains("the server closed the connection"),
                "{err}"
            );
        }
    });
}

#[test]
fn async_and_blocking_peers_and_the_authkey() {
    run(async {
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut so = ServerOptions::new();
        so.authkey("k1");
        let server = so
            .serve_tokio(addr("trpc-auth"), methods(Arc::new(Notify::new()), tx))
            .unwrap();
        let local = server.local_addr().clone();
        let mut good = ClientOptions::new();
        good.authkey("k1");
        let client = good.connect_tokio(&local).await.unwrap();
        assert_eq!(client.call::<_, i64>("add", (1, 2)).await.unwrap(), 3);
        // The blocking client against the async server.
        let (g, l) = (good.clone(), local.clone());
        let sum = tokio::task::spawn_blocking(move || {
            g.connect(&l).unwrap().call::<_, i64>("add", (3, 4))
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(sum, 7);
        let mut bad = ClientOptions::new();
        bad.authkey("k2");
        let err = bad.connect_tokio(&local).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
        server.shutdown().await;

        // The async client against the blocking server.
        let mut m = Methods::new();
        m.method("add", |(a, b): (i64, i64)| Ok(a + b));
        let blocking = so.bind(addr("trpc-auth-b"), m).unwrap();
        let client = good.connect_tokio(blocking.local_addr()).await.unwrap();
        assert_eq!(client.call::<_, i64>("add", (5, 6)).await.unwrap(), 11);
        let err = bad.connect_tokio(blocking.local_addr()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
        tokio::task::spawn_blocking(move || blocking.shutdown())
            .await
            .unwrap();
    });
}

/// The async server's side of the reply timeout: a client that never reads
/// is reported and closed, and shutdown returns.
#[test]
fn a_client_that_stops_reading_is_closed_after_the_reply_timeout_async() {
    run(async {
        let (gate, entered) = (Arc::new(Notify::new()), mpsc::unbounded_channel().0);
        let (so, errors) = no_reader::options();
        let server = so
            .serve_tokio(addr("rpc-noread-async"), methods(gate, entered))
            .unwrap();
        let at = server.local_addr().clone();
        tokio::task::spawn_blocking(move || no_reader::flood_and_check(&at, limit(), &errors))
            .await
            .unwrap();
        let client = Client::connect(server.local_addr()).await.unwrap();
        assert_eq!(client.call::<_, i64>("add", (2, 3)).await.unwrap(), 5);
        drop(client);
        server.shutdown().await;
    });
}

/// Another user than ours, of this OS's kind (no such process runs as it).
fn another_user() -> ipckit::security::UserId {
    use ipckit::security::UserId;
    match UserId::current().unwrap() {
        UserId::Uid(uid) => UserId::Uid(uid.wrapping_add(1)),
        _ => UserId::Sid("S-1-5-18".to_owned()),
    }
}

#[test]
fn the_server_user_rule_reaches_the_transport_of_both_clients() {
    run(async {
        for framing in [Framing::LengthPrefix, Framing::Message] {
            let (tx, _entered) = mpsc::unbounded_channel();
            let mut so = ServerOptions::new();
            so.framing(framing);
            let server = so
                .serve_tokio(addr("trpc-user"), methods(Arc::new(Notify::new()), tx))
                .unwrap();
            let mut co = ClientOptions::new();
            co.framing(framing).require_server_user(another_user());
            let rule = format!("require_server_user({})", another_user());
            let err = co.connect_tokio(server.local_addr()).await.unwrap_err();
            assert!(err.to_string().contains(&rule), "{framing}: {err}");
            let blocking = co.clone();
            let addr = server.local_addr().clone();
            let err = tokio::task::spawn_blocking(move || blocking.connect(addr))
                .await
                .unwrap()
                .unwrap_err();
            assert!(err.to_string().contains(&rule), "{framing}: {err}");
            // Our own server passes the default check and the explicit one.
            co.server_user_is_current();
            let client = co.connect_tokio(server.local_addr()).await.unwrap();
            assert_eq!(client.call::<_, i64>("add", (2, 3)).await.unwrap(), 5);
            co.server_user_any();
            drop(co.connect_tokio(server.local_addr()).await.unwrap());
        }
    });
}

/// The async server answers an oversized request over the message framing
/// with -32600 before it closes the connection, as the other framings do, on
/// a message channel and over `tcp:`.
#[test]
fn an_oversized_request_over_the_message_framing_gets_its_error_response_async() {
    run(async {
        for name in [addr("msg-big"), "tcp:127.0.0.1:0".to_owned()] {
            let (entered, _rx) = mpsc::unbounded_channel();
            let mut so = ServerOptions::new();
            so.framing(Framing::Message).max_frame_size(1000);
            let server = so
                .serve_tokio(name.as_str(), methods(Arc::new(Notify::new()), entered))
                .unwrap();
            let channel = ipckit::tokio::MessageStream::connect(server.local_addr())
                .await
                .unwrap();
            let big =
                json!({"jsonrpc": "2.0", "method": "echo", "params": ["x".repeat(2000)], "id": 1});
            channel.send(big.to_string().as_bytes()).await.unwrap();
            let reply = channel.recv().await.unwrap().expect("the -32600 response");
            let reply: Value = serde_json::from_slice(&reply).unwrap();
            assert_eq!(reply["id"], Value::Null, "{name}: {reply}");
            assert_eq!(reply["error"]["code"], json!(-32600), "{name}: {reply}");
            let msg = reply["error"]["message"].as_str().unwrap();
            assert!(msg.contains("1000 bytes"), "{name}: {msg}");
            assert!(msg.contains("closing the connection"), "{name}: {msg}");
            // Then the connection ends.
            assert!(
                !matches!(channel.recv().await, Ok(Some(_))),
                "{name}: the connection goes on"
            );
            server.shutdown().await;
        }
    });
}
