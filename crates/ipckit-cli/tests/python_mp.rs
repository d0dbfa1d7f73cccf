//! `ipckit connect --message --authkey` and `ipckit listen --message --authkey`
//! against Python's `multiprocessing.connection` with an authkey, the real
//! module in a real `python3`: the handshake both ways, then messages as
//! `send_bytes`/`recv_bytes` carry them, boundaries kept.
#![cfg(unix)]

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::{Ipckit, limit};
use util::{unique_name, watchdog};

fn socket_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}.sock", unique_name(tag)))
}

/// `python3 -c CODE ARGS...` with stdout piped; killed when dropped.
struct Python(Child);

impl Python {
    fn start(code: &str, args: &[&str]) -> Python {
        let child = Command::new("python3")
            .arg("-c")
            .arg(code)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start python3 (the CLI's Python tests need it)");
        Python(child)
    }

    fn first_line(&mut self) -> String {
        let mut line = String::new();
        BufReader::new(self.0.stdout.as_mut().expect("stdout"))
            .read_line(&mut line)
            .expect("read python's stdout");
        line.trim_end().to_owned()
    }

    /// Waits for the exit; returns (code, rest of stdout, stderr).
    fn finish(mut self) -> (Option<i32>, String, String) {
        let mut out = String::new();
        let mut err = String::new();
        let _ = self
            .0
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out);
        let _ = self
            .0
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err);
        let status = self.0.wait().expect("wait for python3");
        (status.code(), out, err)
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A keyed Listener: receives two messages, answers each upper-cased, one
/// message with a newline in it kept whole, then closes.
const LISTENER: &str = r#"
import sys
from multiprocessing.connection import Listener
path, key = sys.argv[1], sys.argv[2].encode()
with Listener(path, family="AF_UNIX", authkey=key) as listener:
    print("ready", flush=True)
    try:
        conn = listener.accept()
    except Exception as e:
        print(f"refused {type(e).__name__}", flush=True)
        sys.exit(3)
    got = [conn.recv_bytes(), conn.recv_bytes()]
    for m in got:
        conn.send_bytes(m.upper())
    print("got " + repr(got), flush=True)
    conn.close()
"#;

#[test]
fn connect_authkey_talks_to_a_keyed_python_listener() {
    watchdog(limit(), || {
        let path = socket_path("cli-mp-listener");
        let arg = path.display().to_string();
        let mut py = Python::start(LISTENER, &[&arg, "py key"]);
        assert_eq!(py.first_line(), "ready");
        let addr = format!("unix:{arg}");
        let mut client = Ipckit::start(&["connect", "--message", "--authkey", "py key", &addr]);
        let mut stdin = client.stdin.take().expect("stdin");
        stdin.write_all(b"hello\n\n").expect("write stdin");
        drop(stdin);
        let mut out = String::new();
        client
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("read stdout");
        let status = client.wait(limit());
        assert!(status.success(), "{status}: {}", client.stderr_to_end());
        assert_eq!(out, "HELLO\n\n");
        let (code, rest, err) = py.finish();
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(rest.trim_end(), "got [b'hello', b'']");
    });
}

#[test]
fn connect_with_the_wrong_authkey_is_refused_on_both_sides() {
    watchdog(limit(), || {
        let path = socket_path("cli-mp-wrong");
        let arg = path.display().to_string();
        let mut py = Python::start(LISTENER, &[&arg, "py key"]);
        assert_eq!(py.first_line(), "ready");
        let addr = format!("unix:{arg}");
        let mut client = Ipckit::start(&["connect", "-m", "--authkey", "wrong", &addr]);
        drop(client.stdin.take());
        let status = client.wait(limit());
        let stderr = client.stderr_to_end();
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("authkey handshake with"), "{stderr}");
        assert!(stderr.contains("#FAILURE#"), "{stderr}");
        let (code, rest, _) = py.finish();
        assert_eq!(code, Some(3));
        assert_eq!(rest.trim_end(), "refused AuthenticationError");
    });
}

#[test]
fn listen_authkey_accepts_a_keyed_python_client() {
    watchdog(limit(), || {
        let path = socket_path("cli-mp-client");
        let arg = path.display().to_string();
        let addr = format!("unix:{arg}");
        let mut server = Ipckit::start(&["-v", "listen", "--message", "--authkey", "k2", &addr]);
        server.wait_for_stderr("listening on");
        let mut stdin = server.stdin.take().expect("stdin");
        stdin.write_all(b"pong one\n").expect("write stdin");
        drop(stdin);
        let client = r#"
import sys
from multiprocessing.connection import Client
with Client(sys.argv[1], family="AF_UNIX", authkey=sys.argv[2].encode()) as conn:
    conn.send_bytes(b"ping\nwith a newline")
    print(repr(conn.recv_bytes()), flush=True)
"#;
        let py = Python::start(client, &[&arg, "k2"]);
        let (code, out, err) = py.finish();
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(out.trim_end(), "b'pong one'");
        let mut printed = String::new();
        server
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut printed)
            .expect("read stdout");
        let status = server.wait(limit());
        assert!(status.success(), "{status}: {}", server.stderr_to_end());
        assert_eq!(printed, "ping\nwith a newline\n");
        let _ = std::fs::remove_file(&path);
    });
}
