//! faults against the RPC server (`ipckit serve-demo`): idle connections must
//! cost no CPU, clients that never read must not grow its threads without
//! bound, unfinished frames must not pin unbounded memory.

use std::time::{Duration, Instant};

use ipckit::Stream;
use ipckit_rpc::Framing;

use crate::badinput::{Raw, good_call, lp, start_demo};
use crate::run::Scenario;
use crate::util::{self, Ctx, Outcome, Usage, cpu_ticks, rss_kib};

const IDLE_CPU: &str = "RPC idle connections cost no CPU";
const THREADS: &str = "RPC thread bound for non-reading clients";
const BUFFERED: &str = "RPC server-wide cap on bytes buffered for unfinished frames";

/// The blocking server's default `max_concurrent_calls`.
const MAX_CALLS: usize = 64;

pub(crate) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::new("faults/rpc-idle-cpu", 40, Some(IDLE_CPU), idle_cpu),
        Scenario::new(
            "faults/rpc-nonreading-threads",
            60,
            Some(THREADS),
            nonreading,
        ),
        Scenario::new(
            "faults/rpc-unfinished-frames",
            60,
            Some(BUFFERED),
            unfinished,
        ),
    ]
}

/// 1000 idle connections: the server's CPU over 3 s must stay ≤ 1 % of a core.
fn idle_cpu(ctx: &Ctx) -> Outcome {
    const IDLE: usize = 1000;
    let (server, addr) = start_demo(ctx, Framing::LengthPrefix, None)?;
    let base = server.usage();
    let conns: Vec<Stream> = (0..IDLE)
        .map(|_| Stream::connect(addr.as_str()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    // All accepted and set up: the server holds at least a descriptor for each
    // (a connection may hold more, e.g. a handle to wake its reader), and the
    // count has stopped moving for half a second.
    let t = Instant::now();
    let (mut last, mut steady) = (0, 0);
    while t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        let fds = server.usage().fds;
        steady = if fds == last { steady + 1 } else { 0 };
        last = fds;
        if fds >= base.fds + IDLE && steady >= 5 {
            break;
        }
    }
    let window = Duration::from_secs(3);
    let before = cpu_ticks(server.pid);
    std::thread::sleep(window);
    let used = cpu_ticks(server.pid) - before;
    let pct = used as f64 / (window.as_secs_f64() * 100.0) * 100.0;
    let during = server.usage();
    good_call(&addr, Framing::LengthPrefix, None)?;
    drop(conns);
    let after = Usage::settle(server.pid, base, Duration::from_secs(10));
    let figures = format!(
        "idle={IDLE} cpu={pct:.1}%-of-a-core over {} (limit 1%) threads-during={} {}",
        util::secs(window),
        during.threads,
        Usage::show(base, after)
    );
    if pct > 1.0 {
        return Err(format!("{figures}: idle connections cost CPU"));
    }
    Usage::check(base, after, &figures)?;
    Ok(figures)
}

/// 32 clients send `sleep [1]` requests with 64 KiB padding and never read:
/// the server's threads must stay ≤ baseline + max_concurrent_calls + 8,
/// whatever the number of connections (its connections are served by two
/// threads; no thread waits for a client: docs/RPC.md). They grew with every
/// request once (thousands), then with every connection (two each).
fn nonreading(ctx: &Ctx) -> Outcome {
    const CONNS: usize = 32;
    let (server, addr) = start_demo(ctx, Framing::LengthPrefix, None)?;
    let base = server.usage();
    let limit = base.threads + MAX_CALLS + 8;
    let pad = "x".repeat(64 << 10);
    let req =
        lp(format!(r#"{{"jsonrpc":"2.0","method":"echo","params":["{pad}"],"id":1}}"#).as_bytes());
    let stop = Instant::now() + Duration::from_secs(3);
    let pushers: Vec<_> = (0..CONNS)
        .map(|_| {
            let (a, r) = (addr.clone(), req.clone());
            util::spawn(move || -> Result<Stream, String> {
                let mut s = Stream::connect(a.as_str()).map_err(|e| e.to_string())?;
                s.set_write_timeout(Some(Duration::from_millis(200)))
                    .map_err(|e| e.to_string())?;
                while Instant::now() < stop {
                    let mut w = &s;
                    if std::io::Write::write_all(&mut w, &r).is_err() {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                Ok(s)
            })
        })
        .collect();
    let mut peak = 0;
    while Instant::now() < stop + Duration::from_millis(500) {
        peak = peak.max(server.usage().threads);
        std::thread::sleep(Duration::from_millis(25));
    }
    let held: Vec<Stream> = pushers
        .into_iter()
        .filter_map(|h| h.join().ok()?.ok())
        .collect();
    let n = held.len();
    drop(held);
    let after = Usage::settle(server.pid, base, Duration::from_secs(15));
    let served = good_call(&addr, Framing::LengthPrefix, None);
    let figures = format!(
        "nonreading={n} threads-peak={peak} (limit {limit}) {}",
        Usage::show(base, after)
    );
    served.map_err(|e| format!("{figures}: then a good client: {e}"))?;
    if peak > limit {
        return Err(format!("{figures}: threads grew past the bound"));
    }
    Usage::check(base, after, &figures)?;
    Ok(figures)
}

/// 8 connections each announce a 60 MiB frame and send all of it but the last
/// byte: the server must not buffer 480 MiB (its cap is 256 MiB; its RSS may
/// grow by ≤ 320 MiB, allowing for buffers' spare capacity and the allocator),
/// must refuse at least one of them, and serves a good client meanwhile.
fn unfinished(ctx: &Ctx) -> Outcome {
    const CONNS: usize = 8;
    const FRAME: usize = 60 << 20;
    let (server, addr) = start_demo(ctx, Framing::LengthPrefix, None)?;
    let rss0 = rss_kib(server.pid);
    let body = vec![b' '; FRAME - 1];
    let senders: Vec<_> = (0..CONNS)
        .map(|_| {
            let (a, b) = (addr.clone(), body.clone());
            util::spawn(move || -> Result<(Raw, bool), String> {
                let mut raw = Raw::connect(&a, Framing::LengthPrefix)?;
                if let Raw::Bytes(s, _) = &mut raw {
                    s.set_write_timeout(Some(Duration::from_secs(10)))
                        .map_err(|e| e.to_string())?;
                }
                let mut head = (FRAME as u32).to_be_bytes().to_vec();
                head.extend_from_slice(&b);
                let refused = raw.send_raw(&head).is_err();
                Ok((raw, refused))
            })
        })
        .collect();
    let mut conns: Vec<(Raw, bool)> = senders
        .into_iter()
        .filter_map(|h| h.join().ok()?.ok())
        .collect();
    let rss1 = rss_kib(server.pid);
    let grew = rss1.saturating_sub(rss0) / 1024;
    // A refused connection got a reply (-32600 or another error) or was closed.
    let mut refused = 0;
    for (raw, write_failed) in &mut conns {
        if let Raw::Bytes(s, _) = raw {
            let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
        }
        if *write_failed || matches!(raw.reply(), Ok(Some(_)) | Ok(None)) {
            refused += 1;
        }
    }
    let served = good_call(&addr, Framing::LengthPrefix, None);
    drop(conns);
    let figures = format!(
        "conns={CONNS}x{}MiB-unfinished rss-growth={grew}MiB (limit 320) refused={refused}",
        FRAME >> 20
    );
    served.map_err(|e| format!("{figures}: a good client meanwhile: {e}"))?;
    if grew > 320 || refused == 0 {
        return Err(format!(
            "{figures}: unfinished frames are buffered without a server-wide cap"
        ));
    }
    drop(server);
    Ok(figures)
}
