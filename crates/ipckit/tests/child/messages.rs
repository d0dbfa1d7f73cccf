//! Messages both ways with a Rust child: bytes, JSON, the async channels.

use std::time::Duration;

use ipckit::ErrorKind;
use ipckit::child::{ChannelOptions, Serialization};
#[cfg(unix)]
use serde_json::{Value, json};

use crate::support::*;
use crate::util::watchdog;

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

            // An async parent and a blocking child.
            let mut cmd = tokio::process::Command::from(child("echo"));
            cmd.kill_on_drop(true);
            let (mut blocking_child, channel) =
                ChannelOptions::new().spawn_tokio(&mut cmd).unwrap();
            channel.send(b"ping").await.unwrap();
            assert_eq!(channel.recv().await.unwrap().as_deref(), Some(&b"ping"[..]));
            drop(channel);
            assert!(blocking_child.wait().await.unwrap().success());
        });
    });
}

/// Node's json serialization on the async face, with Rust peers: an async
/// parent of a blocking child, and a blocking parent of an async child.
#[cfg(unix)]
#[test]
fn async_json_channels_with_a_rust_child() {
    watchdog(limit(60), || {
        runtime().block_on(async {
            let mut cmd = tokio::process::Command::from(child("echo"));
            cmd.kill_on_drop(true);
            let (mut blocking_child, channel) = ChannelOptions::new()
                .serialization(Serialization::Json)
                .spawn_tokio(&mut cmd)
                .unwrap();
            for msg in [&br#"{"a": [1, "x\ny"]}"#[..], b"0", br#""z""#] {
                channel.send(msg).await.unwrap();
                assert_eq!(channel.recv().await.unwrap().as_deref(), Some(msg));
            }
            drop(channel);
            assert!(blocking_child.wait().await.unwrap().success());
        });
        let (mut async_child, channel) = spawn("async_echo", Serialization::Json);
        for v in [json!({ "async": [true, null] }), json!("ü\n")] {
            channel.send_json(&v).unwrap();
            assert_eq!(channel.recv_json::<Value>().unwrap(), Some(v));
        }
        drop(channel);
        assert!(async_child.0.wait().unwrap().success());
    });
}
