//! Shared memory through the public API: named regions, file mappings, and the
//! ring-buffer channel between two real processes (this test program runs
//! itself again as the peer: see `shm_peer`).

mod util;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ipckit::shm::{SharedMemory, ShmChannel, ShmListener};
use ipckit::{ConnectOptions, ErrorKind, ListenerOptions};
use util::{pattern, slow_factor, unique_name, watchdog};

fn limit(secs: u64) -> Duration {
    Duration::from_secs(secs * u64::from(slow_factor()))
}

fn shm(tag: &str) -> String {
    format!("shm:{}", unique_name(tag))
}

/// Sizes from 0 to 1024, from a seeded generator.
fn size_of_seq(seq: u64) -> usize {
    let mut x = seq.wrapping_add(0x2545_F491_4F6C_DD1D);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    (x % 1025) as usize
}

/// Both ends of a new channel with rings of `capacity` bytes, in this process
/// (a connect does not wait for the accept).
fn pair(tag: &str, capacity: usize) -> (ShmChannel, ShmChannel) {
    let addr = shm(tag);
    let mut listener = ListenerOptions::new()
        .shm_capacity(capacity)
        .bind_shm(addr.as_str())
        .unwrap();
    let client = ShmChannel::connect(addr.as_str()).unwrap();
    (listener.accept_timeout(limit(10)).unwrap(), client)
}

/// Starts this test program as the peer process in `mode` on `addr`.
fn peer(mode: &str, addr: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "shm_peer", "--nocapture"])
        .env("IPCKIT_SHM_PEER", format!("{mode} {addr}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the peer process")
}

/// The peer process of the two-process tests, started by [`peer`]; it does
/// nothing in a normal run (and is ignored there).
#[test]
#[ignore = "the peer process of the other shm tests, which start it themselves"]
fn shm_peer() {
    let Ok(spec) = std::env::var("IPCKIT_SHM_PEER") else {
        return;
    };
    let (mode, addr) = spec.split_once(' ').unwrap();
    match mode {
        // Echo every message until the end of the channel.
        "echo" => {
            let ch = ShmChannel::connect(addr).unwrap();
            let mut msg = Vec::new();
            while ch.recv_into(&mut msg).unwrap() {
                ch.send(&msg).unwrap();
            }
        }
        // Send numbered messages for ever (until killed).
        "flood" => {
            let ch = ShmChannel::connect(addr).unwrap();
            for seq in 0.. {
                ch.send(&pattern(seq, size_of_seq(seq))).unwrap();
            }
        }
        // Create the channel and wait (until killed) without accepting.
        "squat" => {
            let _listener = ShmListener::bind(addr).unwrap();
            thread::sleep(Duration::from_secs(3600));
        }
        other => panic!("unknown peer mode {other}"),
    }
}

#[test]
fn a_million_messages_between_two_processes_each_checked() {
    const COUNT: u64 = 1_000_000;
    watchdog(limit(300), || {
        let addr = shm("million");
        let mut listener = ListenerOptions::new()
            .shm_capacity(64 * 1024)
            .bind_shm(addr.as_str())
            .unwrap();
        let mut child = peer("echo", &addr);
        let ch = listener.accept_timeout(limit(30)).unwrap();
        let ch = std::sync::Arc::new(ch);
        let sender = {
            let ch = std::sync::Arc::clone(&ch);
            thread::spawn(move || {
                for seq in 0..COUNT {
                    ch.send(&pattern(seq, size_of_seq(seq))).unwrap();
                }
            })
        };
        let mut got = Vec::new();
        let mut bytes = 0u64;
        for seq in 0..COUNT {
            assert!(ch.recv_into(&mut got).unwrap(), "message {seq} arrives");
            let want = pattern(seq, size_of_seq(seq));
            assert!(got == want, "message {seq} ({} bytes) intact", want.len());
            bytes += got.len() as u64;
        }
        sender.join().unwrap();
        drop(ch);
        assert!(child.wait().unwrap().success(), "the peer saw the end");
        assert!(bytes > COUNT * 400, "sizes vary up to 1 KiB: {bytes}");
    });
}

/// The lock-free halves of `split`: one thread sends through the ring while
/// another receives, every message checked; dropping the sending half ends the
/// peer's stream, and dropping the receiving half makes the peer's sends fail.
#[test]
fn split_halves_carry_messages_and_close_their_direction() {
    const COUNT: u64 = 200_000;
    watchdog(limit(120), || {
        let (server, client) = pair("split", 16 * 1024);
        let (mut stx, mut srx) = server.split();
        let (mut ctx, crx) = client.split();
        let sender = thread::spawn(move || {
            for seq in 0..COUNT {
                stx.send(&pattern(seq, size_of_seq(seq))).unwrap();
            }
        });
        let mut crx = crx;
        let mut got = Vec::new();
        for seq in 0..COUNT {
            assert!(crx.recv_into(&mut got).unwrap(), "message {seq}");
            assert!(
                got == pattern(seq, size_of_seq(seq)),
                "message {seq} intact"
            );
        }
        sender.join().unwrap(); // the server's sending half is dropped
        assert_eq!(crx.recv().unwrap(), None, "its direction is closed");
        ctx.send(b"other way").unwrap();
        assert_eq!(srx.recv().unwrap().unwrap(), b"other way");
        drop(srx);
        let err = ctx.send(b"nobody reads").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
    });
}

