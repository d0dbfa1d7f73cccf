//! `ipckit bench`: every transport measured against std.

use std::time::Instant;

use crate::support::*;
use crate::util::unique_name;

/// `ipckit bench` measures every transport between two processes, with the
/// std baseline, as JSON, a table and an SVG plot.
#[test]
fn bench_measures_every_transport_against_std() {
    let plot = std::env::temp_dir().join(format!("{}.svg", unique_name("cli-bench-plot")));
    let plot_arg = plot.display().to_string();
    let (status, stdout, stderr) = run(&[
        "bench",
        "--duration",
        "200ms",
        "--size",
        "100",
        "--json",
        "--plot",
        &plot_arg,
    ]);
    assert!(status.success(), "{status}: {stderr}\n{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    assert_eq!(report["size"], 100);
    assert_eq!(report["duration_ms"], 200);
    let results = report["results"].as_array().expect("results");
    let names: Vec<_> = results.iter().map(|r| r["transport"].as_str()).collect();
    assert_eq!(
        names,
        ["std", "stream", "message", "datagram", "shm", "tcp"].map(Some),
        "{stdout}"
    );
    for r in results {
        assert_eq!(r["ok"], true, "{r}");
        let n = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
        assert!(n("round_trips") >= 1.0, "{r}");
        assert!(n("p50_ns") > 0.0, "{r}");
        assert!(
            n("p50_ns") <= n("p99_ns") && n("p99_ns") <= n("p999_ns"),
            "{r}"
        );
        assert!(n("p999_ns") <= n("max_ns") * 1.001, "{r}");
        assert!(n("messages") >= 1.0, "{r}");
        // bytes/s is messages/s times the size: the two figures agree.
        let bytes = n("bytes_per_sec");
        assert!(
            (bytes - n("messages_per_sec") * 100.0).abs() <= bytes * 1e-9,
            "{r}"
        );
        assert!(n("p50_vs_std") > 0.0 && n("throughput_vs_std") > 0.0, "{r}");
    }
    assert_eq!(results[0]["p50_vs_std"], 1.0);
    let svg = std::fs::read_to_string(&plot).expect("the plot was written");
    let _ = std::fs::remove_file(&plot);
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    // One curve per transport (the axes are thinner lines), and a legend
    // entry naming each.
    assert_eq!(svg.matches("stroke-width=\"2\"").count(), 6, "{svg}");
    let text: String = svg.split('\n').map(str::trim).collect();
    for name in ["std", "stream", "message", "datagram", "shm", "tcp"] {
        assert!(text.contains(&format!(">{name}</text>")), "{name} in {svg}");
    }
}

/// The table: the chosen transports plus the baseline, with ratios to it.
#[test]
fn bench_table_shows_the_chosen_transports_and_the_ratio_to_std() {
    let (status, stdout, stderr) = run(&["bench", "stream", "shm", "--duration", "200ms"]);
    assert!(status.success(), "{status}: {stderr}");
    assert!(stdout.contains("×std"), "{stdout}");
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            ["std ", "stream ", "shm ", "message ", "tcp "]
                .iter()
                .any(|t| l.starts_with(t))
        })
        .collect();
    assert_eq!(rows.len(), 3, "std, stream and shm only: {stdout}");
    assert!(
        rows[0].starts_with("std ") && rows[0].contains(" 1.00 "),
        "{stdout}"
    );
    assert!(
        rows[1].starts_with("stream ") && rows[2].starts_with("shm "),
        "{stdout}"
    );
}

#[test]
fn bench_errors_are_usage_errors_or_one_line_failures() {
    for args in [
        &["bench", "nosuch"][..],
        &["bench", "--size", "0"][..],
        &["bench", "--size", "2000000"][..],
        &["bench", "--duration", "0s"][..],
        &["bench", "--duration", "5"][..],
    ] {
        let (status, _, stderr) = run(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
    }
    // A plot that cannot be written fails before anything is measured.
    let bad = std::env::temp_dir()
        .join(unique_name("cli-no-such-dir"))
        .join("plot.svg");
    let bad = bad.display().to_string();
    let started = Instant::now();
    let (status, stdout, stderr) = run(&["bench", "--plot", &bad]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_one_line_error(&stderr, &[&bad]);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(started.elapsed() < limit() / 2);
    // A transport that cannot carry the size fails alone, naming the reason.
    let (status, stdout, stderr) = run(&[
        "bench",
        "datagram",
        "--size",
        "100000",
        "--duration",
        "200ms",
    ]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_one_line_error(&stderr, &["1 of 2 transports failed: datagram"]);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("datagram "))
        .unwrap_or_else(|| panic!("no datagram row: {stdout}"));
    assert!(
        row.contains("FAILED") && row.contains("65536 bytes"),
        "{row}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("std ") && !l.contains("FAILED")),
        "{stdout}"
    );
}
