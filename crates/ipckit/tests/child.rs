//! Child-process channels with real processes: this test program re-run as the
//! child (`child_process_entry` with `IPCKIT_TEST_ROLE` set), Node children and
//! a Node parent (Linux), and Python writing raw lines (Linux).

mod util;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use ipckit::ErrorKind;
use ipckit::child::{ChannelOptions, ChildChannel, CommandExt, Serialization, parent_channel};
use serde_json::{Value, json};
use util::{slow_factor, watchdog};

const ROLE: &str = "IPCKIT_TEST_ROLE";

fn limit(secs: u64) -> Duration {
    Duration::from_secs(secs * u64::from(slow_factor()))
}

/// Not a test: the entry point of this program when a test re-runs it as a
/// child (`IPCKIT_TEST_ROLE` set). Without the variable it does nothing.
#[test]
fn child_process_entry() {
    if let Ok(role) = std::env::var(ROLE) {
        let code = roles::run(&role);
        std::process::exit(code);
    }
}

mod roles {
    use super::*;

    pub(super) fn run(role: &str) -> i32 {
        match role {
            "echo" => echo(),
            "async_echo" => async_echo(),
            "bye" => {
                let parent = parent_channel().expect("parent channel");
                parent.send(b"bye").unwrap();
                3
            }
            "probe" => {
                match parent_channel() {
                    Ok(_) => println!("PROBE ok"),
                    Err(e) => println!("PROBE {:?} {e}", e.kind()),
                }
                0
            }
            "twice" => {
                let _first = parent_channel().expect("parent channel");
                let second = parent_channel().unwrap_err();
                println!("TWICE {second}");
                0
            }
            "fds" => fds(),
            "wait_end" => {
                let parent = parent_channel().expect("parent channel");
                parent.send(b"ready").unwrap();
                while parent.recv().unwrap().is_some() {}
                println!("CHILD-SAW-END");
                0
            }
            "middle" => {
                let parent = parent_channel().expect("parent channel");
                let (_grandchild, channel) = super::child("wait_end")
                    .stdout(Stdio::inherit())
                    .spawn_with_channel()
                    .unwrap();
                assert_eq!(channel.recv().unwrap().as_deref(), Some(&b"ready"[..]));
                parent.send(b"ready").unwrap();
                // Hold the grandchild's channel until killed.
                while parent.recv().unwrap().is_some() {}
                0
            }
            "big" => {
                let parent = parent_channel().expect("parent channel");
                let big = super::pattern(BIG);
                parent.send(b"start").unwrap();
                // Killed while this is on its way (or before it left).
                let _ = parent.send(&big);
                0
            }
            other => panic!("unknown role {other}"),
        }
    }

    /// Sends every message back until the parent closes the channel.
    fn echo() -> i32 {
        let parent = parent_channel().expect("parent channel");
        let mut msg = Vec::new();
        while parent.recv_into(&mut msg).unwrap() {
            parent.send(&msg).unwrap();
        }
        0
    }

    /// `echo` with the async channel.
    fn async_echo() -> i32 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let parent = ipckit::tokio::child::parent_channel().expect("parent channel");
            while let Some(msg) = parent.recv().await.unwrap() {
                parent.send(&msg).await.unwrap();
            }
        });
        0
    }

    /// Reports this process's descriptors: `[[number, link target], ...]`.
    fn fds() -> i32 {
        let parent = parent_channel().expect("parent channel");
        let names: Vec<String> = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        // The directory's own descriptor is closed by now: its link is gone.
        let fds: Vec<(i32, String)> = names
            .iter()
            .filter_map(|n| {
                let target = std::fs::read_link(format!("/proc/self/fd/{n}")).ok()?;
                Some((n.parse().unwrap(), target.to_string_lossy().into_owned()))
            })
            .collect();
        let token = std::env::var(ipckit::child::CHANNEL_VAR).unwrap();
        parent
            .send_json(&json!({ "fds": fds, "channel": token }))
            .unwrap();
        while parent.recv().unwrap().is_some() {}
        0
    }
}

