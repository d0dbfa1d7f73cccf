//! faults that need Unix: racing binds (100 × 8 processes), a server out of
//! descriptors (`prlimit`), and cleanup on SIGTERM/SIGINT/SIGHUP.

use std::io::{Read, Write};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ipckit::{ConnectOptions, MessageStream, Stream};
use rustix::process::Signal;

use crate::faults::{per_kind, timed_echo};
use crate::load::{Kind, echo_stream, fresh_addr};
use crate::run::Scenario;
use crate::util::{self, Ctx, Outcome, Proc, pattern};

const ATOMIC_BINDS: &str = "atomic binds (AddrInUse naming the winner's pid)";
const EMFILE: &str = "accept surviving EMFILE";
const SIGNALS: &str = "CLI signal cleanup (every endpoint removed on SIGINT/SIGTERM/SIGHUP)";

pub(crate) fn scenarios() -> Vec<Scenario> {
    use Kind::*;
    let mut v = vec![Scenario::new(
        "faults/racing-binds",
        90,
        Some(ATOMIC_BINDS),
        racing_binds,
    )];
    let fd = [Pipe, Message, Tcp];
    per_kind(&mut v, "fd-exhaustion", &fd, Some(EMFILE), fd_exhaustion);
    v.push(Scenario::new(
        "faults/signal-cleanup",
        60,
        Some(SIGNALS),
        signal_cleanup,
    ));
    v
}

/// ≥ 100 trials of 8 `ipckit listen --echo pipe:NAME` started at once, on a
/// fresh name and over a stale socket file: exactly one runs, it is the one
/// reachable, and every other names it.
fn racing_binds(ctx: &Ctx) -> Outcome {
    const TRIALS: usize = 100;
    let (mut two_alive, mut none_alive, mut unreachable, mut unnamed) = (0, 0, 0, 0);
    let mut first_problem = String::new();
    for trial in 0..TRIALS {
        let name = util::unique("race");
        let path = ctx.sock_path(&name);
        if trial % 2 == 1 {
            // A stale file: a socket bound and closed (std does not unlink).
            std::fs::create_dir_all(path.parent().unwrap_or(&path)).map_err(|e| e.to_string())?;
            drop(std::os::unix::net::UnixListener::bind(&path).map_err(|e| e.to_string())?);
        }
        let addr = format!("pipe:{name}");
        let gate = Arc::new(Barrier::new(8));
        let starters: Vec<_> = (0..8)
            .map(|_| {
                let (g, mut cmd) = (Arc::clone(&gate), ctx.ipckit(&["listen", "--echo", &addr]));
                util::spawn(move || {
                    g.wait();
                    Proc::spawn(&mut cmd, false)
                })
            })
            .collect();
        let mut procs = Vec::new();
        for s in starters {
            procs.push(s.join().map_err(|_| "starter panicked")??);
        }
        // Losers exit at once; wait for 7 exits (at most 5 s).
        let t = Instant::now();
        while procs
            .iter_mut()
            .filter_map(|p| p.alive().then_some(()))
            .count()
            > 1
            && t.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let alive: Vec<u32> = procs
            .iter_mut()
            .filter_map(|p| p.alive().then_some(p.pid))
            .collect();
        let problem = match alive.len() {
            1 => {
                let a = addr.clone();
                let ok = util::bounded(Duration::from_secs(5), move || echo_stream(&a, 1, 100))
                    .is_some_and(|r| r.is_ok());
                let winner = alive[0].to_string();
                let silent: Vec<String> = procs
                    .iter()
                    .filter(|p| p.pid != alive[0])
                    .map(|p| p.stderr_final(Duration::from_secs(2)))
                    .filter(|e| !e.contains(&winner))
                    .collect();
                if !silent.is_empty() {
                    unnamed += 1;
                }
                if !ok {
                    unreachable += 1;
                    Some("the one alive is not reachable".to_string())
                } else {
                    silent
                        .first()
                        .map(|e| format!("a loser does not name the winner (pid {winner}): {e}"))
                }
            }
            0 => {
                none_alive += 1;
                let errs = procs
                    .first()
                    .map(|p| p.stderr_final(Duration::from_secs(1)));
                Some(format!("none alive: {errs:?}"))
            }
            n => {
                two_alive += 1;
                Some(format!("{n} alive"))
            }
        };
        if let (Some(p), true) = (problem, first_problem.is_empty()) {
            first_problem = format!("trial {trial}: {p}");
        }
        drop(procs);
        let _ = std::fs::remove_file(&path);
    }
    let figures = format!(
        "trials={TRIALS}x8 (half over a stale file) two-or-more-alive={two_alive} none-alive={none_alive} unreachable={unreachable} losers-not-naming-winner={unnamed}"
    );
    if two_alive + none_alive + unreachable + unnamed > 0 {
        return Err(format!("{figures}; first: {first_problem}"));
    }
    Ok(figures)
}

