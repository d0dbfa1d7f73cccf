//! load: at least 200 concurrent clients × 1 MiB each, echoed and checked, on
//! every transport; the server's fds and threads back to its baseline after.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use ipckit::shm::{ShmChannel, ShmListener};
use ipckit::{MailslotSender, MessageStream, Stream};

use crate::run::Scenario;
use crate::util::{self, Ctx, Outcome, Proc, Sum, Usage, pattern};

/// Concurrent clients (fewer under Wine, ~100× slower), and bytes each.
pub(crate) const CLIENTS: usize = if cfg!(windows) { 16 } else { 200 };
pub(crate) const BYTES: usize = if cfg!(windows) { 256 << 10 } else { 1 << 20 };
/// A message of the message, shm and mailslot transports.
const CHUNK: usize = 32 << 10;

/// The transports a server can be started on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    UnixPath,
    Pipe,
    Abstract,
    Tcp,
    Message,
    Shm,
    Mailslot,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::UnixPath => "unix-path",
            Kind::Pipe => "pipe",
            Kind::Abstract => "abstract",
            Kind::Tcp => "tcp",
            Kind::Message => "message",
            Kind::Shm => "shm",
            Kind::Mailslot => "mailslot",
        }
    }

    /// The byte-stream transports.
    pub(crate) const STREAMS: [Kind; 4] = [Kind::UnixPath, Kind::Pipe, Kind::Abstract, Kind::Tcp];
}

pub(crate) fn scenarios() -> Vec<Scenario> {
    let streams: &[Kind] = if cfg!(windows) {
        &[Kind::Pipe, Kind::Tcp]
    } else {
        &Kind::STREAMS
    };
    let mut v: Vec<Scenario> = streams
        .iter()
        .copied()
        .chain([Kind::Message])
        .map(|k| {
            Scenario::new(format!("load/{}", k.name()), 60, None, move |c| {
                connected(c, k)
            })
        })
        .collect();
    v.push(Scenario::new("load/shm", 60, None, shm));
    v.push(Scenario::new("load/mailslot", 60, None, mailslot));
    v
}

/// The address text for a fresh endpoint of `kind` (tcp: a free port).
pub(crate) fn fresh_addr(ctx: &Ctx, kind: Kind) -> String {
    let name = util::unique(kind.name());
    match kind {
        Kind::UnixPath => format!("unix:{}", ctx.dir.join(format!("{name}.sock")).display()),
        Kind::Pipe | Kind::Message => format!("pipe:{name}"),
        Kind::Abstract => format!("@{name}"),
        Kind::Tcp => "tcp:127.0.0.1:0".into(),
        Kind::Shm => format!("shm:{name}"),
        Kind::Mailslot => format!("mailslot:{name}"),
    }
}

/// Starts `ipckit listen --echo` (with `--message` for the message kind, or
/// `ipckit recv` for a mailslot) on `addr`; the process and the address it
/// listens on (the port filled in for tcp).
pub(crate) fn start_server(ctx: &Ctx, kind: Kind, addr: &str) -> Result<(Proc, String), String> {
    start_server_with(ctx, kind, addr, false)
}

/// `start_server`, with the receiver's stdout left as a raw pipe for the
/// caller to read (`raw_stdout`) instead of collected as lines.
fn start_server_with(
    ctx: &Ctx,
    kind: Kind,
    addr: &str,
    raw_stdout: bool,
) -> Result<(Proc, String), String> {
    let mut cmd = match kind {
        Kind::Message => ctx.ipckit(&["-v", "listen", "--message", "--echo", addr]),
        Kind::Mailslot => ctx.ipckit(&["-v", "recv", addr]),
        _ => ctx.ipckit(&["-v", "listen", "--echo", addr]),
    };
    let ready = if kind == Kind::Mailslot {
        "receiving on "
    } else {
        "listening on "
    };
    let (p, at) = start_ready(&mut cmd, ready, addr, raw_stdout)?;
    let addr = if kind == Kind::Tcp {
        at
    } else {
        addr.to_string()
    };
    Ok((p, addr))
}

/// Starts a server (`cmd`, on `addr`) and waits up to 10 s for its `-v` line
/// holding `ready`; the process and what follows `ready` on that line (the
/// address it listens on).
pub(crate) fn start_ready(
    cmd: &mut std::process::Command,
    ready: &str,
    addr: &str,
    raw_stdout: bool,
) -> Result<(Proc, String), String> {
    let mut p = Proc::spawn(cmd, raw_stdout)?;
    let line = p
        .stderr_line(ready, Duration::from_secs(10))
        .ok_or_else(|| {
            format!(
                "server on {addr} did not start (exit {:?}): {}",
                p.exited_within(Duration::ZERO),
                p.stderr_text()
            )
        })?;
    let at = line.split_once(ready).map_or("", |(_, a)| a).to_string();
    Ok((p, at))
}

