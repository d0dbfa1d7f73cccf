//! Async message channels (`ipckit::tokio`): the blocking channels' semantics on
//! tokio, and their cancel safety.
#![cfg(feature = "tokio")]

#[path = "util/tokio.rs"]
mod tokio_util;
mod util;

use std::time::{Duration, Instant};

use ipckit::tokio::{Framed, MessageListener, MessageStream};
use ipckit::{ErrorKind, ListenerOptions};
use tokio::task::JoinHandle;
use tokio_util::run;
use util::{pattern, slow_factor, unique_name, watchdog};

fn limit(secs: u64) -> Duration {
    Duration::from_secs(secs * u64::from(slow_factor()))
}

fn addrs(tag: &str) -> Vec<String> {
    let mut all = vec![
        format!("pipe:{}", unique_name(tag)),
        "tcp:127.0.0.1:0".into(),
    ];
    if cfg!(target_os = "linux") {
        all.push(format!("@{}", unique_name(tag)));
    }
    all
}

/// Echoes one client's messages until it closes; returns how many.
fn echo_once(listener: MessageListener) -> JoinHandle<ipckit::Result<u64>> {
    tokio::spawn(async move {
        let channel = listener.accept().await?;
        let mut n = 0;
        while let Some(msg) = channel.recv().await? {
            channel.send(&msg).await?;
            n += 1;
        }
        Ok(n)
    })
}

#[test]
fn boundaries_are_kept_for_every_size() {
    run(120, || async {
        for addr in addrs("asizes") {
            let listener = MessageListener::bind(addr.as_str()).unwrap();
            let addr = listener.local_addr().to_string();
            let server = echo_once(listener);
            let client = MessageStream::connect(addr.as_str()).await.unwrap();
            let sizes = [4097, 0, 16 << 20, 1, 4096, 1 << 20, 4095, 0];
            for (seq, &size) in sizes.iter().enumerate() {
                let msg = pattern(seq as u64, size);
                client.send(&msg).await.unwrap();
                let back = client.recv().await.unwrap().expect("a reply");
                assert!(back == msg, "{addr}: message {seq} of {size} bytes");
            }
            drop(client);
            assert_eq!(server.await.unwrap().unwrap(), sizes.len() as u64);
        }
    });
}

