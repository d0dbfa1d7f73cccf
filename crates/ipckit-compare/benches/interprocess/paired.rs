//! The paired comparison: every contender is connected at once and they take
//! turns, one short slice each per round, for many rounds; each round gives
//! one speed ratio per pair of contenders (the other's time for the same work
//! over ipckit's), and the answer is the median of those ratios with a
//! bootstrap 95 % confidence interval.
//!
//! Why not only criterion's estimates: on a shared VM the speed of the whole
//! machine drifts by 10–30 % over seconds, and criterion measures one
//! contender for seconds before it moves to the next, so the drift lands on
//! one of them. Here adjacent slices are a fraction of a second apart and in
//! a rotated order, so a drift moves both sides of every ratio together.
//!
//! The threads are left to the scheduler unless `IPCKIT_COMPARE_PIN` says
//! otherwise (Linux, two CPUs in this process's set): `same` runs the client
//! and every server on the first CPU (a round trip is two context switches),
//! `split` the client on the first and the servers on the second (every
//! reply is a wake-up across CPUs, on the project VM several times slower).
//! Left alone, the scheduler on a busy machine mostly keeps a pair on one
//! CPU, and on an idle one spreads it over two.
//!
//! A second ipckit connection runs as an A/A control: its ratio to the first
//! ipckit connection shows how far the method strays from 1 when nothing
//! differs.
//!
//! `IPCKIT_COMPARE_ONLY=ipckit` (or `interprocess`, `std`) runs that
//! contender alone, and `IPCKIT_COMPARE_UNITS=N` fixes the work per slice,
//! e.g. to count each one's system calls under `strace -f -c`.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::contenders::{self, CHUNK, Contender, Duplex, Kind};

/// How long one run of the paired comparison takes, roughly.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    /// Rounds: in each, every contender runs one slice.
    pub(crate) rounds: usize,
    /// How long one slice runs (the work per slice is fixed, calibrated so
    /// that the slowest contender's slice takes about this long).
    pub(crate) slice: Duration,
    /// The work per slice instead of the calibration
    /// (`IPCKIT_COMPARE_UNITS`): then every run does the same work, e.g. to
    /// count system calls.
    pub(crate) units: Option<u64>,
}

impl Config {
    /// `--test` (cargo test --benches): one quick pass to show it works;
    /// `--quick`: fewer rounds; otherwise 40 rounds of 100 ms slices.
    /// `IPCKIT_COMPARE_ROUNDS` overrides the number of rounds,
    /// `IPCKIT_COMPARE_UNITS` the calibrated work per slice.
    pub(crate) fn from_args(args: &[String]) -> Config {
        let has = |flag: &str| args.iter().any(|a| a == flag);
        let mut config = if has("--test") {
            Config {
                rounds: 3,
                slice: Duration::from_millis(5),
                units: None,
            }
        } else if has("--quick") {
            Config {
                rounds: 12,
                slice: Duration::from_millis(50),
                units: None,
            }
        } else {
            Config {
                rounds: 40,
                slice: Duration::from_millis(100),
                units: None,
            }
        };
        if let Some(rounds) = positive("IPCKIT_COMPARE_ROUNDS") {
            config.rounds = usize::try_from(rounds).expect("IPCKIT_COMPARE_ROUNDS fits a usize");
        }
        config.units = positive("IPCKIT_COMPARE_UNITS");
        config
    }
}

/// The whole number > 0 in environment variable `var`, if it is set; any
/// other value stops the run, naming the variable.
fn positive(var: &str) -> Option<u64> {
    let value = std::env::var(var).ok()?;
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Some(n),
        _ => panic!("{var}={value:?}: expected a whole number greater than 0"),
    }
}

/// Runs the comparison for round trips and for throughput and prints it.
pub(crate) fn run(config: Config) {
    let placement = pin::client();
    println!();
    println!(
        "paired comparison: {} rounds, every contender one slice (~{} ms) a round, order rotated; {placement}",
        config.rounds,
        config.slice.as_millis()
    );
    for kind in [Kind::RoundTrip, Kind::Throughput] {
        let result = measure(kind, config);
        result.print();
    }
}

