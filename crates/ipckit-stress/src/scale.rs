//! scale: the CLI's servers hold 10,000 idle clients on a few threads and
//! little memory, spend no CPU on them, and still answer a new client at once
//! (issue 19, "servers that scale").
//!
//! Each client connects and makes one round trip (so the server has accepted
//! and served it), then stays idle. With all of them held, the server's threads
//! and resident memory (`/proc/PID/status`) and its CPU time over an idle 5 s
//! (`/proc/PID/stat`) are read; then fresh clients each connect and make one
//! round trip, timed; then every held client makes a round trip again (the
//! server still serves them), and all leave: the server must come back to its
//! baseline.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use ipckit::{MessageStream, Stream};

use crate::load::{self, Kind};
use crate::run::Scenario;
use crate::util::{self, Ctx, Outcome, Proc, Usage};

const NEEDS: &str = "issue 19: servers that scale (every client a task, not a thread)";

/// Idle clients: 10,000 on Linux; fewer under Wine (~100x slower, and each
/// idle message-mode pipe waits on a thread of the blocking pool there).
const IDLE: usize = if cfg!(windows) { 500 } else { 10_000 };
/// Fresh clients timed while the idle ones are held.
const PROBES: usize = 20;
/// The bounds of issue 19.
const MAX_THREADS: u64 = 16;
const MAX_RSS_MIB: u64 = 64;
const MAX_CPU_PCT: f64 = 1.0;
/// A new client's connect and first round trip, median of the probes. Under
/// Wine a round trip alone takes about a millisecond.
const MAX_NEW_CLIENT_MS: f64 = if cfg!(windows) { 250.0 } else { 10.0 };
/// The idle window whose CPU time is measured.
const IDLE_WINDOW: Duration = Duration::from_secs(5);

/// The servers under test.
#[derive(Debug, Clone, Copy)]
enum Server {
    /// `ipckit listen --echo`
    Echo,
    /// `ipckit listen --message --echo`
    MessageEcho,
    /// `ipckit serve-demo` (length-prefixed JSON-RPC)
    Rpc,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Echo => "listen-echo",
            Server::MessageEcho => "listen-message-echo",
            Server::Rpc => "serve-demo",
        }
    }

    fn start(self, ctx: &Ctx) -> Result<(Proc, String), String> {
        // Explicit, so that the default (half the descriptor limit) does not
        // make the probes wait behind the idle clients.
        let max = (IDLE + PROBES + 16).to_string();
        let kind = match self {
            Server::MessageEcho => Kind::Message,
            Server::Echo | Server::Rpc => Kind::Pipe,
        };
        let addr = load::fresh_addr(ctx, kind);
        let args: &[&str] = match self {
            Server::Echo => &["-v", "listen", "--echo", "--max-connections", &max, &addr],
            Server::MessageEcho => &[
                "-v",
                "listen",
                "--message",
                "--echo",
                "--max-connections",
                &max,
                &addr,
            ],
            Server::Rpc => &["-v", "serve-demo", "--max-connections", &max, &addr],
        };
        let (p, _) = load::start_ready(&mut ctx.ipckit(args), "listening on ", &addr, false)?;
        Ok((p, addr))
    }
}

pub(crate) fn scenarios() -> Vec<Scenario> {
    [Server::Echo, Server::MessageEcho, Server::Rpc]
        .into_iter()
        .map(|s| {
            Scenario::new(format!("scale/{}", s.name()), 120, Some(NEEDS), move |c| {
                run(c, s)
            })
        })
        .collect()
}

/// A held client.
enum Conn {
    Stream(Stream),
    Message(MessageStream),
}

/// Connects a client of `server` and makes one round trip (`n` in, the
/// expected answer back); the connection, to hold.
fn connect(server: Server, addr: &str, n: u64) -> Result<Conn, String> {
    let conn = match server {
        Server::MessageEcho => {
            Conn::Message(MessageStream::connect(addr).map_err(|e| e.to_string())?)
        }
        Server::Echo | Server::Rpc => {
            Conn::Stream(Stream::connect(addr).map_err(|e| e.to_string())?)
        }
    };
    round_trip(server, &conn, n)?;
    Ok(conn)
}

/// One request and its answer on a held client, checked.
fn round_trip(server: Server, conn: &Conn, n: u64) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("client {n}: {e}");
    match (server, conn) {
        (Server::Echo, Conn::Stream(s)) => {
            let sent = n.to_le_bytes();
            let mut back = [0u8; 8];
            let mut s = s;
            s.write_all(&sent).map_err(|e| fail(&e))?;
            s.read_exact(&mut back).map_err(|e| fail(&e))?;
            if back != sent {
                return Err(fail(&format!("sent {sent:?}, got {back:?} back")));
            }
        }
        (Server::MessageEcho, Conn::Message(m)) => {
            let sent = n.to_le_bytes();
            m.send(&sent).map_err(|e| fail(&e))?;
            let back = m.recv().map_err(|e| fail(&e))?;
            if back.as_deref() != Some(&sent[..]) {
                return Err(fail(&format!("sent {sent:?}, got {back:?} back")));
            }
        }
        (Server::Rpc, Conn::Stream(s)) => {
            let req = format!(r#"{{"jsonrpc":"2.0","method":"add","params":[{n},1],"id":{n}}}"#);
            let mut s = s;
            s.write_all(&(req.len() as u32).to_be_bytes())
                .and_then(|()| s.write_all(req.as_bytes()))
                .map_err(|e| fail(&e))?;
            let mut len = [0u8; 4];
            s.read_exact(&mut len).map_err(|e| fail(&e))?;
            let mut body = vec![0; u32::from_be_bytes(len) as usize];
            s.read_exact(&mut body).map_err(|e| fail(&e))?;
            let reply: serde_json::Value = serde_json::from_slice(&body).map_err(|e| fail(&e))?;
            if reply["result"] != n + 1 || reply["id"] != n {
                return Err(fail(&format!("add [{n}, 1] answered {reply}")));
            }
        }
        _ => unreachable!("connect makes the connection its server takes"),
    }
    Ok(())
}

