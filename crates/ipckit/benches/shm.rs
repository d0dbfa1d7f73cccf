//! The shared-memory channel against a Unix-socket baseline and a `memcpy` of
//! the same bytes, in one run:
//!
//! - 64-byte round trips (p50, p99): `ShmChannel` (split into its halves) and
//!   `std::os::unix::net` `UnixStream`, each between two threads that both
//!   stay busy;
//! - the 64-byte message rate, one way;
//! - 64 KiB throughput one way, against `copy_from_slice` of the same bytes
//!   between two 64 MiB buffers (memory speed), and of one hot 64 KiB chunk
//!   over and over (cache speed);
//! - the same round trip and message rate between two tokio tasks
//!   (`ipckit::tokio::shm`), against the blocking ones;
//! - the CPU time a receiver uses while it waits 1 s for nothing;
//! - between two processes, the channel against the bare ring
//!   (`shm::baseline::BareRing`), one way and round trip (`shm/cross.rs`).
//!
//! `cargo bench -p ipckit --bench shm` (Unix); `-- cross` runs the
//! two-process part alone, `-- cross channel` its channel rows alone.
//! Figures: docs/BENCHMARKS.md.

#[cfg(unix)]
#[path = "shm/cross.rs"]
mod cross;

#[cfg(unix)]
fn main() {
    if cross::peer() {
        return;
    }
    if std::env::args().any(|a| a == "cross") {
        cross::main(std::env::args().any(|a| a == "channel"));
        return;
    }
    unix::main();
    println!();
    cross::main(false);
}

#[cfg(not(unix))]
fn main() {
    eprintln!("the shm benchmark compares against Unix sockets: run it on Unix");
}

#[cfg(unix)]
mod unix {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;
    use std::thread;
    use std::time::{Duration, Instant};

    use ipckit::ListenerOptions;
    use ipckit::shm::{ShmChannel, ShmListener};
    use ipckit::tokio::shm::ShmChannel as TokioShm;

    fn pair(tag: &str) -> (ShmChannel, ShmChannel) {
        let addr = format!("shm:ipckit-bench-{tag}-{}", std::process::id());
        let mut listener: ShmListener = ListenerOptions::new()
            .shm_capacity(1 << 20) // the default; 4 MiB was slower (cache)
            .bind_shm(addr.as_str())
            .unwrap();
        let client = thread::spawn(move || ShmChannel::connect(addr.as_str()).unwrap());
        let server = listener.accept().unwrap();
        (server, client.join().unwrap())
    }

    fn percentile(sorted: &[Duration], p: f64) -> Duration {
        sorted[((sorted.len() as f64 - 1.0) * p) as usize]
    }

    fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
        samples.sort();
        let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
        println!("{name:<28} p50 {p50:>10.2?}  p99 {p99:>10.2?}");
        p50
    }

    const ROUNDS: usize = 200_000;

    fn shm_round_trips() -> Vec<Duration> {
        let (a, b) = pair("rtt");
        let (mut atx, mut arx) = a.split();
        let echo = thread::spawn(move || {
            let (mut btx, mut brx) = b.split();
            let mut msg = Vec::new();
            while brx.recv_into(&mut msg).unwrap() {
                btx.send(&msg).unwrap();
            }
        });
        let msg = [7u8; 64];
        let mut back = Vec::new();
        let mut samples = Vec::with_capacity(ROUNDS);
        for i in 0..ROUNDS + 10_000 {
            let t = Instant::now();
            atx.send(&msg).unwrap();
            assert!(arx.recv_into(&mut back).unwrap());
            if i >= 10_000 {
                samples.push(t.elapsed());
            }
        }
        drop(atx);
        echo.join().unwrap();
        samples
    }

    fn socket_round_trips() -> Vec<Duration> {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let rounds = ROUNDS / 10;
        let echo = thread::spawn(move || {
            let mut buf = [0u8; 64];
            while b.read_exact(&mut buf).is_ok() {
                b.write_all(&buf).unwrap();
            }
        });
        let msg = [7u8; 64];
        let mut back = [0u8; 64];
        let mut samples = Vec::with_capacity(rounds);
        for i in 0..rounds + 1000 {
            let t = Instant::now();
            a.write_all(&msg).unwrap();
            a.read_exact(&mut back).unwrap();
            if i >= 1000 {
                samples.push(t.elapsed());
            }
        }
        drop(a);
        echo.join().unwrap();
        samples
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    /// Both ends of a new channel on tokio, in this process.
    async fn tokio_pair(tag: &str) -> (TokioShm, TokioShm) {
        let addr = format!("shm:ipckit-bench-{tag}-{}", std::process::id());
        let mut listener = ListenerOptions::new()
            .shm_capacity(1 << 20)
            .bind_shm_tokio(addr.as_str())
            .unwrap();
        let client = TokioShm::connect(addr.as_str()).await.unwrap();
        (listener.accept().await.unwrap(), client)
    }

    /// 64-byte round trips between two tokio tasks (a runtime of two workers).
    fn tokio_round_trips() -> Vec<Duration> {
        runtime().block_on(async {
            let (a, b) = tokio_pair("trtt").await;
            let (mut atx, mut arx) = a.split();
            let echo = tokio::spawn(async move {
                let (mut btx, mut brx) = b.split();
                let mut msg = Vec::new();
                while brx.recv_into(&mut msg).await.unwrap() {
                    btx.send(&msg).await.unwrap();
                }
            });
            let msg = [7u8; 64];
            let mut back = Vec::new();
            let rounds = ROUNDS / 4;
            let mut samples = Vec::with_capacity(rounds);
            for i in 0..rounds + 1000 {
                let t = Instant::now();
                atx.send(&msg).await.unwrap();
                assert!(arx.recv_into(&mut back).await.unwrap());
                if i >= 1000 {
                    samples.push(t.elapsed());
                }
            }
            drop(atx);
            echo.await.unwrap();
            samples
        })
    }

    /// Messages per second between two tokio tasks, one way.
    fn tokio_one_way(size: usize, count: usize) -> f64 {
        runtime().block_on(async {
            let (a, b) = tokio_pair(&format!("trate{size}")).await;
            let reader = tokio::spawn(async move {
                let (_, mut rx) = b.split();
                let mut msg = Vec::new();
                let mut n = 0;
                while rx.recv_into(&mut msg).await.unwrap() {
                    n += 1;
                }
                n
            });
            let (mut tx, _rx) = a.split();
            let msg = vec![1u8; size];
            let t = Instant::now();
            for _ in 0..count {
                tx.send(&msg).await.unwrap();
            }
            drop(tx);
            assert_eq!(reader.await.unwrap(), count);
            count as f64 / t.elapsed().as_secs_f64()
        })
    }

    /// Messages per second, one way, `count` messages of `size` bytes.
    fn shm_one_way(size: usize, count: usize) -> f64 {
        let (a, b) = pair(&format!("rate{size}"));
        let reader = thread::spawn(move || {
            let (_, mut rx) = b.split();
            let mut msg = Vec::new();
            let mut n = 0;
            while rx.recv_into(&mut msg).unwrap() {
                n += 1;
            }
            n
        });
        let (mut tx, _rx) = a.split();
        let msg = vec![1u8; size];
        let t = Instant::now();
        for _ in 0..count {
            tx.send(&msg).unwrap();
        }
        drop(tx);
        assert_eq!(reader.join().unwrap(), count);
        count as f64 / t.elapsed().as_secs_f64()
    }

    /// Bytes per second of copying `count` chunks of `size` bytes.
    fn memcpy_rate(size: usize, count: usize) -> f64 {
        let src = vec![1u8; size];
        let mut dst = vec![0u8; size];
        let t = Instant::now();
        for i in 0..count {
            dst.copy_from_slice(&src);
            std::hint::black_box(&mut dst);
            std::hint::black_box(i);
        }
        (size * count) as f64 / t.elapsed().as_secs_f64()
    }

    /// Bytes per second of copying `count` chunks of `size` bytes from one
    /// 64 MiB buffer to another, chunk after chunk: memory, not cache, speed.
    fn memcpy_rate_cold(size: usize, count: usize) -> f64 {
        const AREA: usize = 64 << 20;
        let src = vec![1u8; AREA];
        let mut dst = vec![0u8; AREA];
        let t = Instant::now();
        for i in 0..count {
            let at = (i * size) % AREA;
            dst[at..at + size].copy_from_slice(&src[at..at + size]);
            std::hint::black_box(&mut dst);
        }
        (size * count) as f64 / t.elapsed().as_secs_f64()
    }

    /// Bytes per second of the bare hand-off the channel has to make: one
    /// thread copies 64 KiB chunks into 16 slots of a shared buffer, another
    /// copies them out, with only an atomic counter each way between them (no
    /// framing, no waking, spinning). No channel between two threads can move
    /// the bytes faster than this; its gap to `memcpy_rate` is the price of
    /// the cache lines crossing from one core to the other.
    fn handoff_rate(size: usize, count: usize) -> f64 {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const SLOTS: usize = 16;
        // A slot's lock is never contended: the counters keep the two
        // threads on different slots; it only stands in for `unsafe`.
        struct Shared {
            slots: Vec<std::sync::Mutex<Vec<u8>>>,
            written: AtomicUsize,
            read: AtomicUsize,
        }
        let shared = Arc::new(Shared {
            slots: (0..SLOTS)
                .map(|_| std::sync::Mutex::new(vec![0u8; size]))
                .collect(),
            written: AtomicUsize::new(0),
            read: AtomicUsize::new(0),
        });
        let reader = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let mut dst = vec![0u8; size];
                for i in 0..count {
                    while shared.written.load(Ordering::Acquire) <= i {
                        std::hint::spin_loop();
                    }
                    dst.copy_from_slice(&shared.slots[i % SLOTS].lock().unwrap());
                    std::hint::black_box(&mut dst);
                    shared.read.store(i + 1, Ordering::Release);
                }
                dst[0]
            })
        };
        let src = vec![1u8; size];
        let t = Instant::now();
        for i in 0..count {
            while i - shared.read.load(Ordering::Acquire) >= SLOTS {
                std::hint::spin_loop();
            }
            shared.slots[i % SLOTS]
                .lock()
                .unwrap()
                .copy_from_slice(&src);
            shared.written.store(i + 1, Ordering::Release);
        }
        assert_eq!(reader.join().unwrap(), 1);
        (size * count) as f64 / t.elapsed().as_secs_f64()
    }

    /// This process's user + system CPU time (Linux: /proc/self/stat).
    fn cpu_time() -> Option<Duration> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Duration::from_millis(ticks * 10)) // USER_HZ = 100
    }

    pub(super) fn main() {
        println!("shared-memory channel vs Unix socket vs memcpy, one run\n");
        let shm = report("shm round trip 64 B", shm_round_trips());
        let sock = report("unix socket round trip 64 B", socket_round_trips());
        println!(
            "  ratio socket / shm p50: {:.1}x\n",
            sock.as_secs_f64() / shm.as_secs_f64()
        );

        let tokio_rtt = report("tokio shm round trip 64 B", tokio_round_trips());
        println!(
            "  ratio tokio / blocking shm p50: {:.1}x\n",
            tokio_rtt.as_secs_f64() / shm.as_secs_f64()
        );

        let rate = shm_one_way(64, 5_000_000);
        println!("shm 64 B messages, one way: {:.1} M/s", rate / 1e6);
        let tokio_rate = tokio_one_way(64, 2_000_000);
        println!(
            "tokio shm 64 B messages, one way: {:.1} M/s ({:.0} % of blocking)",
            tokio_rate / 1e6,
            100.0 * tokio_rate / rate
        );
        let chunks = 50_000;
        let shm_bw = shm_one_way(64 * 1024, chunks) * 64.0 * 1024.0;
        let cold_bw = memcpy_rate_cold(64 * 1024, chunks);
        let hot_bw = memcpy_rate(64 * 1024, chunks);
        let handoff_bw = handoff_rate(64 * 1024, chunks);
        println!("shm 64 KiB one way: {:.1} GB/s", shm_bw / 1e9);
        println!(
            "  memcpy of the same bytes, 64 MiB to 64 MiB: {:.1} GB/s; shm is {:.0} % of it",
            cold_bw / 1e9,
            100.0 * shm_bw / cold_bw
        );
        println!(
            "  memcpy of one 64 KiB chunk again and again (L1/L2): {:.1} GB/s; shm is {:.0} % of it",
            hot_bw / 1e9,
            100.0 * shm_bw / hot_bw
        );
        println!(
            "  bare hand-off between two threads (copy in, copy out, spinning): {:.1} GB/s = {:.0} % of that memcpy; shm is {:.0} % of it",
            handoff_bw / 1e9,
            100.0 * handoff_bw / hot_bw,
            100.0 * shm_bw / handoff_bw
        );

        let (a, b) = pair("idle");
        let b = Arc::new(b);
        let before = cpu_time();
        let t = Instant::now();
        let waiter = {
            let b = Arc::clone(&b);
            thread::spawn(move || b.recv().unwrap())
        };
        thread::sleep(Duration::from_secs(1));
        let used = cpu_time().zip(before).map(|(after, before)| after - before);
        a.send(b"wake").unwrap();
        assert_eq!(waiter.join().unwrap().as_deref(), Some(&b"wake"[..]));
        match used {
            Some(used) => println!(
                "idle receiver: {used:?} of CPU in {:?} of waiting ({:.2} %)",
                t.elapsed(),
                100.0 * used.as_secs_f64() / t.elapsed().as_secs_f64()
            ),
            None => println!("idle receiver: no /proc/self/stat to measure CPU time"),
        }
    }
}
