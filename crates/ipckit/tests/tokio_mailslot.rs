//! The async mailslot receiver (`ipckit::tokio::MailslotReceiver`).
#![cfg(feature = "tokio")]

mod util;

use std::time::Duration;

use ipckit::tokio::MailslotReceiver;
use ipckit::{ErrorKind, ListenerOptions, MailslotSender};
use util::{GroupDir, slow_factor, unique_name, watchdog};

fn limit(secs: u64) -> Duration {
    Duration::from_secs(secs * u64::from(slow_factor()))
}

fn run<F: std::future::Future<Output = ()>>(secs: u64, make: impl FnOnce() -> F + Send + 'static) {
    watchdog(limit(secs), move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("build a tokio runtime")
            .block_on(make());
    });
}

#[test]
fn a_dropped_recv_loses_no_message() {
    run(60, || async {
        let addr = format!("mailslot:{}", unique_name("arecv"));
        let inbox = MailslotReceiver::bind(addr.as_str()).unwrap();
        for _ in 0..5 {
            let lost = tokio::time::timeout(Duration::from_millis(20), inbox.recv()).await;
            assert!(lost.is_err(), "nothing was sent yet");
        }
        let sender = {
            let addr = addr.clone();
            tokio::task::spawn_blocking(move || {
                let out = MailslotSender::connect(addr.as_str()).unwrap();
                for seq in 0..200u32 {
                    out.send(&seq.to_be_bytes()).unwrap();
                }
            })
        };
        let mut seq = 0u32;
        while seq < 200 {
            tokio::select! {
                got = inbox.recv() => {
                    assert_eq!(got.unwrap(), seq.to_be_bytes(), "message {seq}");
                    seq += 1;
                }
                () = tokio::time::sleep(Duration::from_micros(50)) => {}
            }
        }
        sender.await.unwrap();
        assert_eq!(inbox.pending().unwrap().next_size, None);
    });
}

#[test]
fn options_and_groups_work_on_tokio() {
    run(30, || async {
        let addr = format!("mailslot:{}", unique_name("aopts"));
        let blocking = ListenerOptions::new()
            .max_message_size(10)
            .bind_mailslot(addr.as_str())
            .unwrap();
        let inbox = MailslotReceiver::new(blocking).unwrap();
        assert_eq!(inbox.max_message_size(), 10);
        let group = unique_name("agroup");
        let _dir = GroupDir(group.clone());
        let a = MailslotReceiver::join(&group).unwrap();
        let b = MailslotReceiver::join(&group).unwrap();
        let sent = MailslotSender::broadcast(&group, b"all").unwrap();
        assert_eq!(sent.delivered, 2);
        assert_eq!(a.recv().await.unwrap(), b"all");
        assert_eq!(b.recv().await.unwrap(), b"all");
        let out = MailslotSender::connect(addr.as_str()).unwrap();
        // One byte over: Windows refuses it to the sender; elsewhere (and under
        // Wine) the async receive drops it whole with FrameTooLarge.
        let refused = out.send(b"0123456789X").is_err();
        assert!(
            !refused || cfg!(windows),
            "only Windows refuses at the sender"
        );
        out.send(b"0123456789").unwrap();
        if !refused {
            let err = inbox.recv().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::FrameTooLarge, "{err}");
        }
        assert_eq!(inbox.recv().await.unwrap(), b"0123456789");
    });
}