/// The descriptors this process may open, or why the scenario cannot run.
#[cfg(unix)]
fn fd_room() -> Result<(), String> {
    let lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let need = (IDLE + PROBES + 256) as u64;
    match lim.current {
        Some(have) if have < need => Err(format!(
            "skipped: RLIMIT_NOFILE is {have} (hard {:?}); {IDLE} clients need {need} \
             (run as root, or raise the hard limit)",
            lim.maximum
        )),
        _ => Ok(()),
    }
}

#[cfg(not(unix))]
fn fd_room() -> Result<(), String> {
    Ok(())
}

fn run(ctx: &Ctx, server: Server) -> Outcome {
    if let Err(skip) = fd_room() {
        return Ok(skip);
    }
    let (proc, addr) = server.start(ctx)?;
    let base = proc.usage();
    let t = Instant::now();
    let held: Vec<Conn> = (0..IDLE as u64)
        .map(|n| connect(server, &addr, n))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("connecting {IDLE} clients: {e}"))?;
    let connected = t.elapsed();
    let idle = Idle::measure(proc.pid);
    let mut probes: Vec<Duration> = (0..PROBES as u64)
        .map(|n| {
            let t = Instant::now();
            connect(server, &addr, 2 * IDLE as u64 + n).map(|_| t.elapsed())
        })
        .collect::<Result<_, _>>()
        .map_err(|e| format!("a new client while {IDLE} are held: {e}"))?;
    probes.sort();
    let (median, slowest) = (ms(probes[PROBES / 2]), ms(probes[PROBES - 1]));
    for (n, conn) in held.iter().enumerate() {
        round_trip(server, conn, n as u64 + IDLE as u64)
            .map_err(|e| format!("a held client after the idle time: {e}"))?;
    }
    drop(held);
    let after = Usage::settle(proc.pid, base, Duration::from_secs(15));
    let figures = format!(
        "idle={IDLE} connected-in={} {} new-client={median:.2}ms (slowest {slowest:.2}ms, limit {MAX_NEW_CLIENT_MS}ms) {}",
        util::secs(connected),
        idle.show(),
        Usage::show(base, after)
    );
    if let Some(over) = idle.over_bounds() {
        return Err(format!("{figures}: {over}"));
    }
    if median > MAX_NEW_CLIENT_MS {
        return Err(format!("{figures}: a new client waited too long"));
    }
    Usage::check(base, after, &figures)?;
    Ok(figures)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What the server costs with every client held and idle.
struct Idle {
    threads: u64,
    rss_kib: u64,
    cpu_pct: f64,
}

impl Idle {
    #[cfg(unix)]
    fn measure(pid: u32) -> Idle {
        let before = util::cpu_ticks(pid);
        std::thread::sleep(IDLE_WINDOW);
        let used = util::cpu_ticks(pid) - before;
        Idle {
            threads: util::proc_status(pid, "Threads:"),
            rss_kib: util::proc_status(pid, "VmRSS:"),
            // Ticks are 1/100 s.
            cpu_pct: used as f64 / IDLE_WINDOW.as_secs_f64(),
        }
    }

    /// No `/proc` under Wine: the clients are held through the idle time,
    /// and nothing is measured.
    #[cfg(not(unix))]
    fn measure(_pid: u32) -> Idle {
        std::thread::sleep(IDLE_WINDOW);
        Idle {
            threads: 0,
            rss_kib: 0,
            cpu_pct: 0.0,
        }
    }

    fn show(&self) -> String {
        if cfg!(windows) {
            return "threads/rss/cpu=not-measured(no-/proc)".into();
        }
        format!(
            "threads={} (limit {MAX_THREADS}) rss={:.1}MiB (limit {MAX_RSS_MIB}) cpu={:.1}%-of-a-core over {} idle (limit {MAX_CPU_PCT}%)",
            self.threads,
            self.rss_kib as f64 / 1024.0,
            self.cpu_pct,
            util::secs(IDLE_WINDOW)
        )
    }

    fn over_bounds(&self) -> Option<&'static str> {
        if self.threads > MAX_THREADS {
            Some("too many threads")
        } else if self.rss_kib > MAX_RSS_MIB * 1024 {
            Some("too much memory")
        } else if self.cpu_pct > MAX_CPU_PCT {
            Some("idle clients cost CPU")
        } else {
            None
        }
    }
}
