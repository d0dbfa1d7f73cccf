//! Mailslots through the public API: Windows mailslots, Unix datagram sockets.

mod util;

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use ipckit::{ErrorKind, ListenerOptions, MailslotReceiver, MailslotSender};
use util::{GroupDir, slow_factor, unique_name, watchdog};

fn limit(secs: u64) -> Duration {
    Duration::from_secs(secs * u64::from(slow_factor()))
}

fn slot(tag: &str) -> String {
    format!("mailslot:{}", unique_name(tag))
}

#[test]
fn four_writers_ten_thousand_messages_each_all_accounted_for() {
    const WRITERS: u32 = 4;
    const EACH: u32 = 10_000;
    watchdog(limit(120), || {
        let addr = slot("many");
        let inbox = MailslotReceiver::bind(addr.as_str()).unwrap();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let addr = addr.clone();
                thread::spawn(move || {
                    let out = MailslotSender::connect(addr.as_str()).unwrap();
                    for seq in 0..EACH {
                        // Sizes vary with the sequence number, empty ones included.
                        let mut msg = format!("{w}:{seq}:").into_bytes();
                        msg.resize(msg.len() + (seq as usize * 7) % 300, b'x');
                        out.send(&msg).unwrap();
                    }
                })
            })
            .collect();
        let mut next: HashMap<u32, u32> = HashMap::new();
        for _ in 0..WRITERS * EACH {
            let msg = inbox.recv_timeout(limit(30)).unwrap();
            let text = String::from_utf8(msg).unwrap();
            let mut parts = text.splitn(3, ':');
            let w: u32 = parts.next().unwrap().parse().unwrap();
            let seq: u32 = parts.next().unwrap().parse().unwrap();
            let pad = parts.next().unwrap();
            assert_eq!(
                pad.len(),
                (seq as usize * 7) % 300,
                "message {w}:{seq} whole"
            );
            let want = next.entry(w).or_insert(0);
            assert_eq!(
                seq, *want,
                "writer {w}'s messages arrive in order, none lost"
            );
            *want += 1;
        }
        for w in writers {
            w.join().unwrap();
        }
        assert!(
            inbox.try_recv().unwrap().is_none(),
            "nothing more than was sent"
        );
        assert_eq!(next.values().sum::<u32>(), WRITERS * EACH);
    });
}

#[test]
fn empty_and_large_messages_arrive_whole() {
    watchdog(limit(30), || {
        let addr = slot("sizes");
        let inbox = MailslotReceiver::bind(addr.as_str()).unwrap();
        let out = MailslotSender::connect(addr.as_str()).unwrap();
        let sizes = [0usize, 1, 4095, 4096, 4097, 65_000, 0, 150_000];
        for (i, &size) in sizes.iter().enumerate() {
            out.send(&vec![i as u8; size]).unwrap();
        }
        for (i, &size) in sizes.iter().enumerate() {
            let msg = inbox.recv_timeout(limit(10)).unwrap();
            assert_eq!(msg, vec![i as u8; size], "message {i} of {size} bytes");
        }
    });
}

#[test]
fn timeouts_poll_wait_and_give_up() {
    watchdog(limit(30), || {
        let addr = slot("timeout");
        let inbox = MailslotReceiver::bind(addr.as_str()).unwrap();
        // Zero: look, do not wait.
        let started = Instant::now();
        let err = inbox.recv_timeout(Duration::ZERO).unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(inbox.try_recv().unwrap().is_none());
        let polled = started.elapsed();
        // A duration: waits that long, then gives up.
        let started = Instant::now();
        let err = inbox.recv_timeout(Duration::from_millis(200)).unwrap_err();
        let waited = started.elapsed();
        assert!(err.is_timeout(), "{err}");
        assert!(
            waited >= Duration::from_millis(200),
            "gave up after {waited:?}"
        );
        assert!(
            polled * 2 < waited,
            "polling ({polled:?}) must not wait like a timeout ({waited:?})"
        );
        // Forever: until a message comes (the sender starts late, so recv
        // must have waited for it).
        let sender = {
            let addr = addr.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(50));
                let out = MailslotSender::connect(addr.as_str()).unwrap();
                let sent_at = Instant::now();
                out.send(b"late").unwrap();
                sent_at
            })
        };
        assert_eq!(inbox.recv().unwrap(), b"late");
        let received_at = Instant::now();
        assert!(
            received_at >= sender.join().unwrap(),
            "recv returned before the send"
        );
    });
}

