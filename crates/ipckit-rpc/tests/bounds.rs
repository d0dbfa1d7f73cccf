//! The blocking server against idle, slow and hostile clients: what they cost
//! it (CPU, threads, memory for unfinished frames) stays bounded. The tests
//! of this file measure the whole process, so they take turns.

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
#[cfg(target_os = "linux")]
use std::thread;
use std::time::Duration;
#[cfg(target_os = "linux")]
use std::time::Instant;

use ipckit::{Framed, Stream};
#[cfg(target_os = "linux")]
use ipckit_rpc::Client;
use ipckit_rpc::{ErrorKind, Framing, Methods, ServerOptions};
use serde_json::{Value, json};
use util::{unique_name, watchdog};

fn limit() -> Duration {
    Duration::from_secs(60) * util::slow_factor()
}

/// One test of this file at a time: each measures the process.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn methods() -> Methods {
    let mut m = Methods::new();
    m.method("add", |(a, b): (i64, i64)| Ok(a + b))
        .method("echo", |p: Value| Ok(p));
    m
}

fn request(id: u64, method: &str, params: Value) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
        .to_string()
        .into_bytes()
}

/// The CPU time (user + system) the whole process has used, from
/// `/proc/self/stat` (in clock ticks of 10 ms: `USER_HZ` is 100).
#[cfg(target_os = "linux")]
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15, so 11 and 12 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// All the threads of this process.
#[cfg(target_os = "linux")]
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Raises this process's descriptor limit to its hard limit (a connection
/// takes 4 here: the client's and the server's 3).
#[cfg(target_os = "linux")]
fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    let _ = setrlimit(Resource::Nofile, lim);
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// 1000 idle connections (each made one call first, so its reader waits in
/// the OS) cost the server at most 1 % of a core (it woke each one every
/// 100 ms before: 17 % of a core) and at most `max_concurrent_calls` + 8
/// threads (a thread per connection before: 1000 more). Then `shutdown` ends
/// them all promptly.
#[cfg(target_os = "linux")]
#[test]
fn a_thousand_idle_connections_cost_no_cpu_and_shut_down_promptly() {
    let _turn = serial();
    watchdog(limit(), || {
        const CONNS: usize = 1000;
        if raise_fd_limit() < (CONNS * 4 + 100) as u64 {
            eprintln!("SKIPPED: the descriptor limit is too low for {CONNS} connections");
            return;
        }
        const CALLS: usize = 16;
        let base = threads();
        let server = ServerOptions::new()
            .max_concurrent_calls(CALLS)
            .bind(format!("pipe:{}", unique_name("rpc-idle")), methods())
            .unwrap();
        let mut clients = Vec::new();
        let mut most = 0;
        for i in 0..CONNS {
            let mut f = Framed::new(Stream::connect(server.local_addr()).unwrap());
            f.send(&request(1, "add", json!([i, 1]))).unwrap();
            let reply: Value = serde_json::from_slice(&f.recv().unwrap().unwrap()).unwrap();
            assert_eq!(reply["result"], json!(i + 1));
            clients.push(f);
            most = most.max(threads() - base);
        }
        eprintln!("{CONNS} connections: at most {most} threads more than before the server");
        assert!(
            most <= CALLS + 8,
            "{most} threads for {CONNS} connections and max_concurrent_calls({CALLS})"
        );
        let window = Duration::from_secs(5);
        let before = cpu_time();
        thread::sleep(window);
        let used = cpu_time() - before;
        let share = used.as_secs_f64() / window.as_secs_f64();
        eprintln!(
            "{CONNS} idle connections: {used:?} of CPU in {window:?} ({:.2} % of a core)",
            share * 100.0
        );
        assert!(
            share <= 0.01,
            "{CONNS} idle connections cost {:.2} % of a core (at most 1 %)",
            share * 100.0
        );
        let start = Instant::now();
        server.shutdown();
        let took = start.elapsed();
        eprintln!("shutdown with {CONNS} idle connections: {took:?}");
        assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
        // Every connection was closed.
        for f in &mut clients {
            assert!(!matches!(f.recv(), Ok(Some(_))));
        }
    });
}

/// Clients that send requests and never read the responses: the server's
/// threads stay within `max_concurrent_calls` + 8, however many such clients
/// there are (a thread per connection and one stuck sending to each before:
/// 64 clients made 132; 3103 seen before that); and other clients are served
/// meanwhile, without waiting for the reply timeout.
#[cfg(target_os = "linux")]
#[test]
fn non_reading_clients_do_not_multiply_the_servers_threads() {
    let _turn = serial();
    watchdog(limit(), || {
        const CLIENTS: usize = 64;
        const CALLS: usize = 4;
        let reply_timeout = Duration::from_secs(30);
        let base = threads();
        let mut so = ServerOptions::new();
        so.max_concurrent_calls(CALLS).reply_timeout(reply_timeout);
        let mut m = methods();
        m.method("big", |(n,): (usize,)| Ok("x".repeat(n)));
        let server = so
            .bind(format!("pipe:{}", unique_name("rpc-threads")), m)
            .unwrap();
        let mut clients = Vec::new();
        let (mut sent, mut most) = (0, 0);
        for _ in 0..CLIENTS {
            let mut f = Framed::new(Stream::connect(server.local_addr()).unwrap());
            f.get_mut()
                .set_write_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            // Small requests for large responses, until the buffers are full
            // and the server reads no more.
            while f.send(&request(1, "big", json!([256 * 1024]))).is_ok() {
                sent += 1;
            }
            clients.push(f);
            most = most.max(threads() - base);
        }
        eprintln!(
            "{CLIENTS} non-reading clients sent {sent} requests: at most {most} threads more than before the server"
        );
        assert!(
            sent > CLIENTS * CALLS,
            "the clients sent only {sent} requests"
        );
        assert!(
            most <= CALLS + 8,
            "{most} threads for max_concurrent_calls({CALLS}) and {CLIENTS} clients"
        );
        // Another client is served now, not after the reply timeout.
        let started = Instant::now();
        let client = Client::connect(server.local_addr()).unwrap();
        assert_eq!(client.call::<_, i64>("add", (2, 3)).unwrap(), 5);
        let took = started.elapsed();
        assert!(took < reply_timeout / 4, "another client waited {took:?}");
        drop(clients);
        drop(client);
        let started = Instant::now();
        server.shutdown();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    });
}

