//! The shared-memory channel on tokio (`ipckit::tokio::shm`): the blocking
//! channel's semantics, interop with blocking ends in another process (this
//! test program runs itself again as the peer: see `tokio_shm_peer`), a dead
//! peer reported, no CPU while waiting, and cancel safety.
#![cfg(feature = "tokio")]

#[path = "util/tokio.rs"]
mod tokio_util;
mod util;

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipckit::tokio::shm::{ShmChannel, ShmListener};
use ipckit::{ConnectOptions, ErrorKind, ListenerOptions};
use tokio_util::{run, runtime};
use util::{pattern, slow_factor, unique_name, watchdog};

fn limit(secs: u64) -> Duration {
    Duration::from_secs(secs * u64::from(slow_factor()))
}

/// Messages each echo test sends one way. Under Wine every wake-up of a
/// waiting end is a round trip through wineserver (an event set, a wait
/// registration's callback): 20 000 messages took a minute there. A quarter
/// still wraps the 4 KiB rings hundreds of times (messages average several
/// KiB), which is what the echo tests are for.
fn messages(native: u64) -> u64 {
    if cfg!(windows) { native / 4 } else { native }
}

fn shm(tag: &str) -> String {
    format!("shm:{}", unique_name(tag))
}

/// Sizes from 0 to `max`, from a seeded generator.
fn size_of_seq(seq: u64, max: usize) -> usize {
    let mut x = seq.wrapping_add(0x2545_F491_4F6C_DD1D);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    (x % (max as u64 + 1)) as usize
}

fn listener(addr: &str, capacity: usize) -> ShmListener {
    ListenerOptions::new()
        .shm_capacity(capacity)
        .bind_shm_tokio(addr)
        .unwrap()
}

/// Starts this test program as the peer process in `mode` on `addr`; it
/// prints one line when it is ready.
fn peer(mode: &str, addr: &str) -> (Child, impl BufRead) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "tokio_shm_peer", "--nocapture"])
        .env("IPCKIT_TOKIO_SHM_PEER", format!("{mode} {addr}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the peer process");
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

/// Waits for the peer's "ready" line (the test harness prints lines of its
/// own first); false if its output ended without one.
fn ready(out: &mut impl BufRead) -> bool {
    let mut l = String::new();
    loop {
        l.clear();
        if out.read_line(&mut l).unwrap() == 0 {
            return false;
        }
        if l.trim() == "ready" {
            return true;
        }
    }
}

/// The peer process of the two-process tests, started by [`peer`]; it does
/// nothing in a normal run (and is ignored there).
#[test]
#[ignore = "the peer process of the other tests, which start it themselves"]
fn tokio_shm_peer() {
    let Ok(spec) = std::env::var("IPCKIT_TOKIO_SHM_PEER") else {
        return;
    };
    let (mode, addr) = spec.split_once(' ').unwrap();
    let ready = || println!("ready");
    match mode {
        // A blocking opener that echoes every message until the end.
        "blocking-echo" => {
            let ch = ipckit::shm::ShmChannel::connect(addr).unwrap();
            ready();
            let mut msg = Vec::new();
            while ch.recv_into(&mut msg).unwrap() {
                ch.send(&msg).unwrap();
            }
        }
        // A tokio opener that echoes every message until the end.
        "tokio-echo" => runtime().block_on(async {
            let ch = ConnectOptions::new()
                .retry_not_found(true)
                .timeout(limit(30))
                .connect_shm_tokio(addr)
                .await
                .unwrap();
            ready();
            let mut msg = Vec::new();
            while ch.recv_into(&mut msg).await.unwrap() {
                ch.send(&msg).await.unwrap();
            }
        }),
        // A blocking creator that echoes its one peer until the end.
        "blocking-listen-echo" => {
            let mut l = ListenerOptions::new()
                .shm_capacity(4096)
                .bind_shm(addr)
                .unwrap();
            ready();
            let ch = l.accept_timeout(limit(30)).unwrap();
            let mut msg = Vec::new();
            while ch.recv_into(&mut msg).unwrap() {
                ch.send(&msg).unwrap();
            }
        }
        // Join and do nothing until killed.
        "idle" => {
            let _ch = ipckit::shm::ShmChannel::connect(addr).unwrap();
            ready();
            std::thread::sleep(Duration::from_secs(3600));
        }
        // A tokio opener that waits in `recv` for the word "go", then
        // answers "done".
        "tokio-wait" => runtime().block_on(async {
            let ch = ShmChannel::connect(addr).await.unwrap();
            ch.send(b"waiting").await.unwrap();
            assert_eq!(ch.recv().await.unwrap().as_deref(), Some(&b"go"[..]));
            ch.send(b"done").await.unwrap();
            assert_eq!(ch.recv().await.unwrap(), None);
        }),
        other => panic!("unknown peer mode {other}"),
    }
}

/// Sends numbered messages of sizes up to `max` through `ch` and checks that
/// each comes back intact (the peer echoes), with a sender and a receiver task.
async fn echo_checked(ch: ShmChannel, count: u64, max: usize) {
    let (mut tx, mut rx) = ch.split();
    let sender = tokio::spawn(async move {
        for seq in 0..count {
            tx.send(&pattern(seq, size_of_seq(seq, max))).await.unwrap();
        }
        tx
    });
    let mut got = Vec::new();
    for seq in 0..count {
        assert!(
            rx.recv_into(&mut got).await.unwrap(),
            "message {seq} arrives"
        );
        let want = pattern(seq, size_of_seq(seq, max));
        assert!(got == want, "message {seq} ({} bytes) intact", want.len());
    }
    // Closing our sending half ends the peer's loop, which ends our stream.
    drop(sender.await.unwrap());
    assert_eq!(rx.recv().await.unwrap(), None);
}

/// Two tokio ends in one process, rings of 4 KiB: messages of up to 10 000
/// bytes (several chunks each) make both sides wait for room and for data.
#[test]
fn tokio_ends_carry_every_message_through_small_rings() {
    run(120, || async {
        let addr = shm("tboth");
        let mut l = listener(&addr, 4096);
        let client = ShmChannel::connect(addr.as_str()).await.unwrap();
        let server = l.accept().await.unwrap();
        assert_eq!(server.capacity(), 4096);
        let echo = tokio::spawn(async move {
            let mut msg = Vec::new();
            let mut n = 0u64;
            while server.recv_into(&mut msg).await.unwrap() {
                server.send(&msg).await.unwrap();
                n += 1;
            }
            n
        });
        echo_checked(client, messages(20_000), 10_000).await;
        assert_eq!(echo.await.unwrap(), messages(20_000));
        // The listener served its one peer.
        let err = l.accept().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    });
}

/// How many shm waker threads this process has (`/proc/self/task/*/comm`:
/// the name cut to 15 bytes).
#[cfg(target_os = "linux")]
fn waker_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|t| {
            let comm = std::fs::read_to_string(t.as_ref().unwrap().path().join("comm"));
            comm.is_ok_and(|c| c.trim() == "ipckit-shm-wake")
        })
        .count()
}