#[test]
fn pending_reports_the_next_size_and_what_the_os_counts() {
    watchdog(limit(30), || {
        let addr = slot("pending");
        let inbox = MailslotReceiver::bind(addr.as_str()).unwrap();
        let p = inbox.pending().unwrap();
        assert_eq!((p.next_size, p.count), (None, Some(0)), "empty");
        let out = MailslotSender::connect(addr.as_str()).unwrap();
        for size in [5, 7, 9] {
            out.send(&vec![1; size]).unwrap();
        }
        let p = inbox.pending().unwrap();
        assert_eq!(p.next_size, Some(5));
        if cfg!(windows) {
            if util::skip_under_wine(
                "the queued-message count",
                "Wine's GetMailslotInfo does not count queued messages (ipckit reports None)",
            ) {
                assert_eq!(p.count, None, "an unknown count is not made up");
            } else {
                assert_eq!(p.count, Some(3), "GetMailslotInfo counts messages");
            }
        } else {
            assert_eq!(p.count, None, "Unix does not count datagrams");
        }
        assert_eq!(inbox.recv().unwrap().len(), 5);
        assert_eq!(inbox.pending().unwrap().next_size, Some(7));
        inbox.recv().unwrap();
        inbox.recv().unwrap();
        let p = inbox.pending().unwrap();
        assert_eq!((p.next_size, p.count), (None, Some(0)), "drained");
    });
}

#[test]
fn an_oversized_message_is_refused_whole() {
    watchdog(limit(30), || {
        let addr = slot("oversize");
        let inbox = ListenerOptions::new()
            .max_message_size(100)
            .bind_mailslot(addr.as_str())
            .unwrap();
        assert_eq!(inbox.max_message_size(), 100);
        let out = MailslotSender::connect(addr.as_str()).unwrap();
        out.send(&[1; 100]).unwrap();
        let refused_at_sender = match out.send(&[2; 101]) {
            Err(e) => {
                if cfg!(unix) {
                    panic!("only Windows can tell the sender: {e}");
                }
                let text = e.to_string();
                assert!(text.contains("101 bytes") && text.contains(&addr), "{text}");
                true
            }
            Ok(()) if cfg!(windows) => {
                assert!(
                    util::skip_under_wine(
                        "an oversized message refused to the sender",
                        "Wine queues a message over nMaxMessageSize (the receiver drops it)",
                    ),
                    "Windows took a message over the mailslot's nMaxMessageSize"
                );
                false
            }
            Ok(()) => false,
        };
        out.send(&[3; 10]).unwrap();
        assert_eq!(inbox.recv().unwrap(), vec![1; 100]);
        if !refused_at_sender {
            // Unix: the receiver drops it whole and says so.
            let err = inbox.recv().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::FrameTooLarge, "{err}");
            assert!(err.to_string().contains("101 bytes"), "{err}");
            assert!(err.to_string().contains("100 bytes"), "{err}");
        }
        // Nothing of it was delivered; the next message is intact.
        assert_eq!(inbox.recv().unwrap(), vec![3; 10]);
        assert!(inbox.try_recv().unwrap().is_none());
    });
}

#[test]
fn one_receiver_per_name_and_none_is_not_found() {
    let addr = slot("owner");
    let err = MailslotSender::connect(addr.as_str()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let _inbox = MailslotReceiver::bind(addr.as_str()).unwrap();
    let err = MailslotReceiver::bind(addr.as_str()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    let err = MailslotReceiver::bind("pipe:not-a-mailslot").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
}

#[test]
fn a_receiver_that_is_dropped_frees_its_name() {
    let addr = slot("free");
    drop(MailslotReceiver::bind(addr.as_str()).unwrap());
    let err = MailslotSender::connect(addr.as_str()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    MailslotReceiver::bind(addr.as_str()).unwrap();
}

#[test]
fn broadcast_reaches_every_member_and_only_members() {
    watchdog(limit(30), || {
        let group = unique_name("group");
        let _dir = GroupDir(group.clone());
        let nobody = MailslotSender::broadcast(&group, b"hello?").unwrap();
        assert_eq!((nobody.delivered, nobody.dead), (0, 0));
        let members: Vec<_> = (0..3)
            .map(|_| MailslotReceiver::join(&group).unwrap())
            .collect();
        let other_group = unique_name("other");
        let _other_dir = GroupDir(other_group.clone());
        let other = MailslotReceiver::join(&other_group).unwrap();
        let sent = MailslotSender::broadcast(&group, b"to all").unwrap();
        assert_eq!((sent.delivered, sent.dead), (3, 0));
        for m in &members {
            assert_eq!(m.recv_timeout(limit(5)).unwrap(), b"to all");
        }
        assert!(other.try_recv().unwrap().is_none(), "another group");
        // A member that leaves is not a dead member: it is just gone.
        let mut members = members;
        drop(members.pop());
        let sent = MailslotSender::broadcast(&group, b"again").unwrap();
        assert_eq!((sent.delivered, sent.dead), (2, 0));
        for m in &members {
            assert_eq!(m.recv_timeout(limit(5)).unwrap(), b"again");
        }
    });
}

#[test]
fn bad_group_names_are_refused() {
    for bad in [
        "", "a/b", "a\\b", "nul\0", ".", "..", "a:b", "a*", "a?", "a|b", "tab\t",
    ] {
        let err = MailslotReceiver::join(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidAddress, "{bad:?}: {err}");
        let err = MailslotSender::broadcast(bad, b"x").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidAddress, "{bad:?}: {err}");
    }
}

/// The peer process of the tests below, started by [`peer`]; it does nothing
/// in a normal run (and is ignored there).
#[test]
#[ignore = "the peer process of the other mailslot tests, which start it themselves"]
fn mailslot_peer() {
    let Ok(spec) = std::env::var("IPCKIT_MAILSLOT_PEER") else {
        return;
    };
    let (mode, group) = spec.split_once(' ').unwrap();
    assert_eq!(mode, "member", "unknown peer mode");
    // Join, say so, and wait to be killed, never leaving the group.
    let _member = MailslotReceiver::join(group).unwrap();
    let mut stdout = std::io::stdout().lock();
    std::io::Write::write_all(&mut stdout, b"joined\n").unwrap();
    std::io::Write::flush(&mut stdout).unwrap();
    thread::sleep(Duration::from_secs(3600));
}

/// Starts this test program as a member of `group` and waits until it has
/// joined.
fn member_process(group: &str) -> std::process::Child {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "mailslot_peer", "--nocapture"])
        .env("IPCKIT_MAILSLOT_PEER", format!("member {group}"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the member process");
    // libtest prints its own lines first; the member's comes after them.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while line != "joined\n" {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the member process ended before it joined"
        );
    }
    // Keep its stdout open (and drained) until it is killed.
    thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    child
}

