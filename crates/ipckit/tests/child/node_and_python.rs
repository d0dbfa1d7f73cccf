//! Node children and a Node parent, and Python writing raw lines (Unix).

use std::io::BufReader;
use std::process::{Command, Stdio};

use ipckit::ErrorKind;
use ipckit::child::{ChannelOptions, ChildChannel, Serialization};
use serde_json::Value;
use serde_json::json;

use crate::support::*;
use crate::util::watchdog;

fn script(name: &str) -> String {
    format!("{}/tests/node/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn python(code: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", code])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    cmd
}

/// `code` run by Python as a child with a JSON channel, reaped on every
/// way out; the channel's receives time out after 30 s (scaled).
fn python_json_child(code: &str) -> (Reaper, ChildChannel) {
    let (child, mut channel) = ChannelOptions::new()
        .serialization(Serialization::Json)
        .spawn(&mut python(code))
        .unwrap();
    channel.set_read_timeout(Some(limit(30))).unwrap();
    (Reaper(child), channel)
}

#[test]
fn a_node_child_round_trips_json() {
    watchdog(limit(60), || {
        let mut cmd = Command::new("node");
        cmd.arg(script("child_echo.js"));
        let (child, mut channel) = ChannelOptions::new()
            .serialization(Serialization::Json)
            .spawn(&mut cmd)
            .unwrap();
        let mut child = Reaper(child);
        channel.set_read_timeout(Some(limit(30))).unwrap();
        node_echoes(&channel, &child.0);
        // Node sees 'disconnect' and, with nothing else to do, exits.
        channel.shutdown_send().unwrap();
        assert_eq!(channel.recv().unwrap(), None);
        assert!(child.0.wait().unwrap().success());
    });
}

/// A tokio parent (`spawn_tokio`) of an unmodified Node child, on Node's json
/// serialization.
#[test]
fn a_tokio_parent_round_trips_json_with_a_node_child() {
    watchdog(limit(60), || {
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(script("child_echo.js"));
        runtime().block_on(tokio_parent_of_node(cmd, limit(30)));
    });
}

/// Node's `child_process.fork` of this program as a blocking child (`echo`)
/// and as a tokio one (`async_echo`, `ipckit::tokio::child::parent_channel`).
#[test]
fn a_node_parent_forks_a_rust_child() {
    watchdog(limit(60), || {
        let exe = std::env::current_exe().unwrap();
        for role in ["echo", "async_echo"] {
            let out = Command::new("node")
                .arg(script("fork_rust.js"))
                .arg(&exe)
                .args(CHILD_ARGS)
                .env(ROLE, role)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.trim() == "ok 5",
                "{role}: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
}

#[test]
fn a_line_that_is_not_json_is_an_error_for_that_message_only() {
    watchdog(limit(60), || {
        let code = "import os; fd = int(os.environ['NODE_CHANNEL_FD']); \
                    os.write(fd, b'not json\\n{\"ok\": 1}\\n\\n[2]\\n')";
        let (_child, channel) = python_json_child(code);
        let err = channel.recv().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(
            err.to_string().contains("not valid JSON") && err.to_string().contains("not json"),
            "{err}"
        );
        assert_eq!(
            channel.recv_json::<Value>().unwrap(),
            Some(json!({ "ok": 1 }))
        );
        // An empty line is not JSON either (Node's JSON.parse refuses it).
        assert_eq!(channel.recv().unwrap_err().kind(), ErrorKind::Protocol);
        assert_eq!(channel.recv_json::<Value>().unwrap(), Some(json!([2])));
        assert_eq!(channel.recv().unwrap(), None);
    });
}

#[test]
fn a_json_child_that_exits_without_reading_ends_the_channel() {
    watchdog(limit(60), || {
        // The child waits until our message is there, leaves it unread,
        // answers and exits: its socket closes with bytes unread.
        let code = "import os, select; fd = int(os.environ['NODE_CHANNEL_FD']); \
                    select.select([fd], [], []); os.write(fd, b'\"hi\"\\n')";
        let (mut child, channel) = python_json_child(code);
        channel.send_json(&json!({ "a": 1 })).unwrap();
        assert!(child.0.wait().unwrap().success());
        assert_eq!(channel.recv_json::<Value>().unwrap(), Some(json!("hi")));
        assert_eq!(channel.recv().unwrap(), None);
    });
}

#[test]
fn a_json_child_that_exits_without_reading_mid_line_is_cut_short() {
    watchdog(limit(60), || {
        let code = "import os, select; fd = int(os.environ['NODE_CHANNEL_FD']); \
                    select.select([fd], [], []); os.write(fd, b'[1]\\n[2, 3')";
        let (mut child, channel) = python_json_child(code);
        channel.send_json(&json!({ "a": 1 })).unwrap();
        assert!(child.0.wait().unwrap().success());
        assert_eq!(channel.recv_json::<Value>().unwrap(), Some(json!([1])));
        let err = channel.recv().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
        assert!(
            err.to_string().contains("in the middle of a message"),
            "{err}"
        );
        assert_eq!(channel.recv().unwrap(), None);
    });
}

#[test]
fn a_json_child_killed_mid_line_is_an_error_then_the_end() {
    watchdog(limit(60), || {
        let code = "import os, sys, time; fd = int(os.environ['NODE_CHANNEL_FD']); \
                    os.write(fd, b'[1]\\n{\"cut\": [1, 2'); print('WROTE', flush=True); \
                    time.sleep(600)";
        let mut cmd = python(code);
        let (child, mut channel) = ChannelOptions::new()
            .serialization(Serialization::Json)
            .spawn(&mut cmd)
            .unwrap();
        let mut child = Reaper(child);
        channel.set_read_timeout(Some(limit(30))).unwrap();
        let mut out = BufReader::new(child.0.stdout.take().unwrap());
        assert_eq!(line_with(&mut out, "WROTE").as_deref(), Some("WROTE"));
        assert_eq!(channel.recv_json::<Value>().unwrap(), Some(json!([1])));
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        let err = channel.recv().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(
            err.to_string().contains("in the middle of a message"),
            "{err}"
        );
        assert_eq!(channel.recv().unwrap(), None);
    });
}
