//! Between two processes, in one run: ipckit's shared-memory channel against
//! the bare ring (`ipckit::shm::baseline::BareRing`: two positions and a
//! `memcpy`, both sides spinning), 64-byte messages one way (messages per
//! second) and 64-byte round trips (p50, p99), with the ratios of the two.
//! Targets (issue 19): channel one way ≥ 0.7× the bare ring; round-trip p50
//! ≤ 1.5× the bare ring's.
//!
//! The peer is this bench program again, started with `IPCKIT_SHM_BENCH_PEER`
//! set to `MODE NAME COUNT` (see [`peer`]). Each measure runs `REPS` times,
//! alternating bare ring and channel, and the median is kept: the machine's
//! other load then falls on both alike.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ipckit::ListenerOptions;
use ipckit::shm::baseline::BareRing;
use ipckit::shm::{ShmChannel, ShmListener};

const PEER_ENV: &str = "IPCKIT_SHM_BENCH_PEER";
const SIZE: usize = 64;
const ONE_WAY: u64 = 1_000_000;
const ROUNDS: usize = 100_000;
const WARMUP: usize = 5_000;
const REPS: usize = 5;

/// The peer's side, when this process was started as one: `true` if it was.
pub(crate) fn peer() -> bool {
    let Ok(spec) = std::env::var(PEER_ENV) else {
        return false;
    };
    let mut words = spec.split(' ');
    let (mode, name, count) = (
        words.next().unwrap(),
        words.next().unwrap(),
        words.next().unwrap().parse::<u64>().unwrap(),
    );
    let mut buf = vec![0u8; SIZE];
    match mode {
        // Receive `count` messages on NAME-a, then answer once on NAME-b.
        "bare-sink" => {
            let (rx, tx) = bare_pair_open(name);
            for _ in 0..count {
                assert_eq!(rx.recv(&mut buf), SIZE);
            }
            tx.send(b"done");
        }
        // Send back each of `count` messages.
        "bare-echo" => {
            let (rx, tx) = bare_pair_open(name);
            for _ in 0..count {
                let n = rx.recv(&mut buf);
                tx.send(&buf[..n]);
            }
        }
        // Receive until the end of the channel, then answer with the count.
        "chan-sink" => {
            let (mut tx, mut rx) = ShmChannel::connect(name).unwrap().split();
            let mut msg = Vec::new();
            let mut n = 0u64;
            while rx.recv_into(&mut msg).unwrap() {
                n += 1;
            }
            tx.send(&n.to_ne_bytes()).unwrap();
        }
        // Send back every message until the end of the channel.
        "chan-echo" => {
            let (mut tx, mut rx) = ShmChannel::connect(name).unwrap().split();
            let mut msg = Vec::new();
            while rx.recv_into(&mut msg).unwrap() {
                tx.send(&msg).unwrap();
            }
        }
        other => panic!("unknown peer mode {other}"),
    }
    true
}

fn spawn(mode: &str, name: &str, count: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(PEER_ENV, format!("{mode} {name} {count}"))
        .spawn()
        .expect("start the peer process")
}

fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shm:ipckit-xbench-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The peer's ends of the two rings `NAME-a` (towards it) and `NAME-b` (back).
fn bare_pair_open(name: &str) -> (BareRing, BareRing) {
    (
        BareRing::open(&format!("{name}-a")).unwrap(),
        BareRing::open(&format!("{name}-b")).unwrap(),
    )
}

/// The two rings, created, and the peer started on them.
fn bare_pair(mode: &str, count: u64) -> (BareRing, BareRing, Child) {
    let name = unique(mode);
    let tx = BareRing::create(&format!("{name}-a"), 1 << 20).unwrap();
    let rx = BareRing::create(&format!("{name}-b"), 1 << 20).unwrap();
    let child = spawn(mode, &name, count);
    (tx, rx, child)
}

/// A channel to a new peer process in `mode`.
fn channel(mode: &str) -> (ShmChannel, Child) {
    let name = unique(mode);
    let mut listener: ShmListener = ListenerOptions::new()
        .shm_capacity(1 << 20)
        .bind_shm(name.as_str())
        .unwrap();
    let child = spawn(mode, &name, 0);
    let ch = listener.accept_timeout(Duration::from_secs(30)).unwrap();
    (ch, child)
}

fn bare_one_way() -> f64 {
    let (tx, rx, mut child) = bare_pair("bare-sink", ONE_WAY);
    let msg = [1u8; SIZE];
    let mut buf = [0u8; SIZE];
    let t = Instant::now();
    for _ in 0..ONE_WAY {
        tx.send(&msg);
    }
    assert_eq!(rx.recv(&mut buf), 4);
    let rate = ONE_WAY as f64 / t.elapsed().as_secs_f64();
    assert!(child.wait().unwrap().success());
    rate
}

