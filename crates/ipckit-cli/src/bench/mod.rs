//! `ipckit bench`: round-trip latency, message rate and throughput of every
//! transport on this OS, between two real processes, each against the bare
//! loop of the mechanism it runs on (std's stream, a raw `SOCK_SEQPACKET`
//! socket, a bare shared-memory ring, std's TCP) and against std's stream, in
//! the same run.
//!
//! For each transport this process binds the endpoint and starts a peer (this
//! binary, hidden subcommand `__bench-peer`) that connects and serves. Every
//! message is `--size` bytes; its first byte tells the peer what to do:
//!
//! - `ECHO`: send it back. The parent times these round trips for the first
//!   half of `--duration` (after a short warm-up) into an HDR histogram, and
//!   checks that every echo is the bytes it sent.
//! - `SINK`: take it, answer nothing. The parent sends these back to back for
//!   the second half of `--duration`, then an `ACK`, which the peer echoes once
//!   it has taken everything before it: bytes sent / time to the echo is the
//!   one-way throughput, and messages sent / that time the message rate.
//! - `QUIT`: exit 0.
//!
//! The datagram transport is two mailslots, one each way. Every read and
//! write has a time limit, so a lost message fails the transport instead of
//! hanging it.
//!
//! Modules: `transport` (what can be measured, and each one's baseline),
//! `endpoint` (binding, accepting, connecting), `bare` (the raw
//! `SOCK_SEQPACKET` loop), `measure` (both halves of one measurement), `pin`
//! (`--pin`), `report` (table and JSON), `plot` (`--plot`).

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::stdout_error;

mod bare;
mod endpoint;
mod measure;
mod pin;
mod plot;
mod report;
mod transport;

pub(crate) use measure::peer;
pub(crate) use pin::Pin;
pub(crate) use transport::Transport;

/// `ipckit bench`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Transports to measure [default: std stream message datagram shm tcp];
    /// std and each one's baseline always run.
    #[arg(value_name = "TRANSPORTS", value_enum)]
    transports: Vec<Transport>,

    /// Bytes per message (1 to 1 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    size: u32,

    /// Time per transport, half for round trips and half for throughput:
    /// 500ms, 2s, 1m.
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = crate::duration::parse)]
    duration: Duration,

    /// Print the results as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,

    /// Pin both processes: `same` puts both ends on one CPU, `split` one on
    /// each of two (Linux and FreeBSD).
    #[arg(long, value_name = "HOW", value_enum)]
    pin: Option<Pin>,

    /// Also draw the latency distributions into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<std::path::PathBuf>,
}

struct Row {
    transport: Transport,
    outcome: Result<measure::Measured>,
}

/// What every row of one run shares.
struct Run {
    size: usize,
    duration: Duration,
    /// How, and the CPUs of this process and of the peer.
    pin: Option<(Pin, usize, usize)>,
}

impl Run {
    fn pin_text(&self) -> String {
        match self.pin {
            Some((how, ours, theirs)) => {
                format!(", pinned {} (CPU {ours} and CPU {theirs})", how.name())
            }
            None => String::new(),
        }
    }
}

/// `ipckit bench`.
pub(crate) fn run(args: Args) -> Result<()> {
    let size = args.size as usize;
    if let Some(plot) = &args.plot {
        // Found before the measuring, not after it.
        std::fs::write(plot, b"")
            .with_context(|| format!("cannot write the plot to {}", plot.display()))?;
    }
    // Pinned before any thread or peer starts: they inherit it.
    let pin = match args.pin {
        Some(how) => {
            let (ours, theirs) = how.cpus()?;
            pin::pin_to(ours)?;
            Some((how, ours, theirs))
        }
        None => None,
    };
    let chosen = transport::plan(&args.transports);
    let exe = std::env::current_exe().context("find this program to run the bench's peer")?;
    let tag = format!("ipckit-bench-{}", std::process::id());

    let bar = if io::stderr().is_terminal() {
        ProgressBar::with_draw_target(
            Some(chosen.len() as u64 * 100),
            ProgressDrawTarget::stderr(),
        )
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:30}] {msg}")
            .map_err(|e| anyhow!("progress bar template: {e}"))?
            .progress_chars("=> "),
    );

    let mut rows = Vec::new();
    for (i, &transport) in chosen.iter().enumerate() {
        bar.set_prefix(transport.name());
        bar.set_message(format!("{} of {}", i + 1, chosen.len()));
        let base = i as u64 * 100;
        let progress = |fraction: f64| bar.set_position(base + (fraction * 100.0) as u64);
        let peer_cpu = pin.map(|(_, _, theirs)| theirs);
        let outcome = measure::measure(
            &exe,
            transport,
            &tag,
            size,
            args.duration,
            peer_cpu,
            &progress,
        );
        rows.push(Row { transport, outcome });
    }
    bar.finish_and_clear();

    let run = Run {
        size,
        duration: args.duration,
        pin,
    };
    let text = if args.json {
        report::json(&rows, &run)?
    } else {
        report::table(&rows, &run)
    };
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(stdout_error)?;
    if let Some(plot) = &args.plot {
        std::fs::write(plot, plot::svg(&rows)?)
            .with_context(|| format!("cannot write the plot to {}", plot.display()))?;
    }
    let failed: Vec<_> = rows
        .iter()
        .filter(|r| r.outcome.is_err())
        .map(|r| r.transport.name())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        bail!(
            "bench: {} of {} transports failed: {}",
            failed.len(),
            rows.len(),
            failed.join(", ")
        )
    }
}
