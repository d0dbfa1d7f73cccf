//! `ipckit demo`: real inter-process round trips and throughput on every stream
//! transport this OS has, a shared-memory channel and a mailslot (`steps`).
//!
//! For each transport this process binds a listener and echoes on a thread; a
//! child process (this binary, hidden subcommand `__demo-peer`) connects, times
//! round trips of a few bytes, then streams a bulk transfer while reading the echo
//! back concurrently. The child checks every byte that comes back against what it
//! sent and prints its figures on one line; the server checks a checksum of
//! everything it received against what the child must have sent. Both sides
//! generate the bytes from the same position-based pattern, so neither has to
//! trust the other.

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ipckit::{Address, ConnectOptions, Listener, Stream};

use crate::stdout_error;

mod rpc_step;
mod steps;

/// How long one transport may take before its child is killed and it fails.
const CHILD_LIMIT: Duration = Duration::from_secs(60);
/// Bounds every read and write of the demo, so a lost byte fails instead of hanging.
const IO_LIMIT: Duration = Duration::from_secs(30);
const CHUNK: usize = 64 * 1024;

/// What each transport is put through.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) rounds: u32,
    pub(crate) size: u32,
    pub(crate) bulk: u64,
}

impl Settings {
    fn total_bytes(&self) -> u64 {
        u64::from(self.rounds) * u64::from(self.size) + self.bulk
    }
}

/// 1000 round trips natively; 200 under Wine, where one takes about a millisecond.
pub(crate) fn default_rounds() -> u32 {
    if ipckit::platform::is_wine() {
        200
    } else {
        1000
    }
}

struct Transport {
    name: &'static str,
    addr: String,
    /// The socket file the listener must remove, where we know it.
    file: Option<PathBuf>,
}

/// The stream transports of this OS, each at a fresh name.
fn transports(tag: &str) -> Vec<Transport> {
    let mut list = vec![Transport {
        name: "pipe",
        addr: format!("pipe:{tag}"),
        file: None,
    }];
    if cfg!(unix) {
        let path = std::env::temp_dir().join(format!("{tag}.sock"));
        list.push(Transport {
            name: "unix",
            addr: format!("unix:{}", path.display()),
            file: Some(path),
        });
    }
    if cfg!(any(target_os = "linux", target_os = "android")) {
        list.push(Transport {
            name: "abstract",
            addr: format!("@{tag}"),
            file: None,
        });
    }
    list.push(Transport {
        name: "tcp",
        addr: "tcp:127.0.0.1:0".to_owned(),
        file: None,
    });
    list.push(Transport {
        name: "shm",
        addr: format!("shm:{tag}"),
        file: None,
    });
    list
}

/// `ipckit-demo-PID-RANDOM`: unique across processes and runs.
fn unique_tag() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // RandomState is seeded from the OS's random source once per process.
    let random = RandomState::new().hash_one(nanos);
    format!("ipckit-demo-{}-{:08x}", std::process::id(), random as u32)
}

/// The figures the child measured.
#[derive(Debug, PartialEq)]
struct Figures {
    rounds: u64,
    median: Duration,
    p99: Duration,
    bulk_bytes: u64,
    bulk_time: Duration,
}

impl Figures {
    fn to_line(&self) -> String {
        format!(
            "rounds={} median_ns={} p99_ns={} bulk_bytes={} bulk_ns={}",
            self.rounds,
            self.median.as_nanos(),
            self.p99.as_nanos(),
            self.bulk_bytes,
            self.bulk_time.as_nanos()
        )
    }

    fn parse(line: &str) -> Result<Figures> {
        let field = |key: &str| -> Result<u64> {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .ok_or_else(|| anyhow!("no {key} in the child's report {line:?}"))?
                .parse()
                .with_context(|| format!("bad {key} in the child's report {line:?}"))
        };
        Ok(Figures {
            rounds: field("rounds")?,
            median: Duration::from_nanos(field("median_ns")?),
            p99: Duration::from_nanos(field("p99_ns")?),
            bulk_bytes: field("bulk_bytes")?,
            bulk_time: Duration::from_nanos(field("bulk_ns")?),
        })
    }

