//! `ipckit bench`: every transport measured against its bare loop and std.

use std::time::Instant;

use crate::support::*;
use crate::util::unique_name;

/// The rows `ipckit bench` runs by default on this OS: each transport after
/// its baseline.
fn default_rows() -> Vec<&'static str> {
    let mut rows = vec!["std", "stream"];
    if cfg!(any(target_os = "linux", target_os = "freebsd")) {
        rows.push("seqpacket");
    }
    rows.extend(["message", "datagram", "ring", "shm"]);
    if cfg!(unix) {
        rows.push("std-tcp");
    }
    rows.push("tcp");
    rows
}

/// `ipckit bench` measures every transport between two processes, with
/// its bare baseline and std's stream, as JSON, a table and an SVG plot.
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
    let expected = default_rows();
    assert_eq!(
        names,
        expected.iter().copied().map(Some).collect::<Vec<_>>(),
        "{stdout}"
    );
    let p50_of = |name: &str| {
        let row = results.iter().find(|r| r["transport"] == name);
        row.and_then(|r| r["p50_ns"].as_f64())
            .unwrap_or_else(|| panic!("{name}'s p50 in {stdout}"))
    };
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
        // Each row's ratio is against its own baseline, measured in this run.
        let name = r["transport"].as_str().expect("name");
        let own = match name {
            "std" | "seqpacket" | "ring" | "std-tcp" => None,
            "shm" => Some("ring"),
            "message" if expected.contains(&"seqpacket") => Some("seqpacket"),
            "tcp" if cfg!(unix) => Some("std-tcp"),
            _ => Some("std"),
        };
        assert_eq!(r["baseline"].as_str(), own, "{r}");
        match own {
            Some(base) => {
                let want = n("p50_ns") / p50_of(base);
                assert!((n("p50_vs_baseline") - want).abs() <= want * 1e-9, "{r}");
                assert!(n("throughput_vs_baseline") > 0.0, "{r}");
            }
            None => assert!(r["p50_vs_baseline"].is_null(), "{r}"),
        }
    }
    assert_eq!(results[0]["p50_vs_std"], 1.0);
    assert!(
        report["pin"].is_null() && report["cpus"].is_null(),
        "{stdout}"
    );
    let svg = std::fs::read_to_string(&plot).expect("the plot was written");
    let _ = std::fs::remove_file(&plot);
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    // One curve per transport (the axes are thinner lines), and a legend
    // entry naming each.
    assert_eq!(
        svg.matches("stroke-width=\"2\"").count(),
        expected.len(),
        "{svg}"
    );
    let text: String = svg.split('\n').map(str::trim).collect();
    for name in expected {
        assert!(text.contains(&format!(">{name}</text>")), "{name} in {svg}");
    }
}

/// The table: the chosen transports, each after its baseline (std's stream
/// for `stream`, the bare ring for `shm`), with ratios to it.
#[test]
fn bench_table_shows_the_chosen_transports_and_the_ratio_to_std() {
    let (status, stdout, stderr) = run(&["bench", "stream", "shm", "--duration", "200ms"]);
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stdout.contains("×std") && stdout.contains("×bl"),
        "{stdout}"
    );
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            ["std ", "stream ", "ring ", "shm ", "message ", "tcp "]
                .iter()
                .any(|t| l.starts_with(t))
        })
        .collect();
    assert_eq!(rows.len(), 4, "std, stream, ring and shm only: {stdout}");
    assert!(
        rows[0].starts_with("std ") && rows[0].trim_end().ends_with(" 1.00"),
        "{stdout}"
    );
    assert!(
        rows[1].starts_with("stream ")
            && rows[2].starts_with("ring ")
            && rows[3].starts_with("shm "),
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

/// `--pin` puts both ends on CPUs this process may use: `same` one CPU,
/// `split` two; with one CPU allowed, `split` fails naming it. (`taskset`
/// narrows the CPUs the bench may run on.)
#[cfg(target_os = "linux")]
#[test]
fn bench_pins_both_ends_to_the_cpus_it_may_use() {
    use crate::util::watchdog;
    use std::process::Command;

    // The CPUs this test may run on, from the kernel (`Cpus_allowed_list`,
    // e.g. "0-1" or "0,2-3").
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list")
        .trim();
    let mut allowed = Vec::new();
    for part in list.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        allowed.extend(lo.parse::<usize>().unwrap()..=hi.parse::<usize>().unwrap());
    }
    let kids = Children::new();
    let taskset = |cpus: &str, args: &[&str]| {
        let mut cmd = Command::new("taskset");
        cmd.arg("-c").arg(cpus).arg(BIN).args(args);
        let mut proc = kids.spawn(cmd).expect("start taskset (util-linux)");
        watchdog(limit(), move || {
            let stdout = String::from_utf8(proc.stdout_to_end()).expect("UTF-8 stdout");
            let stderr = proc.stderr_to_end();
            (proc.wait(limit()), stdout, stderr)
        })
    };
    let last_cpu = *allowed.last().expect("a CPU");
    let last = last_cpu.to_string();
    let args = [
        "bench",
        "message",
        "--pin",
        "same",
        "--duration",
        "200ms",
        "--json",
    ];
    let (status, stdout, stderr) = taskset(&last, &args);
    assert!(status.success(), "{status}: {stderr}\n{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["pin"], "same", "{stdout}");
    assert_eq!(report["cpus"], serde_json::json!([last_cpu, last_cpu]));
    assert!(
        report["results"]
            .as_array()
            .is_some_and(|r| r.iter().all(|r| r["ok"] == true))
    );

    let split = ["bench", "message", "--pin", "split", "--duration", "200ms"];
    let (status, stdout, stderr) = taskset(&last, &split);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert_one_line_error(
        &stderr,
        &["--pin split needs two CPUs", &format!("CPU {last} only")],
    );
    if let [a, b, ..] = allowed[..] {
        let (status, stdout, stderr) =
            taskset(&format!("{a},{b}"), &[&split[..], &["--json"]].concat());
        assert!(status.success(), "{status}: {stderr}\n{stdout}");
        let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
        assert_eq!(report["cpus"], serde_json::json!([a, b]), "{stdout}");
    }
}