#[test]
fn a_full_ring_makes_the_sender_wait_and_loses_nothing() {
    watchdog(limit(60), || {
        let (mut server, client) = pair("full", 4096);
        // Nobody reads: sends fill the ring, then one waits its timeout out.
        server.set_write_timeout(Some(Duration::from_millis(200)));
        let mut sent = 0u64;
        let err = loop {
            match server.send(&pattern(sent, 100)) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(
                sent < 1000,
                "a 4 KiB ring cannot take 1000 messages of 100 bytes"
            );
        };
        assert!(err.is_timeout(), "{err}");
        assert!(sent >= 30, "the ring took {sent} messages of 100 bytes");
        // A large message waits for room while the reader drains: all arrive.
        let big = pattern(999, 20_000);
        let writer = thread::spawn(move || {
            server.set_write_timeout(None);
            server.send(&big).unwrap();
            server
        });
        for seq in 0..sent {
            assert_eq!(client.recv().unwrap().unwrap(), pattern(seq, 100), "{seq}");
        }
        assert_eq!(client.recv().unwrap().unwrap(), pattern(999, 20_000));
        drop(writer.join().unwrap());
        assert_eq!(client.recv().unwrap(), None, "the end, after everything");
    });
}

#[test]
fn timeouts_bound_accept_and_recv() {
    watchdog(limit(60), || {
        let addr = shm("timeout");
        let mut listener = ShmListener::bind(addr.as_str()).unwrap();
        let started = Instant::now();
        let err = listener
            .accept_timeout(Duration::from_millis(200))
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(200));
        let client = ShmChannel::connect(addr.as_str()).unwrap();
        let mut server = listener.accept_timeout(limit(10)).unwrap();
        server.set_read_timeout(Some(Duration::from_millis(300)));
        let started = Instant::now();
        let err = server.recv().unwrap_err();
        let waited = started.elapsed();
        assert!(err.is_timeout(), "{err}");
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        // The channel still works after a timeout.
        client.send(b"after").unwrap();
        assert_eq!(server.recv().unwrap().unwrap(), b"after");
        let err = listener.accept().unwrap_err();
        assert!(err.to_string().contains("one peer"), "{err}");
    });
}

