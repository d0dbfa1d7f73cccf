//! Message channels through the public API: named pipes in message mode on
//! Windows, `SOCK_SEQPACKET` on Linux, length-prefixed frames over TCP.

mod util;

use std::thread;
use std::time::{Duration, Instant};

use ipckit::{
    ConnectOptions, ErrorKind, Listener, ListenerOptions, MessageListener, MessageStream,
};
use util::{pattern, slow_factor, unique_name, watchdog};

fn limit(secs: u64) -> Duration {
    Duration::from_secs(secs * u64::from(slow_factor()))
}

/// The addresses every test runs over: the portable name and TCP (port chosen
/// when bound), and on Linux an abstract name too.
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

/// A seeded shuffle (xorshift), so a failing order can be replayed.
fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut v = items.to_vec();
    let mut x = seed | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

/// Echoes each message of one client back until the client closes; returns
/// how many messages it echoed.
fn echo_once(listener: MessageListener) -> thread::JoinHandle<ipckit::Result<u64>> {
    thread::spawn(move || {
        let channel = listener.accept()?;
        let mut n = 0;
        let mut msg = Vec::new();
        while channel.recv_into(&mut msg)? {
            channel.send(&msg)?;
            n += 1;
        }
        Ok(n)
    })
}

const SIZES: [usize; 7] = [0, 1, 4095, 4096, 4097, 1 << 20, 16 << 20];

#[test]
fn boundaries_are_kept_for_every_size_in_random_order() {
    watchdog(limit(120), || {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        for addr in addrs("sizes") {
            let listener = MessageListener::bind(addr.as_str()).unwrap();
            let addr = listener.local_addr().to_string();
            let server = echo_once(listener);
            let client = MessageStream::connect(addr.as_str()).unwrap();
            // Every size twice, in an order that changes from run to run.
            let order = shuffled(&[SIZES, SIZES].concat(), seed);
            eprintln!("{addr}: seed {seed}: sizes {order:?}");
            for (seq, &size) in order.iter().enumerate() {
                let msg = pattern(seq as u64, size);
                client.send(&msg).unwrap();
                let back = client.recv().unwrap().expect("a reply, not the end");
                assert_eq!(back.len(), size, "{addr}: message {seq} of {size} bytes");
                assert!(back == msg, "{addr}: message {seq} of {size} bytes changed");
            }
            drop(client);
            assert_eq!(server.join().unwrap().unwrap(), order.len() as u64);
        }
    });
}

#[test]
fn messages_sent_back_to_back_arrive_whole_and_in_order() {
    watchdog(limit(60), || {
        for addr in addrs("burst") {
            let listener = MessageListener::bind(addr.as_str()).unwrap();
            let addr = listener.local_addr().to_string();
            let sender = thread::spawn(move || {
                let channel = listener.accept().unwrap();
                for seq in 0..300u64 {
                    let size = [0, 1, 7, 4096, 70_000][seq as usize % 5];
                    channel.send(&pattern(seq, size)).unwrap();
                }
            });
            let client = MessageStream::connect(addr.as_str()).unwrap();
            for seq in 0..300u64 {
                let size = [0, 1, 7, 4096, 70_000][seq as usize % 5];
                let got = client.recv().unwrap().expect("a message");
                assert!(got == pattern(seq, size), "{addr}: message {seq}");
            }
            sender.join().unwrap();
            // The server's channel is gone: the end, not an empty message.
            assert_eq!(client.recv().unwrap(), None, "{addr}");
        }
    });
}

#[test]
fn empty_messages_are_messages_and_the_end_is_none() {
    watchdog(limit(30), || {
        for addr in addrs("empty") {
            let listener = MessageListener::bind(addr.as_str()).unwrap();
            let addr = listener.local_addr().to_string();
            let server = thread::spawn(move || {
                let channel = listener.accept().unwrap();
                let mut got = Vec::new();
                while let Some(msg) = channel.recv().unwrap() {
                    got.push(msg);
                }
                got
            });
            let client = MessageStream::connect(addr.as_str()).unwrap();
            let sent: Vec<&[u8]> = vec![b"", b"a", b"", b"", b"last"];
            for msg in &sent {
                client.send(msg).unwrap();
            }
            drop(client);
            assert_eq!(server.join().unwrap(), sent, "{addr}");
        }
    });
}

