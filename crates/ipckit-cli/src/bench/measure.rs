//! One measurement: the bench's half (round trips, then one-way messages)
//! and the peer's (`ipckit __bench-peer`), which it starts.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use hdrhistogram::Histogram;

use super::Transport;
use super::endpoint::{self, Bound, Conn, IO_LIMIT, MAX_DATAGRAM};

const ECHO: u8 = 0;
const SINK: u8 = 1;
const ACK: u8 = 2;
const QUIT: u8 = 3;

/// Round trips before the timed ones, not recorded.
const WARM_UP: u32 = 200;

/// One transport's figures.
#[derive(Debug)]
pub(super) struct Measured {
    pub(super) address: String,
    pub(super) hist: Histogram<u64>,
    pub(super) round_trip_time: Duration,
    pub(super) sunk: u64,
    pub(super) sink_time: Duration,
}

impl Measured {
    pub(super) fn round_trips_per_sec(&self) -> f64 {
        self.hist.len() as f64 / self.round_trip_time.as_secs_f64()
    }
    pub(super) fn messages_per_sec(&self) -> f64 {
        self.sunk as f64 / self.sink_time.as_secs_f64()
    }
    pub(super) fn bytes_per_sec(&self, size: usize) -> f64 {
        self.messages_per_sec() * size as f64
    }
}

/// Measures `transport` against a peer process (pinned to `peer_cpu`, if
/// given).
pub(super) fn measure(
    exe: &Path,
    transport: Transport,
    tag: &str,
    size: usize,
    duration: Duration,
    peer_cpu: Option<usize>,
    progress: &dyn Fn(f64),
) -> Result<Measured> {
    if transport == Transport::Datagram && size > MAX_DATAGRAM {
        bail!(
            "datagram messages are limited to {MAX_DATAGRAM} bytes here; use --size {MAX_DATAGRAM} or less"
        );
    }
    let (bound, address) = endpoint::bind(transport, tag, size)?;
    let peer_addr = match transport {
        Transport::Datagram => format!("mailslot:{tag}-datagram-b"),
        _ => address.clone(),
    };
    let mut cmd = Command::new(exe);
    cmd.arg("__bench-peer")
        .arg(transport.name())
        .arg(&peer_addr)
        .arg(size.to_string());
    if transport == Transport::Datagram {
        cmd.arg(&address);
    }
    if let Some(cpu) = peer_cpu {
        cmd.arg("--cpu").arg(cpu.to_string());
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start the bench's peer")?;
    let stdout = child.stdout.take();
    let watchdog = match transport {
        Transport::Ring => Some(ring_watchdog(&address, duration)?),
        _ => None,
    };
    let result = run_with_peer(bound, stdout, size, duration, progress, &peer_addr);
    drop(watchdog);
    // Which endpoint failed: the causes below (an I/O error, a wrong echo)
    // do not name it.
    finish_peer(child, result.is_ok())
        .and(result)
        .with_context(|| format!("measure {address}"))
        .map(|mut m| {
            m.address = address;
            m
        })
}

/// A bare ring has no time limit and sees no dead peer: if its measurement
/// outlasts `duration` by [`IO_LIMIT`], remove the rings, say so and exit 1,
/// rather than spin for ever. Dropping the sender calls the watchdog off.
fn ring_watchdog(base: &str, duration: Duration) -> Result<mpsc::Sender<()>> {
    let (tx, rx) = mpsc::channel::<()>();
    let names = endpoint::ring_names(base);
    thread::Builder::new()
        .name("bench-ring-watchdog".into())
        .spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(duration + IO_LIMIT) {
                for name in &names {
                    let _ = ipckit::shm::SharedMemory::remove(name);
                }
                eprintln!(
                    "ipckit: bench: the bare ring's peer stopped answering ({} not done within {:?})",
                    names[0],
                    duration + IO_LIMIT
                );
                std::process::exit(1);
            }
        })
        .context("start the bare ring's watchdog")?;
    Ok(tx)
}

