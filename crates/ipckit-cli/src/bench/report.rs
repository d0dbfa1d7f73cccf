//! The results as a table or as JSON, each row with its ratios to its own
//! baseline (the bare loop of the mechanism it runs on) and to std's stream.

use std::fmt::Write as _;

use anyhow::Result;
use serde_json::json;

use super::measure::Measured;
use super::{Row, Run, Transport};

fn micros(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// A row's median round trip and message rate, each over another row's.
#[derive(Debug, Clone, Copy)]
struct Ratios {
    p50: f64,
    throughput: Option<f64>,
}

fn ratios(m: &Measured, base: &Measured) -> Ratios {
    let p50 = m.hist.value_at_quantile(0.5) as f64 / base.hist.value_at_quantile(0.5).max(1) as f64;
    let thr = m.messages_per_sec() / base.messages_per_sec();
    Ratios {
        p50,
        throughput: thr.is_finite().then_some(thr),
    }
}

/// The measured row of `transport`, if it ran and succeeded.
fn measured(rows: &[Row], transport: Transport) -> Option<&Measured> {
    rows.iter()
        .find(|r| r.transport == transport)
        .and_then(|r| r.outcome.as_ref().ok())
}

/// The row's ratios to its own baseline (with the baseline's name), and to std.
fn row_ratios(
    rows: &[Row],
    row: &Row,
    m: &Measured,
) -> (Option<(Transport, Ratios)>, Option<Ratios>) {
    let own = row
        .transport
        .baseline()
        .and_then(|b| measured(rows, b).map(|bm| (b, ratios(m, bm))));
    let std = measured(rows, Transport::Std).map(|s| ratios(m, s));
    (own, std)
}

fn cell(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"))
}

pub(super) fn table(rows: &[Row], run: &Run) -> String {
    let mut text = format!(
        "ipckit bench: {}-byte messages, {:?} per transport (half round trips, half \
         one-way throughput), two processes{}; std: {}\n\n",
        run.size,
        run.duration,
        run.pin_text(),
        Transport::describe_std()
    );
    let _ = writeln!(
        text,
        "{:<9}  {:>8}  {:>8}  {:>8}  {:>11}  {:>11}  {:>9}  {:<9}  {:>7}  {:>9}  {:>8}",
        "transport",
        "p50 µs",
        "p99 µs",
        "p999 µs",
        "round tr/s",
        "messages/s",
        "MiB/s",
        "baseline",
        "p50 ×bl",
        "msg/s ×bl",
        "p50 ×std"
    );
    for row in rows {
        match &row.outcome {
            Ok(m) => {
                let (own, std) = row_ratios(rows, row, m);
                let _ = writeln!(
                    text,
                    "{:<9}  {:>8.1}  {:>8.1}  {:>8.1}  {:>11.0}  {:>11.0}  {:>9.1}  {:<9}  {:>7}  {:>9}  {:>8}",
                    row.transport.name(),
                    micros(m.hist.value_at_quantile(0.5)),
                    micros(m.hist.value_at_quantile(0.99)),
                    micros(m.hist.value_at_quantile(0.999)),
                    m.round_trips_per_sec(),
                    m.messages_per_sec(),
                    m.bytes_per_sec(run.size) / f64::from(1 << 20),
                    own.map_or("-", |(b, _)| b.name()),
                    cell(own.map(|(_, r)| r.p50)),
                    cell(own.and_then(|(_, r)| r.throughput)),
                    cell(std.map(|r| r.p50)),
                );
            }
            Err(err) => {
                let _ = writeln!(
                    text,
                    "{:<9}  FAILED: {}",
                    row.transport.name(),
                    crate::one_line(err)
                );
            }
        }
    }
    text.push_str(
        "\nbaseline: the bare loop of the mechanism the row runs on, measured in this run \
         (std: std's stream; seqpacket: a raw SOCK_SEQPACKET socket; ring: two bare \
         shared-memory rings, both sides spinning; std-tcp: std's TCP). \
         p50 ×bl: the median round trip over the baseline's (lower is faster); \
         msg/s ×bl: the message rate over the baseline's (higher is faster); \
         p50 ×std: the median round trip over std's stream's.\n",
    );
    text
}

pub(super) fn json(rows: &[Row], run: &Run) -> Result<String> {
    let results: Vec<_> = rows
        .iter()
        .map(|row| match &row.outcome {
            Ok(m) => {
                let (own, std) = row_ratios(rows, row, m);
                json!({
                    "transport": row.transport.name(),
                    "ok": true,
                    "address": m.address,
                    "round_trips": m.hist.len(),
                    "p50_ns": m.hist.value_at_quantile(0.5),
                    "p99_ns": m.hist.value_at_quantile(0.99),
                    "p999_ns": m.hist.value_at_quantile(0.999),
                    "max_ns": m.hist.max(),
                    "round_trips_per_sec": m.round_trips_per_sec(),
                    "messages": m.sunk,
                    "messages_per_sec": m.messages_per_sec(),
                    "bytes_per_sec": m.bytes_per_sec(run.size),
                    "baseline": row.transport.baseline().map(Transport::name),
                    "p50_vs_baseline": own.map(|(_, r)| r.p50),
                    "throughput_vs_baseline": own.and_then(|(_, r)| r.throughput),
                    "p50_vs_std": std.map(|r| r.p50),
                    "throughput_vs_std": std.and_then(|r| r.throughput),
                })
            }
            Err(err) => json!({
                "transport": row.transport.name(),
                "ok": false,
                "baseline": row.transport.baseline().map(Transport::name),
                "error": crate::one_line(err),
            }),
        })
        .collect();
    let report = json!({
        "os": std::env::consts::OS,
        "wine": ipckit::platform::wine_version(),
        "size": run.size,
        "duration_ms": run.duration.as_millis() as u64,
        "pin": run.pin.map(|(p, _, _)| p.name()),
        "cpus": run.pin.map(|(_, ours, theirs)| [ours, theirs]),
        "baseline": Transport::describe_std(),
        "results": results,
    });
    let mut text = serde_json::to_string_pretty(&report)?;
    text.push('\n');
    Ok(text)
}