/// Sends `len` bytes of `pattern(seed)` over a stream and reads the echo:
/// an error unless every byte came back unchanged. Where the stream can
/// half-close (not Windows pipes), the writer does, and the echo must then end
/// right after the last byte.
pub(crate) fn echo_stream(addr: &str, seed: u64, len: usize) -> Result<(), String> {
    let mut s = Stream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let w = s.try_clone().map_err(|e| e.to_string())?;
    let data = pattern(seed, len);
    let want = Sum::of(&data);
    let writer = util::spawn(move || -> std::io::Result<bool> {
        (&w).write_all(&data)?;
        Ok(w.shutdown(Shutdown::Write).is_ok())
    });
    let (sum, n) = read_all(&mut s, len);
    let half_closed = writer
        .join()
        .map_err(|_| "writer panicked".to_string())?
        .map_err(|e| format!("client {seed}: write: {e}"))?;
    let n = n.map_err(|e| format!("client {seed}: read after {e}"))?;
    if n != len || sum != want {
        return Err(format!(
            "client {seed}: {n} of {len} bytes came back, checksum {}",
            if sum == want { "equal" } else { "differs" }
        ));
    }
    if half_closed {
        match s.read(&mut [0u8; 1]) {
            Ok(0) => {}
            Ok(_) => return Err(format!("client {seed}: more than {len} bytes came back")),
            Err(e) => return Err(format!("client {seed}: the end of the echo: {e}")),
        }
    }
    Ok(())
}

/// Reads `len` bytes, or to the end of the stream if it comes first: the
/// checksum and the count (or the error and the count before it).
fn read_all(s: &mut Stream, len: usize) -> (Sum, Result<usize, String>) {
    let mut buf = vec![0; 64 << 10];
    let (mut sum, mut n) = (Sum::default(), 0);
    while n < len {
        let want = buf.len().min(len - n);
        match s.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(k) => {
                sum.add(&buf[..k]);
                n += k;
            }
            Err(e) => return (sum, Err(format!("{n} bytes: {e}"))),
        }
    }
    (sum, Ok(n))
}

/// Sends `len` bytes as messages of `CHUNK` and checks each echoed message.
pub(crate) fn echo_messages(addr: &str, seed: u64, len: usize) -> Result<(), String> {
    let mut m = MessageStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    m.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let w = m.try_clone().map_err(|e| e.to_string())?;
    exchange(seed, len, move |c| w.send(c), |buf| m.recv_into(buf))
}

/// Sends `pattern(seed)` as messages of `CHUNK` with `send` (on a thread of
/// its own) while `recv` takes each echo and compares it with what was sent.
fn exchange(
    seed: u64,
    len: usize,
    mut send: impl FnMut(&[u8]) -> ipckit::Result<()> + Send + 'static,
    mut recv: impl FnMut(&mut Vec<u8>) -> ipckit::Result<bool>,
) -> Result<(), String> {
    let data = pattern(seed, len);
    let chunks: Vec<Vec<u8>> = data.chunks(CHUNK).map(<[u8]>::to_vec).collect();
    let sent = chunks.clone();
    let writer = util::spawn(move || sent.iter().try_for_each(|c| send(c)));
    let mut buf = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        match recv(&mut buf) {
            Ok(true) if buf == *c => {}
            Ok(true) => return Err(format!("client {seed}: message {i} came back changed")),
            Ok(false) => return Err(format!("client {seed}: closed after {i} messages")),
            Err(e) => return Err(format!("client {seed}: after {i} messages: {e}")),
        }
    }
    writer
        .join()
        .map_err(|_| "writer panicked".to_string())?
        .map_err(|e| format!("client {seed}: send: {e}"))
}

/// Runs `n` clients at once; the first failure, and how many failed.
pub(crate) fn run_clients(
    n: usize,
    client: impl Fn(u64) -> Result<(), String> + Send + Sync + Clone + 'static,
) -> Result<(), String> {
    let handles: Vec<_> = (0..n as u64)
        .map(|i| {
            let c = client.clone();
            util::spawn(move || c(i))
        })
        .collect();
    let results: Vec<Result<(), String>> = handles
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|_| Err("client panicked".into())))
        .collect();
    let bad: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    match bad.first() {
        None => Ok(()),
        Some(first) => Err(format!("lost={} clients failed; first: {first}", bad.len())),
    }
}

/// load on a byte stream or the message channel, served by `ipckit listen --echo`.
fn connected(ctx: &Ctx, kind: Kind) -> Outcome {
    let (server, addr) = start_server(ctx, kind, &fresh_addr(ctx, kind))?;
    let base = server.usage();
    let t = Instant::now();
    let a = addr.clone();
    let result = if kind == Kind::Message {
        run_clients(CLIENTS, move |i| echo_messages(&a, i, BYTES))
    } else {
        run_clients(CLIENTS, move |i| echo_stream(&a, i, BYTES))
    };
    let took = t.elapsed();
    let after = Usage::settle(server.pid, base, Duration::from_secs(5));
    let figures = figures(took, base, after);
    result.map_err(|e| format!("{figures} {e}"))?;
    Usage::check(base, after, &figures)?;
    Ok(format!("{figures} lost=0"))
}