#[test]
fn a_peer_killed_mid_stream_is_an_error_not_a_hang() {
    watchdog(limit(60), || {
        let addr = shm("killed");
        let mut listener = ListenerOptions::new()
            .shm_capacity(8192)
            .bind_shm(addr.as_str())
            .unwrap();
        let mut child = peer("flood", &addr);
        let ch = listener.accept_timeout(limit(30)).unwrap();
        for seq in 0..1000 {
            assert_eq!(ch.recv().unwrap().unwrap(), pattern(seq, size_of_seq(seq)));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let started = Instant::now();
        // What was in the ring is still delivered, whole; then the error.
        let mut seq = 1000;
        let err = loop {
            match ch.recv() {
                Ok(Some(msg)) => {
                    assert_eq!(msg, pattern(seq, size_of_seq(seq)), "{seq}");
                    seq += 1;
                }
                Ok(None) => panic!("a killed peer did not close its end"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
        assert!(err.to_string().contains("exited"), "{err}");
        assert!(
            started.elapsed() < limit(5),
            "noticed after {:?}",
            started.elapsed()
        );
        // Sending fills the dead peer's ring, and then the wait for room ends
        // with the same error instead of a hang.
        let err = loop {
            if let Err(e) = ch.send(&[0; 1000]) {
                break e;
            }
        };
        assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
        assert!(err.to_string().contains("exited"), "{err}");
    });
}

/// `retry_not_found` keeps trying until a late listener appears, and gives up
/// with TimedOut (as every transport does) no sooner than its timeout; without
/// it, nobody is NotFound at once.
#[test]
fn connect_retries_for_a_late_listener_within_its_timeout() {
    watchdog(limit(60), || {
        let addr = shm("late");
        let err = ShmChannel::connect(addr.as_str()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        let mut opts = ConnectOptions::new();
        opts.retry_not_found(true)
            .timeout(Duration::from_millis(300));
        let started = Instant::now();
        let err = opts.connect_shm(addr.as_str()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );

        let server = thread::spawn({
            let addr = addr.clone();
            move || {
                // Appears late, so that only a retrying client finds it.
                thread::sleep(Duration::from_millis(200));
                let mut listener = ShmListener::bind(addr.as_str()).unwrap();
                let ch = listener.accept_timeout(limit(10)).unwrap();
                ch.send(b"found").unwrap();
                ch
            }
        });
        opts.timeout(limit(10));
        let client = opts.connect_shm(addr.as_str()).unwrap();
        assert_eq!(client.recv().unwrap().unwrap(), b"found");
        drop(server.join().unwrap());
    });
}

#[test]
fn a_region_that_is_not_a_channel_is_refused() {
    // Foreign bytes.
    let addr = shm("foreign");
    let region = SharedMemory::create(&addr, 8192).unwrap();
    region.write_at(0, b"not an ipckit channel").unwrap();
    let err = ShmChannel::connect(addr.as_str()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.to_string().contains("magic"), "{err}");
    drop(region);

    // A real channel whose header was damaged.
    for (offset, bytes, needle) in [
        (8usize, 99u32.to_ne_bytes().to_vec(), "version"),
        (16, (1u64 << 40).to_ne_bytes().to_vec(), "capacity"),
    ] {
        let addr = shm("damaged");
        let _listener = ShmListener::bind(addr.as_str()).unwrap();
        let raw = SharedMemory::open(&addr).unwrap();
        raw.write_at(offset, &bytes).unwrap();
        let err = ShmChannel::connect(addr.as_str()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }

    let err = ShmChannel::connect(shm("nobody").as_str()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("nobody listens"), "{err}");
}

#[test]
fn one_peer_per_channel_and_oversized_messages_refused() {
    watchdog(limit(30), || {
        let addr = shm("pair");
        let mut listener = ShmListener::bind(addr.as_str()).unwrap();
        let client = ConnectOptions::new()
            .max_message_size(1000)
            .connect_shm(addr.as_str())
            .unwrap();
        let err = ShmChannel::connect(addr.as_str()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
        let server = listener.accept_timeout(limit(10)).unwrap();
        let err = server.send(&[7; 1001]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FrameTooLarge, "{err}");
        assert!(
            err.to_string().contains("1001") && err.to_string().contains("1000"),
            "{err}"
        );
        server.send(&[8; 1000]).unwrap();
        server.send(b"").unwrap();
        assert_eq!(client.recv().unwrap().unwrap(), vec![8; 1000]);
        assert_eq!(
            client.recv().unwrap().unwrap(),
            b"",
            "empty messages are messages"
        );
        drop(server);
        assert_eq!(client.recv().unwrap(), None);
        let err = client.send(b"late").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
    });
}

#[test]
fn a_region_left_by_a_dead_creator_is_replaced() {
    watchdog(limit(60), || {
        let addr = shm("stale");
        let mut child = peer("squat", &addr);
        // Wait (bounded) until the squatter's region exists.
        let deadline = Instant::now() + limit(20);
        while SharedMemory::open(&addr).is_err() {
            assert!(Instant::now() < deadline, "the squatter never bound");
            thread::sleep(Duration::from_millis(10));
        }
        let err = ShmListener::bind(addr.as_str()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        child.kill().unwrap();
        child.wait().unwrap();
        // Its region is left (Unix) or gone (Windows): either way nobody listens.
        let err = ShmChannel::connect(addr.as_str()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        if cfg!(unix) {
            assert!(err.to_string().contains("has exited"), "{err}");
        }
        let _listener = ShmListener::bind(addr.as_str()).unwrap();
    });
}

#[test]
fn named_regions_are_created_opened_and_removed() {
    let name = shm("region");
    let a = SharedMemory::create(&name, 10_000).unwrap();
    assert_eq!(a.len(), 10_000);
    a.write_at(9_990, b"0123456789").unwrap();
    let err = a.write_at(9_991, b"0123456789").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOption, "{err}");
    assert!(err.to_string().contains("offset 9991"), "{err}");

    let b = SharedMemory::open(&name).unwrap();
    let mut back = [0; 10];
    b.read_at(9_990, &mut back).unwrap();
    assert_eq!(&back, b"0123456789");
    b.write_at(0, b"hi").unwrap();
    let mut hi = [0; 2];
    a.read_at(0, &mut hi).unwrap();
    assert_eq!(&hi, b"hi", "one memory, two mappings");
    SharedMemory::open_sized(&name, 10_000).unwrap();
    let err = SharedMemory::open_sized(&name, 20_000).unwrap_err();
    assert!(err.to_string().contains("20000"), "{err}");

    let err = SharedMemory::create(&name, 10).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    let err = SharedMemory::create(&shm("zero"), 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOption, "{err}");
    let err = SharedMemory::create("shm:a/b", 10).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidAddress, "{err}");

    drop(b);
    drop(a); // the creator removes the name
    let err = SharedMemory::open(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("no shared-memory region"), "{err}");
}

#[test]
fn a_file_is_mapped_and_written_through() {
    let path = std::env::temp_dir().join(unique_name("mapped-file"));
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&[b'.'; 5000]).unwrap();
    drop(file);
    {
        let map = SharedMemory::map_file(&path).unwrap();
        assert_eq!(map.len(), 5000);
        assert_eq!(map.name(), None);
        let mut dots = [0; 3];
        map.read_at(4997, &mut dots).unwrap();
        assert_eq!(&dots, b"...");
        map.write_at(100, b"written through").unwrap();
    }
    let text = std::fs::read(&path).unwrap();
    assert_eq!(&text[100..115], b"written through");
    std::fs::write(&path, b"").unwrap();
    let err = SharedMemory::map_file(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOption, "{err}");
    std::fs::remove_file(&path).unwrap();
    let err = SharedMemory::map_file(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// Python's `multiprocessing.shared_memory` is a real peer: it creates a
/// region, ipckit writes into it, and Python reads what ipckit wrote.
#[cfg(unix)]
#[test]
fn python_shared_memory_is_a_peer() {
    let name = unique_name("py");
    let script = format!(
        "from multiprocessing import shared_memory\n\
         import sys\n\
         shm = shared_memory.SharedMemory(name={name:?}, create=True, size=4096)\n\
         shm.buf[:6] = b'python'\n\
         print('ready', flush=True)\n\
         sys.stdin.readline()\n\
         sys.stdout.write(bytes(shm.buf[10:16]).decode())\n\
         shm.close(); shm.unlink()\n"
    );
    let mut py = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let out = watchdog(limit(30), move || {
        use std::io::BufRead;
        let mut stdout = std::io::BufReader::new(py.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
        let region = SharedMemory::open(&name).unwrap();
        let mut word = [0; 6];
        region.read_at(0, &mut word).unwrap();
        assert_eq!(&word, b"python");
        region.write_at(10, b"ipckit").unwrap();
        py.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        assert!(py.wait().unwrap().success());
        rest
    });
    assert_eq!(out, "ipckit");
}

/// The benchmark baseline (`shm::baseline::BareRing`): one thread sends
/// 100 000 messages of 0 to 1024 bytes through a 4 KiB ring (so it fills and
/// wraps over and over) while another receives, each in order and intact.
#[test]
fn the_bare_ring_carries_messages_in_order_between_two_threads() {
    use ipckit::shm::baseline::BareRing;
    const COUNT: u64 = 100_000;
    watchdog(limit(120), || {
        let name = shm("bare");
        let rx = BareRing::create(&name, 4096).unwrap();
        assert_eq!(rx.max_message(), 2040);
        let sender = thread::spawn(move || {
            let tx = BareRing::open(&name).unwrap();
            for seq in 0..COUNT {
                tx.send(&pattern(seq, size_of_seq(seq)));
            }
        });
        let mut buf = vec![0u8; 2048];
        let mut bytes = 0;
        for seq in 0..COUNT {
            let n = rx.recv(&mut buf);
            let want = pattern(seq, size_of_seq(seq));
            assert!(
                buf[..n] == want[..],
                "message {seq} ({} bytes) intact",
                want.len()
            );
            bytes += n as u64;
        }
        sender.join().unwrap();
        assert!(bytes > COUNT * 400, "sizes vary up to 1 KiB: {bytes}");
    });
}

/// A bare ring has one writer and one reader: a second handle that sends is
/// refused, as is a message over the maximum; a region that is not a bare
/// ring is refused on open, naming why.
#[test]
fn the_bare_ring_refuses_a_second_writer_big_messages_and_other_regions() {
    use ipckit::shm::baseline::BareRing;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    let name = shm("bare-rules");
    let a = BareRing::create(&name, 64).unwrap();
    let b = BareRing::open(&name).unwrap();
    a.send(b"first");
    let second = catch_unwind(AssertUnwindSafe(|| b.send(b"second")));
    let why = *second.unwrap_err().downcast::<String>().unwrap();
    assert!(why.contains("writer"), "{why}");
    let big = catch_unwind(AssertUnwindSafe(|| a.send(&[0; 25])));
    let why = *big.unwrap_err().downcast::<String>().unwrap();
    assert!(why.contains("maximum of 24 bytes"), "{why}");
    let mut buf = [0u8; 8];
    assert_eq!(b.recv(&mut buf), 5);
    assert_eq!(&buf[..5], b"first");
    drop(a);
    let other = shm("not-a-ring");
    let _region = SharedMemory::create(&other, 4096).unwrap();
    let err = BareRing::open(&other).unwrap_err();
    assert!(err.to_string().contains("not a bare ring"), "{err}");
}