/// This test program, to be run as a child in `role`.
fn child(role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_process_entry", "--exact", "--nocapture", "--quiet"])
        .env(ROLE, role)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

const BIG: usize = 32 << 20;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Kills the child on every path out of a test.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The next line of `out` that starts with `prefix` (other lines are the test
/// harness's), or `None` at the end.
fn line_with(out: &mut BufReader<ChildStdout>, prefix: &str) -> Option<String> {
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

fn spawn(role: &str, serialization: Serialization) -> (Reaper, ChildChannel) {
    let (child, mut channel) = ChannelOptions::new()
        .serialization(serialization)
        .spawn(&mut child(role))
        .unwrap();
    channel.set_read_timeout(Some(limit(30))).unwrap();
    (Reaper(child), channel)
}

#[test]
fn messages_round_trip_with_a_rust_child() {
    watchdog(limit(60), || {
        let (mut child, channel) = spawn("echo", Serialization::Messages);
        assert_eq!(channel.serialization(), Serialization::Messages);
        assert!(
            channel.peer().starts_with("child process "),
            "{}",
            channel.peer()
        );
        let sizes = [0, 1, 2, 100, 4096, 65_536, 65_537, 300_000, 1 << 20];
        for round in 0..3 {
            for &len in &sizes {
                let msg: Vec<u8> = pattern(len + round).into_iter().skip(round).collect();
                channel.send(&msg).unwrap();
                assert_eq!(channel.recv().unwrap().as_deref(), Some(&msg[..]), "{len}");
            }
        }
        // Many in flight before any is read back, order kept.
        for i in 0..200u32 {
            channel.send(&i.to_le_bytes()).unwrap();
        }
        for i in 0..200u32 {
            assert_eq!(channel.recv().unwrap(), Some(i.to_le_bytes().to_vec()));
        }
        drop(channel);
        // The child sees the end of the channel and exits on its own.
        assert!(child.0.wait().unwrap().success());
    });
}

#[cfg(unix)]
#[test]
fn json_round_trip_with_a_rust_child() {
    watchdog(limit(60), || {
        let (mut child, channel) = spawn("echo", Serialization::Json);
        assert_eq!(channel.serialization(), Serialization::Json);
        let values = [
            json!({ "a": 1, "b": [true, null, "x\ny"] }),
            json!("ünïcödé 🦀"),
            json!(0),
            json!({ "big": "z".repeat(500_000) }),
        ];
        for v in &values {
            channel.send_json(v).unwrap();
            assert_eq!(channel.recv_json::<Value>().unwrap().as_ref(), Some(v));
        }
        // Pretty JSON has newlines between tokens: still one message.
        channel.send(b"{\n  \"pretty\": [1,\n 2]\n}").unwrap();
        assert_eq!(
            channel.recv_json::<Value>().unwrap(),
            Some(json!({ "pretty": [1, 2] }))
        );
        let err = channel.send(b"not json").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        // The refused message sent nothing; the channel goes on.
        channel.send(b"[42]").unwrap();
        assert_eq!(channel.recv().unwrap().as_deref(), Some(&b"[42]"[..]));
        channel.shutdown_send().unwrap();
        assert_eq!(channel.recv().unwrap(), None);
        assert!(child.0.wait().unwrap().success());
    });
}

#[test]
fn the_end_of_the_channel_is_the_child_exiting() {
    watchdog(limit(60), || {
        let (mut child, channel) = spawn("bye", Serialization::Messages);
        assert_eq!(channel.recv().unwrap().as_deref(), Some(&b"bye"[..]));
        assert_eq!(channel.recv().unwrap(), None);
        assert_eq!(child.0.wait().unwrap().code(), Some(3));
        // Sending to a child that has gone is an error, not a hang.
        let err = channel.send(b"anyone?").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
        assert!(err.to_string().contains("child process"), "{err}");
    });
}

#[test]
fn a_child_killed_mid_message_delivers_none_of_it() {
    watchdog(limit(120), || {
        let (mut child, channel) = spawn("big", Serialization::Messages);
        assert_eq!(channel.recv().unwrap().as_deref(), Some(&b"start"[..]));
        // The child is now writing 32 MiB that nobody reads yet.
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        match channel.recv() {
            // It got out whole before the kill: then it is all there.
            Ok(Some(msg)) => {
                assert_eq!(msg.len(), BIG);
                assert!(msg == pattern(BIG), "the message arrived changed");
                assert_eq!(channel.recv().unwrap(), None);
            }
            Ok(None) => {}
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
                assert!(!channel.recv().is_ok_and(|m| m.is_some()));
            }
        }
    });
}

#[test]
fn the_child_sees_the_parent_die_as_the_end() {
    watchdog(limit(60), || {
        // middle (killed) -> grandchild, whose stdout is ours.
        let (middle, channel) = ChannelOptions::new()
            .spawn(child("middle").stdout(Stdio::piped()))
            .unwrap();
        let mut middle = Reaper(middle);
        let mut out = BufReader::new(middle.0.stdout.take().unwrap());
        assert_eq!(channel.recv().unwrap().as_deref(), Some(&b"ready"[..]));
        middle.0.kill().unwrap();
        middle.0.wait().unwrap();
        // The grandchild still has our pipe as stdout; it reports and exits.
        assert_eq!(
            line_with(&mut out, "CHILD-SAW-END").as_deref(),
            Some("CHILD-SAW-END")
        );
    });
}

#[test]
fn a_process_not_started_with_a_channel_gets_a_clear_error() {
    watchdog(limit(60), || {
        let err = parent_channel().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let text = err.to_string();
        assert!(
            text.contains("not started with one") && text.contains("IPCKIT_CHANNEL"),
            "{text}"
        );

        let probe = |cmd: &mut Command| {
            let out = cmd.stdout(Stdio::piped()).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.lines()
                .find(|l| l.starts_with("PROBE ") || l.starts_with("TWICE "))
                .unwrap_or_else(|| panic!("no report in {text:?}"))
                .to_owned()
        };
        let plain = probe(&mut child("probe"));
        assert!(plain.starts_with("PROBE NotFound"), "{plain}");
        let stale = probe(child("probe").env("IPCKIT_CHANNEL", "987"));
        assert!(
            stale.starts_with("PROBE NotFound") && stale.contains("987"),
            "{stale}"
        );
        let junk = probe(child("probe").env("IPCKIT_CHANNEL", "soon"));
        assert!(junk.contains("\"soon\""), "{junk}");
        let advanced = probe(
            child("probe")
                .env("NODE_CHANNEL_FD", "3")
                .env("NODE_CHANNEL_SERIALIZATION_MODE", "advanced"),
        );
        assert!(
            advanced.starts_with("PROBE Unsupported") && advanced.contains("advanced"),
            "{advanced}"
        );

        let (child, _channel) = child("twice")
            .stdout(Stdio::piped())
            .spawn_with_channel()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("TWICE ") && text.contains("already taken"),
            "{text}"
        );
    });
}

#[test]
fn a_command_spawned_again_without_a_channel_passes_none() {
    watchdog(limit(60), || {
        let mut cmd = child("probe");
        cmd.stdout(Stdio::piped());
        let (first, _channel) = cmd.spawn_with_channel().unwrap();
        let first = first.wait_with_output().unwrap();
        assert!(String::from_utf8_lossy(&first.stdout).contains("PROBE ok"));
        let again = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&again.stdout);
        assert!(text.contains("PROBE NotFound"), "{text}");
    });
}