#[test]
fn many_concurrent_clients_each_get_their_own_messages_back() {
    const CLIENTS: u64 = 16;
    const EACH: u64 = 100;
    watchdog(limit(120), || {
        for addr in addrs("many") {
            let listener = MessageListener::bind(addr.as_str()).unwrap();
            let addr = listener.local_addr().to_string();
            let server = thread::spawn(move || {
                let mut workers = Vec::new();
                for _ in 0..CLIENTS {
                    let channel = listener.accept().unwrap();
                    workers.push(thread::spawn(move || {
                        let mut n = 0u64;
                        while let Some(msg) = channel.recv().unwrap() {
                            channel.send(&msg).unwrap();
                            n += 1;
                        }
                        n
                    }));
                }
                workers.into_iter().map(|w| w.join().unwrap()).sum::<u64>()
            });
            let clients: Vec<_> = (0..CLIENTS)
                .map(|c| {
                    let addr = addr.clone();
                    thread::spawn(move || {
                        let channel = ConnectOptions::new()
                            .timeout(limit(20))
                            .connect_message(addr.as_str())
                            .unwrap();
                        for i in 0..EACH {
                            let seq = c * 1_000_000 + i;
                            let msg = pattern(seq, (seq as usize * 37) % 9000);
                            channel.send(&msg).unwrap();
                            assert!(
                                channel.recv().unwrap().unwrap() == msg,
                                "client {c} msg {i}"
                            );
                        }
                    })
                })
                .collect();
            for c in clients {
                c.join().unwrap();
            }
            assert_eq!(server.join().unwrap(), CLIENTS * EACH, "{addr}");
        }
    });
}

#[test]
fn an_oversized_message_is_refused_whole_and_ends_receiving() {
    watchdog(limit(60), || {
        for addr in addrs("oversize") {
            let mut opts = ListenerOptions::new();
            opts.max_message_size(1000);
            let listener = opts.bind_message(addr.as_str()).unwrap();
            let addr = listener.local_addr().to_string();
            let server = thread::spawn(move || {
                let channel = listener.accept().unwrap();
                assert_eq!(channel.max_message_size(), 1000);
                let first = channel.recv().unwrap();
                let err = channel.recv().unwrap_err();
                let later = channel.recv().unwrap_err();
                // Sending goes on: the receiver can say why it refused.
                let send = channel.send(b"refused");
                (first, err, later, send)
            });
            let client = MessageStream::connect(addr.as_str()).unwrap();
            client.send(&pattern(1, 1000)).unwrap();
            // Over the limit, and over every buffer size involved, or just over.
            let big = if addr.starts_with("tcp:") {
                1001
            } else {
                5 << 20
            };
            client.send(&pattern(2, big)).unwrap();
            let (first, err, later, send) = server.join().unwrap();
            assert_eq!(
                first,
                Some(pattern(1, 1000)),
                "{addr}: the message at the limit"
            );
            assert_eq!(err.kind(), ErrorKind::FrameTooLarge, "{addr}: {err}");
            let text = err.to_string();
            assert!(text.contains(&format!("{big} bytes")), "{addr}: {text}");
            assert!(text.contains("1000 bytes"), "{addr}: {text}");
            assert_eq!(later.kind(), ErrorKind::Disconnected, "{addr}: {later}");
            assert!(later.to_string().contains("closed"), "{addr}: {later}");
            send.unwrap();
            // Then the server dropped its channel: the client gets what it
            // was told, then the end, never a part of the refused message.
            // (Over TCP the rest of the refused frame, unread, makes that
            // close a reset, which may overtake what was told.)
            let tcp = addr.starts_with("tcp:");
            let ends = |got: ipckit::Result<Option<Vec<u8>>>| match got {
                Err(e) if tcp => assert_eq!(e.kind(), ErrorKind::Disconnected, "{addr}: {e}"),
                got => assert_eq!(got.unwrap(), None, "{addr}"),
            };
            match client.recv() {
                Ok(Some(told)) => {
                    assert_eq!(told, b"refused", "{addr}");
                    ends(client.recv());
                }
                got => {
                    assert!(tcp, "{addr}: what the server told is lost: {got:?}");
                    ends(got);
                }
            }
        }
    });
}