fn run_with_peer(
    bound: Bound,
    stdout: Option<ChildStdout>,
    size: usize,
    duration: Duration,
    progress: &dyn Fn(f64),
    peer_addr: &str,
) -> Result<Measured> {
    // The peer prints "ready" once its end exists (only the datagram peer
    // has an end of its own to make); read it within the limit.
    let (ready_tx, ready_rx) = mpsc::channel();
    if let Some(stdout) = stdout {
        thread::Builder::new()
            .name("bench-peer-stdout".into())
            .spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let _ = ready_tx.send(lines.next());
                // Drain the rest so the peer never blocks on a full pipe.
                for _ in lines {}
            })
            .context("start the peer's stdout reader")?;
    }
    let peer_ready = move || -> Result<String> {
        match ready_rx.recv_timeout(IO_LIMIT) {
            Ok(Some(Ok(line))) if line == "ready" => Ok(peer_addr.to_owned()),
            Ok(Some(Ok(line))) => bail!("the peer said {line:?} instead of \"ready\""),
            _ => bail!("the peer did not get ready within {IO_LIMIT:?}"),
        }
    };
    // Held to the end: the listener keeps its name while we measure.
    let mut bound = bound;
    let mut conn = endpoint::accept(&mut bound, &peer_ready)?;

    let mut msg = vec![0u8; size];
    let mut back = Vec::with_capacity(size);
    for (i, b) in msg.iter_mut().enumerate().skip(1) {
        *b = (i % 251) as u8;
    }
    // 1 ns to 1 minute, 3 significant digits.
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| anyhow!("create the histogram: {e}"))?;
    let half = duration / 2;

    msg[0] = ECHO;
    for _ in 0..WARM_UP {
        round_trip(&mut conn, &msg, &mut back)?;
    }
    let started = Instant::now();
    let mut next_report = started;
    loop {
        // Only the send and the echo are timed; the check comes after.
        let t0 = Instant::now();
        echo(&mut conn, &msg, &mut back)?;
        let t1 = Instant::now();
        hist.saturating_record(u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX));
        check_echo(&msg, &back)?;
        if t1 >= next_report {
            let done = (t1 - started).as_secs_f64() / duration.as_secs_f64();
            progress(done.min(0.5));
            if t1 - started >= half {
                break;
            }
            next_report = t1 + Duration::from_millis(20);
        }
    }
    let round_trip_time = started.elapsed();

    msg[0] = SINK;
    let sink_started = Instant::now();
    let mut sunk = 0u64;
    loop {
        conn.send(&msg)?;
        sunk += 1;
        if sunk.is_multiple_of(64) {
            let spent = sink_started.elapsed();
            progress(0.5 + (spent.as_secs_f64() / duration.as_secs_f64()).min(0.5));
            if spent >= half {
                break;
            }
        }
    }
    msg[0] = ACK;
    round_trip(&mut conn, &msg, &mut back).context("wait for the peer to take every message")?;
    let sink_time = sink_started.elapsed();
    msg[0] = QUIT;
    conn.send(&msg)?;
    progress(1.0);
    Ok(Measured {
        address: String::new(),
        hist,
        round_trip_time,
        sunk,
        sink_time,
    })
}

fn round_trip(conn: &mut Conn, msg: &[u8], back: &mut Vec<u8>) -> Result<()> {
    echo(conn, msg, back)?;
    check_echo(msg, back)
}

/// Sends `msg` and receives the answer into `back`, unchecked.
fn echo(conn: &mut Conn, msg: &[u8], back: &mut Vec<u8>) -> Result<()> {
    conn.send(msg)?;
    ensure!(
        conn.recv(back, msg.len())?,
        "the peer closed before answering"
    );
    Ok(())
}

/// Whether the answer is the message sent, byte for byte.
fn check_echo(msg: &[u8], back: &[u8]) -> Result<()> {
    ensure!(
        back == msg,
        "the answer differs from the message sent ({} bytes back for {})",
        back.len(),
        msg.len()
    );
    Ok(())
}

/// Waits for the peer to exit (killing it if it does not within the limit,
/// or at once if we failed) and turns its failure into an error with its
/// stderr.
fn finish_peer(mut child: Child, we_succeeded: bool) -> Result<()> {
    let mut stderr = child.stderr.take();
    let deadline = Instant::now()
        + if we_succeeded {
            IO_LIMIT
        } else {
            Duration::ZERO
        };
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let mut text = String::new();
    if let Some(stderr) = stderr.as_mut() {
        let _ = stderr.read_to_string(&mut text);
    }
    let text = text.trim().replace('\n', " ");
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => bail!("the peer failed ({s}): {text}"),
        None if we_succeeded => bail!("the peer did not exit within {IO_LIMIT:?}"),
        None => Ok(()),
    }
}

/// `ipckit __bench-peer TRANSPORT ADDR SIZE [REPLY_ADDR] [--cpu N]`: the peer half.
pub(crate) fn peer(
    transport: &str,
    addr: &str,
    size: usize,
    reply: Option<&str>,
    cpu: Option<usize>,
) -> Result<()> {
    if let Some(cpu) = cpu {
        super::pin::pin_to(cpu)?;
    }
    let transport = Transport::from_name(transport)
        .with_context(|| format!("unknown transport {transport:?}"))?;
    let mut conn = endpoint::connect(transport, addr, reply)?;
    let mut buf = Vec::with_capacity(size);
    let mut sunk = 0u64;
    while conn.recv(&mut buf, size)? {
        match buf.first() {
            Some(&ECHO) | Some(&ACK) => conn.send(&buf)?,
            Some(&SINK) => sunk += 1,
            Some(&QUIT) => return Ok(()),
            other => bail!("unexpected message kind {other:?} after {sunk} sink messages"),
        }
    }
    // The parent closed without QUIT: it failed, and says so itself.
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read, Write};

    use super::*;

    /// A byte stream that answers what was written to it, with byte `flip`
    /// of every answer changed if set.
    struct Echo {
        pending: std::collections::VecDeque<u8>,
        flip: Option<usize>,
    }

    impl Read for Echo {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.pending.read(buf)
        }
    }

    impl Write for Echo {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            let mut answer = data.to_vec();
            if let Some(at) = self.flip {
                answer[at] ^= 1;
            }
            self.pending.extend(answer);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn conn(flip: Option<usize>) -> Conn {
        Conn::Bytes(Box::new(Echo {
            pending: Default::default(),
            flip,
        }))
    }

    #[test]
    fn a_round_trip_checks_the_echo() {
        let msg: Vec<u8> = (0..100u8).collect();
        let mut back = Vec::new();
        round_trip(&mut conn(None), &msg, &mut back).expect("a faithful echo");
        assert_eq!(back, msg);
        let err = round_trip(&mut conn(Some(42)), &msg, &mut back).unwrap_err();
        assert!(err.to_string().contains("differs"), "{err}");
        // The unchecked half takes anything; the check is separate.
        echo(&mut conn(Some(42)), &msg, &mut back).expect("unchecked");
        assert!(check_echo(&msg, &back).is_err());
    }
}