/// Descriptors of this process that are not close-on-exec, by number.
#[cfg(target_os = "linux")]
fn inheritable_fds() -> Vec<i32> {
    const O_CLOEXEC: u32 = 0o2000000;
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let n: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{n}")).ok()?;
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
            let flags = u32::from_str_radix(flags.trim(), 8).ok()?;
            (flags & O_CLOEXEC == 0).then_some(n)
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn the_child_inherits_its_channel_and_nothing_else() {
    watchdog(limit(60), || {
        // Other live channels and endpoints of this process must stay here.
        let (_other, other_channel) = spawn("echo", Serialization::Json);
        let listener = ipckit::MessageListener::bind(format!("@{}", util::unique_name("fd")));
        let before = inheritable_fds();
        let (mut child, channel) = spawn("fds", Serialization::Messages);
        let report: Value = channel.recv_json().unwrap().unwrap();
        let token: i32 = report["channel"].as_str().unwrap().parse().unwrap();
        let fds: Vec<(i32, String)> = serde_json::from_value(report["fds"].clone()).unwrap();
        let numbers: Vec<i32> = fds.iter().map(|(n, _)| *n).collect();
        assert!(numbers.contains(&token), "no channel {token} in {fds:?}");
        for (n, target) in &fds {
            let expected = [0, 1, 2, token].contains(n) || before.contains(n);
            assert!(expected, "the child has descriptor {n} ({target}): {fds:?}");
        }
        // Nothing of ours is there by identity either (our end, the other
        // child's channel).
        let ours: Vec<String> = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|t| t.to_string_lossy().into_owned())
            .filter(|t| t.starts_with("socket:"))
            .collect();
        for (n, target) in &fds {
            assert!(!ours.contains(target), "descriptor {n} is ours: {target}");
        }
        drop((channel, other_channel, listener));
        assert!(child.0.wait().unwrap().success());
    });
}