/// `shutdown(Read)` on a clone ends a `recv` waiting on another handle, and
/// every later one; sending goes on.
#[test]
fn shutdown_read_on_a_clone_wakes_a_blocked_recv() {
    watchdog(limit(30), || {
        for addr in addrs("shut-rd") {
            // Winsock's shutdown(SD_RECEIVE) does not wake a recv already
            // waiting (seen under Wine): not promised there.
            if cfg!(windows) && addr.starts_with("tcp:") {
                continue;
            }
            let listener = MessageListener::bind(addr.as_str()).unwrap();
            let client = MessageStream::connect(listener.local_addr()).unwrap();
            let server = listener.accept().unwrap();
            let waker = server.try_clone().unwrap();
            let reader = thread::spawn(move || {
                let first = server.recv().unwrap();
                let later = server.recv().unwrap();
                server.send(b"still sends").unwrap();
                (first, later)
            });
            waker.shutdown(std::net::Shutdown::Read).unwrap();
            assert_eq!(reader.join().unwrap(), (None, None), "{addr}");
            assert_eq!(
                client.recv().unwrap(),
                Some(b"still sends".to_vec()),
                "{addr}"
            );
        }
    });
}

#[test]
fn a_client_limit_applies_to_what_the_client_receives() {
    watchdog(limit(30), || {
        for addr in addrs("climit") {
            let listener = MessageListener::bind(addr.as_str()).unwrap();
            let addr = listener.local_addr().to_string();
            let server = thread::spawn(move || {
                let channel = listener.accept().unwrap();
                channel.send(&[1; 64]).unwrap();
                channel.send(&[2; 65]).unwrap();
                // Wait for the client to close, so the messages are not lost to
                // an early close.
                channel.recv()
            });
            let client = ConnectOptions::new()
                .max_message_size(64)
                .connect_message(addr.as_str())
                .unwrap();
            assert_eq!(client.recv().unwrap(), Some(vec![1; 64]));
            let err = client.recv().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::FrameTooLarge, "{addr}: {err}");
            drop(client);
            let _ = server.join().unwrap();
        }
    });
}

#[test]
fn a_zero_maximum_is_an_invalid_option() {
    let err = ListenerOptions::new()
        .max_message_size(0)
        .bind_message(format!("pipe:{}", unique_name("zero")))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOption, "{err}");
    let err = ConnectOptions::new()
        .max_message_size(0)
        .connect_message("pipe:whatever")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOption, "{err}");
}

#[test]
fn a_recv_timeout_loses_nothing() {
    watchdog(limit(30), || {
        for addr in addrs("timeout") {
            let listener = MessageListener::bind(addr.as_str()).unwrap();
            let addr = listener.local_addr().to_string();
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let server = thread::spawn(move || {
                let channel = listener.accept().unwrap();
                go_rx.recv().unwrap();
                channel.send(b"after the timeout").unwrap();
                channel.recv()
            });
            let mut client = MessageStream::connect(addr.as_str()).unwrap();
            let timeout = Duration::from_millis(100);
            client.set_read_timeout(Some(timeout)).unwrap();
            let started = Instant::now();
            let err = client.recv().unwrap_err();
            let took = started.elapsed();
            assert!(err.is_timeout(), "{addr}: {err}");
            assert!(took >= timeout, "{addr}: gave up after {took:?}");
            go_tx.send(()).unwrap();
            client.set_read_timeout(Some(limit(10))).unwrap();
            assert_eq!(
                client.recv().unwrap().as_deref(),
                Some(&b"after the timeout"[..])
            );
            // A deadline in the past fails at once, without touching the channel.
            client.set_read_deadline(Some(Instant::now()));
            assert!(client.recv().unwrap_err().is_timeout());
            drop(client);
            let _ = server.join().unwrap();
        }
    });
}

#[test]
fn one_thread_receives_while_another_sends_on_a_clone() {
    watchdog(limit(60), || {
        for addr in addrs("clone") {
            let listener = MessageListener::bind(addr.as_str()).unwrap();
            let addr = listener.local_addr().to_string();
            let server = echo_once(listener);
            let client = MessageStream::connect(addr.as_str()).unwrap();
            let sender = client.try_clone().unwrap();
            let writer = thread::spawn(move || {
                for seq in 0..500u64 {
                    sender.send(&pattern(seq, seq as usize % 3000)).unwrap();
                }
            });
            for seq in 0..500u64 {
                let got = client.recv().unwrap().unwrap();
                assert!(
                    got == pattern(seq, seq as usize % 3000),
                    "{addr}: message {seq}"
                );
            }
            writer.join().unwrap();
            drop(client);
            assert_eq!(server.join().unwrap().unwrap(), 500);
        }
    });
}