/// More tokio receivers asleep at once than one waker thread serves (127 on
/// Linux): each is woken by its own message, none by another's, and none is
/// lost.
#[test]
fn hundreds_of_sleeping_receivers_each_wake_for_their_message() {
    const CHANNELS: usize = 150;
    run(120, || async {
        let mut senders = Vec::new();
        let mut waiting = Vec::new();
        for i in 0..CHANNELS {
            let addr = shm(&format!("tmany{i}"));
            let mut l = listener(&addr, 4096);
            let client = ShmChannel::connect(addr.as_str()).await.unwrap();
            let server = l.accept().await.unwrap();
            senders.push(client);
            waiting.push(tokio::spawn(async move {
                let got = server.recv().await.unwrap().unwrap();
                (server, got)
            }));
        }
        // On Linux, wait until the receivers' sleeps need a second waker
        // thread (threads stay once started); elsewhere they may be asleep or
        // not, and each must get its message either way.
        #[cfg(target_os = "linux")]
        while waker_threads() < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for (i, ch) in senders.iter().enumerate().rev() {
            ch.send(&pattern(i as u64, 100)).await.unwrap();
        }
        for (i, task) in waiting.into_iter().enumerate() {
            let (server, got) = tokio::time::timeout(limit(10), task)
                .await
                .expect("the receiver woke")
                .unwrap();
            assert_eq!(got, pattern(i as u64, 100), "channel {i}");
            // And the channel goes on: the way back.
            server.send(b"back").await.unwrap();
            assert_eq!(
                senders[i].recv().await.unwrap().as_deref(),
                Some(&b"back"[..])
            );
        }
    });
}

/// A tokio creator and a blocking opener in another process, then a blocking
/// creator in another process and a tokio opener.
#[test]
fn blocking_and_tokio_ends_talk_across_processes() {
    run(180, || async {
        let addr = shm("tblk");
        let mut l = listener(&addr, 8192);
        let (mut child, _out) = peer("blocking-echo", &addr);
        let ch = tokio::time::timeout(limit(30), l.accept())
            .await
            .expect("the blocking peer joins")
            .unwrap();
        echo_checked(ch, messages(50_000), 6000).await;
        assert!(
            child.wait().unwrap().success(),
            "the blocking peer saw the end"
        );

        let addr = shm("tblk2");
        let (mut child, mut out) = peer("blocking-listen-echo", &addr);
        assert!(ready(&mut out), "the peer is ready");
        let ch = ShmChannel::connect(addr.as_str()).await.unwrap();
        assert_eq!(ch.capacity(), 4096);
        echo_checked(ch, messages(50_000), 6000).await;
        assert!(
            child.wait().unwrap().success(),
            "the blocking creator saw the end"
        );
    });
}

