//! Stream round-trip latency and throughput: ipckit against a plain
//! `std::os::unix::net` loop, in the same run.
//!
//! `cargo bench -p ipckit --bench stream` (add `-- --quick` for a short run).
//!
//! Both sides run the same loop over a Unix socket between two threads; batches
//! of the two alternate (A B A B ...) so that the machine's noise falls on both
//! alike, and the medians are compared. Targets (DESIGN.md): ipckit throughput
//! >= 0.95 and latency <= 1.10 of the plain loop.

#[cfg(unix)]
mod bench {
    use std::io::{Read, Write};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::PathBuf;
    use std::thread;
    use std::time::{Duration, Instant};

    const MSG: usize = 64;
    const CHUNK: usize = 64 * 1024;

    /// One connected client/server pair, either ipckit's or std's.
    trait Pair {
        type S: Read + Write + Send + 'static;
        fn connect(tag: &str) -> (Self::S, Self::S);
    }

    fn sock_path(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("ipckit-bench-{tag}-{}.sock", std::process::id()))
    }

    struct Std;
    impl Pair for Std {
        type S = UnixStream;
        fn connect(tag: &str) -> (UnixStream, UnixStream) {
            let path = sock_path(tag);
            let _ = std::fs::remove_file(&path);
            let l = UnixListener::bind(&path).unwrap();
            let c = UnixStream::connect(&path).unwrap();
            let (s, _) = l.accept().unwrap();
            std::fs::remove_file(&path).unwrap();
            (c, s)
        }
    }

    struct Ipckit;
    impl Pair for Ipckit {
        type S = ipckit::Stream;
        fn connect(tag: &str) -> (ipckit::Stream, ipckit::Stream) {
            let addr = format!("unix:{}", sock_path(tag).display());
            let l = ipckit::Listener::bind(addr.as_str()).unwrap();
            let c = ipckit::Stream::connect(addr.as_str()).unwrap();
            let s = l.accept().unwrap();
            (c, s)
        }
    }

    /// Seconds per round trip of `MSG` bytes, over `n` round trips.
    fn latency<P: Pair>(n: usize) -> f64 {
        let (mut c, mut s) = P::connect("lat");
        let echo = thread::spawn(move || {
            let mut buf = [0u8; MSG];
            for _ in 0..n {
                s.read_exact(&mut buf).unwrap();
                s.write_all(&buf).unwrap();
            }
        });
        let mut buf = [7u8; MSG];
        let start = Instant::now();
        for _ in 0..n {
            c.write_all(&buf).unwrap();
            c.read_exact(&mut buf).unwrap();
        }
        let t = start.elapsed();
        echo.join().unwrap();
        t.as_secs_f64() / n as f64
    }

    /// Bytes per second for `total` bytes written in `CHUNK`s and read whole.
    fn throughput<P: Pair>(total: usize) -> f64 {
        let (mut c, mut s) = P::connect("tput");
        let sink = thread::spawn(move || {
            let mut buf = vec![0u8; CHUNK];
            let mut got = 0;
            while got < total {
                got += s.read(&mut buf).unwrap();
            }
            s.write_all(&[1]).unwrap();
        });
        let data = vec![5u8; CHUNK];
        let start = Instant::now();
        for _ in 0..total / CHUNK {
            c.write_all(&data).unwrap();
        }
        c.read_exact(&mut [0]).unwrap();
        let t = start.elapsed();
        sink.join().unwrap();
        total as f64 / t.as_secs_f64()
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    pub(crate) fn main() {
        let quick = std::env::args().any(|a| a == "--quick");
        let (batches, rts, bytes) = if quick {
            (5, 2_000, 64 << 20)
        } else {
            (15, 20_000, 512 << 20)
        };
        // Warm up both paths once.
        latency::<Std>(1_000);
        latency::<Ipckit>(1_000);

        let (mut ls, mut li, mut ts, mut ti) = (vec![], vec![], vec![], vec![]);
        for _ in 0..batches {
            ls.push(latency::<Std>(rts));
            li.push(latency::<Ipckit>(rts));
            ts.push(throughput::<Std>(bytes));
            ti.push(throughput::<Ipckit>(bytes));
        }
        let (ls, li, ts, ti) = (median(ls), median(li), median(ts), median(ti));
        let us = |s: f64| Duration::from_secs_f64(s).as_secs_f64() * 1e6;
        let mib = |b: f64| b / (1 << 20) as f64;
        println!("stream benchmark: {batches} alternating batches, medians");
        println!(
            "  latency  ({MSG} B round trip, {rts}/batch): std {:.2} us, ipckit {:.2} us, ratio {:.3} (target <= 1.10)",
            us(ls),
            us(li),
            li / ls
        );
        println!(
            "  throughput ({} KiB writes, {} MiB/batch): std {:.0} MiB/s, ipckit {:.0} MiB/s, ratio {:.3} (target >= 0.95)",
            CHUNK / 1024,
            bytes >> 20,
            mib(ts),
            mib(ti),
            ti / ts
        );
    }
}

fn main() {
    #[cfg(unix)]
    bench::main();
    #[cfg(not(unix))]
    println!(
        "stream benchmark: the std baseline is std::os::unix::net; nothing to compare on this OS"
    );
}
