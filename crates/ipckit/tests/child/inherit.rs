//! Finding the channel: what a child inherits (its channel and nothing else),
//! and the clear errors when there is none or it is of the wrong kind.

#[cfg(all(unix, not(target_vendor = "apple")))]
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use ipckit::ErrorKind;
#[cfg(target_os = "linux")]
use ipckit::child::Serialization;
use ipckit::child::{CommandExt, parent_channel};
#[cfg(target_os = "linux")]
use serde_json::Value;

use crate::support::*;
#[cfg(target_os = "linux")]
use crate::util;
use crate::util::watchdog;

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

/// Runs `role` as a child with `vars` set and returns the lines of its stdout.
#[cfg(all(unix, not(target_vendor = "apple")))]
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

// macOS: its message channels are stream sockets, so the "stream" object is
// of the right kind there and this table does not apply (no SOCK_SEQPACKET).
#[cfg(all(unix, not(target_vendor = "apple")))]
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