/// A blocking creator in this process and a tokio opener in another.
#[test]
fn a_tokio_peer_process_serves_a_blocking_creator() {
    watchdog(limit(120), || {
        let addr = shm("tpeer");
        let mut l = ListenerOptions::new()
            .shm_capacity(4096)
            .bind_shm(addr.as_str())
            .unwrap();
        let (mut child, _out) = peer("tokio-echo", &addr);
        let ch = l.accept_timeout(limit(30)).unwrap();
        let (mut tx, mut rx) = ch.split();
        let count = messages(50_000);
        let sender = std::thread::spawn(move || {
            for seq in 0..count {
                tx.send(&pattern(seq, size_of_seq(seq, 6000))).unwrap();
            }
        });
        let mut got = Vec::new();
        for seq in 0..count {
            assert!(rx.recv_into(&mut got).unwrap(), "message {seq} arrives");
            assert!(
                got == pattern(seq, size_of_seq(seq, 6000)),
                "message {seq} intact"
            );
        }
        sender.join().unwrap();
        assert_eq!(
            rx.recv().unwrap(),
            None,
            "the tokio peer closed after our end"
        );
        assert!(
            child.wait().unwrap().success(),
            "the tokio peer saw the end"
        );
    });
}

/// A tokio receiver (and then a tokio sender, its ring full) waiting on a
/// peer that gets killed: an error naming the exit, soon, not a hang.
#[test]
fn a_killed_peer_ends_a_waiting_receive_and_send() {
    run(60, || async {
        let addr = shm("tkill");
        let mut l = listener(&addr, 4096);
        let (mut child, mut out) = peer("idle", &addr);
        let ch = tokio::time::timeout(limit(30), l.accept())
            .await
            .expect("the peer joins")
            .unwrap();
        assert!(ready(&mut out), "the peer is ready");
        let waiting = tokio::spawn(async move {
            let r = ch.recv().await;
            (ch, r)
        });
        child.kill().unwrap();
        child.wait().unwrap();
        let started = Instant::now();
        let (ch, r) = tokio::time::timeout(limit(10), waiting)
            .await
            .expect("the receive ends")
            .unwrap();
        let err = r.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
        assert!(err.to_string().contains("exited"), "{err}");
        assert!(
            started.elapsed() < limit(5),
            "noticed after {:?}",
            started.elapsed()
        );
        // Nobody reads: the ring fills, and the wait for room ends the same way.
        let err = loop {
            if let Err(e) = ch.send(&[7; 1000]).await {
                break e;
            }
        };
        assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
        assert!(err.to_string().contains("exited"), "{err}");
    });
}

/// The process CPU time (user + system) of `pid`, from `/proc`.
#[cfg(target_os = "linux")]
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command (which may hold spaces), from field 3 on.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // The kernel's USER_HZ is 100 on every Linux configuration userspace sees.
    Duration::from_millis(ticks * 10)
}

/// The context switches of every thread of `pid` so far, from `/proc`.
#[cfg(target_os = "linux")]
fn switches(pid: u32) -> u64 {
    let mut n = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        for l in status.lines() {
            if let Some(v) = l
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                n += v.trim().parse::<u64>().unwrap();
            }
        }
    }
    n
}

/// A tokio receiver waiting in another process for a second: that process
/// uses (almost) no CPU meanwhile, and its threads sleep through it. A
/// receiver that spun would use a whole core (about a second); one that
/// polled, even every millisecond, would wake a thousand times.
#[cfg(target_os = "linux")]
#[test]
fn a_waiting_tokio_receiver_uses_no_cpu() {
    watchdog(limit(60), || {
        let addr = shm("tidle");
        let mut l = ListenerOptions::new().bind_shm(addr.as_str()).unwrap();
        let (mut child, _out) = peer("tokio-wait", &addr);
        let ch = l.accept_timeout(limit(30)).unwrap();
        assert_eq!(ch.recv().unwrap().as_deref(), Some(&b"waiting"[..]));
        // The peer is now in (or entering) its `recv`.
        let (before, woke_before) = (cpu_time(child.id()), switches(child.id()));
        let window = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let used = cpu_time(child.id()) - before;
        let woke = switches(child.id()) - woke_before;
        let elapsed = window.elapsed();
        ch.send(b"go").unwrap();
        assert_eq!(ch.recv().unwrap().as_deref(), Some(&b"done"[..]));
        drop(ch);
        assert!(child.wait().unwrap().success(), "the peer finished");
        assert!(
            used < Duration::from_millis(100),
            "the waiting process used {used:?} of CPU in {elapsed:?}"
        );
        // Entering the sleep takes a few (the waker thread starts, the
        // runtime's workers park); polling would take hundreds.
        assert!(
            woke < 50,
            "the waiting process's threads woke {woke} times in {elapsed:?}"
        );
        eprintln!("idle tokio receiver: {used:?} CPU, {woke} context switches in {elapsed:?}");
    });
}

