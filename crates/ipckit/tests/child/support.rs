//! What the child-channel tests share: this program re-run as a child in a
//! role, the guards that kill and reap children on every path, and checks
//! several features make.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use ipckit::child::{ChannelOptions, ChildChannel, Serialization};
use serde_json::Value;
use serde_json::json;

use crate::util::slow_factor;

pub(crate) const ROLE: &str = "IPCKIT_TEST_ROLE";

pub(crate) fn limit(secs: u64) -> Duration {
    Duration::from_secs(secs * u64::from(slow_factor()))
}

/// This test program, to be run as a child in `role`.
pub(crate) fn child(role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(CHILD_ARGS)
        .env(ROLE, role)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// What the `wait_end` role says first: `ready`, as a JSON string on a JSON
/// channel.
pub(crate) fn ready(serialization: Serialization) -> &'static [u8] {
    match serialization {
        Serialization::Json => br#""ready""#,
        _ => b"ready",
    }
}

/// The test harness's arguments that run `child_process_entry` alone.
pub(crate) const CHILD_ARGS: [&str; 5] = [
    "child_process_entry",
    "--exact",
    "--ignored",
    "--nocapture",
    "--quiet",
];

pub(crate) const BIG: usize = 32 << 20;
/// The size of the messages that fill the socket ahead of a big one.
#[cfg(unix)]
pub(crate) const FILL: usize = 4096;

pub(crate) fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Kills the child on every path out of a test.
pub(crate) struct Reaper(pub(crate) Child);

impl Reaper {
    /// A reaper that the test's own thread keeps, so the child is killed even
    /// when the watchdog gives up on the watched thread.
    pub(crate) fn shared(child: Child) -> (std::sync::Arc<std::sync::Mutex<Reaper>>, KillOnDrop) {
        let shared = std::sync::Arc::new(std::sync::Mutex::new(Reaper(child)));
        (std::sync::Arc::clone(&shared), KillOnDrop(shared))
    }

    pub(crate) fn kill_and_wait(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

/// Kills and reaps a shared child when dropped, whoever else still holds it.
pub(crate) struct KillOnDrop(pub(crate) std::sync::Arc<std::sync::Mutex<Reaper>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let mut reaper = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let _ = reaper.0.kill();
        let _ = reaper.0.wait();
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The next line of `out` that starts with `prefix` (other lines are the test
/// harness's), or `None` at the end.
pub(crate) fn line_with(out: &mut BufReader<ChildStdout>, prefix: &str) -> Option<String> {
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            return None;
        }
        if line.starts_with(prefix) {
            return Some(line.trim_end().to_owned());
        }
    }
}

pub(crate) fn spawn(role: &str, serialization: Serialization) -> (Reaper, ChildChannel) {
    let (child, mut channel) = ChannelOptions::new()
        .serialization(serialization)
        .spawn(&mut child(role))
        .unwrap();
    channel.set_read_timeout(Some(limit(30))).unwrap();
    (Reaper(child), channel)
}

/// Checks `tests/node/child_echo.js` on `channel`: its hello names the
/// child's pid, and every kind of JSON value comes back, a 300 KB one too.
pub(crate) fn node_echoes(channel: &ChildChannel, child: &Child) {
    let hello: Value = channel.recv_json().unwrap().unwrap();
    check_node_hello(&hello, child.id());
    let values = node_values();
    for v in &values {
        channel.send_json(v).unwrap();
    }
    for v in &values {
        let back: Value = channel.recv_json().unwrap().unwrap();
        assert_eq!(back, json!({ "echo": v }));
    }
}

/// A tokio parent (`spawn_tokio`, json) of the Node child `cmd` runs
/// (`tests/node/child_echo.js`): [`node_echoes_async`], then the channel is
/// dropped, and Node, seeing 'disconnect' with nothing else to do, exits 0.
pub(crate) async fn tokio_parent_of_node(mut cmd: tokio::process::Command, timeout: Duration) {
    cmd.kill_on_drop(true);
    let (mut child, mut channel) = ChannelOptions::new()
        .serialization(Serialization::Json)
        .spawn_tokio(&mut cmd)
        .unwrap();
    channel.set_read_timeout(Some(timeout)).unwrap();
    node_echoes_async(&channel, child.id().unwrap()).await;
    drop(channel);
    assert!(child.wait().await.unwrap().success());
}

/// `node_echoes` through an async channel (a tokio parent of the Node child);
/// and a receive dropped while nothing is on its way (Node answers only what
/// it is sent) loses nothing: the next one returns the first echo. Not JSON
/// is refused before anything is sent.
async fn node_echoes_async(channel: &ipckit::tokio::child::ChildChannel, pid: u32) {
    let parse = |msg: Option<Vec<u8>>| -> Value { serde_json::from_slice(&msg.unwrap()).unwrap() };
    check_node_hello(&parse(channel.recv().await.unwrap()), pid);
    let pending = tokio::time::timeout(Duration::from_millis(100), channel.recv()).await;
    assert!(pending.is_err(), "Node sent something unasked: {pending:?}");
    let err = channel.send(b"not json").await.unwrap_err();
    assert_eq!(err.kind(), ipckit::ErrorKind::Protocol, "{err}");
    let values = node_values();
    for v in &values {
        channel.send(&serde_json::to_vec(v).unwrap()).await.unwrap();
    }
    for v in &values {
        assert_eq!(parse(channel.recv().await.unwrap()), json!({ "echo": v }));
    }
}

fn check_node_hello(hello: &Value, pid: u32) {
    assert_eq!(hello["ready"], json!(true));
    assert_eq!(hello["pid"], json!(pid));
}

/// What the Node echo tests send: objects, a string with a newline, an empty
/// array, and a 300 KB value.
fn node_values() -> [Value; 4] {
    [
        json!({ "hello": "node", "list": [1, 2.5, null, false] }),
        json!("line one\nline two \"quoted\" 🦀"),
        json!([]),
        json!({ "big": "q".repeat(300_000) }),
    ]
}

/// A tokio runtime for a test's async part (two workers: the blocking pool
/// serves json channels beside them).
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