/// The body of a JSON-RPC `echo` request of exactly `len` bytes.
fn echo_body(len: usize) -> Vec<u8> {
    let empty = request(7, "echo", json!([""]));
    let pad = len - empty.len();
    let body = request(7, "echo", json!(["x".repeat(pad)]));
    assert_eq!(body.len(), len);
    body
}

/// The 4-byte length prefix for `len` bytes.
fn prefix(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap().to_be_bytes()
}

/// A server of either face.
enum Face {
    Blocking(ipckit_rpc::Server),
    Async(tokio::runtime::Runtime, ipckit_rpc::tokio::Server),
}

impl Face {
    fn bind(blocking: bool, so: &ServerOptions, addr: &str, m: Methods) -> Face {
        if blocking {
            return Face::Blocking(so.bind(addr, m).unwrap());
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(async { so.serve_tokio(addr, m) }).unwrap();
        Face::Async(rt, server)
    }

    fn local_addr(&self) -> &ipckit::Address {
        match self {
            Face::Blocking(s) => s.local_addr(),
            Face::Async(_, s) => s.local_addr(),
        }
    }

    fn shutdown(self) {
        match self {
            Face::Blocking(s) => s.shutdown(),
            Face::Async(rt, s) => rt.block_on(s.shutdown()),
        }
    }
}

/// Two clients announce frames of 3.5 MiB and send 3 MiB of each, under a cap
/// of 4 MiB on what the server buffers for unfinished frames: the one that
/// would take it over is answered -32600 (naming the cap), reported and
/// closed; the other finishes its frame and gets its answer, and other
/// clients are served. (Without the cap both were held, as far as 64 MiB
/// each.)
#[test]
fn unfinished_frames_are_capped_server_wide() {
    let _turn = serial();
    let name = format!("pipe:{}", unique_name("rpc-cap"));
    capped(true, &name, Framing::LengthPrefix);
}

/// The same cap on the async server (it held every unfinished frame before).
#[test]
fn unfinished_frames_are_capped_server_wide_async() {
    let _turn = serial();
    let name = format!("pipe:{}", unique_name("rpc-cap-async"));
    capped(false, &name, Framing::LengthPrefix);
}

/// The same cap for the message framing over `tcp:`, where a message is a
/// length-prefixed frame on a byte stream, on both servers (neither metered
/// it before).
#[test]
fn unfinished_messages_over_tcp_are_capped_server_wide() {
    let _turn = serial();
    capped(true, "tcp:127.0.0.1:0", Framing::Message);
    capped(false, "tcp:127.0.0.1:0", Framing::Message);
}

fn capped(blocking: bool, addr: &str, framing: Framing) {
    let addr = addr.to_owned();
    watchdog(limit(), move || {
        const MIB: usize = 1 << 20;
        let (len, first) = (7 * MIB / 2, 3 * MIB);
        let (tx, errors) = mpsc::channel();
        let tx = Mutex::new(tx);
        let mut so = ServerOptions::new();
        so.max_buffered_bytes(4 * MIB)
            .framing(framing)
            .on_connection_error(move |e| {
                let _ = tx.lock().unwrap().send((e.kind(), e.to_string()));
            });
        let server = Face::bind(blocking, &so, &addr, methods());
        let body = Arc::new(echo_body(len));
        let mut streams: Vec<Stream> = (0..2)
            .map(|_| Stream::connect(server.local_addr()).unwrap())
            .collect();
        for s in &mut streams {
            // The second is cut off part-way when refused: its write fails.
            let _ = s
                .write_all(&prefix(len))
                .and_then(|()| s.write_all(&body[..first]));
        }
        // Over 4 MiB was sent in all, and all but what the OS buffers was
        // read: one connection was refused.
        let (kind, msg) = errors.recv_timeout(limit()).unwrap();
        assert_eq!(kind, ErrorKind::FrameTooLarge, "{msg}");
        assert!(msg.contains("max_buffered_bytes"), "{msg}");
        for s in &mut streams {
            let _ = s.write_all(&body[first..]);
        }
        let mut refused = 0;
        for s in streams {
            let reply: Value = match Framed::new(s).recv() {
                Ok(Some(reply)) => serde_json::from_slice(&reply).unwrap(),
                other => panic!("no answer: {other:?}"),
            };
            if reply.get("error").is_some() {
                refused += 1;
                assert_eq!(reply["error"]["code"], json!(-32600), "{reply}");
                let text = reply["error"]["message"].as_str().unwrap();
                assert!(text.contains("max_buffered_bytes"), "{text}");
            } else {
                let pad = len - request(7, "echo", json!([""])).len();
                assert_eq!(reply["result"][0].as_str().map(str::len), Some(pad));
            }
        }
        assert_eq!(refused, 1, "one of the two is refused, the other served");
        let mut copts = ipckit_rpc::ClientOptions::new();
        copts.framing(framing);
        let client = copts.connect(server.local_addr()).unwrap();
        assert_eq!(client.call::<_, i64>("add", (2, 3)).unwrap(), 5);
        drop(client);
        server.shutdown();
        assert!(errors.try_recv().is_err(), "one error only");
    });
}
