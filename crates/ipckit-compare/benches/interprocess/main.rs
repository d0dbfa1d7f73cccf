//! ipckit's stream against the `interprocess` crate's local sockets (and, on
//! Unix, a plain `std::os::unix::net` loop), in the same run, with criterion.
//!
//! `cargo bench -p ipckit-compare --bench interprocess` (add `-- --quick` for
//! a short run).
//!
//! Every contender carries the same bytes through the same loop between two
//! threads over its local socket: on Unix a socket file in the temp directory
//! (ipckit `unix:/path`, interprocess `GenericFilePath`, std `UnixStream`), on
//! Windows a named pipe (ipckit `pipe:NAME`, interprocess `GenericNamespaced`).
//!
//! - `round_trip_64B`: write 64 bytes, read the 64-byte echo.
//! - `throughput_64KiB`: write 64 KiB chunks one way; the other side reads
//!   them all and acknowledges with one byte, which ends the timed batch.
//!
//! Two measurements in one run:
//! 1. criterion's, each contender in each of three passes, the order rotated
//!    (see [`PASSES`]);
//! 2. then the paired comparison ([`paired`]): the contenders take turns in
//!    short slices for many rounds, and the median of the per-round speed
//!    ratios is printed with a 95 % confidence interval. This is the one that
//!    answers "is ipckit at least as fast"; criterion's medians scatter with
//!    the machine's drift between passes.
//!
//! A criterion filter that does not match `paired` skips the paired part.

mod contenders;
mod paired;

use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};

use contenders::{CHUNK, Contender, Kind};

/// Each contender is measured in each of `PASSES` passes, the order rotated
/// from pass to pass (A B C, B C A, C A B), so that neither a burst of load
/// from the rest of the machine nor a place in the order falls on one
/// contender alone; compare the passes' medians (`ipckit/1`,
/// `interprocess/1`, ...), or their median.
const PASSES: usize = 3;

/// Measures `who` once as criterion benchmark `id`.
fn measure(group: &mut BenchmarkGroup<'_, WallTime>, id: &str, who: Contender, kind: Kind) {
    let (mut client, server) = who.connect(kind, &id.replace('/', "-"), || {});
    let chunk = vec![0xa5u8; CHUNK];
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            match kind {
                Kind::RoundTrip => contenders::round_trips(&mut *client, iters),
                Kind::Throughput => contenders::batch(&mut *client, &chunk, iters),
            }
            started.elapsed()
        });
    });
    drop(client);
    server.join().expect("server thread");
}

/// Measures every contender once, in pass `pass`'s order.
fn measure_pass(group: &mut BenchmarkGroup<'_, WallTime>, pass: usize, kind: Kind) {
    let mut all = Contender::all();
    let n = all.len();
    all.rotate_left((pass - 1) % n);
    for who in all {
        let id = format!("{}/{pass}", who.name());
        measure(group, &id, who, kind);
    }
}

fn compare(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!("round_trip_{}B", contenders::MSG));
    group.throughput(Throughput::Elements(1));
    for pass in 1..=PASSES {
        measure_pass(&mut group, pass, Kind::RoundTrip);
    }
    group.finish();

    let mut group = c.benchmark_group(format!("throughput_{}KiB", CHUNK / 1024));
    group.throughput(Throughput::Bytes(CHUNK as u64));
    for pass in 1..=PASSES {
        measure_pass(&mut group, pass, Kind::Throughput);
    }
    group.finish();
}

/// Whether the command line's filter (criterion's positional argument), if
/// any, lets the paired part run.
fn paired_selected(args: &[String]) -> bool {
    let filters: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    filters.is_empty() || filters.iter().any(|f| "paired".contains(f.as_str()))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    compare(&mut criterion);
    criterion.final_summary();
    if paired_selected(&args) && !args.iter().any(|a| a == "--list") {
        paired::run(paired::Config::from_args(&args));
    }
}
