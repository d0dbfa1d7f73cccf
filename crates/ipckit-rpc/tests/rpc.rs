//! The blocking server and client over real pipes and sockets, in every
//! framing: typed calls, errors, panics, out-of-order completion, many
//! clients, timeouts, a server that goes away, graceful shutdown, batches and
//! the spec's error responses on the raw wire, the authkey handshake.

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ipckit::{Framed, Stream};
use ipckit_rpc::{
    ChallengeDigest, Client, ClientOptions, ErrorKind, Framing, Methods, RpcError, Server,
    ServerOptions,
};
use serde_json::{Value, json};
use util::{unique_name, watchdog};

mod no_reader;

fn limit() -> Duration {
    Duration::from_secs(30) * util::slow_factor()
}

/// A gate a handler waits at until the test opens it; `entered` tells the test
/// a call is inside the handler.
#[derive(Clone)]
struct Gate {
    open: Arc<Mutex<mpsc::Receiver<()>>>,
    entered: mpsc::SyncSender<()>,
}

fn gate() -> (Gate, mpsc::SyncSender<()>, mpsc::Receiver<()>) {
    let (open_tx, open_rx) = mpsc::sync_channel(16);
    let (entered_tx, entered_rx) = mpsc::sync_channel(16);
    (
        Gate {
            open: Arc::new(Mutex::new(open_rx)),
            entered: entered_tx,
        },
        open_tx,
        entered_rx,
    )
}

/// The methods most tests use; `wait` blocks at the gate.
fn methods(g: Gate) -> Methods {
    let mut m = Methods::new();
    m.method("add", |(a, b): (i64, i64)| Ok(a + b))
        .method("echo", |p: Value| Ok(p))
        .method("boom", |()| -> Result<(), RpcError> {
            panic!("boom on purpose")
        })
        .method("refuse", |()| -> Result<(), RpcError> {
            Err(RpcError::new(42, "refused on purpose").with_data(json!({"why": "test"})))
        })
        .method("wait", move |()| {
            let _ = g.entered.send(());
            let _ = g.open.lock().unwrap().recv();
            Ok("waited")
        });
    m
}

/// `Server::bind` on a fresh portable name.
fn bind_local(tag: &str, m: Methods) -> Server {
    Server::bind(format!("pipe:{}", unique_name(tag)), m).unwrap()
}

fn opts(framing: Framing) -> (ServerOptions, ClientOptions) {
    let mut s = ServerOptions::new();
    s.framing(framing);
    let mut c = ClientOptions::new();
    c.framing(framing);
    (s, c)
}

fn every_framing() -> [(Framing, String); 5] {
    [
        (
            Framing::LengthPrefix,
            format!("pipe:{}", unique_name("rpc-len")),
        ),
        (
            Framing::ContentLength,
            format!("pipe:{}", unique_name("rpc-cl")),
        ),
        (Framing::Message, format!("pipe:{}", unique_name("rpc-msg"))),
        (Framing::LengthPrefix, "tcp:127.0.0.1:0".to_owned()),
        // Shared memory carries messages whatever the framing says.
        (
            Framing::LengthPrefix,
            format!("shm:{}", unique_name("rpc-shm")),
        ),
    ]
}