fn chan_one_way() -> f64 {
    let (ch, mut child) = channel("chan-sink");
    let (mut tx, mut rx) = ch.split();
    let msg = [1u8; SIZE];
    let t = Instant::now();
    for _ in 0..ONE_WAY {
        tx.send(&msg).unwrap();
    }
    drop(tx);
    let n = rx.recv().unwrap().expect("the peer's count");
    let rate = ONE_WAY as f64 / t.elapsed().as_secs_f64();
    assert_eq!(n, ONE_WAY.to_ne_bytes());
    assert!(child.wait().unwrap().success());
    rate
}

fn bare_round_trips() -> Vec<Duration> {
    let (tx, rx, mut child) = bare_pair("bare-echo", (ROUNDS + WARMUP) as u64);
    let msg = [7u8; SIZE];
    let mut buf = [0u8; SIZE];
    let mut samples = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS + WARMUP {
        let t = Instant::now();
        tx.send(&msg);
        assert_eq!(rx.recv(&mut buf), SIZE);
        if i >= WARMUP {
            samples.push(t.elapsed());
        }
    }
    assert!(child.wait().unwrap().success());
    samples
}

fn chan_round_trips() -> Vec<Duration> {
    let (ch, mut child) = channel("chan-echo");
    let (mut tx, mut rx) = ch.split();
    let msg = [7u8; SIZE];
    let mut back = Vec::new();
    let mut samples = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS + WARMUP {
        let t = Instant::now();
        tx.send(&msg).unwrap();
        assert!(rx.recv_into(&mut back).unwrap());
        if i >= WARMUP {
            samples.push(t.elapsed());
        }
    }
    drop(tx);
    assert!(child.wait().unwrap().success());
    samples
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// p50 and p99 of `samples`.
fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    (at(0.5), at(0.99))
}

/// The measures; with `channel_only`, the channel's alone (for runs where
/// the bare ring's spinners would take a time slice per message, as with
/// both processes pinned to one CPU: `taskset -c 0 ... -- cross channel`).
pub(crate) fn main(channel_only: bool) {
    if channel_only {
        let rates: Vec<f64> = (0..REPS).map(|_| chan_one_way()).collect();
        println!("  one way, channel: {} M/s", list(&rates, 1e6));
        for _ in 0..REPS {
            let (p50, p99) = percentiles(chan_round_trips());
            println!("  round trip, channel: p50 {p50:.2?}  p99 {p99:.2?}");
        }
        return;
    }
    println!("between two processes: shm channel vs bare ring, 64 B, one run (median of {REPS})\n");
    let (mut bare, mut chan) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        bare.push(bare_one_way());
        chan.push(chan_one_way());
    }
    println!(
        "  one way, bare ring: {:.1} M/s (runs: {})",
        median(bare.clone()) / 1e6,
        list(&bare, 1e6)
    );
    println!(
        "  one way, channel:   {:.1} M/s (runs: {})",
        median(chan.clone()) / 1e6,
        list(&chan, 1e6)
    );
    println!(
        "  ratio channel / bare ring, one way: {:.2}x (target >= 0.7x)\n",
        median(chan) / median(bare)
    );
    let (mut bare, mut chan) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        bare.push(percentiles(bare_round_trips()));
        chan.push(percentiles(chan_round_trips()));
    }
    let p50 = |v: &[(Duration, Duration)]| median(v.iter().map(|s| s.0.as_secs_f64()).collect());
    let p99 = |v: &[(Duration, Duration)]| median(v.iter().map(|s| s.1.as_secs_f64()).collect());
    for (what, v) in [("bare ring", &bare), ("channel", &chan)] {
        println!(
            "  round trip, {what:<9}: p50 {:.2} µs  p99 {:.2} µs (p50 runs: {})",
            p50(v) * 1e6,
            p99(v) * 1e6,
            list(
                &v.iter().map(|s| s.0.as_secs_f64()).collect::<Vec<_>>(),
                1e-6
            )
        );
    }
    println!(
        "  ratio channel / bare ring, round-trip p50: {:.2}x (target <= 1.5x)",
        p50(&chan) / p50(&bare)
    );
}

fn list(v: &[f64], unit: f64) -> String {
    v.iter()
        .map(|x| format!("{:.2}", x / unit))
        .collect::<Vec<_>>()
        .join(", ")
}