/// A member whose process is killed (it cannot leave) is found dead by the
/// next broadcast, removed, and not counted again; the live members get every
/// message.
#[test]
fn a_killed_member_is_removed_from_its_group() {
    watchdog(limit(60), || {
        let group = unique_name("killed");
        let _dir = GroupDir(group.clone());
        let live: Vec<_> = (0..2)
            .map(|_| MailslotReceiver::join(&group).unwrap())
            .collect();
        let mut child = member_process(&group);
        let sent = MailslotSender::broadcast(&group, b"all three").unwrap();
        assert_eq!((sent.delivered, sent.dead), (3, 0));
        child.kill().unwrap();
        child.wait().unwrap();
        let sent = MailslotSender::broadcast(&group, b"after the kill").unwrap();
        assert_eq!((sent.delivered, sent.dead), (2, 1), "{sent:?}");
        let sent = MailslotSender::broadcast(&group, b"again").unwrap();
        assert_eq!(
            (sent.delivered, sent.dead),
            (2, 0),
            "removed once: {sent:?}"
        );
        for m in &live {
            for want in [&b"all three"[..], b"after the kill", b"again"] {
                assert_eq!(m.recv_timeout(limit(5)).unwrap(), want);
            }
        }
    });
}

/// A live member that does not read never stalls a broadcast: on Unix, once
/// its bounded queue is full it is skipped (counted as full) while the others
/// get every message; Windows queues without a bound.
#[test]
fn a_member_that_does_not_read_never_stalls_a_broadcast() {
    watchdog(limit(60), || {
        let group = unique_name("stuck");
        let _dir = GroupDir(group.clone());
        let reader = MailslotReceiver::join(&group).unwrap();
        let _stuck = MailslotReceiver::join(&group).unwrap();
        let mut full = 0;
        let mut skipped = std::collections::BTreeSet::new();
        for seq in 0..200u32 {
            let sent = MailslotSender::broadcast(&group, &seq.to_be_bytes()).unwrap();
            assert_eq!(sent.dead, 0);
            assert_eq!(sent.delivered + sent.full, 2, "{sent:?}");
            assert_eq!(sent.full_members.len(), sent.full, "{sent:?}");
            full += sent.full;
            skipped.extend(sent.full_members);
            assert_eq!(reader.recv_timeout(limit(5)).unwrap(), seq.to_be_bytes());
        }
        if cfg!(windows) {
            assert_eq!(full, 0, "mailslots queue without a bound");
        } else {
            assert!(full > 0, "200 datagrams overflow a Unix datagram queue");
            // Only the member that does not read was skipped, named PID-N.
            assert_eq!(skipped.len(), 1, "{skipped:?}");
            let ours = format!("{}-", std::process::id());
            assert!(skipped.iter().all(|m| m.starts_with(&ours)), "{skipped:?}");
        }
    });
}

/// A receive waiting on one thread does not hold up a poll or `pending` on
/// another: they answer at once.
#[test]
fn a_waiting_recv_does_not_block_a_poll_on_another_thread() {
    watchdog(limit(30), || {
        let addr = slot("shared");
        let inbox = std::sync::Arc::new(MailslotReceiver::bind(addr.as_str()).unwrap());
        let waiter = {
            let inbox = std::sync::Arc::clone(&inbox);
            thread::spawn(move || inbox.recv_timeout(limit(20)))
        };
        // Give the waiter time to start waiting; the checks below hold either
        // way, but only then do they test what they are for.
        thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        assert!(inbox.try_recv().unwrap().is_none());
        assert_eq!(inbox.pending().unwrap().next_size, None);
        let err = inbox.recv_timeout(Duration::from_millis(100)).unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(
            started.elapsed() < limit(5),
            "held up for {:?}",
            started.elapsed()
        );
        MailslotSender::connect(addr.as_str())
            .unwrap()
            .send(b"for the waiter")
            .unwrap();
        assert_eq!(waiter.join().unwrap().unwrap(), b"for the waiter");
    });
}
