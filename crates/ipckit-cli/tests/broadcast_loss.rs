//! `ipckit send --broadcast` to a member that falls behind: a broadcast never
//! waits for a member, so one whose queue is full is skipped and loses the
//! message. The command says so on stderr (how many messages, how many
//! deliveries skipped, to which members) and exits 1, or 0 with
//! `--best-effort`. Unix only: Windows mailslots queue without a bound, so no
//! member is ever skipped there.
#![cfg(unix)]

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

mod common;

use std::io::{BufRead, BufReader};
use std::process::ChildStdout;

use common::{Ipckit, Leftovers, limit, run_with_stdin};
use util::{unique_name, watchdog};

const MESSAGES: u32 = 10_000;

/// Message `i`: 100 bytes, numbered, so that 10000 of them (1 MB) are far more
/// than a member's datagram queue and a pipe (64 KiB) hold together.
fn message(i: u32) -> String {
    format!("message-{i:05}-{}", "x".repeat(86))
}

fn messages(n: u32) -> Vec<u8> {
    (0..n)
        .map(|i| message(i) + "\n")
        .collect::<String>()
        .into_bytes()
}

/// `ipckit recv --broadcast GROUP`, joined; its stdout is a pipe nobody reads
/// until the test says so, so it stops receiving once the pipe is full.
fn slow_member(group: &str) -> Ipckit {
    let mut member = Ipckit::start(&["-v", "recv", "--broadcast", group]);
    member.wait_for_stderr("receiving ");
    member
}

/// The number in `text` right before `word` (" 7269 deliveries,").
#[track_caller]
fn number_before(text: &str, word: &str) -> u64 {
    let at = text
        .find(word)
        .unwrap_or_else(|| panic!("no {word:?} in {text:?}"));
    let digits = text[..at].trim_end();
    let start = digits
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    digits[start..]
        .parse()
        .unwrap_or_else(|_| panic!("no number before {word:?} in {text:?}"))
}

/// Checks the summary line of `send --broadcast GROUP` with `MESSAGES`
/// messages and one member that fell behind; returns (delivered, skipped).
#[track_caller]
fn check_summary(line: &str, group: &str, member_pid: u32) -> (u64, u64) {
    assert!(
        line.starts_with(&format!(
            "ipckit: sent {MESSAGES} messages to group {group}: "
        )),
        "{line:?}"
    );
    let delivered = number_before(line, " deliveries,");
    let skipped = number_before(line, " deliveries skipped to 1 member whose queue was full");
    assert!(
        skipped > 0,
        "1 MB cannot fit in a pipe and a queue: {line:?}"
    );
    assert_eq!(delivered + skipped, u64::from(MESSAGES), "{line:?}");
    assert!(
        line.contains(&format!("(member {member_pid}-0 missed {skipped})")),
        "{line:?}"
    );
    (delivered, skipped)
}

/// Reads the member's stdout: exactly `delivered` messages, in order, and then
/// nothing more (a last broadcast, sent once those are read, comes next).
fn check_member_got(stdout: ChildStdout, delivered: u64, group: &str) {
    let mut lines = BufReader::new(stdout).lines();
    let mut last = None;
    for _ in 0..delivered {
        let line = lines.next().expect("a message").expect("read the member");
        let i: u32 = line[8..13].parse().expect("a numbered message");
        assert_eq!(line, message(i));
        assert!(
            last.is_none_or(|l| l < i),
            "out of order: {i} after {last:?}"
        );
        last = Some(i);
    }
    // Everything queued was printed: the queue is empty, so this one arrives.
    let (status, _, stderr) = run_with_stdin(&["send", "--broadcast", group, "END"], Vec::new());
    assert!(status.success(), "{status}: {stderr}");
    let next = lines.next().expect("a message").expect("read the member");
    assert_eq!(
        next, "END",
        "more messages arrived than were reported delivered"
    );
}

/// Broadcasts `MESSAGES` messages with `send --broadcast GROUP EXTRA...` to a
/// slow member; checks the exit code, the one line on stderr, and that the
/// member got exactly the messages reported delivered. Returns that line.
fn broadcast_to_a_slow_member(tag: &str, extra: &[&str], code: i32) -> String {
    let mut left = Leftovers::new();
    let group = unique_name(tag);
    left.group(&group);
    let mut member = slow_member(&group);
    let mut args = vec!["send", "--broadcast", &group];
    args.extend_from_slice(extra);
    let (status, _, stderr) = run_with_stdin(&args, messages(MESSAGES));
    assert_eq!(status.code(), Some(code), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr:?}");
    let (delivered, _) = check_summary(lines[0], &group, member.pid());

    let stdout = member.stdout.take().expect("the member's stdout");
    watchdog(limit(), move || check_member_got(stdout, delivered, &group));
    stderr
}

#[test]
fn a_member_that_falls_behind_fails_the_broadcast_with_the_counts() {
    let line = broadcast_to_a_slow_member("bc-loss", &[], 1);
    assert!(
        line.contains("lost") && line.contains("--best-effort"),
        "{line:?}"
    );
}

#[test]
fn best_effort_exits_0_and_still_reports_the_counts() {
    broadcast_to_a_slow_member("bc-best", &["--best-effort"], 0);
}

/// No false alarm: a member whose queue holds every message misses none, and
/// the command is silent and exits 0. (Linux queues at most
/// `net.unix.max_dgram_qlen` datagrams per socket, 10 by default; more in one
/// burst could rightly be skipped on a loaded machine.)
#[test]
fn a_member_that_keeps_up_gets_everything_and_nothing_is_reported() {
    const FEW: u32 = 8;
    let mut left = Leftovers::new();
    let group = unique_name("bc-ok");
    left.group(&group);
    let mut member = slow_member(&group);
    let (status, stdout, stderr) = run_with_stdin(&["send", "--broadcast", &group], messages(FEW));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!((stdout.as_str(), stderr.as_str()), ("", ""));

    let out = member.stdout.take().expect("the member's stdout");
    watchdog(limit(), move || {
        check_member_got(out, u64::from(FEW), &group)
    });
}