    fn mib_per_sec(&self) -> f64 {
        self.bulk_bytes as f64 / (1 << 20) as f64 / self.bulk_time.as_secs_f64().max(1e-9)
    }
}

/// One transport's result: the address actually served, the child's pid, and the
/// figures, or why it failed.
struct Row {
    addr: String,
    pid: Option<u32>,
    outcome: Result<Figures>,
}

/// `ipckit demo`.
pub(crate) fn run(settings: Settings) -> Result<()> {
    let started = Instant::now();
    let exe = std::env::current_exe().context("find this program to run the demo's child")?;
    let expected = pattern_checksum(0, settings.total_bytes());
    let tag = unique_tag();
    let transports = transports(&tag);
    let mailslot_addr = format!("mailslot:{tag}");
    let rpc_addr = format!("{tag}-rpc");
    let width = transports
        .iter()
        .map(|t| t.addr.len())
        .chain([21, mailslot_addr.len(), rpc_addr.len()])
        .max()
        .unwrap_or(21);

    let mut out = io::stdout().lock();
    let mib = settings.bulk as f64 / (1 << 20) as f64;
    let header = format!(
        "ipckit demo: this process (pid {pid}) listens and echoes; for each transport a child\n\
         process connects, times {rounds} round trips of {size} bytes, then echoes {mib} MiB and\n\
         checks every byte (the server also checks a checksum of all it received). The\n\
         shared-memory channel does the same with messages; the mailslot is one way: the\n\
         child sends {rounds} messages and this process checks each; for JSON-RPC this\n\
         process serves `add` and the child calls it with `ipckit call`.\n\n\
         {t:<9}  {a:<width$}  {p:>8}  {r:>11}  {m:>9}  {q:>9}  {s:>8}  result",
        pid = std::process::id(),
        rounds = settings.rounds,
        size = settings.size,
        t = "transport",
        a = "address",
        p = "peer pid",
        r = "round trips",
        m = "median µs",
        q = "p99 µs",
        s = "MiB/s",
    );
    writeln!(out, "{header}").map_err(stdout_error)?;

    let mut failed = Vec::new();
    for transport in &transports {
        let row = if transport.addr.starts_with("shm:") {
            steps::run_shm(&exe, transport, settings, expected)
        } else {
            run_transport(&exe, transport, settings, expected)
        };
        let mut line = format!("{:<9}  {:<width$}  ", transport.name, row.addr);
        pid_column(&mut line, row.pid);
        match &row.outcome {
            Ok(f) => write!(
                line,
                "{:>11}  {:>9.1}  {:>9.1}  {:>8.1}  ok",
                f.rounds,
                micros(f.median),
                micros(f.p99),
                f.mib_per_sec()
            ),
            Err(err) => {
                failed.push(transport.name);
                write!(
                    line,
                    "{:>11}  {:>9}  {:>9}  {:>8}  FAILED: {err:#}",
                    "-", "-", "-", "-"
                )
            }
        }
        .expect("writing to a String cannot fail");
        writeln!(out, "{line}").map_err(stdout_error)?;
    }

    // The mailslot: one way, so no round trips; how long the messages took.
    let (pid, outcome) = steps::run_mailslot(&exe, &mailslot_addr, settings);
    let mut line = format!("{:<9}  {mailslot_addr:<width$}  ", "mailslot");
    pid_column(&mut line, pid);
    match &outcome {
        Ok(m) => write!(
            line,
            "{} messages of {} bytes from the child, each checked, in {:.2} ms \
             ({:.0} messages/s, {:.1} MiB/s)  ok",
            m.messages,
            settings.size,
            m.took.as_secs_f64() * 1e3,
            m.messages as f64 / m.took.as_secs_f64().max(1e-9),
            m.bytes as f64 / f64::from(1 << 20) / m.took.as_secs_f64().max(1e-9),
        ),
        Err(err) => {
            failed.push("mailslot");
            write!(line, "FAILED: {err:#}")
        }
    }
    .expect("writing to a String cannot fail");
    writeln!(out, "{line}").map_err(stdout_error)?;

    // JSON-RPC: this process serves `add`; a child's `ipckit call` calls it.
    let (pid, outcome) = rpc_step::run_rpc(&exe, &rpc_addr);
    let mut line = format!("{:<9}  {rpc_addr:<width$}  ", "rpc");
    pid_column(&mut line, pid);
    match &outcome {
        Ok(r) => write!(
            line,
            "the child ran `ipckit call {rpc_addr} {}` and printed {} ({} call served), \
             {:.1} ms with the process start  ok",
            r.call,
            r.result,
            r.calls_served,
            r.took.as_secs_f64() * 1e3,
        ),
        Err(err) => {
            failed.push("rpc");
            write!(line, "FAILED: {err:#}")
        }
    }
    .expect("writing to a String cannot fail");
    writeln!(out, "{line}").map_err(stdout_error)?;
    let total = transports.len() + 2;

    let took = started.elapsed().as_secs_f64();
    if failed.is_empty() {
        writeln!(out, "\nall {total} transports ok ({took:.2} s)").map_err(stdout_error)?;
        Ok(())
    } else {
        writeln!(out).map_err(stdout_error)?;
        out.flush().map_err(stdout_error)?;
        bail!(
            "demo: {} of {total} transports failed: {}",
            failed.len(),
            failed.join(", ")
        )
    }
}