/// A server under `prlimit --nofile=64:64` gets more clients than it has
/// descriptors: it stays up, its early clients are intact, and once the flood
/// leaves new clients are served.
fn fd_exhaustion(ctx: &Ctx, kind: Kind) -> Outcome {
    const LIMIT: usize = 64;
    let addr = fresh_addr(ctx, kind);
    let mut args = vec![
        "--nofile=64:64".to_string(),
        ctx.ipckit.display().to_string(),
        "-v".into(),
        "listen".into(),
    ];
    if kind == Kind::Message {
        args.push("--message".into());
    }
    args.extend(["--echo".into(), addr.clone()]);
    let mut cmd = std::process::Command::new("prlimit");
    cmd.args(&args)
        .env("XDG_RUNTIME_DIR", &ctx.xdg)
        .stdin(std::process::Stdio::null());
    let mut server = Proc::spawn(&mut cmd, false)?;
    let line = server
        .stderr_line("listening on ", Duration::from_secs(10))
        .ok_or_else(|| {
            format!(
                "prlimit ipckit listen did not start: {}",
                server.stderr_last()
            )
        })?;
    let addr = if kind == Kind::Tcp {
        line.split_once("listening on ")
            .map_or(String::new(), |(_, a)| a.to_string())
    } else {
        addr
    };
    // Early clients: connected and echoing before the flood.
    let early: Vec<Stream> = if kind == Kind::Message {
        Vec::new()
    } else {
        (0..8)
            .map(|_| {
                let mut s = Stream::connect(addr.as_str()).map_err(|e| e.to_string())?;
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(s)
            })
            .collect::<Result<_, _>>()?
    };
    let early_msgs: Vec<MessageStream> = if kind == Kind::Message {
        (0..8)
            .map(|_| {
                let mut m = MessageStream::connect(addr.as_str()).map_err(|e| e.to_string())?;
                m.set_read_timeout(Some(Duration::from_secs(10)))
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(m)
            })
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    let check_early = |round: u64| -> Result<(), String> {
        for (i, s) in early.iter().enumerate() {
            let mut s = s;
            let data = pattern(round * 100 + i as u64, 4096);
            s.write_all(&data)
                .map_err(|e| format!("early client {i}: {e}"))?;
            let mut back = vec![0; data.len()];
            s.read_exact(&mut back)
                .map_err(|e| format!("early client {i}: {e}"))?;
            if back != data {
                return Err(format!("early client {i}: echo changed"));
            }
        }
        for (i, m) in early_msgs.iter().enumerate() {
            let data = pattern(round * 100 + i as u64, 4096);
            m.send(&data)
                .map_err(|e| format!("early client {i}: {e}"))?;
            if m.recv().map_err(|e| format!("early client {i}: {e}"))? != Some(data) {
                return Err(format!("early client {i}: echo changed"));
            }
        }
        Ok(())
    };
    check_early(1)?;
    // The flood: three times the descriptors the server has. A server that
    // cannot accept (out of descriptors, or at its connection limit) leaves
    // clients in the listen backlog; once that is full too, a TCP connect
    // waits for the kernel's SYN retries, so each flood connect is bounded
    // and one that times out is counted as waiting, not as a failure.
    let mut flood_opts = ConnectOptions::new();
    flood_opts.timeout(Duration::from_millis(250));
    let mut flood_s = Vec::new();
    let mut flood_m = Vec::new();
    let (mut refused, mut waiting) = (0, 0);
    for _ in 0..3 * LIMIT {
        let r = if kind == Kind::Message {
            flood_opts
                .connect_message(addr.as_str())
                .map(|m| flood_m.push(m))
        } else {
            flood_opts.connect(addr.as_str()).map(|s| flood_s.push(s))
        };
        match r {
            Ok(()) => {}
            Err(e) if e.is_timeout() => waiting += 1,
            Err(_) => refused += 1,
        }
    }
    // The server reaches its limit: wait until its fds stop growing.
    let t = Instant::now();
    let mut peak = server.usage().fds;
    while t.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
        let now = server.usage().fds;
        if now == peak && now + 2 >= LIMIT {
            break;
        }
        peak = peak.max(now);
    }
    let figures = |extra: &str| {
        format!(
            "nofile={LIMIT} early=8 flood={} refused-at-connect={refused} waiting-at-connect={waiting} server-fds-peak={peak}{extra}",
            3 * LIMIT
        )
    };
    if !server.alive() {
        return Err(format!(
            "{}: the server exited when out of descriptors: {}",
            figures(""),
            server.stderr_last()
        ));
    }
    check_early(2).map_err(|e| format!("{}: {e}", figures("")))?;
    drop((flood_s, flood_m));
    let (next, after_in) = timed_echo(kind, &addr, 64 << 10);
    let after_in = util::secs(after_in);
    next.map_err(|e| format!("{}: a new client after the flood: {e}", figures("")))?;
    if !server.alive() {
        return Err(format!(
            "{}: the server died: {}",
            figures(""),
            server.stderr_last()
        ));
    }
    server.signal(Signal::TERM);
    Ok(format!(
        "{} new-client-served-in={after_in} lost=0",
        figures("")
    ))
}