/// Polls `op` once and drops it if it is not done: the harshest cancellation.
async fn poll_once<F: Future>(op: F) -> Option<F::Output> {
    let mut op = std::pin::pin!(op);
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match op.as_mut().poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// Runs `op` to the end every fourth attempt, else polls it once and drops it
/// if it is not done.
async fn attempt<F: Future>(n: u64, op: F) -> Option<F::Output> {
    if n % 4 == 3 {
        Some(op.await)
    } else {
        poll_once(op).await
    }
}

/// Every send and every receive mostly polled once and dropped when not done:
/// the dropped operations lose nothing. Long messages (several chunks of the
/// 4 KiB rings) make sends dropped after they began, and receives dropped in
/// the middle of a message.
#[test]
fn dropped_sends_and_receives_lose_nothing() {
    const COUNT: u64 = 5000;
    run(40, || async {
        let addr = shm("tcancel");
        let mut l = listener(&addr, 4096);
        let client = ShmChannel::connect(addr.as_str()).await.unwrap();
        let server = l.accept().await.unwrap();
        let (mut tx, _keep_rx) = client.split();
        let (_keep_tx, mut rx) = server.split();
        let sender = tokio::spawn(async move {
            let (mut dropped, mut dropped_committed) = (0u64, 0u64);
            for seq in 0..COUNT {
                let msg = pattern(seq, size_of_seq(seq, 9000));
                for n in 0u64.. {
                    let before = tx.messages_committed();
                    match attempt(n, tx.send(&msg)).await {
                        Some(sent) => {
                            sent.unwrap();
                            break;
                        }
                        None => {
                            dropped += 1;
                            if tx.messages_committed() > before {
                                // Begun: it will be finished, not sent again.
                                dropped_committed += 1;
                                break;
                            }
                            tokio::task::yield_now().await;
                        }
                    }
                }
            }
            tx.flush().await.unwrap();
            (dropped, dropped_committed, tx)
        });
        let mut dropped_recvs = 0u64;
        let mut got = Vec::new();
        for seq in 0..COUNT {
            for n in 0u64.. {
                match attempt(n, rx.recv_into(&mut got)).await {
                    Some(r) => {
                        assert!(r.unwrap(), "message {seq} arrives");
                        break;
                    }
                    None => {
                        dropped_recvs += 1;
                        tokio::task::yield_now().await;
                    }
                }
            }
            let want = pattern(seq, size_of_seq(seq, 9000));
            assert!(got == want, "message {seq} ({} bytes) intact", want.len());
        }
        let (dropped, dropped_committed, tx) = sender.await.unwrap();
        drop(tx);
        assert_eq!(rx.recv().await.unwrap(), None);
        assert!(
            dropped > 0 && dropped_recvs > 0,
            "{dropped} {dropped_recvs}"
        );
        assert!(dropped_committed > 0, "no send was dropped after it began");
    });
}

/// An accept dropped by its timeout loses no peer; a read timeout is TimedOut
/// and leaves the channel usable; a dropped connect retry joins nothing.
#[test]
fn timeouts_and_dropped_accepts_lose_nothing() {
    run(60, || async {
        let addr = shm("ttime");
        let mut l = listener(&addr, 4096);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), l.accept())
                .await
                .is_err(),
            "nobody came yet"
        );
        let mut client = ShmChannel::connect(addr.as_str()).await.unwrap();
        let server = l.accept().await.unwrap();
        client.set_read_timeout(Some(Duration::from_millis(100)));
        let started = Instant::now();
        let err = client.recv().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() >= Duration::from_millis(100));
        server.send(b"after").await.unwrap();
        assert_eq!(client.recv().await.unwrap().as_deref(), Some(&b"after"[..]));

        // A connect retrying for a late listener gives up as a timeout.
        let late = shm("tlate");
        let err = ConnectOptions::new()
            .retry_not_found(true)
            .timeout(Duration::from_millis(200))
            .connect_shm_tokio(late.as_str())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    });
}