/// The peer-pid column of a row: the pid, or `-` when no child started.
fn pid_column(line: &mut String, pid: Option<u32>) {
    match pid {
        Some(pid) => write!(line, "{pid:>8}  "),
        None => write!(line, "{:>8}  ", "-"),
    }
    .expect("writing to a String cannot fail");
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn run_transport(exe: &Path, transport: &Transport, settings: Settings, expected: u64) -> Row {
    let listener = match Listener::bind(transport.addr.as_str()) {
        Ok(listener) => listener,
        Err(err) => {
            return Row {
                addr: transport.addr.clone(),
                pid: None,
                outcome: Err(err.into()),
            };
        }
    };
    // For tcp:127.0.0.1:0 this has the port the OS chose.
    let addr = listener.local_addr().clone();
    let mut pid = None;
    let mut outcome = thread::scope(|scope| {
        let server = thread::Builder::new()
            .name("demo-echo".into())
            .spawn_scoped(scope, || serve_one(&listener))
            .context("start the echo thread")?;
        let child = spawn_peer(exe, &addr, settings);
        if let Ok(child) = &child {
            pid = Some(child.id());
        }
        let report = child.and_then(wait_peer);
        if !server.is_finished() {
            // The child never connected (or is gone): wake the accept with a
            // connection of our own that closes at once.
            let _ = ConnectOptions::new()
                .timeout(Duration::from_secs(2))
                .connect(&addr);
        }
        let received = server
            .join()
            .map_err(|_| anyhow!("the echo thread panicked"))?;
        let figures = report?;
        check_work(settings, expected, received.context("server")?, &figures)?;
        Ok(figures)
    });
    drop(listener);
    if let Some(file) = &transport.file
        && file.symlink_metadata().is_ok()
    {
        let _ = std::fs::remove_file(file);
        if outcome.is_ok() {
            outcome = Err(anyhow!("the listener left {} behind", file.display()));
        }
    }
    Row {
        addr: addr.to_string(),
        pid,
        outcome,
    }
}

/// Checks that the server received every byte the child had to send (`got`: the
/// count and the checksum) and that the child reports the work it was given.
fn check_work(settings: Settings, expected: u64, got: (u64, u64), figures: &Figures) -> Result<()> {
    let (bytes, checksum) = got;
    ensure!(
        bytes == settings.total_bytes(),
        "the server received {bytes} bytes, expected {}",
        settings.total_bytes()
    );
    ensure!(
        checksum == expected,
        "the checksum of the bytes the server received is {checksum:016x}, expected {expected:016x}"
    );
    ensure!(
        figures.rounds == u64::from(settings.rounds) && figures.bulk_bytes == settings.bulk,
        "the child reported {figures:?}, not the work it was given"
    );
    Ok(())
}

/// Accepts one client and echoes until it closes; returns the count and the
/// checksum of every byte received.
fn serve_one(listener: &Listener) -> Result<(u64, u64)> {
    let mut stream = listener.accept()?;
    stream.set_read_timeout(Some(IO_LIMIT))?;
    stream.set_write_timeout(Some(IO_LIMIT))?;
    let peer = stream.peer_addr().clone();
    let mut buf = vec![0; CHUNK];
    let mut checksum = Checksum::new();
    let mut total = 0u64;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            // Windows reports a client's close of a pipe as a broken pipe.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("read from the client on {peer}")),
        };
        checksum.update(&buf[..n]);
        total += n as u64;
        stream
            .write_all(&buf[..n])
            .with_context(|| format!("echo to the client on {peer}"))?;
    }
    Ok((total, checksum.finish()))
}

