//! `ipckit demo`: every transport in one run.

use crate::support::*;

#[test]
fn demo_reports_every_transport_ok() {
    let (status, stdout, stderr) = run(&["demo"]);
    assert!(
        status.success(),
        "demo failed: {status}\n{stdout}\n{stderr}"
    );
    let mut expected = vec!["pipe"];
    if cfg!(unix) {
        expected.push("unix");
    }
    if cfg!(target_os = "linux") {
        expected.push("abstract");
    }
    expected.push("tcp");
    expected.push("shm");
    for transport in &expected {
        let row = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(transport))
            .unwrap_or_else(|| panic!("no row for {transport}:\n{stdout}"));
        assert!(row.trim_end().ends_with(" ok"), "{transport} not ok: {row}");
        // The figures are numbers: round trips, median and p99 µs, MiB/s.
        let figures: Vec<f64> = row
            .split_whitespace()
            .skip(3)
            .take(4)
            .map(|f| f.parse().unwrap_or_else(|_| panic!("{f:?} in {row:?}")))
            .collect();
        assert!(
            figures[0] >= 1.0 && figures[1] > 0.0 && figures[3] > 0.0,
            "{row}"
        );
        assert!(figures[1] <= figures[2], "median above p99: {row}");
        // Nothing left behind: the unix transport's socket file is gone.
        if let Some(path) = row
            .split_whitespace()
            .nth(1)
            .and_then(|a| a.strip_prefix("unix:"))
        {
            assert!(
                std::fs::symlink_metadata(path).is_err(),
                "{path} was left behind"
            );
        }
    }
    // The mailslot is one way: messages, each checked, and how long they took.
    let row = stdout
        .lines()
        .find(|l| l.starts_with("mailslot "))
        .unwrap_or_else(|| panic!("no row for mailslot:\n{stdout}"));
    assert!(row.trim_end().ends_with(" ok"), "mailslot not ok: {row}");
    // The demo's default --rounds: 1000, or 200 under Wine.
    let rounds = if ipckit::platform::is_wine() {
        200
    } else {
        1000
    };
    assert!(
        row.contains(&format!(" {rounds} messages of 64 bytes ")),
        "{row}"
    );
    let slot = row
        .split_whitespace()
        .nth(1)
        .expect("the mailslot's address");
    let shm = stdout
        .lines()
        .find(|l| l.starts_with("shm "))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("the shm channel's address");
    // Nothing left behind: no receiver's socket file, no region.
    assert!(
        ipckit::MailslotSender::connect(slot).is_err(),
        "{slot} still receives"
    );
    assert!(
        ipckit::shm::SharedMemory::open(shm.strip_prefix("shm:").expect("shm:")).is_err(),
        "{shm} was left behind"
    );
    if let Some(file) = slot
        .parse::<ipckit::Address>()
        .ok()
        .and_then(|a| ipckit::platform::socket_file(&a))
    {
        assert!(
            file.symlink_metadata().is_err(),
            "{} was left behind",
            file.display()
        );
    }
    // JSON-RPC: a child's `ipckit call ... add [2, 40]` printed 42, checked by
    // the demo, and the server is gone afterwards.
    let row = stdout
        .lines()
        .find(|l| l.starts_with("rpc "))
        .unwrap_or_else(|| panic!("no row for rpc:\n{stdout}"));
    assert!(
        row.trim_end().ends_with(" ok") && row.contains("printed 42 (1 call served)"),
        "rpc not ok: {row}"
    );
    let rpc = row.split_whitespace().nth(1).expect("the RPC address");
    assert!(
        ipckit_rpc::Client::connect(rpc).is_err(),
        "{rpc} still serves"
    );
    let summary = format!("all {} transports ok", expected.len() + 2);
    assert!(stdout.contains(&summary), "{stdout}");
}
