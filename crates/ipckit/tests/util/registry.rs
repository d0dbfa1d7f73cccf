//! Registry tests' harness: each scenario runs in a child of the test program
//! whose registry is a fresh private directory (`XDG_RUNTIME_DIR` on Unix,
//! `%LOCALAPPDATA%` on Windows), so scenarios running at once, or the user's
//! own services, cannot disturb each other. The child runs the test program's
//! `child` test with role `scenario`.

use std::process::Stdio;
use std::time::Duration;

use super::{slow_factor, this_test_as_child, unique_name, watchdog};

/// The environment variable that places the registry.
pub(crate) const REGISTRY_ENV: &str = if cfg!(windows) {
    "LOCALAPPDATA"
} else {
    "XDG_RUNTIME_DIR"
};

pub(crate) fn limit() -> Duration {
    Duration::from_secs(60 * u64::from(slow_factor()))
}

/// Runs `scenario` in a child of this program with a registry of its own, and
/// fails with its output if it fails.
pub(crate) fn isolated(scenario: &str) {
    let scenario = scenario.to_owned();
    watchdog(limit(), move || {
        let base = std::env::temp_dir().join(unique_name("reg"));
        std::fs::create_dir(&base).unwrap();
        let mut cmd = this_test_as_child(&[], "child", "scenario", &scenario);
        cmd.env(REGISTRY_ENV, &base)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = cmd.output().expect("run the scenario's child");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_dir_all(&base);
        println!("{text}");
        assert!(out.status.success(), "scenario {scenario} failed:\n{text}");
        assert!(
            text.contains(&format!("SCENARIO {scenario} PASSED")),
            "scenario {scenario} did not run:\n{text}"
        );
    });
}

/// Runs the scenario called `name` (a child's `scenario` role) from
/// `scenarios`, then says it passed.
pub(crate) fn run_scenario(name: &str, scenarios: &[(&str, fn())]) {
    let (_, run) = scenarios
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("unknown scenario {name}"));
    run();
    println!("SCENARIO {name} PASSED");
}

/// A registered test service's answer: the 5 bytes it reads, written back.
pub(crate) fn echo5(s: &mut (impl std::io::Read + std::io::Write)) {
    let mut buf = [0; 5];
    s.read_exact(&mut buf).unwrap();
    s.write_all(&buf).unwrap();
}

/// Sends `word` to a service that answers with [`echo5`], and checks the echo.
pub(crate) fn round_trip5(s: &mut (impl std::io::Read + std::io::Write), word: &[u8; 5]) {
    s.write_all(word).unwrap();
    let mut back = [0; 5];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, word);
}

/// A child of this test program in `role` (its `child` test) with the
/// argument `NAME MS`: one that registers `name` after `ms` milliseconds.
pub(crate) fn later(role: &str, name: &str, ms: u64) -> super::Kid {
    super::Kid::spawn(this_test_as_child(
        &[],
        "child",
        role,
        &format!("{name} {ms}"),
    ))
}