/// Every subcommand that creates an endpoint, stopped by SIGTERM, SIGINT and
/// SIGHUP: it exits 130 within 5 s and its socket file or region is gone.
fn signal_cleanup(ctx: &Ctx) -> Outcome {
    let kinds: [(&str, &[&str], Kind); 5] = [
        ("listen", &["listen", "--echo"], Kind::Pipe),
        (
            "listen-message",
            &["listen", "--message", "--echo"],
            Kind::Message,
        ),
        ("recv", &["recv"], Kind::Mailslot),
        ("serve-demo", &["serve-demo"], Kind::Pipe),
        ("listen-shm", &["listen", "--echo"], Kind::Shm),
    ];
    let (mut ok, mut failures) = (0, Vec::new());
    for (label, args, kind) in kinds {
        for (sig, sig_name) in [
            (Signal::TERM, "TERM"),
            (Signal::INT, "INT"),
            (Signal::HUP, "HUP"),
        ] {
            let addr = fresh_addr(ctx, kind);
            let name = addr.split_once(':').map_or("", |(_, n)| n);
            let file = match kind {
                // `listen shm:` is a message listener: its rendezvous socket.
                Kind::Shm => ctx.sock_path(&format!("{name}.shm")),
                Kind::Mailslot => ctx.xdg.join("ipckit").join(format!("{name}.dgram")),
                _ => ctx.sock_path(name),
            };
            let mut all = vec!["-v"];
            all.extend_from_slice(args);
            all.push(&addr);
            let ready = if kind == Kind::Mailslot {
                "receiving on"
            } else {
                "listening on"
            };
            let mut p = Proc::spawn(&mut ctx.ipckit(&all), false)?;
            let case = format!("{label} SIG{sig_name}");
            if p.stderr_line(ready, Duration::from_secs(10)).is_none() || !file.exists() {
                failures.push(format!("{case}: did not start ({})", p.stderr_text()));
                continue;
            }
            p.signal(sig);
            let st = p.exited_within(Duration::from_secs(5));
            let left = file.exists();
            let _ = std::fs::remove_file(&file);
            match st.map(|s| s.code()) {
                Some(Some(130)) if !left => ok += 1,
                Some(code) => failures.push(format!(
                    "{case}: exit {}{}",
                    code.map_or("by a signal".into(), |c| c.to_string()),
                    if left { ", endpoint left behind" } else { "" }
                )),
                None => failures.push(format!("{case}: still running 5 s after the signal")),
            }
        }
    }
    let figures = format!("cases=15 clean-exit-130={ok}");
    if failures.is_empty() {
        Ok(figures)
    } else {
        Err(format!("{figures}; {}", failures.join("; ")))
    }
}