fn figures(took: Duration, base: Usage, after: Usage) -> String {
    let total = (CLIENTS * BYTES * 2) as f64;
    format!(
        "clients={CLIENTS} bytes={}x2 echo={} {:.0}MiB/s {}",
        CLIENTS * BYTES,
        util::secs(took),
        total / took.as_secs_f64() / f64::from(1 << 20),
        Usage::show(base, after)
    )
}

/// load on shared-memory channels: one channel per client (a channel has one
/// peer), the servers being this process's threads.
fn shm(_: &Ctx) -> Outcome {
    let me = std::process::id();
    let base = Usage::of(me);
    let mut listeners = Vec::new();
    for _ in 0..CLIENTS {
        let addr = format!("shm:{}", util::unique("shm"));
        let l = ShmListener::bind(addr.as_str()).map_err(|e| format!("bind {addr}: {e}"))?;
        listeners.push((addr, l));
    }
    let addrs: Vec<String> = listeners.iter().map(|(a, _)| a.clone()).collect();
    let servers: Vec<_> = listeners
        .into_iter()
        .map(|(_, mut l)| {
            util::spawn(move || -> Result<(), String> {
                let ch = l.accept().map_err(|e| e.to_string())?;
                let mut msg = Vec::new();
                while ch.recv_into(&mut msg).map_err(|e| e.to_string())? {
                    ch.send(&msg).map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        })
        .collect();
    let t = Instant::now();
    let result = run_clients(CLIENTS, move |i| shm_client(&addrs[i as usize], i));
    let took = t.elapsed();
    for s in servers {
        if let Ok(Err(e)) = s.join() {
            return Err(format!("a channel's server failed: {e}"));
        }
    }
    let after = Usage::settle(me, base, Duration::from_secs(5));
    let figures = figures(took, base, after);
    result.map_err(|e| format!("{figures} {e}"))?;
    Usage::check(base, after, &figures)?;
    Ok(format!(
        "{figures} lost=0 (servers: threads of this process)"
    ))
}

fn shm_client(addr: &str, seed: u64) -> Result<(), String> {
    let ch = ShmChannel::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut tx, mut rx) = ch.split();
    rx.set_read_timeout(Some(Duration::from_secs(30)));
    exchange(seed, BYTES, move |c| tx.send(c), |buf| rx.recv_into(buf))
}

/// The message `seq` of sender `sender`: its ids, then letters (the receiver
/// prints a message per line, so it holds no newline).
pub(crate) fn mail(sender: u64, seq: u64, len: usize) -> Vec<u8> {
    let mut m = format!("{sender:04}:{seq:04}:").into_bytes();
    m.extend(
        pattern(sender << 16 | seq, len)
            .iter()
            .map(|b| b'a' + b % 26),
    );
    m
}

/// load on one mailslot: 200 senders (this process's threads), one receiver
/// (`ipckit recv`); every message is accounted for.
fn mailslot(ctx: &Ctx) -> Outcome {
    let (mut server, addr) =
        start_server_with(ctx, Kind::Mailslot, &fresh_addr(ctx, Kind::Mailslot), true)?;
    let base = server.usage();
    let per = (BYTES / CHUNK) as u64;
    let stdout = server.stdout().ok_or("no stdout")?;
    // Count and check every line the receiver prints.
    let reader = util::spawn(move || {
        let mut seen = vec![0u64; CLIENTS];
        let (mut good, mut bad) = (0u64, 0u64);
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(mut line) = line else { break };
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let id = std::str::from_utf8(&line[..10.min(line.len())]).unwrap_or("");
            let parsed = id.split_once(':').and_then(|(s, q)| {
                Some((
                    s.parse::<u64>().ok()?,
                    q.trim_end_matches(':').parse::<u64>().ok()?,
                ))
            });
            match parsed {
                Some((s, q)) if (s as usize) < CLIENTS && line == mail(s, q, CHUNK) => {
                    seen[s as usize] += 1;
                    good += 1;
                }
                _ => bad += 1,
            }
            if good == CLIENTS as u64 * per {
                break;
            }
        }
        (good, bad, seen)
    });
    let t = Instant::now();
    let a = addr.clone();
    let sent = run_clients(CLIENTS, move |i| {
        let tx = MailslotSender::connect(a.as_str()).map_err(|e| format!("connect {a}: {e}"))?;
        (0..per).try_for_each(|q| {
            tx.send(&mail(i, q, CHUNK))
                .map_err(|e| format!("sender {i}: message {q}: {e}"))
        })
    });
    let got = util::bounded(Duration::from_secs(30), move || reader.join());
    let took = t.elapsed();
    let after = Usage::settle(server.pid, base, Duration::from_secs(5));
    let expected = CLIENTS as u64 * per;
    let (good, bad) = match got {
        Some(Ok((good, bad, _))) => (good, bad),
        _ => (0, 0),
    };
    let figures = format!(
        "senders={CLIENTS} messages={expected}x{CHUNK}B received={good} garbled={bad} time={} {}",
        util::secs(took),
        Usage::show(base, after)
    );
    sent.map_err(|e| format!("{figures} {e}"))?;
    if good != expected || bad != 0 {
        return Err(format!("{figures} lost={}", expected - good));
    }
    Usage::check(base, after, &figures)?;
    Ok(format!("{figures} lost=0"))
}