fn spawn_peer(exe: &Path, addr: &Address, settings: Settings) -> Result<Child> {
    Command::new(exe)
        .arg("__demo-peer")
        .arg(addr.to_string())
        .arg(settings.rounds.to_string())
        .arg(settings.size.to_string())
        .arg(settings.bulk.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {}", exe.display()))
}

/// Waits for the child (killing it after [`CHILD_LIMIT`]) and reads its report.
fn wait_peer(child: Child) -> Result<Figures> {
    Figures::parse(wait_child(child)?.trim())
}

/// Waits for the child (killing it after [`CHILD_LIMIT`]) and returns its
/// stdout; its failure is an error with its stderr.
fn wait_child(mut child: Child) -> Result<String> {
    let deadline = Instant::now() + CHILD_LIMIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(1)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the child did not finish within {CHILD_LIMIT:?} and was killed");
            }
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err).context("wait for the child");
            }
        }
    };
    // Both reports are a line or two, far below a pipe's buffer: reading them after
    // the exit cannot block.
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout)
            .context("read the child's report")?;
    }
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    if !status.success() {
        let why = stderr.trim();
        let why = why.strip_prefix("ipckit: ").unwrap_or(why);
        bail!("the child failed ({status}): {why}");
    }
    Ok(stdout)
}

/// `ipckit __demo-peer ADDR ROUNDS SIZE BULK`: the child half of the demo.
pub(crate) fn peer(addr: &Address, rounds: u32, size: u32, bulk: u64) -> Result<()> {
    match addr {
        Address::Mailslot(_) => return steps::mailslot_peer(addr, rounds, size),
        Address::Shm(_) => return steps::shm_peer(addr, rounds, size, bulk),
        _ => {}
    }
    let mut stream = ConnectOptions::new()
        .timeout(Duration::from_secs(10))
        .connect(addr)?;
    stream.set_read_timeout(Some(IO_LIMIT))?;
    stream.set_write_timeout(Some(IO_LIMIT))?;

    let size = usize::try_from(size).context("the round-trip size does not fit in memory")?;
    let (times, offset) = time_round_trips(rounds, size, |round, sent, back| {
        back.resize(sent.len(), 0);
        stream
            .write_all(sent)
            .with_context(|| format!("round trip {round}: write to {addr}"))?;
        stream
            .read_exact(back)
            .with_context(|| format!("round trip {round}: read from {addr}"))
    })?;

    // The bulk transfer: write on one thread, read back and check on this one, so
    // neither side's buffers can fill up and stall the other.
    let writer = stream.try_clone()?;
    let start = Instant::now();
    let sender = thread::Builder::new()
        .name("demo-send".into())
        .spawn(move || send_pattern(&writer, offset, bulk))
        .context("start the sending thread")?;
    // On a failure here the sender is left behind: the process is about to exit.
    receive_pattern(&stream, offset, bulk)?;
    let bulk_time = start.elapsed();
    sender
        .join()
        .map_err(|_| anyhow!("the sending thread panicked"))??;
    drop(stream);

    report(&times, bulk, bulk_time)
}

/// Prints the child's figures on stdout, as one line for the parent.
fn report(times: &[Duration], bulk: u64, bulk_time: Duration) -> Result<()> {
    let figures = Figures {
        rounds: times.len() as u64,
        median: percentile(times, 50),
        p99: percentile(times, 99),
        bulk_bytes: bulk,
        bulk_time,
    };
    writeln!(io::stdout(), "{}", figures.to_line()).map_err(stdout_error)
}