#[test]
fn typed_calls_errors_and_panics_in_every_framing() {
    watchdog(limit(), || {
        for (framing, addr) in every_framing() {
            let (g, _open, _entered) = gate();
            let (noted_tx, noted) = mpsc::channel();
            let noted_tx = Mutex::new(noted_tx);
            let mut m = methods(g);
            m.method("note", move |p: Value| {
                noted_tx.lock().unwrap().send(p).unwrap();
                Ok(())
            });
            let (so, co) = opts(framing);
            let server = so.bind(addr.as_str(), m).unwrap();
            let client = co.connect(server.local_addr()).unwrap();
            let sum: i64 = client.call("add", (2, 40)).unwrap();
            assert_eq!(sum, 42, "{framing}");
            let back: Value = client.call("echo", json!({"k": [1, "two"]})).unwrap();
            assert_eq!(back, json!({"k": [1, "two"]}));
            let nothing: Value = client.call("echo", ()).unwrap();
            assert_eq!(nothing, Value::Null);

            let err = client.call::<_, ()>("refuse", ()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Rpc);
            let rpc = err.rpc_error().unwrap();
            assert_eq!(
                (rpc.code, rpc.data.clone()),
                (42, Some(json!({"why": "test"})))
            );
            assert!(err.to_string().contains("refused on purpose"), "{err}");

            let err = client.call::<_, ()>("nope", ()).unwrap_err();
            assert_eq!(err.rpc_error().unwrap().code, RpcError::METHOD_NOT_FOUND);
            let err = client.call::<_, i64>("add", ("x", 1)).unwrap_err();
            assert_eq!(err.rpc_error().unwrap().code, RpcError::INVALID_PARAMS);
            assert!(
                err.to_string().contains("invalid params for \"add\""),
                "{err}"
            );

            let err = client.call::<_, ()>("boom", ()).unwrap_err();
            assert_eq!(err.rpc_error().unwrap().code, RpcError::INTERNAL_ERROR);
            assert!(
                err.to_string().contains("panicked: boom on purpose"),
                "{err}"
            );
            // The connection and the server go on after the panic.
            assert_eq!(client.call::<_, i64>("add", (1, 1)).unwrap(), 2);

            let err = client.call::<_, String>("add", (1, 1)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
            let err = client.call::<_, Value>("echo", 5).unwrap_err();
            assert!(
                err.to_string().contains("params are an array or an object"),
                "{err}"
            );
            // A notification is run (and answered with nothing: the next
            // reply read is the next call's).
            client.notify("note", ["noted"]).unwrap();
            assert_eq!(noted.recv_timeout(limit()).unwrap(), json!(["noted"]));
            assert_eq!(client.call::<_, i64>("add", (3, 4)).unwrap(), 7);
            server.shutdown();
        }
    });
}

#[test]
fn calls_of_one_client_complete_out_of_order() {
    watchdog(limit(), || {
        for (framing, addr) in every_framing() {
            let (g, open, entered) = gate();
            let mut m = methods(g);
            m.method("open", move |()| {
                open.send(()).unwrap();
                Ok(true)
            });
            let (so, co) = opts(framing);
            let server = so.bind(addr.as_str(), m).unwrap();
            let client = Arc::new(co.connect(server.local_addr()).unwrap());
            let c = Arc::clone(&client);
            let slow = thread::spawn(move || c.call::<_, String>("wait", ()));
            entered.recv().unwrap();
            // `wait` is in its handler; a sequential server would never run
            // this call, which opens the gate `wait` waits at.
            assert!(client.call::<_, bool>("open", ()).unwrap(), "{framing}");
            assert_eq!(slow.join().unwrap().unwrap(), "waited");
            server.shutdown();
        }
    });
}

#[test]
fn many_threads_share_one_client_and_many_clients_share_the_server() {
    watchdog(limit(), || {
        let (g, _open, _entered) = gate();
        let server = ServerOptions::new()
            .bind(format!("pipe:{}", unique_name("rpc-many")), methods(g))
            .unwrap();
        let addr = server.local_addr().clone();
        let clients: Vec<Arc<Client>> = (0..4)
            .map(|_| Arc::new(Client::connect(&addr).unwrap()))
            .collect();
        let mut threads = Vec::new();
        for (ci, client) in clients.iter().enumerate() {
            for t in 0..4i64 {
                let c = Arc::clone(client);
                threads.push(thread::spawn(move || {
                    for i in 0..100i64 {
                        let a = (ci as i64) * 1_000_000 + t * 1000 + i;
                        assert_eq!(c.call::<_, i64>("add", (a, 1)).unwrap(), a + 1);
                    }
                }));
            }
        }
        for t in threads {
            t.join().unwrap();
        }
        server.shutdown();
    });
}

#[test]
fn a_call_times_out_and_the_connection_goes_on() {
    watchdog(limit(), || {
        let (g, open, entered) = gate();
        let server = bind_local("rpc-timeout", methods(g));
        let client = Client::connect(server.local_addr()).unwrap();
        let start = Instant::now();
        let err = client
            .call_timeout::<_, String>("wait", (), Some(Duration::from_millis(300)))
            .unwrap_err();
        let took = start.elapsed();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(err.is_timeout());
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < limit() / 2, "{took:?}");
        entered.recv().unwrap();
        open.send(()).unwrap(); // its late response is dropped
        assert_eq!(client.call::<_, i64>("add", (2, 2)).unwrap(), 4);
        server.shutdown();
    });
}

