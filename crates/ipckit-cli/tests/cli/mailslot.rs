//! `send` and `recv`: mailslots and broadcast groups.

use std::time::{Duration, Instant};

use crate::support::*;
use crate::util::{self, unique_name, watchdog};

/// `recv --count 4` on a mailslot: a message given as an argument, then the lines
/// of a sender's stdin (an empty line is an empty message, the last line needs no
/// line ending); every one is printed whole, in order, and recv exits 0.
#[test]
fn send_and_recv_over_a_mailslot() {
    let addr = format!("mailslot:{}", unique_name("cli-slot"));
    let kids = Children::new();
    kids.clean_up(&addr);
    let mut inbox = kids.ipckit(&["-v", "recv", "--count", "4", &addr]);
    let mut inbox = watchdog(limit(), move || {
        inbox.receiving();
        inbox
    });
    let (status, _, stderr) = run(&["send", &addr, "from an argument"]);
    assert!(status.success(), "{status}: {stderr}");
    let (status, _, stderr) = run_with_stdin(&["-v", "send", &addr], b"one\n\r\nlast");
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("sent 3 messages"), "{stderr}");
    watchdog(limit(), move || {
        assert_eq!(inbox.stdout_to_end(), b"from an argument\none\n\nlast\n");
        let status = inbox.wait(limit());
        assert!(status.success(), "{status}: {}", inbox.stderr_to_end());
    });
}

/// `recv --timeout`: without --count, quiet for that long is the normal end (exit
/// 0, nothing printed); with --count, it is an error that names the mailslot and
/// the shortfall. Either way it waits about the timeout, not much less or more.
#[test]
fn recv_timeout_ends_quietly_or_fails_with_count() {
    let addr = format!("mailslot:{}", unique_name("cli-quiet"));
    let started = Instant::now();
    let (status, stdout, stderr) = run(&["recv", "--timeout", "300ms", &addr]);
    let waited = started.elapsed();
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stdout.is_empty() && stderr.is_empty(),
        "{stdout:?} {stderr:?}"
    );
    assert!(
        waited >= Duration::from_millis(300),
        "ended after {waited:?}"
    );

    let (status, stdout, stderr) = run(&["recv", "--count", "2", "--timeout", "300ms", &addr]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout:?}");
    assert_one_line_error(&stderr, &[&addr, "within", "received 0 of 2"]);
}

/// Nobody receiving is an error that names the address, before stdin is read; a
/// second receiver of a name is refused; bad arguments are usage errors.
#[test]
fn mailslot_errors_are_clear() {
    let addr = format!("mailslot:{}", unique_name("cli-nobody-slot"));
    let (status, _, stderr) = run_with_stdin(&["send", &addr], b"never sent\n");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_one_line_error(&stderr, &[&addr]);

    let kids = Children::new();
    kids.clean_up(&addr);
    let mut inbox = kids.ipckit(&["-v", "recv", &addr]);
    // Kept until the end: dropping it would close the receiver's stderr, and
    // its second `-v` line (the socket file) would then kill it (EPIPE).
    let _inbox = watchdog(limit(), move || {
        inbox.receiving();
        inbox
    });
    let (status, _, stderr) = run(&["recv", "--timeout", "1s", &addr]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_one_line_error(&stderr, &[&addr, "already"]);

    for (args, needle) in [
        (&["send"][..], "ADDR"),
        (&["send", "ftp:x", "hi"][..], "unknown scheme"),
        (&["recv"][..], "--broadcast"),
        (&["recv", "--count", "0", "mailslot:x"][..], "--count"),
        (
            &["send", "--broadcast", "g", "a", "b"][..],
            "cannot be used with",
        ),
    ] {
        let (status, _, stderr) = run(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// A message over the receiver's --max-size never reaches its stdout: Windows
/// refuses it to the sender, Unix drops it at the receiver with a warning (and
/// under Wine, which does not refuse it to the sender, the receiver drops it
/// too). The next message arrives intact and is the one counted.
#[test]
fn an_oversized_message_is_never_printed() {
    let addr = format!("mailslot:{}", unique_name("cli-big"));
    let kids = Children::new();
    kids.clean_up(&addr);
    let mut inbox = kids.ipckit(&["-v", "recv", "--max-size", "10", "--count", "1", &addr]);
    let mut inbox = watchdog(limit(), move || {
        inbox.receiving();
        inbox
    });
    let (status, _, big_stderr) = run(&["send", &addr, "eleven bytes"]);
    let refused_at_sender = !status.success();
    if refused_at_sender {
        if cfg!(unix) {
            panic!("only Windows refuses it to the sender: {big_stderr}");
        }
        assert_one_line_error(&big_stderr, &[&addr, "12 bytes"]);
    } else if cfg!(windows) {
        assert!(
            util::skip_under_wine(
                "an oversized message refused to the sender",
                "Wine queues a message over nMaxMessageSize (the receiver drops it)",
            ),
            "Windows took a message over the mailslot's nMaxMessageSize"
        );
    }
    let (status, _, stderr) = run(&["send", &addr, "ten bytes!"]);
    assert!(status.success(), "{status}: {stderr}");
    watchdog(limit(), move || {
        assert_eq!(inbox.stdout_to_end(), b"ten bytes!\n");
        let status = inbox.wait(limit());
        let stderr = inbox.stderr_to_end();
        assert!(status.success(), "{status}: {stderr}");
        if !refused_at_sender {
            assert!(stderr.contains("dropped"), "{stderr}");
        }
    });
}

/// `recv --broadcast GROUP` members, one of them killed (it cannot leave the group):
/// `send --broadcast` reaches the three live members, removes the dead one and
/// says so (-v); the next broadcast finds no dead member. Each live member prints
/// both messages and exits after its --count.
#[test]
fn broadcast_reaches_live_members_and_removes_a_dead_one() {
    let group = unique_name("cli-group");
    let kids = Children::new();
    kids.clean_up_group(&group);
    let members: Vec<Proc> = (0..4)
        .map(|_| kids.ipckit(&["-v", "recv", "--broadcast", &group, "--count", "2"]))
        .collect();
    let mut members = watchdog(limit(), move || {
        let mut members = members;
        for m in &mut members {
            m.receiving();
        }
        members
    });
    members.pop().expect("four members").kill();

    let (status, _, stderr) = run(&["-v", "send", "--broadcast", &group, "first"]);
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("delivered to 3 members, 1 dead member removed"),
        "{stderr}"
    );
    let (status, _, stderr) = run_with_stdin(&["-v", "send", "--broadcast", &group], b"second\n");
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("delivered to 3 members, 0 dead members removed"),
        "{stderr}"
    );
    watchdog(limit(), move || {
        for m in &mut members {
            assert_eq!(m.stdout_to_end(), b"first\nsecond\n");
            let status = m.wait(limit());
            assert!(status.success(), "{status}: {}", m.stderr_to_end());
        }
    });
    // Every member has left: the group reaches nobody.
    let (status, _, stderr) = run(&["-v", "send", "--broadcast", &group, "anyone?"]);
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("delivered to 0 members, 0 dead members removed"),
        "{stderr}"
    );
}
