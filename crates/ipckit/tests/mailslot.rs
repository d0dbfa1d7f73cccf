//! Mailslots through the public API: Windows mailslots, Unix datagram sockets.

mod util;

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use ipckit::{ErrorKind, ListenerOptions, MailslotReceiver, MailslotSender};
use util::{slow_factor, unique_name, watchdog};

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
        // Forever: until a message comes.
        let sender = {
            let addr = addr.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(50));
                MailslotSender::connect(addr.as_str())
                    .unwrap()
                    .send(b"late")
                    .unwrap();
            })
        };
        assert_eq!(inbox.recv().unwrap(), b"late");
        sender.join().unwrap();
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
            Ok(()) => false,
            Err(e) if cfg!(windows) => {
                assert!(!e.to_string().is_empty());
                true
            }
            Err(e) => panic!("only Windows can tell the sender: {e}"),
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
        let nobody = MailslotSender::broadcast(&group, b"hello?").unwrap();
        assert_eq!((nobody.delivered, nobody.dead), (0, 0));
        let members: Vec<_> = (0..3)
            .map(|_| MailslotReceiver::join(&group).unwrap())
            .collect();
        let other = MailslotReceiver::join(&unique_name("other")).unwrap();
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
    for bad in ["", "a/b", "a\\b", "nul\0"] {
        let err = MailslotReceiver::join(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidAddress, "{bad:?}: {err}");
        let err = MailslotSender::broadcast(bad, b"x").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidAddress, "{bad:?}: {err}");
    }
}
