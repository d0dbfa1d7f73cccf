//! `call` and `serve-demo`: JSON-RPC from the command line, Python's
//! multiprocessing client as a foreign peer (Unix).

use std::io::BufRead;
#[cfg(unix)]
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;
use crate::util::{self, unique_name, watchdog};

/// `ipckit -v serve-demo ARGS... ADDR`, running; returns its address.
fn serve_demo(kids: &Children, args: &[&str], addr: &str) -> String {
    let mut all = vec!["-v", "serve-demo"];
    all.extend_from_slice(args);
    all.push(addr);
    let mut server = kids.ipckit(&all);
    kids.clean_up(addr);
    watchdog(limit(), move || server.listening_on())
}

#[test]
fn call_prints_results_of_the_demo_methods() {
    let kids = Children::new();
    for addr in [
        format!("pipe:{}", unique_name("cli-rpc")),
        "tcp:127.0.0.1:0".to_owned(),
        // A channel of its own per call, through shared memory.
        format!("shm:{}", unique_name("cli-rpc-shm")),
    ] {
        let at = serve_demo(&kids, &[], &addr);
        let (status, stdout, stderr) = run(&["call", &at, "add", "[2, 40]"]);
        assert!(status.success(), "{stderr}");
        assert_eq!(stdout, "42\n");
        let (status, stdout, _) = run(&["call", &at, "echo", r#"{"a": [1, "x"]}"#]);
        assert!(status.success());
        assert_eq!(stdout, "{\"a\":[1,\"x\"]}\n");
        let (status, stdout, _) = run(&["call", &at, "echo"]);
        assert!(status.success());
        assert_eq!(stdout, "null\n");
    }
    // Other framings, chosen on both sides.
    for framing in ["content-length", "message"] {
        let addr = format!("pipe:{}", unique_name("cli-rpc-f"));
        let at = serve_demo(&kids, &["--framing", framing], &addr);
        let (status, stdout, stderr) = run(&["call", "--framing", framing, &at, "add", "[1, 2]"]);
        assert!(status.success(), "{framing}: {stderr}");
        assert_eq!(stdout, "3\n");
    }
}

#[test]
fn a_short_sleep_called_after_a_long_one_returns_first() {
    let kids = Children::new();
    let addr = format!("pipe:{}", unique_name("cli-rpc-sleep"));
    let at = serve_demo(&kids, &[], &addr);
    // Generous: the short call needs well under a second, the long one 3 s
    // (under Wine ten times both).
    let long_ms = 3000 * util::slow_factor();
    let long_arg = format!("[{long_ms}]");
    let mut long = kids.ipckit(&["-v", "call", &at, "sleep", &long_arg]);
    // The long call is connected (and sends its request right after) before
    // the short one starts: a server that served one call at a time would
    // make the short one wait, instead of the short one merely starting first.
    let long = watchdog(limit(), move || {
        let mut line = String::new();
        let stderr = long.stderr.as_mut().expect("stderr is still open");
        stderr.read_line(&mut line).expect("read the call's stderr");
        assert!(line.starts_with("connected to "), "{line:?}");
        long
    });
    let started = Instant::now();
    let (status, stdout, stderr) = run(&["call", &at, "sleep", "[10]"]);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, "10\n");
    assert!(
        started.elapsed() < Duration::from_millis(u64::from(long_ms) * 2 / 3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        long.with_child(|c| c.try_wait().unwrap()).is_none(),
        "the long sleep returned before the short one"
    );
    let mut long = long;
    let out = watchdog(limit(), move || {
        let out = long.stdout_to_end();
        assert!(long.wait(limit()).success());
        out
    });
    assert_eq!(out, format!("{long_ms}\n").into_bytes());
}

#[test]
fn call_errors_exit_1_with_one_line_and_usage_errors_exit_2() {
    let kids = Children::new();
    let addr = format!("pipe:{}", unique_name("cli-rpc-err"));
    let at = serve_demo(&kids, &[], &addr);
    let (status, stdout, stderr) = run(&["call", &at, "nope"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty());
    assert_one_line_error(&stderr, &["\"nope\"", "JSON-RPC error -32601"]);
    let (status, _, stderr) = run(&["call", &at, "add", "[1]"]);
    assert_eq!(status.code(), Some(1));
    assert_one_line_error(&stderr, &["invalid params", "-32602"]);
    let (status, _, stderr) = run(&["call", "--timeout", "300ms", &at, "sleep", "[5000]"]);
    assert_eq!(status.code(), Some(1));
    assert_one_line_error(&stderr, &["no response within 300ms"]);
    let nobody = format!("pipe:{}", unique_name("cli-rpc-nobody"));
    let (status, _, stderr) = run(&["call", &nobody, "add", "[1, 2]"]);
    assert_eq!(status.code(), Some(1));
    assert_one_line_error(&stderr, &[&nobody, "nobody listens there"]);
    for bad in ["[1, 2", "7", "\"text\""] {
        let (status, _, stderr) = run(&["call", &at, "add", bad]);
        assert_eq!(status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("PARAMS_JSON"), "{stderr}");
    }
    let (status, _, stderr) = run(&["call", "--framing", "xml", &at, "add"]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("unknown framing \"xml\""), "{stderr}");
    let (status, _, _) = run(&["call", &at]);
    assert_eq!(status.code(), Some(2));
}

#[test]
fn call_and_serve_demo_with_an_authkey() {
    let kids = Children::new();
    let addr = format!("pipe:{}", unique_name("cli-rpc-key"));
    let at = serve_demo(&kids, &["--authkey", "s3cret"], &addr);
    let (status, stdout, stderr) = run(&["call", "--authkey", "s3cret", &at, "add", "[1, 2]"]);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, "3\n");
    let (status, _, stderr) = run(&["call", "--authkey", "wrong", &at, "add", "[1, 2]"]);
    assert_eq!(status.code(), Some(1));
    assert_one_line_error(&stderr, &["authkey handshake", "#FAILURE#"]);
    let (status, _, stderr) = run(&["call", &at, "add", "[1, 2]"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_one_line_error(&stderr, &["call \"add\""]);
}

/// `call --timeout` bounds the authkey handshake too (it waited a fixed 10 s
/// for it before): against a server that accepts and never answers, the call
/// fails within about the timeout, naming the server.
#[test]
fn call_timeout_bounds_the_authkey_handshake() {
    let addr = format!("pipe:{}", unique_name("cli-rpc-mute"));
    let listener = ipckit::Listener::bind(addr.as_str()).expect("bind");
    let at = listener.local_addr().to_string();
    // Accepts and holds the connection, saying nothing, until the call ends.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let mute = thread::spawn(move || {
        let held = listener.accept();
        let _ = done_rx.recv();
        drop(held);
    });
    let started = Instant::now();
    let (status, stdout, stderr) = run(&[
        "call",
        "--timeout",
        "500ms",
        "--authkey",
        "k",
        &at,
        "add",
        "[1, 2]",
    ]);
    let took = started.elapsed();
    let _ = done_tx.send(());
    mute.join().expect("the mute server");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty());
    assert_one_line_error(
        &stderr,
        &[&at, "authkey handshake", "did not finish within"],
    );
    assert!(
        took < Duration::from_secs(1) * util::slow_factor(),
        "the call took {took:?} with --timeout 500ms"
    );
}

#[cfg(unix)]
#[test]
fn a_python_multiprocessing_client_calls_serve_demo() {
    const CLIENT: &str = r#"
import json, sys
from multiprocessing.connection import Client
conn = Client(sys.argv[1], family="AF_UNIX", authkey=b"py-key")
conn.send_bytes(json.dumps({"jsonrpc": "2.0", "method": "add", "params": [2, 3], "id": 1}).encode())
print(json.loads(conn.recv_bytes())["result"])
"#;
    let path = std::env::temp_dir().join(format!("{}.sock", unique_name("cli-rpc-py")));
    let addr = format!("unix:{}", path.display());
    let kids = Children::new();
    serve_demo(&kids, &["--authkey", "py-key"], &addr);
    let mut python = Command::new("python3");
    python.arg("-c").arg(CLIENT).arg(&path);
    let mut python = kids.spawn(python).expect("start python3");
    watchdog(limit(), move || {
        python.close_stdin();
        let out = String::from_utf8(python.stdout_to_end()).expect("UTF-8");
        let err = python.stderr_to_end();
        assert!(python.wait(limit()).success(), "{err}");
        assert_eq!(out.trim(), "5", "{err}");
    });
}