/// Times `rounds` round trips of `size` bytes of the pattern: `trip` sends
/// `sent` and puts the answer in `back`, which must be the same bytes. Returns
/// the sorted times and the pattern position after the last round trip.
fn time_round_trips(
    rounds: u32,
    size: usize,
    mut trip: impl FnMut(u32, &[u8], &mut Vec<u8>) -> Result<()>,
) -> Result<(Vec<Duration>, u64)> {
    let mut sent = vec![0; size];
    let mut back = Vec::with_capacity(size);
    let mut times = Vec::with_capacity(rounds as usize);
    let mut offset = 0u64;
    for round in 0..rounds {
        fill_pattern(offset, &mut sent);
        offset += size as u64;
        let start = Instant::now();
        trip(round, &sent, &mut back)?;
        times.push(start.elapsed());
        if let Some(at) = first_difference(&sent, &back) {
            bail!("round trip {round}: byte {at} came back changed");
        }
    }
    times.sort_unstable();
    Ok((times, offset))
}

fn send_pattern(mut stream: &Stream, mut offset: u64, len: u64) -> Result<()> {
    let end = offset + len;
    let mut buf = vec![0; CHUNK];
    while offset < end {
        let n = chunk_len(end - offset);
        fill_pattern(offset, &mut buf[..n]);
        stream
            .write_all(&buf[..n])
            .with_context(|| format!("bulk: write to {} at byte {offset}", stream.peer_addr()))?;
        offset += n as u64;
    }
    Ok(())
}

fn receive_pattern(mut stream: &Stream, mut offset: u64, len: u64) -> Result<()> {
    let (start, end) = (offset, offset + len);
    let mut buf = vec![0; CHUNK];
    let mut want = vec![0; CHUNK];
    while offset < end {
        let room = chunk_len(end - offset);
        let n = match stream.read(&mut buf[..room]) {
            Ok(0) => bail!(
                "bulk: the server closed after {} of {len} bytes",
                offset - start
            ),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "bulk: read from {} at byte {}",
                        stream.peer_addr(),
                        offset - start
                    )
                });
            }
        };
        fill_pattern(offset, &mut want[..n]);
        if let Some(at) = first_difference(&want[..n], &buf[..n]) {
            bail!(
                "bulk: byte {} came back changed",
                offset - start + at as u64
            );
        }
        offset += n as u64;
    }
    Ok(())
}

/// The bytes to move next when `left` remain: at most [`CHUNK`].
fn chunk_len(left: u64) -> usize {
    usize::try_from(left).map_or(CHUNK, |left| left.min(CHUNK))
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(
        a.iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len())),
    )
}

/// The nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Fills `buf` with the demo's byte pattern from stream position `offset`. Byte
/// `i` of the pattern depends only on `i`, so any chunking gives the same bytes.
fn fill_pattern(offset: u64, buf: &mut [u8]) {
    // Up to the next multiple of 8, then whole words, then the tail.
    let head = ((8 - offset % 8) % 8).min(buf.len() as u64) as usize;
    let (first, rest) = buf.split_at_mut(head);
    if head > 0 {
        let from = (offset % 8) as usize;
        first.copy_from_slice(&pattern_word(offset / 8)[from..from + head]);
    }
    let mut word = (offset + head as u64) / 8;
    let mut words = rest.chunks_exact_mut(8);
    for chunk in &mut words {
        chunk.copy_from_slice(&pattern_word(word));
        word += 1;
    }
    let tail = words.into_remainder();
    let len = tail.len();
    tail.copy_from_slice(&pattern_word(word)[..len]);
}

/// Word `n` of the pattern (splitmix64 of `n`).
fn pattern_word(n: u64) -> [u8; 8] {
    let mut z = n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).to_le_bytes()
}