#[test]
fn many_concurrent_clients() {
    run(120, || async {
        for addr in addrs("amany") {
            let listener = MessageListener::bind(addr.as_str()).unwrap();
            let addr = listener.local_addr().to_string();
            let server = tokio::spawn(async move {
                let mut tasks = Vec::new();
                for _ in 0..16 {
                    let channel = listener.accept().await.unwrap();
                    tasks.push(tokio::spawn(async move {
                        while let Some(m) = channel.recv().await.unwrap() {
                            channel.send(&m).await.unwrap();
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            });
            let mut clients = Vec::new();
            for c in 0..16u64 {
                let addr = addr.clone();
                clients.push(tokio::spawn(async move {
                    let channel = MessageStream::connect(addr.as_str()).await.unwrap();
                    for i in 0..50 {
                        let msg = pattern(c * 1000 + i, ((c * 1000 + i) as usize * 53) % 7000);
                        channel.send(&msg).await.unwrap();
                        assert!(channel.recv().await.unwrap().unwrap() == msg);
                    }
                }));
            }
            for c in clients {
                c.await.unwrap();
            }
            server.await.unwrap();
        }
    });
}

#[test]
fn a_dropped_recv_loses_no_message() {
    run(60, || async {
        for addr in addrs("acancel") {
            let listener = MessageListener::bind(addr.as_str()).unwrap();
            let addr = listener.local_addr().to_string();
            let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(async move {
                let channel = listener.accept().await.unwrap();
                go_rx.await.unwrap();
                for seq in 0..20 {
                    channel.send(&pattern(seq, 100_000)).await.unwrap();
                }
                channel.recv().await.unwrap()
            });
            let client = MessageStream::connect(addr.as_str()).await.unwrap();
            // Receives that are dropped while nothing has arrived...
            for _ in 0..5 {
                let lost = tokio::time::timeout(Duration::from_millis(20), client.recv()).await;
                assert!(lost.is_err(), "{addr}: nothing was sent yet");
            }
            go_tx.send(()).unwrap();
            // ...and receives raced against a short timer while messages arrive.
            let mut seq = 0;
            while seq < 20 {
                tokio::select! {
                    got = client.recv() => {
                        assert!(got.unwrap().unwrap() == pattern(seq, 100_000), "{addr}: {seq}");
                        seq += 1;
                    }
                    () = tokio::time::sleep(Duration::from_micros(50)) => {}
                }
            }
            drop(client);
            assert_eq!(server.await.unwrap(), None, "{addr}");
        }
    });
}

#[test]
fn empty_messages_oversize_and_timeouts() {
    run(60, || async {
        for addr in addrs("amisc") {
            let mut opts = ListenerOptions::new();
            opts.max_message_size(100);
            let listener = opts.bind_message_tokio(addr.as_str()).unwrap();
            let addr = listener.local_addr().to_string();
            let server = tokio::spawn(async move {
                let channel = listener.accept().await.unwrap();
                let mut got = Vec::new();
                let err = loop {
                    match channel.recv().await {
                        Ok(Some(m)) => got.push(m),
                        Ok(None) => panic!("the client did not close"),
                        Err(e) => break e,
                    }
                };
                let later = channel.recv().await.unwrap_err();
                (got, err, later)
            });
            let mut client = MessageStream::connect(addr.as_str()).await.unwrap();
            client
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let started = Instant::now();
            let err = client.recv().await.unwrap_err();
            assert!(err.is_timeout(), "{addr}: {err}");
            assert!(started.elapsed() >= Duration::from_millis(50));
            for m in [&b""[..], b"x", b"", &[5; 100]] {
                client.send(m).await.unwrap();
            }
            client.send(&[6; 101]).await.unwrap();
            let (got, err, later) = server.await.unwrap();
            assert_eq!(
                got,
                vec![vec![], vec![b'x'], vec![], vec![5; 100]],
                "{addr}"
            );
            assert_eq!(err.kind(), ErrorKind::FrameTooLarge, "{addr}: {err}");
            assert!(err.to_string().contains("101 bytes"), "{err}");
            assert_eq!(later.kind(), ErrorKind::Disconnected, "{addr}: {later}");
            client.set_read_timeout(Some(limit(10))).unwrap();
            assert_eq!(client.recv().await.unwrap(), None, "{addr}");
        }
    });
}

#[test]
fn async_framed_talks_to_the_blocking_message_stream_over_tcp() {
    run(30, || async {
        let listener = ipckit::MessageListener::bind("tcp:127.0.0.1:0").unwrap();
        let addr = listener.local_addr().to_string();
        let server = std::thread::spawn(move || {
            let channel = listener.accept().unwrap();
            while let Some(m) = channel.recv().unwrap() {
                channel.send(&m).unwrap();
            }
        });
        let tcp = tokio::net::TcpStream::connect(addr.trim_start_matches("tcp:"))
            .await
            .unwrap();
        let mut framed = Framed::new(tcp);
        for size in [0, 3, 70_000, 2 << 20] {
            framed.send(&pattern(9, size)).await.unwrap();
            assert!(framed.recv().await.unwrap().unwrap() == pattern(9, size));
        }
        drop(framed);
        server.join().unwrap();
    });
}

#[test]
fn dropping_a_channel_with_a_recv_in_flight_ends_it_for_the_peer() {
    run(60, || async {
        for addr in addrs("adropr") {
            let listener = MessageListener::bind(addr.as_str()).unwrap();
            let addr = listener.local_addr().to_string();
            let client = MessageStream::connect(addr.as_str()).await.unwrap();
            let server = listener.accept().await.unwrap();
            // A recv that is still waiting when its future is dropped...
            let waited = tokio::time::timeout(Duration::from_millis(30), client.recv()).await;
            assert!(waited.is_err(), "{addr}: nothing was sent");
            // ...must not keep the channel open once the stream is dropped.
            drop(client);
            let end = tokio::time::timeout(limit(10), server.recv()).await;
            assert_eq!(
                end.expect("the peer saw the end in time").unwrap(),
                None,
                "{addr}"
            );
        }
    });
}

#[test]
fn dropping_a_listener_with_an_accept_in_flight_leaves_nothing_running() {
    watchdog(limit(60), || {
        let addr = format!("pipe:{}", unique_name("adropl"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("build a tokio runtime");
        rt.block_on(async {
            let listener = MessageListener::bind(addr.as_str()).unwrap();
            let waited = tokio::time::timeout(Duration::from_millis(30), listener.accept()).await;
            assert!(waited.is_err(), "no client connected");
        });
        // Dropping the runtime waits for its blocking threads: an accept left
        // waiting there would hang it (the watchdog fails the test then).
        drop(rt);
        // And nobody serves the name any more.
        let err = ipckit::MessageStream::connect(addr.as_str()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    });
}

/// `shm:NAME` on the tokio face, with a blocking peer on the other side each
/// way: the same rendezvous and regions as the blocking face.
#[test]
fn shm_channels_work_with_a_blocking_peer_either_way() {
    run(120, || async {
        let sizes = [0, 1, 4096, 1 << 20, 3 << 20];
        // An async listener, a blocking client (on a thread of its own).
        let addr = format!("shm:{}", unique_name("tshm-l"));
        let listener = MessageListener::bind(addr.as_str()).unwrap();
        let server = echo_once(listener);
        let client = {
            let addr = addr.clone();
            tokio::task::spawn_blocking(move || {
                let client = ipckit::MessageStream::connect(addr.as_str()).unwrap();
                for (seq, &size) in sizes.iter().enumerate() {
                    let msg = pattern(seq as u64, size);
                    client.send(&msg).unwrap();
                    let back = client.recv().unwrap().expect("a reply");
                    assert!(back == msg, "message {seq} of {size} bytes");
                }
            })
        };
        client.await.unwrap();
        assert_eq!(server.await.unwrap().unwrap(), sizes.len() as u64);

        // A blocking listener (on a thread), an async client.
        let addr = format!("shm:{}", unique_name("tshm-c"));
        let listener = ipckit::MessageListener::bind(addr.as_str()).unwrap();
        let server = tokio::task::spawn_blocking(move || {
            let channel = listener.accept().unwrap();
            let mut n = 0u64;
            while let Some(msg) = channel.recv().unwrap() {
                channel.send(&msg).unwrap();
                n += 1;
            }
            n
        });
        let client = MessageStream::connect(addr.as_str()).await.unwrap();
        assert!(
            client.peer_credentials().unwrap().pid.is_some(),
            "from the rendezvous"
        );
        for (seq, &size) in sizes.iter().enumerate() {
            let msg = pattern(seq as u64, size);
            client.send(&msg).await.unwrap();
            let back = client.recv().await.unwrap().expect("a reply");
            assert!(back == msg, "message {seq} of {size} bytes");
        }
        drop(client);
        assert_eq!(server.await.unwrap(), sizes.len() as u64);
    });
}