#[cfg(unix)]
mod node_and_python {
    use super::*;

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
            let hello: Value = channel.recv_json().unwrap().unwrap();
            assert_eq!(hello["ready"], json!(true));
            assert_eq!(hello["pid"], json!(child.0.id()));
            let values = [
                json!({ "hello": "node", "list": [1, 2.5, null, false] }),
                json!("line one\nline two \"quoted\" 🦀"),
                json!([]),
                json!({ "big": "q".repeat(300_000) }),
            ];
            for v in &values {
                channel.send_json(v).unwrap();
            }
            for v in &values {
                let back: Value = channel.recv_json().unwrap().unwrap();
                assert_eq!(back, json!({ "echo": v }));
            }
            // Node sees 'disconnect' and, with nothing else to do, exits.
            channel.shutdown_send().unwrap();
            assert_eq!(channel.recv().unwrap(), None);
            assert!(child.0.wait().unwrap().success());
        });
    }

    #[test]
    fn a_node_parent_forks_a_rust_child() {
        watchdog(limit(60), || {
            let exe = std::env::current_exe().unwrap();
            let out = Command::new("node")
                .arg(script("fork_rust.js"))
                .arg(&exe)
                .args(["child_process_entry", "--exact", "--nocapture", "--quiet"])
                .env(ROLE, "echo")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.trim() == "ok 5",
                "{stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        });
    }

    #[test]
    fn a_line_that_is_not_json_is_an_error_for_that_message_only() {
        watchdog(limit(60), || {
            let code = "import os; fd = int(os.environ['NODE_CHANNEL_FD']); \
                        os.write(fd, b'not json\\n{\"ok\": 1}\\n\\n[2]\\n')";
            let (child, mut channel) = ChannelOptions::new()
                .serialization(Serialization::Json)
                .spawn(&mut python(code))
                .unwrap();
            let _child = Reaper(child);
            channel.set_read_timeout(Some(limit(30))).unwrap();
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
}

#[test]
fn async_channels_round_trip_both_ways() {
    use ipckit::tokio::child::CommandExt as _;
    watchdog(limit(60), || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // An async parent and an async child.
            let mut cmd = tokio::process::Command::from(child("async_echo"));
            cmd.kill_on_drop(true);
            let (mut async_child, mut channel) = cmd.spawn_with_channel().unwrap();
            channel.set_read_timeout(Some(limit(30))).unwrap();
            assert!(channel.peer().starts_with("child process "));
            for len in [0, 1, 1000, 70_000, 1 << 20] {
                let msg = pattern(len);
                channel.send(&msg).await.unwrap();
                assert_eq!(channel.recv().await.unwrap().as_deref(), Some(&msg[..]));
            }
            // A recv cancelled by a timeout loses nothing.
            let pending = tokio::time::timeout(Duration::from_millis(50), channel.recv()).await;
            assert!(pending.is_err(), "nothing was sent, yet a message came");
            channel.send(b"after").await.unwrap();
            assert_eq!(
                channel.recv().await.unwrap().as_deref(),
                Some(&b"after"[..])
            );
            drop(channel);
            assert!(async_child.wait().await.unwrap().success());

            // An async parent and a blocking child; Json is refused clearly.
            let mut cmd = tokio::process::Command::from(child("echo"));
            cmd.kill_on_drop(true);
            let (mut blocking_child, channel) =
                ChannelOptions::new().spawn_tokio(&mut cmd).unwrap();
            channel.send(b"ping").await.unwrap();
            assert_eq!(channel.recv().await.unwrap().as_deref(), Some(&b"ping"[..]));
            drop(channel);
            assert!(blocking_child.wait().await.unwrap().success());
            let err = ChannelOptions::new()
                .serialization(Serialization::Json)
                .spawn_tokio(&mut tokio::process::Command::new("node"))
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsupported);
        });
    });
}