/// Fewer rounds than this give no verdict (`--test` runs 3).
const MIN_ROUNDS: usize = 10;

/// The A/A control's label.
const CONTROL: &str = "ipckit (A/A control)";

/// A contender's open connection.
struct Lane {
    label: &'static str,
    client: Box<dyn Duplex>,
    server: JoinHandle<()>,
}

impl Lane {
    /// Runs `n` units of `kind` (round trips, or chunks in one batch) and
    /// returns how long they took.
    fn run(&mut self, kind: Kind, chunk: &[u8], n: u64) -> Duration {
        let started = Instant::now();
        match kind {
            Kind::RoundTrip => contenders::round_trips(&mut *self.client, n),
            Kind::Throughput => contenders::batch(&mut *self.client, chunk, n),
        }
        started.elapsed()
    }
}

/// The times of every slice, per contender.
struct Measured {
    kind: Kind,
    /// Units (round trips or chunks) per slice.
    units: u64,
    /// Each lane's label and its slices' times, round by round; ipckit first.
    times: Vec<(&'static str, Vec<Duration>)>,
}

fn measure(kind: Kind, config: Config) -> Measured {
    let chunk = vec![0xa5u8; CHUNK];
    // The contenders, and a second ipckit connection as an A/A control: its
    // ratio to the first shows how far the method itself strays from 1.
    let mut entrants: Vec<(&'static str, Contender)> = Contender::all()
        .into_iter()
        .map(|who| (who.name(), who))
        .collect();
    entrants.push((CONTROL, Contender::Ipckit));
    if let Ok(only) = std::env::var("IPCKIT_COMPARE_ONLY") {
        entrants.retain(|(label, _)| *label == only);
        assert!(
            !entrants.is_empty(),
            "IPCKIT_COMPARE_ONLY={only:?}: expected ipckit, interprocess or std"
        );
    }
    let mut lanes: Vec<Lane> = entrants
        .into_iter()
        .enumerate()
        .map(|(i, (label, who))| {
            let tag = format!("paired-{kind:?}-{i}");
            let (client, server) = who.connect(kind, &tag, pin::server);
            Lane {
                label,
                client,
                server,
            }
        })
        .collect();

    let units = match config.units {
        Some(units) => units,
        None => calibrate(&mut lanes, kind, &chunk, config.slice),
    };

    let count = lanes.len();
    let mut times = vec![Vec::with_capacity(config.rounds); count];
    for round in 0..config.rounds {
        for k in 0..count {
            let i = (round + k) % count;
            times[i].push(lanes[i].run(kind, &chunk, units));
        }
    }

    let mut result = Vec::with_capacity(count);
    for (lane, times) in lanes.into_iter().zip(times) {
        let Lane {
            label,
            client,
            server,
        } = lane;
        drop(client);
        server.join().expect("server thread");
        result.push((label, times));
    }
    Measured {
        kind,
        units,
        times: result,
    }
}

/// Calibrates on every contender, the second time warm (the first pass also
/// pays for the connection's first use): the slowest sets the work per slice.
fn calibrate(lanes: &mut [Lane], kind: Kind, chunk: &[u8], slice: Duration) -> u64 {
    let mut units: Option<u64> = None;
    for lane in lanes {
        for warm in [false, true] {
            let mut n = 1u64;
            let took = loop {
                let took = lane.run(kind, chunk, n);
                if took >= slice / 4 {
                    break took;
                }
                n *= 2;
            };
            if warm {
                let fits = n as f64 * slice.as_secs_f64() / took.as_secs_f64();
                let fits = (fits as u64).max(1);
                units = Some(units.map_or(fits, |u| u.min(fits)));
            }
        }
    }
    units.expect("at least one contender")
}

impl Measured {
    fn print(&self) {
        let (title, unit) = match self.kind {
            Kind::RoundTrip => (format!("round_trip_{}B", contenders::MSG), "round trips"),
            Kind::Throughput => (format!("throughput_{}KiB", CHUNK / 1024), "chunks"),
        };
        println!("{title} ({} {unit} a slice):", self.units);
        for (who, times) in &self.times {
            let mid = median(times.iter().map(Duration::as_secs_f64).collect());
            let per_unit = mid / self.units as f64;
            let shown = match self.kind {
                Kind::RoundTrip => format!("{:.2} µs per round trip", per_unit * 1e6),
                Kind::Throughput => {
                    format!("{:.0} MiB/s", CHUNK as f64 / per_unit / (1024.0 * 1024.0))
                }
            };
            println!("  {who:<21} {shown} (median slice)");
        }
        let (ipckit, others) = self.times.split_first().expect("one contender at least");
        if ipckit.0 != Contender::Ipckit.name() {
            return; // IPCKIT_COMPARE_ONLY left ipckit out: nothing to compare
        }
        for (who, times) in others {
            // > 1: ipckit did the same work in less time.
            let ratios: Vec<f64> = times
                .iter()
                .zip(&ipckit.1)
                .map(|(theirs, ours)| theirs.as_secs_f64() / ours.as_secs_f64())
                .collect();
            let (mid, low, high) = median_with_ci(&ratios);
            let verdict = if *who == CONTROL {
                "the method's own scatter"
            } else if ratios.len() < MIN_ROUNDS {
                "too few rounds to tell"
            } else if low > 1.0 {
                "ipckit faster"
            } else if high < 1.0 {
                "ipckit slower"
            } else {
                "no difference found"
            };
            println!(
                "  ipckit speed / {who} speed: {mid:.3} (95 % CI {low:.3}-{high:.3}): {verdict}"
            );
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The median of `values` and a percentile-bootstrap 95 % confidence
/// interval for it (2,000 resamples, a fixed seed: the same data gives the
/// same interval).
fn median_with_ci(values: &[f64]) -> (f64, f64, f64) {
    const RESAMPLES: usize = 2000;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let n = values.len();
    let mut medians: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let sample = (0..n)
                .map(|_| values[(next() % n as u64) as usize])
                .collect();
            median(sample)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    let low = medians[RESAMPLES * 25 / 1000];
    let high = medians[RESAMPLES * 975 / 1000 - 1];
    (median(values.to_vec()), low, high)
}

/// Where the threads run: `IPCKIT_COMPARE_PIN=same` puts the client and
/// every server on one CPU, `split` the client on one and the servers on
/// another (Linux, with two CPUs to run on); otherwise the scheduler decides.
mod pin {
    #[cfg(target_os = "linux")]
    mod cpus {
        use std::sync::OnceLock;

        use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

        /// The CPUs of the client and of the servers, as `IPCKIT_COMPARE_PIN`
        /// asks, if this process may run on two CPUs.
        pub(crate) fn chosen() -> Option<(usize, usize)> {
            static CHOSEN: OnceLock<Option<(usize, usize)>> = OnceLock::new();
            *CHOSEN.get_or_init(|| {
                let mode = std::env::var("IPCKIT_COMPARE_PIN").ok()?;
                let set = sched_getaffinity(None).ok()?;
                let mut mine = (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c));
                let (first, second) = (mine.next()?, mine.next()?);
                match mode.as_str() {
                    "same" => Some((first, first)),
                    "split" => Some((first, second)),
                    other => panic!("IPCKIT_COMPARE_PIN={other:?}: expected same or split"),
                }
            })
        }

        pub(crate) fn to(cpu: usize) {
            let mut set = CpuSet::new();
            set.set(cpu);
            sched_setaffinity(None, &set).expect("pin a thread to a CPU");
        }
    }

    /// Pins the calling (client) thread and says where the threads run.
    #[cfg(target_os = "linux")]
    pub(crate) fn client() -> String {
        match cpus::chosen() {
            Some((client, server)) => {
                cpus::to(client);
                format!("client on CPU {client}, servers on CPU {server}")
            }
            None => "threads not pinned (IPCKIT_COMPARE_PIN=same or split pins them)".to_owned(),
        }
    }

    /// Pins a server thread (run on the thread itself).
    #[cfg(target_os = "linux")]
    pub(crate) fn server() {
        if let Some((_, server)) = cpus::chosen() {
            cpus::to(server);
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn client() -> String {
        "threads not pinned on this OS".to_owned()
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn server() {}
}