#[test]
fn every_pending_call_fails_promptly_when_the_server_goes_away() {
    watchdog(limit(), || {
        for framing in [Framing::LengthPrefix, Framing::Message] {
            let addr = format!("pipe:{}", unique_name("rpc-gone"));
            // A raw server: reads three requests, answers none, and closes.
            let (ready_tx, ready_rx) = mpsc::channel();
            let server = {
                let addr = addr.clone();
                thread::spawn(move || {
                    if framing.is_message() {
                        let l = ipckit::ListenerOptions::new()
                            .max_message_size(1 << 20)
                            .bind_message(addr.as_str())
                            .unwrap();
                        ready_tx.send(()).unwrap();
                        let ch = l.accept().unwrap();
                        for _ in 0..3 {
                            ch.recv().unwrap().unwrap();
                        }
                    } else {
                        let l = ipckit::Listener::bind(addr.as_str()).unwrap();
                        ready_tx.send(()).unwrap();
                        let mut f = Framed::new(l.accept().unwrap());
                        for _ in 0..3 {
                            f.recv().unwrap().unwrap();
                        }
                    }
                })
            };
            ready_rx.recv().unwrap();
            let mut co = ClientOptions::new();
            co.framing(framing);
            let client = Arc::new(co.connect(addr.as_str()).unwrap());
            let calls: Vec<_> = (0..3)
                .map(|i| {
                    let c = Arc::clone(&client);
                    thread::spawn(move || {
                        let start = Instant::now();
                        (c.call::<_, Value>("echo", [i]), start.elapsed())
                    })
                })
                .collect();
            server.join().unwrap();
            for call in calls {
                let (result, took) = call.join().unwrap();
                let err = result.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
                assert!(
                    err.to_string().contains("the server closed the connection"),
                    "{err}"
                );
                assert!(took < limit() / 2, "{took:?}");
            }
            let err = client.call::<_, Value>("echo", [9]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
            assert!(client.notify("echo", [9]).is_err());
        }
    });
}

#[test]
fn shutdown_finishes_the_calls_in_flight_and_takes_no_more() {
    watchdog(limit(), || {
        let (g, open, entered) = gate();
        let server = bind_local("rpc-shutdown", methods(g));
        let addr = server.local_addr().clone();
        let client = Arc::new(Client::connect(&addr).unwrap());
        let c = Arc::clone(&client);
        let in_flight = thread::spawn(move || c.call::<_, String>("wait", ()));
        entered.recv().unwrap();
        let stopping = thread::spawn(move || server.shutdown());
        // Shutdown waits for the call in its handler; let it finish.
        thread::sleep(Duration::from_millis(200));
        assert!(
            !stopping.is_finished(),
            "shutdown returned with a call in flight"
        );
        open.send(()).unwrap();
        assert_eq!(in_flight.join().unwrap().unwrap(), "waited");
        stopping.join().unwrap();
        // The connection is closed and nobody accepts any more.
        let err = client.call::<_, i64>("add", (1, 2)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
        let err = Client::connect(&addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    });
}

fn raw_exchange(framed: &mut Framed<Stream>, text: &str) -> Value {
    framed.send(text.as_bytes()).unwrap();
    let reply = framed.recv().unwrap().unwrap();
    serde_json::from_slice(&reply).unwrap()
}

#[test]
fn the_raw_wire_follows_the_specification() {
    watchdog(limit(), || {
        let (g, _open, _entered) = gate();
        let server = bind_local("rpc-raw", methods(g));
        let mut f = Framed::new(Stream::connect(server.local_addr()).unwrap());
        let r = raw_exchange(
            &mut f,
            r#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":"a"}"#,
        );
        assert_eq!(r, json!({"jsonrpc":"2.0","result":3,"id":"a"}));
        let r = raw_exchange(&mut f, "{not json");
        assert_eq!(
            (r["id"].clone(), r["error"]["code"].clone()),
            (Value::Null, json!(-32700))
        );
        let r = raw_exchange(&mut f, "[]");
        assert_eq!(r["error"]["code"], json!(-32600));
        assert!(
            r.is_object(),
            "an empty batch gets one response, not an array"
        );
        let r = raw_exchange(&mut f, r#"{"jsonrpc":"1.0","method":"add","id":5}"#);
        assert_eq!(
            (r["id"].clone(), r["error"]["code"].clone()),
            (json!(5), json!(-32600))
        );
        // A mixed batch: answers for the requests and the invalid entries, none
        // for the notification.
        let r = raw_exchange(
            &mut f,
            r#"[{"jsonrpc":"2.0","method":"add","params":[1,1],"id":1},
                {"jsonrpc":"2.0","method":"echo","params":[0]},
                {"foo":"boo"},
                {"jsonrpc":"2.0","method":"nope","id":2}]"#,
        );
        let arr = r.as_array().unwrap();
        assert_eq!(arr.len(), 3, "{r}");
        let by_id = |id: Value| arr.iter().find(|x| x["id"] == id).cloned().unwrap();
        assert_eq!(by_id(json!(1))["result"], json!(2));
        assert_eq!(by_id(json!(2))["error"]["code"], json!(-32601));
        assert_eq!(by_id(Value::Null)["error"]["code"], json!(-32600));
        // A batch of notifications gets nothing at all: the next reply is the
        // next request's.
        f.send(br#"[{"jsonrpc":"2.0","method":"echo","params":[1]}]"#)
            .unwrap();
        let r = raw_exchange(
            &mut f,
            r#"{"jsonrpc":"2.0","method":"echo","params":[7],"id":3}"#,
        );
        assert_eq!(r, json!({"jsonrpc":"2.0","result":[7],"id":3}));
        server.shutdown();
    });
}

#[test]
fn an_oversized_request_is_refused_and_closes_the_connection() {
    watchdog(limit(), || {
        let (g, _open, _entered) = gate();
        let mut so = ServerOptions::new();
        so.max_frame_size(1000);
        let server = so
            .bind(format!("pipe:{}", unique_name("rpc-big")), methods(g))
            .unwrap();
        let client = Client::connect(server.local_addr()).unwrap();
        let big = "x".repeat(2000);
        let err = client.call::<_, Value>("echo", [big]).unwrap_err();
        // The server's -32600 (id null) fails the calls in flight, or the close does.
        assert!(
            err.to_string()
                .contains("exceeds the maximum message size of 1000 bytes")
                || err.kind() == ErrorKind::Disconnected,
            "{err}"
        );
        let err = client.call::<_, i64>("add", (1, 2)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
        server.shutdown();
    });
}

/// The message framing answers an oversized request with -32600 too, as the
/// other framings do (it closed the connection without a word before).
#[test]
fn an_oversized_request_over_the_message_framing_gets_its_error_response() {
    watchdog(limit(), || {
        let (g, _open, _entered) = gate();
        let mut so = ServerOptions::new();
        so.framing(Framing::Message).max_frame_size(1000);
        let server = so
            .bind(format!("pipe:{}", unique_name("rpc-msg-big")), methods(g))
            .unwrap();
        let channel = ipckit::MessageStream::connect(server.local_addr()).unwrap();
        let big =
            json!({"jsonrpc": "2.0", "method": "echo", "params": ["x".repeat(2000)], "id": 1});
        channel.send(big.to_string().as_bytes()).unwrap();
        let reply = channel.recv().unwrap().expect("the -32600 response");
        let reply: Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(reply["id"], Value::Null, "{reply}");
        assert_eq!(reply["error"]["code"], json!(-32600), "{reply}");
        let msg = reply["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("exceeds the maximum message size of 1000 bytes"),
            "{msg}"
        );
        assert!(msg.contains("closing the connection"), "{msg}");
        // Then the connection ends.
        assert!(
            !matches!(channel.recv(), Ok(Some(_))),
            "more after the refusal"
        );
        server.shutdown();
    });
}

#[test]
fn pythons_extended_length_for_a_frame_over_2_gib_is_refused_clearly() {
    use std::io::Write;
    watchdog(limit(), || {
        let (g, _open, _entered) = gate();
        let server = bind_local("rpc-huge", methods(g));
        let mut s = Stream::connect(server.local_addr()).unwrap();
        // What Python's send_bytes writes before a 3 GiB message: -1, then
        // the 8-byte length. Only the header is sent.
        let mut header = (-1i32).to_be_bytes().to_vec();
        header.extend_from_slice(&(3u64 << 30).to_be_bytes());
        s.write_all(&header).unwrap();
        let mut f = Framed::new(s);
        let reply: Value = serde_json::from_slice(&f.recv().unwrap().unwrap()).unwrap();
        assert_eq!(reply["id"], Value::Null);
        assert_eq!(reply["error"]["code"], json!(-32600));
        let msg = reply["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("{} bytes exceeds", 3u64 << 30)),
            "{msg}"
        );
        // The connection is closed after it (an end, or a broken pipe on Windows).
        assert!(!matches!(f.recv(), Ok(Some(_))), "more after the refusal");
        server.shutdown();
    });
}

#[test]
fn content_length_frames_with_content_type_on_the_raw_wire() {
    use std::io::{Read, Write};
    watchdog(limit(), || {
        let (g, _open, _entered) = gate();
        let mut so = ServerOptions::new();
        so.framing(Framing::ContentLength);
        let server = so
            .bind(format!("pipe:{}", unique_name("rpc-lsp")), methods(g))
            .unwrap();
        let mut s = Stream::connect(server.local_addr()).unwrap();
        let body = br#"{"jsonrpc":"2.0","method":"add","params":[20,22],"id":1}"#;
        let mut frame = format!(
            "Content-Length: {}\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n",
            body.len()
        )
        .into_bytes();
        frame.extend_from_slice(body);
        s.write_all(&frame).unwrap();
        let want = br#"{"id":1,"jsonrpc":"2.0","result":42}"#;
        let head = format!("Content-Length: {}\r\n\r\n", want.len());
        let mut got = vec![0; head.len() + want.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            format!("{head}{}", String::from_utf8_lossy(want))
        );
        // A frame without a length closes the connection.
        s.write_all(b"Content-Type: x\r\n\r\n{}").unwrap();
        // Nothing more comes: the end (or a broken pipe on Windows).
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{rest:?}");
        server.shutdown();
    });
}

#[test]
fn the_authkey_handshake_between_ipckit_peers() {
    watchdog(limit(), || {
        for (framing, digest) in [
            (Framing::LengthPrefix, ChallengeDigest::Sha256),
            (Framing::LengthPrefix, ChallengeDigest::Md5),
            (Framing::Message, ChallengeDigest::Sha256),
            (Framing::ContentLength, ChallengeDigest::Sha256),
        ] {
            let (g, _open, _entered) = gate();
            let (mut so, mut co) = opts(framing);
            so.authkey(b"right key").challenge_digest(digest);
            co.challenge_digest(digest);
            let addr = format!("pipe:{}", unique_name("rpc-auth"));
            let server = so.bind(addr.as_str(), methods(g)).unwrap();
            let good = co
                .clone()
                .authkey(b"right key")
                .connect(addr.as_str())
                .unwrap();
            assert_eq!(
                good.call::<_, i64>("add", (1, 2)).unwrap(),
                3,
                "{framing} {digest:?}"
            );
            let err = co
                .clone()
                .authkey(b"wrong key")
                .connect(addr.as_str())
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
            assert!(err.to_string().contains("authkeys differ"), "{err}");
            // A client without a key gets a challenge instead of answers.
            let none = co.connect(addr.as_str()).unwrap();
            let err = none.call::<_, i64>("add", (1, 2)).unwrap_err();
            assert!(
                matches!(err.kind(), ErrorKind::Protocol | ErrorKind::Disconnected),
                "{err}"
            );
            server.shutdown();
        }
    });
}

#[test]
fn options_that_break_a_rule_are_refused() {
    let mut so = ServerOptions::new();
    so.max_frame_size(0);
    let err = so.bind("pipe:never", Methods::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOption);
    let mut m = Methods::new();
    m.method_async("a", |()| async { Ok(1) });
    let err = ServerOptions::new().bind("pipe:never", m).unwrap_err();
    assert!(
        err.to_string().contains("\"a\" is an async method"),
        "{err}"
    );
    let mut so = ServerOptions::new();
    so.reply_timeout(Duration::ZERO);
    let err = so.bind("pipe:never", Methods::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOption);
    assert!(err.to_string().contains("reply timeout of zero"), "{err}");
    let mut co = ClientOptions::new();
    co.timeout(Duration::ZERO);
    let err = co.connect("pipe:never").unwrap_err();
    assert!(err.to_string().contains("call timeout of zero"), "{err}");
}

/// A compile-time check: the clients are shared between threads and tasks.
#[test]
fn the_clients_are_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Client>();
    shareable::<ipckit_rpc::tokio::Client>();
    shareable::<Server>();
}

#[test]
fn a_reading_call_that_times_out_hands_the_connection_to_the_call_still_waiting() {
    watchdog(limit(), || {
        let (g, open, entered) = gate();
        let server = bind_local("rpc-handover", methods(g));
        let client = Arc::new(Client::connect(server.local_addr()).unwrap());
        // The first call, alone, takes the turn to read; the second waits for
        // a turn behind it.
        let c = Arc::clone(&client);
        let reading = thread::spawn(move || {
            c.call_timeout::<_, String>("wait", (), Some(Duration::from_millis(300)))
        });
        entered.recv().unwrap();
        let c = Arc::clone(&client);
        let waiting = thread::spawn(move || c.call::<_, String>("wait", ()));
        entered.recv().unwrap();
        let err = reading.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        // Both handlers return; the late reply of the first is dropped, the
        // second's reaches its call, read by the call itself now.
        open.send(()).unwrap();
        open.send(()).unwrap();
        assert_eq!(waiting.join().unwrap().unwrap(), "waited");
        assert_eq!(client.call::<_, i64>("add", (2, 2)).unwrap(), 4);
        server.shutdown();
    });
}

#[test]
fn max_concurrent_calls_bounds_the_calls_of_one_connection() {
    watchdog(limit(), || {
        let (g, open, entered) = gate();
        let mut so = ServerOptions::new();
        so.max_concurrent_calls(2);
        let server = so
            .bind(format!("pipe:{}", unique_name("rpc-bound")), methods(g))
            .unwrap();
        let client = Arc::new(Client::connect(server.local_addr()).unwrap());
        let calls: Vec<_> = (0..3)
            .map(|_| {
                let c = Arc::clone(&client);
                thread::spawn(move || c.call::<_, String>("wait", ()))
            })
            .collect();
        entered.recv().unwrap();
        entered.recv().unwrap();
        // Two handlers hold both slots: the third request is not even read
        // (a broken bound lets it in at once; a working one can never).
        assert!(
            entered.recv_timeout(Duration::from_millis(300)).is_err(),
            "a third call ran beside two with max_concurrent_calls(2)"
        );
        open.send(()).unwrap();
        entered.recv().unwrap(); // a slot freed: the third runs
        open.send(()).unwrap();
        open.send(()).unwrap();
        for call in calls {
            assert_eq!(call.join().unwrap().unwrap(), "waited");
        }
        server.shutdown();
    });
}

#[test]
fn an_oversized_content_length_frame_is_reported_once_with_its_peer() {
    use std::io::{Read, Write};
    watchdog(limit(), || {
        let (g, _open, _entered) = gate();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let e = Arc::clone(&errors);
        let mut so = ServerOptions::new();
        so.framing(Framing::ContentLength)
            .max_frame_size(100)
            .on_connection_error(move |err| e.lock().unwrap().push(err.to_string()));
        let server = so
            .bind(format!("pipe:{}", unique_name("rpc-cl-big")), methods(g))
            .unwrap();
        let mut s = Stream::connect(server.local_addr()).unwrap();
        s.write_all(b"Content-Length: 1000\r\n\r\n").unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest); // the -32600, then the end
        server.shutdown();
        let errors = errors.lock().unwrap();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let msg = &errors[0];
        assert!(msg.starts_with("receive from "), "{msg}");
        assert!(msg.contains("1000 bytes exceeds"), "{msg}");
        // The peer is named once ("receive from P from P" before).
        assert_eq!(msg.matches(" from ").count(), 1, "{msg}");
    });
}

/// A client that sends requests but never reads the responses: once one
/// response has waited for the reply timeout, the server reports it, closes
/// that connection, and its shutdown returns (it waited on that send forever
/// before).
#[test]
fn a_client_that_stops_reading_is_closed_after_the_reply_timeout() {
    watchdog(limit(), || {
        let (g, _open, _entered) = gate();
        let (so, errors) = no_reader::options();
        let server = so
            .bind(format!("pipe:{}", unique_name("rpc-noread")), methods(g))
            .unwrap();
        no_reader::flood_and_check(server.local_addr(), limit(), &errors);
        // Another client is still served.
        let client = Client::connect(server.local_addr()).unwrap();
        assert_eq!(client.call::<_, i64>("add", (2, 3)).unwrap(), 5);
        drop(client);
        server.shutdown();
    });
}

/// A server whose socket file was removed (a tmp cleaner, say) cannot be
/// woken by connecting to itself: shutdown still returns, and still closes
/// the connections it has (it waited forever for the accept thread before).
#[cfg(unix)]
#[test]
fn shutdown_returns_when_the_socket_file_is_gone() {
    watchdog(limit(), || {
        let (g, _open, _entered) = gate();
        let path = std::env::temp_dir().join(format!("{}.sock", unique_name("rpc-gone")));
        let server = Server::bind(format!("unix:{}", path.display()), methods(g)).unwrap();
        let client = Client::connect(server.local_addr()).unwrap();
        assert_eq!(client.call::<_, i64>("add", (2, 3)).unwrap(), 5);
        std::fs::remove_file(&path).unwrap();
        server.shutdown();
        let err = client.call::<_, i64>("add", (1, 2)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
    });
}
