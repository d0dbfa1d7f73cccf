//! Async byte streams (`ipckit::tokio`): named pipes on Windows, Unix sockets on
//! Unix, TCP everywhere — the blocking streams' semantics, on tokio.
#![cfg(feature = "tokio")]

#[path = "util/tokio.rs"]
mod tokio_util;
mod util;

use std::io;
use std::time::{Duration, Instant};

use ipckit::tokio::{Listener, Stream};
use ipckit::{ConnectOptions, ErrorKind, ListenerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::run;
use util::{skip_under_wine, slow_factor, unique_name};

fn limit(secs: u64) -> Duration {
    Duration::from_secs(secs * u64::from(slow_factor()))
}

/// Echoes every byte of `stream` back until the peer closes; returns the count.
async fn echo(stream: Stream) -> io::Result<u64> {
    let (mut r, mut w) = stream.into_split();
    tokio::io::copy(&mut r, &mut w).await
}

/// Serves one client with [`echo`].
fn echo_once(listener: Listener) -> JoinHandle<io::Result<u64>> {
    tokio::spawn(async move { echo(listener.accept().await?).await })
}

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

async fn round_trip(listener: Listener, addr: &str) {
    let server = echo_once(listener);
    let mut client = Stream::connect(addr).await.unwrap();
    assert_eq!(client.peer_addr().to_string(), addr);
    for size in [1usize, 100, 4096, 65_536] {
        let msg: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
        client.write_all(&msg).await.unwrap();
        let mut back = vec![0; size];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(back, msg, "echo of {size} bytes over {addr}");
    }
    drop(client);
    let echoed = server.await.unwrap().unwrap();
    assert_eq!(echoed, 1 + 100 + 4096 + 65_536);
}

#[test]
fn echo_over_a_portable_name() {
    run(20, || async {
        let addr = format!("pipe:{}", unique_name("techo"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        assert_eq!(listener.local_addr().to_string(), addr);
        round_trip(listener, &addr).await;
    });
}

#[test]
fn echo_over_tcp_loopback() {
    run(20, || async {
        let listener = Listener::bind("tcp:127.0.0.1:0").unwrap();
        let addr = listener.local_addr().to_string();
        assert!(!addr.ends_with(":0"), "the OS chose a port: {addr}");
        round_trip(listener, &addr).await;
    });
}

#[test]
fn echo_over_a_linux_abstract_name() {
    if !cfg!(target_os = "linux") {
        return; // abstract names exist only on Linux
    }
    run(20, || async {
        let addr = format!("@{}", unique_name("tabs"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        round_trip(listener, &addr).await;
    });
}

#[test]
fn bind_with_options_and_connect_with_options() {
    run(20, || async {
        let addr = format!("pipe:{}", unique_name("topts"));
        let mut opts = ListenerOptions::new();
        #[cfg(windows)]
        {
            use ipckit::os::windows::ListenerOptionsExt;
            opts.max_instances(4).buffer_sizes(8192, 8192);
        }
        #[cfg(unix)]
        {
            use ipckit::os::unix::ListenerOptionsExt;
            opts.backlog(16).replace_stale(false);
        }
        let listener = opts.bind_tokio(addr.as_str()).unwrap();
        let server = echo_once(listener);
        let mut client = ConnectOptions::new()
            .timeout(limit(5))
            .connect_tokio(addr.as_str())
            .await
            .unwrap();
        client.write_all(b"opts").await.unwrap();
        let mut back = [0; 4];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"opts");
        drop(client);
        assert_eq!(server.await.unwrap().unwrap(), 4);

        #[cfg(windows)]
        for n in [0u8, 255] {
            use ipckit::os::windows::ListenerOptionsExt;
            let err = ListenerOptions::new()
                .max_instances(n)
                .bind_tokio(format!("pipe:{}", unique_name("tmax")))
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidOption);
        }
        // An option the kind cannot use is refused on this face too.
        let err = ListenerOptions::new()
            .max_message_size(4096)
            .bind_tokio(format!("pipe:{}", unique_name("tmsg")))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOption);
        assert!(err.to_string().contains("max_message_size"), "{err}");
        let err = ConnectOptions::new()
            .max_message_size(4096)
            .connect_tokio(addr.as_str())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("a byte stream"), "{err}");
    });
}

#[test]
fn many_concurrent_clients_each_verified() {
    const CLIENTS: usize = 100;
    const PER_CLIENT: usize = 256 * 1024;
    run(120, || async {
        let addr = format!("pipe:{}", unique_name("tmany"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let acceptor = tokio::spawn(async move {
            let mut servers = Vec::new();
            for _ in 0..CLIENTS {
                let s = listener.accept().await.unwrap();
                servers.push(tokio::spawn(echo(s)));
            }
            let mut total = 0;
            for s in servers {
                total += s.await.unwrap().unwrap();
            }
            total
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let addr = addr.clone();
                tokio::spawn(async move {
                    let s = ConnectOptions::new()
                        .timeout(limit(30))
                        .connect_tokio(addr.as_str())
                        .await
                        .unwrap();
                    let data: Vec<u8> = (0..PER_CLIENT).map(|i| (i * 31 + c * 17) as u8).collect();
                    let (mut r, mut w) = s.into_split();
                    let sent = data.clone();
                    let writer = tokio::spawn(async move { w.write_all(&sent).await });
                    let mut back = vec![0; PER_CLIENT];
                    r.read_exact(&mut back).await.unwrap();
                    writer.await.unwrap().unwrap();
                    assert!(back == data, "client {c} got different bytes back");
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        assert_eq!(acceptor.await.unwrap(), (CLIENTS * PER_CLIENT) as u64);
    });
}

#[test]
fn read_timeout_fires_and_the_stream_stays_usable() {
    run(30, || async {
        let addr = format!("pipe:{}", unique_name("trto"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let (go_tx, go_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let mut s = listener.accept().await.unwrap();
            go_rx.await.unwrap();
            s.write_all(b"late").await.unwrap();
            s.read(&mut [0; 1]).await.unwrap()
        });
        let mut client = Stream::connect(addr.as_str()).await.unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert_eq!(client.read_timeout(), Some(Duration::from_millis(300)));
        let start = Instant::now();
        let err = client.read(&mut [0; 4]).await.unwrap_err();
        let took = start.elapsed();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(took >= Duration::from_millis(250), "fired early: {took:?}");
        assert!(took < limit(10), "fired late: {took:?}");

        // Nothing was lost and the stream still works once time allows.
        go_tx.send(()).unwrap();
        client.set_read_timeout(None).unwrap();
        client.set_read_deadline(Some(Instant::now() + limit(10)));
        let mut got = [0; 4];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"late");
        drop(client);
        assert_eq!(server.await.unwrap(), 0, "server sees EOF");
    });
}

#[test]
fn a_past_deadline_fails_at_once_and_can_be_moved() {
    run(20, || async {
        let addr = format!("pipe:{}", unique_name("tdl"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let server = echo_once(listener);
        let mut client = Stream::connect(addr.as_str()).await.unwrap();
        client.set_deadline(Some(Instant::now() - Duration::from_millis(1)));
        let start = Instant::now();
        let err = client.write(b"x").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        let err = client.read(&mut [0; 1]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(start.elapsed() < limit(2), "a past deadline must not wait");
        client.set_deadline(None);
        client.write_all(b"ok").await.unwrap();
        let mut back = [0; 2];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"ok", "the refused write sent nothing");
        drop(client);
        assert_eq!(server.await.unwrap().unwrap(), 2);
    });
}

#[test]
fn a_deadline_reached_while_waiting_fails_the_read_of_a_split_half() {
    run(20, || async {
        let addr = format!("pipe:{}", unique_name("tsplit"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let server = echo_once(listener);
        let client = Stream::connect(addr.as_str()).await.unwrap();
        let (mut r, mut w) = client.into_split();
        r.set_read_deadline(Some(Instant::now() + Duration::from_millis(200)));
        let err = r.read(&mut [0; 1]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        // The write half is not bound by the read deadline.
        w.write_all(b"still here").await.unwrap();
        r.set_read_deadline(Some(Instant::now() + limit(10)));
        let mut back = [0; 10];
        r.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"still here");
        assert!(r.set_read_timeout(Some(Duration::ZERO)).is_err());
        assert!(w.set_write_timeout(Some(Duration::ZERO)).is_err());
        drop((r, w));
        assert_eq!(server.await.unwrap().unwrap(), 10);
    });
}

#[test]
fn zero_timeout_is_refused() {
    run(20, || async {
        let addr = format!("pipe:{}", unique_name("tzero"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let server = echo_once(listener);
        let mut client = Stream::connect(addr.as_str()).await.unwrap();
        let err = client.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOption);
        let err = client.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOption);
        drop(client);
        server.await.unwrap().unwrap();
    });
}

#[test]
fn a_cancelled_accept_loses_no_client() {
    run(30, || async {
        let addr = format!("pipe:{}", unique_name("tcancel"));
        let listener = Listener::bind(addr.as_str()).unwrap();

        // An accept that times out with nobody there.
        let timed_out = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
        assert!(timed_out.is_err(), "nobody connected, yet accept returned");

        // A client connects while no accept runs at all.
        let mut client = Stream::connect(addr.as_str()).await.unwrap();
        client.write_all(b"first").await.unwrap();

        // The next accept gets it.
        let mut s = tokio::time::timeout(limit(10), listener.accept())
            .await
            .expect("the client that connected between accepts is accepted")
            .unwrap();
        let mut got = [0; 5];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"first");
    });
}

#[test]
fn accept_raced_in_select_serves_every_client() {
    const CLIENTS: usize = 20;
    run(60, || async {
        let addr = format!("pipe:{}", unique_name("tselect"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let addr = addr.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(3 * c as u64)).await;
                    let mut s = ConnectOptions::new()
                        .timeout(limit(20))
                        .connect_tokio(addr.as_str())
                        .await
                        .unwrap();
                    s.write_all(&[c as u8]).await.unwrap();
                    let mut back = [0; 1];
                    s.read_exact(&mut back).await.unwrap();
                    assert_eq!(back[0], c as u8);
                })
            })
            .collect();
        let mut served = [false; CLIENTS];
        let mut cancelled = 0u32;
        let mut accepted = 0;
        while accepted < CLIENTS {
            tokio::select! {
                s = listener.accept() => {
                    let mut s = s.unwrap();
                    let mut id = [0; 1];
                    s.read_exact(&mut id).await.unwrap();
                    s.write_all(&id).await.unwrap();
                    served[usize::from(id[0])] = true;
                    accepted += 1;
                }
                _ = tokio::time::sleep(Duration::from_millis(1)) => cancelled += 1,
            }
        }
        for c in clients {
            c.await.unwrap();
        }
        assert!(served.iter().all(|&s| s), "every client was served");
        assert!(cancelled > 0, "some accepts were cancelled");
    });
}

#[test]
fn connecting_to_a_missing_name_says_not_found() {
    run(20, || async {
        let addr = format!("pipe:{}", unique_name("tmissing"));
        let err = Stream::connect(addr.as_str()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
        assert!(err.is_temporary());
        assert!(err.raw_os_error().is_some(), "OS code kept: {err:?}");
        assert!(err.to_string().contains(&addr), "names the address: {err}");
    });
}

#[test]
fn retry_not_found_gives_up_at_the_connect_timeout() {
    run(20, || async {
        let addr = format!("pipe:{}", unique_name("tretry"));
        let start = Instant::now();
        let err = ConnectOptions::new()
            .timeout(Duration::from_millis(300))
            .retry_not_found(true)
            .connect_tokio(addr.as_str())
            .await
            .unwrap_err();
        let took = start.elapsed();
        assert!(err.is_timeout(), "{err:?}");
        assert!(took >= Duration::from_millis(250), "{took:?}");
        assert!(took < limit(5), "{took:?}");
    });
}

#[test]
fn retry_not_found_connects_once_the_server_appears() {
    run(20, || async {
        let addr = format!("pipe:{}", unique_name("tlate"));
        let server_addr = addr.clone();
        let server = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let listener = Listener::bind(server_addr.as_str()).unwrap();
            let mut s = listener.accept().await.unwrap();
            s.write_all(b"hi").await.unwrap();
        });
        let mut client = ConnectOptions::new()
            .timeout(limit(10))
            .retry_not_found(true)
            .connect_tokio(addr.as_str())
            .await
            .unwrap();
        let mut got = [0; 2];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hi");
        server.await.unwrap();
    });
}

#[test]
fn shutdown_half_closes_or_says_unsupported() {
    run(20, || async {
        let addr = format!("pipe:{}", unique_name("tshut"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let server = tokio::spawn(async move {
            let mut s = listener.accept().await.unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).await.unwrap();
            // Unix: the client can still read after its half-close.
            let _ = s.write_all(b"ack").await;
            all
        });
        let mut client = Stream::connect(addr.as_str()).await.unwrap();
        client.write_all(b"bye").await.unwrap();
        let windows = cfg!(windows);
        match client.shutdown().await {
            Ok(()) => {
                assert!(!windows, "named pipes have no half-close");
                let mut ack = Vec::new();
                client.read_to_end(&mut ack).await.unwrap();
                assert_eq!(ack, b"ack");
            }
            Err(e) => {
                assert!(windows, "Unix sockets have half-close: {e}");
                assert_eq!(e.kind(), io::ErrorKind::Unsupported);
                assert!(e.to_string().contains("half-close"), "{e}");
                drop(client);
            }
        }
        assert_eq!(server.await.unwrap(), b"bye");
    });
}

#[test]
fn shutdown_over_tcp_half_closes() {
    run(20, || async {
        let listener = Listener::bind("tcp:127.0.0.1:0").unwrap();
        let addr = listener.local_addr().to_string();
        let server = tokio::spawn(async move {
            let mut s = listener.accept().await.unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).await.unwrap();
            s.write_all(b"ack").await.unwrap();
            all
        });
        let (mut r, mut w) = Stream::connect(addr.as_str()).await.unwrap().into_split();
        w.write_all(b"bye").await.unwrap();
        w.shutdown().await.unwrap();
        let mut ack = Vec::new();
        r.read_to_end(&mut ack).await.unwrap();
        assert_eq!(ack, b"ack");
        assert_eq!(server.await.unwrap(), b"bye");
    });
}

#[test]
fn write_timeout_fires_and_every_written_byte_arrives() {
    run(60, || async {
        let addr = format!("pipe:{}", unique_name("twto"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let (total_tx, total_rx) = oneshot::channel::<usize>();
        let server = tokio::spawn(async move {
            let mut s = listener.accept().await.unwrap();
            let total = total_rx.await.unwrap(); // nobody reads until the writer timed out
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            (total, got)
        });
        let mut client = Stream::connect(addr.as_str()).await.unwrap();
        client
            .set_write_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let chunk = 65_536;
        let mut written = 0usize;
        let start = Instant::now();
        let err = loop {
            let data: Vec<u8> = (written..written + chunk).map(pattern).collect();
            match client.write(&data).await {
                Ok(n) => written += n,
                Err(e) => break e,
            }
            assert!(start.elapsed() < limit(20), "the buffer never filled up");
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(written > 0, "some bytes fit before the buffer filled");
        total_tx.send(written).unwrap();
        drop(client);
        let (total, got) = server.await.unwrap();
        assert_eq!(
            got.len(),
            total,
            "exactly the bytes write() reported arrived"
        );
        assert!(
            got.iter().enumerate().all(|(i, &b)| b == pattern(i)),
            "in order, unchanged"
        );
    });
}

#[test]
fn a_second_bind_to_a_live_name_is_refused_and_a_dropped_name_is_free() {
    run(20, || async {
        let addr = format!("pipe:{}", unique_name("tdup"));
        let first = Listener::bind(addr.as_str()).unwrap();
        match Listener::bind(addr.as_str()) {
            Err(err) => {
                assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err:?}");
                assert!(err.to_string().contains(&addr), "{err}");
            }
            Ok(_second) => assert!(
                skip_under_wine(
                    "second bind refused",
                    "Wine does not implement FILE_FLAG_FIRST_PIPE_INSTANCE",
                ),
                "a second listener bound a live name"
            ),
        }
        drop(first);
        let again = Listener::bind(addr.as_str()).unwrap();
        let server = echo_once(again);
        let mut client = Stream::connect(addr.as_str()).await.unwrap();
        client.write_all(b"again").await.unwrap();
        let mut back = [0; 5];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"again");
        drop(client);
        assert_eq!(server.await.unwrap().unwrap(), 5);
    });
}

#[test]
fn binding_outside_a_runtime_is_an_error_not_a_panic() {
    let err = Listener::bind(format!("pipe:{}", unique_name("tnort"))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err:?}");
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

/// Unix only: the socket file rules of the blocking listener hold for the async one.
#[cfg(unix)]
mod unix {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_socket_file_is_private_replaced_when_stale_and_removed_on_drop() {
        run(20, || async {
            let path = std::env::temp_dir().join(format!("{}.sock", unique_name("tfile")));
            drop(std::os::unix::net::UnixListener::bind(&path).unwrap()); // a stale file
            let addr = format!("unix:{}", path.display());
            let listener = Listener::bind(addr.as_str()).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
            let server = echo_once(listener);
            let mut client = Stream::connect(addr.as_str()).await.unwrap();
            client.write_all(b"x").await.unwrap();
            client.read_exact(&mut [0; 1]).await.unwrap();
            drop(client);
            assert_eq!(server.await.unwrap().unwrap(), 1);
            // `echo_once` dropped the listener after its one client.
            assert!(!path.exists(), "dropping the listener removed its file");
        });
    }
}

/// A server whose runtime stops right after it dropped its listener and its
/// connections (as a private runtime is, in an RPC server that stops) leaves
/// nothing behind: each client reads the end, and the name is gone. Under
/// Wine the instance a client had connected to while the accept was being
/// given up stayed open for the life of the process: tokio closes a pipe's
/// handle only once its runtime has seen the completion of the read it
/// cancelled on drop, and a stopped runtime never sees it; the name stayed
/// busy, and a client waited for a free instance for ever.
#[test]
fn a_runtime_stopped_right_after_its_listener_leaves_nothing_behind() {
    util::watchdog(limit(60), || {
        for round in 0..20 {
            let addr = format!("pipe:{}", unique_name(&format!("trtstop{round}")));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (mut served, waiting) = rt.block_on(async {
                let listener = Listener::bind(addr.as_str()).unwrap();
                // One client accepted and served.
                let addr1 = addr.clone();
                let (accepted, client) = tokio::join!(
                    listener.accept(),
                    tokio::task::spawn_blocking(move || ipckit::Stream::connect(addr1.as_str()))
                );
                let (mut accepted, client) = (accepted.unwrap(), client.unwrap().unwrap());
                accepted.write_all(b"hi").await.unwrap();
                // Another that connects while an accept is being given up.
                let addr2 = addr.clone();
                let (tx, rx) = oneshot::channel();
                let connecting = std::thread::spawn(move || {
                    let s = ipckit::Stream::connect(addr2.as_str());
                    let _ = tx.send(());
                    s
                });
                tokio::select! {
                    biased;
                    _ = rx => {}
                    _ = listener.accept() => {}
                }
                let waiting = connecting.join().unwrap().unwrap();
                drop(accepted);
                drop(listener);
                (client, waiting)
            });
            drop(rt);
            let mut got = [0; 2];
            std::io::Read::read_exact(&mut served, &mut got).unwrap();
            assert_eq!(&got, b"hi", "round {round}");
            for (which, mut client) in [("served", served), ("waiting", waiting)] {
                client.set_read_timeout(Some(limit(5))).unwrap();
                let mut buf = [0; 1];
                match std::io::Read::read(&mut client, &mut buf) {
                    Ok(0) => {}
                    Ok(n) => panic!("round {round}: the {which} client read {n} bytes"),
                    Err(e) => assert_ne!(
                        e.kind(),
                        io::ErrorKind::TimedOut,
                        "round {round}: the {which} client never saw the end"
                    ),
                }
            }
            let mut opts = ConnectOptions::new();
            opts.timeout(limit(2));
            let err = opts.connect(addr.as_str()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "round {round}: {err}");
        }
    });
}