/// The checksum of `len` pattern bytes from `offset`.
fn pattern_checksum(mut offset: u64, len: u64) -> u64 {
    let end = offset + len;
    let mut buf = vec![0; CHUNK];
    let mut sum = Checksum::new();
    while offset < end {
        let n = chunk_len(end - offset);
        fill_pattern(offset, &mut buf[..n]);
        sum.update(&buf[..n]);
        offset += n as u64;
    }
    sum.finish()
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A checksum of a byte stream that does not depend on how the stream is chunked:
/// FNV-1a over 64-bit words, spread over four lanes so that it runs at memory
/// speed rather than at the latency of one multiply per byte. A changed, lost,
/// doubled or moved byte changes the sum.
struct Checksum {
    lanes: [u64; 4],
    words: u64,
    carry: [u8; 8],
    carried: usize,
}

impl Checksum {
    fn new() -> Checksum {
        Checksum {
            lanes: [FNV_OFFSET; 4],
            words: 0,
            carry: [0; 8],
            carried: 0,
        }
    }

    fn word(&mut self, bytes: [u8; 8]) {
        let lane = &mut self.lanes[(self.words % 4) as usize];
        *lane = (*lane ^ u64::from_le_bytes(bytes)).wrapping_mul(FNV_PRIME);
        self.words += 1;
    }

    fn update(&mut self, mut bytes: &[u8]) {
        if self.carried > 0 {
            let take = (8 - self.carried).min(bytes.len());
            self.carry[self.carried..self.carried + take].copy_from_slice(&bytes[..take]);
            self.carried += take;
            bytes = &bytes[take..];
            if self.carried < 8 {
                return;
            }
            self.word(self.carry);
            self.carried = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for chunk in &mut words {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.word(word);
        }
        let rest = words.remainder();
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carried = rest.len();
    }

    fn finish(&self) -> u64 {
        let len = self.words * 8 + self.carried as u64;
        let tail = &self.carry[..self.carried];
        let mut h = FNV_OFFSET;
        let lanes = self.lanes.iter().flat_map(|l| l.to_le_bytes());
        for b in lanes.chain(tail.iter().copied()).chain(len.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_does_not_depend_on_chunking() {
        let mut whole = vec![0; 1000];
        fill_pattern(5, &mut whole);
        let mut pieces = vec![0; 1000];
        let mut at = 0;
        for len in [1, 2, 3, 7, 8, 9, 13, 0, 100, 857] {
            fill_pattern(5 + at as u64, &mut pieces[at..at + len]);
            at += len;
        }
        assert_eq!(at, 1000);
        assert_eq!(whole, pieces);
        let mut inside = [0; 3];
        fill_pattern(9, &mut inside);
        assert_eq!(inside, whole[4..7]);
        assert!(whole.windows(8).any(|w| w != &whole[..8]), "not constant");
    }

    #[test]
    fn the_checksum_sees_a_changed_or_moved_byte() {
        let mut data = vec![0; 4096];
        fill_pattern(0, &mut data);
        let sum = |d: &[u8]| {
            let mut f = Checksum::new();
            f.update(d);
            f.finish()
        };
        assert_eq!(sum(&data), pattern_checksum(0, 4096));
        // Chunking does not matter.
        let mut pieces = Checksum::new();
        for piece in data.chunks(13) {
            pieces.update(piece);
        }
        assert_eq!(pieces.finish(), sum(&data));
        assert_ne!(sum(&data[..4095]), sum(&data));
        let mut doubled = data.clone();
        doubled.insert(100, data[100]);
        doubled.pop();
        assert_ne!(sum(&doubled), sum(&data));
        let mut changed = data.clone();
        changed[4000] ^= 1;
        assert_ne!(sum(&data), sum(&changed));
        let mut swapped = data.clone();
        swapped.swap(10, 11);
        assert_ne!(sum(&data), sum(&swapped));
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let ms = |n: u64| Duration::from_millis(n);
        let samples: Vec<_> = (1..=200).map(ms).collect();
        assert_eq!(percentile(&samples, 50), ms(100));
        assert_eq!(percentile(&samples, 99), ms(198));
        assert_eq!(percentile(&[ms(7)], 99), ms(7));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }

    #[test]
    fn figures_survive_the_trip_through_text() {
        let figures = Figures {
            rounds: 200,
            median: Duration::from_nanos(12_345),
            p99: Duration::from_nanos(99_999),
            bulk_bytes: 4 << 20,
            bulk_time: Duration::from_millis(3),
        };
        assert_eq!(Figures::parse(&figures.to_line()).unwrap(), figures);
        assert!(Figures::parse("rounds=1").is_err());
    }

    #[test]
    fn tags_are_unique() {
        assert_ne!(unique_tag(), unique_tag());
    }
}
