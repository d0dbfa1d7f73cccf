//! Python's `multiprocessing.connection` as a live peer (Unix): a Python
//! `Client(..., authkey=...)` calls an ipckit RPC server over a Unix socket,
//! an ipckit client calls a Python `Listener`, and a wrong authkey fails on
//! both sides. The machine's Python (3.11 here) runs its own handshake (the
//! legacy HMAC-MD5 form, and its MD5 answer to ipckit's `{sha256}` challenge);
//! the 3.12 form is played by `tests/python/mp312.py`, the 3.12 rules written
//! out by hand with Python's `hmac`, which insists on `{sha256}` answers.
#![cfg(unix)]

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipckit_rpc::{ChallengeDigest, ClientOptions, ErrorKind, Methods, ServerOptions};
use serde_json::{Value, json};
use util::{unique_name, watchdog};

fn limit() -> Duration {
    Duration::from_secs(30)
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

fn socket_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}.sock", unique_name(tag)))
}

/// A Python child, killed and reaped however the test ends.
struct Python(Option<Child>);

impl Python {
    fn start(name: &str, args: &[&str]) -> Python {
        let child = Command::new("python3")
            .arg(script(name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        Python(Some(child))
    }

    /// The first line of stdout (the child says nothing more until spoken to).
    fn first_line(&mut self) -> String {
        let stdout = self.0.as_mut().and_then(|c| c.stdout.as_mut()).unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    /// Waits for the exit: the exit code, stdout lines, and stderr.
    fn finish(mut self) -> (Option<i32>, Vec<String>, String) {
        let out = self.0.take().unwrap().wait_with_output().unwrap();
        let lines = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        (
            out.status.code(),
            lines,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// SOCKET_PATH AUTHKEY [--modern], as the scripts take them.
fn script_args<'a>(path: &'a Path, key: &'a str, modern: bool) -> Vec<&'a str> {
    let mut args = vec![path.to_str().unwrap(), key];
    if modern {
        args.push("--modern");
    }
    args
}

fn methods() -> Methods {
    let mut m = Methods::new();
    m.method("add", |(a, b): (i64, i64)| Ok(a + b));
    m
}

/// A server on a fresh socket file that records the errors that end connections.
fn server(digest: ChallengeDigest) -> (ipckit_rpc::Server, PathBuf, Arc<Mutex<Vec<String>>>) {
    let path = socket_path("py-rpc");
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = Arc::clone(&errors);
    let mut so = ServerOptions::new();
    so.authkey(b"py secret")
        .challenge_digest(digest)
        .on_connection_error(move |err| e.lock().unwrap().push(err.to_string()));
    let server = so
        .bind(format!("unix:{}", path.display()), methods())
        .unwrap();
    (server, path, errors)
}

fn expect_python_calls(lines: &[String]) {
    let replies: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies[0], json!({"jsonrpc": "2.0", "result": 42, "id": 1}));
    assert_eq!(replies[1]["id"], json!("two"));
    assert_eq!(replies[1]["error"]["code"], json!(-32601));
    // A batch of a request and a notification: one reply, in an array.
    assert_eq!(
        replies[2],
        json!([{"jsonrpc": "2.0", "result": 2, "id": 3}])
    );
}

#[test]
fn a_python_client_calls_an_ipckit_server() {
    watchdog(limit(), || {
        for (digest, modern) in [
            (ChallengeDigest::Sha256, false), // 3.11 answers {sha256} with HMAC-MD5
            (ChallengeDigest::Md5, false),    // the 3.11 form both ways
            (ChallengeDigest::Sha256, true),  // the 3.12 form both ways
        ] {
            let (server, path, errors) = server(digest);
            let args = script_args(&path, "py secret", modern);
            let (code, lines, stderr) = Python::start("mp_client.py", &args).finish();
            assert_eq!(code, Some(0), "{digest:?} modern={modern}: {stderr}");
            expect_python_calls(&lines);
            server.shutdown();
            assert!(
                errors.lock().unwrap().is_empty(),
                "{:?}",
                errors.lock().unwrap()
            );
        }
    });
}

#[test]
fn a_python_client_with_the_wrong_authkey_is_refused_on_both_sides() {
    watchdog(limit(), || {
        for modern in [false, true] {
            let (server, path, errors) = server(ChallengeDigest::Sha256);
            let args = script_args(&path, "not the key", modern);
            let (code, lines, stderr) = Python::start("mp_client.py", &args).finish();
            assert_eq!(code, Some(3), "{stderr}");
            assert!(lines[0].starts_with("AuthenticationError"), "{lines:?}");
            server.shutdown();
            let errors = errors.lock().unwrap();
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].contains("the authkeys differ"), "{errors:?}");
        }
    });
}

#[test]
fn an_ipckit_client_calls_a_python_listener() {
    watchdog(limit(), || {
        for (digest, modern) in [
            (ChallengeDigest::Sha256, false),
            (ChallengeDigest::Md5, false),
            (ChallengeDigest::Sha256, true),
        ] {
            let path = socket_path("py-listener");
            let args = script_args(&path, "py secret", modern);
            let mut py = Python::start("mp_listener.py", &args);
            assert_eq!(py.first_line(), "ready");
            let mut co = ClientOptions::new();
            co.authkey(b"py secret").challenge_digest(digest);
            let client = co.connect(format!("unix:{}", path.display())).unwrap();
            assert_eq!(client.call::<_, i64>("add", (40, 2)).unwrap(), 42);
            let back: Value = client.call("echo", json!({"a": [1, 2]})).unwrap();
            assert_eq!(back, json!({"a": [1, 2]}));
            let err = client.call::<_, ()>("nope", ()).unwrap_err();
            assert_eq!(err.rpc_error().map(|e| e.code), Some(-32601), "{err}");
            drop(client);
            let (code, lines, stderr) = py.finish();
            assert_eq!(code, Some(0), "{stderr}");
            assert_eq!(lines, ["served 3"]);
        }
    });
}

#[test]
fn a_client_without_an_authkey_is_told_that_the_server_wants_one() {
    watchdog(limit(), || {
        let path = socket_path("py-listener-nokey");
        let args = script_args(&path, "py secret", false);
        let mut py = Python::start("mp_listener.py", &args);
        assert_eq!(py.first_line(), "ready");
        let client = ClientOptions::new()
            .connect(format!("unix:{}", path.display()))
            .unwrap();
        let err = client.call::<_, i64>("add", (1, 2)).unwrap_err();
        assert!(err.to_string().contains("asks for an authkey"), "{err}");
        assert!(err.to_string().contains("--authkey"), "{err}");
        drop(client);
        // The listener never served it: its handshake failed (the client hung up
        // on the challenge, or sent a request where the answer belonged).
        let (code, lines, _) = py.finish();
        assert_ne!(code, Some(0), "{lines:?}");
    });
}

#[test]
fn an_ipckit_client_with_the_wrong_authkey_is_refused_on_both_sides() {
    watchdog(limit(), || {
        for modern in [false, true] {
            let path = socket_path("py-listener-bad");
            let args = script_args(&path, "py secret", modern);
            let mut py = Python::start("mp_listener.py", &args);
            assert_eq!(py.first_line(), "ready");
            let mut co = ClientOptions::new();
            co.authkey(b"wrong");
            let err = co.connect(format!("unix:{}", path.display())).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
            assert!(err.to_string().contains("#FAILURE#"), "{err}");
            let (code, lines, stderr) = py.finish();
            assert_eq!(code, Some(3), "{stderr}");
            assert!(
                lines.last().unwrap().contains("digest received was wrong"),
                "{lines:?}"
            );
        }
    });
}