#[test]
fn a_message_client_is_refused_by_a_byte_listener() {
    watchdog(limit(30), || {
        let addr = format!("pipe:{}", unique_name("kind"));
        let _bytes = Listener::bind(addr.as_str()).unwrap();
        let err = MessageStream::connect(addr.as_str()).unwrap_err();
        assert!(err.to_string().contains("byte stream"), "{err}");
    });
}

#[test]
fn a_byte_listener_and_a_message_listener_cannot_share_a_name() {
    let addr = format!("pipe:{}", unique_name("share"));
    let _msgs = MessageListener::bind(addr.as_str()).unwrap();
    // Under Wine too: Wine ignores FILE_FLAG_FIRST_PIPE_INSTANCE, and bind
    // checks for existing instances first.
    let err = Listener::bind(addr.as_str()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
}

#[test]
fn a_peer_that_closes_with_messages_unread_still_delivers_its_own() {
    watchdog(limit(30), || {
        // Not over TCP: a TCP socket closed with unread data resets the
        // connection, and the peer's kernel may drop what it had received.
        for addr in addrs("unread")
            .into_iter()
            .filter(|a| !a.starts_with("tcp:"))
        {
            let listener = MessageListener::bind(addr.as_str()).unwrap();
            let addr = listener.local_addr().to_string();
            let client = MessageStream::connect(addr.as_str()).unwrap();
            let channel = listener.accept().unwrap();
            // The client's messages stay unread when the server closes.
            client.send(b"never read 1").unwrap();
            client.send(b"never read 2").unwrap();
            for seq in 0..3 {
                channel.send(&pattern(seq, 5000)).unwrap();
            }
            drop(channel);
            for seq in 0..3 {
                let got = client.recv().unwrap();
                assert!(got == Some(pattern(seq, 5000)), "{addr}: message {seq}");
            }
            assert_eq!(client.recv().unwrap(), None, "{addr}");
        }
    });
}

/// Twice `net.core.wmem_max` is over the kernel's largest `SOCK_SEQPACKET`
/// record whatever the sysctl says: between ipckit ends such a message goes
/// by memfd, both ways, the client's even when the server has not accepted it
/// yet (no greeting to wait for: the client finds the server process's name).
#[cfg(target_os = "linux")]
#[test]
fn a_message_over_the_kernel_record_limit_goes_whole_between_ipckit_ends() {
    watchdog(limit(60), || {
        let wmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let big = pattern(9, 2 * wmem_max + 1);
        let addr = format!("@{}", unique_name("overlimit"));
        let listener = MessageListener::bind(addr.as_str()).unwrap();
        let client = MessageStream::connect(addr.as_str()).unwrap();
        // Before any accept: without the server's name this would wait for a
        // greeting that cannot come, then fail with FrameTooLarge.
        client.send(&big).unwrap();
        let server = listener.accept().unwrap();
        assert!(server.recv().unwrap().unwrap() == big, "client to server");
        server.send(&big).unwrap();
        assert!(client.recv().unwrap().unwrap() == big, "server to client");
    });
}

/// A shared-memory server that closes a client's rendezvous before it offers
/// a channel (it is stopping, or it turned the client away) is a peer that
/// went away, not one that broke the protocol: `Disconnected`. Here a plain
/// message listener stands on the rendezvous and hangs up on every client.
#[test]
fn a_shm_server_that_hangs_up_before_its_offer_is_disconnected() {
    watchdog(limit(30), || {
        let name = unique_name("shm-hangup");
        let rendezvous = MessageListener::bind(format!("pipe:{name}.shm").as_str()).unwrap();
        let hangs_up = thread::spawn(move || drop(rendezvous.accept().unwrap()));
        let err = MessageStream::connect(format!("shm:{name}").as_str()).unwrap_err();
        hangs_up.join().unwrap();
        assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
        assert!(err.to_string().contains("without an offer"), "{err}");
    });
}
