//! Service discovery from the command line, with the real binary: `--register`
//! on `listen`, `serve-demo` and `recv`; `ipckit services`; `ipckit wait`;
//! `service:NAME` for `connect`, `call` and `send`; `ipckit ls` showing the
//! service of an endpoint; the record removed at the end, on SIGTERM, and
//! never shown once its owner was killed.
//!
//! These use the user's real registry, each with names of its own.

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

mod common;

use std::time::{Duration, Instant};

use common::{Ipckit, limit, run, run_with_stdin};
use serde_json::Value;
use util::unique_name;

/// `ipckit services --json`, the instances of `name`.
fn services(name: &str) -> Vec<Value> {
    let (status, out, err) = run(&["services", "--json"]);
    assert!(status.success(), "{err}");
    let all: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    all.into_iter().filter(|s| s["name"] == name).collect()
}

#[test]
fn listen_register_is_listed_and_found_by_name() {
    let name = unique_name("svc");
    let addr = format!("pipe:{}", unique_name("ep"));
    // Messages: a client that has sent its lines and printed the echo ends on
    // its own, also over Windows pipes (no half-close there).
    let mut listen = Ipckit::start(&[
        "listen",
        "-v",
        "-m",
        "--echo",
        "--register",
        &name,
        "--meta",
        "version=2",
        "--meta",
        "proto=line",
        &addr,
    ]);
    listen.wait_for_stderr("listening on");
    let found = services(&name);
    assert_eq!(found.len(), 1, "{found:?}");
    let s = &found[0];
    assert_eq!(s["address"], addr.as_str());
    assert_eq!(s["kind"], "message");
    assert_eq!(s["pid"], listen.pid());
    assert_eq!(s["process"], "ipckit");
    assert_eq!(s["metadata"]["version"], "2");
    assert_eq!(s["metadata"]["proto"], "line");
    assert_eq!(s["state"], "live");

    // The table, and ls's SERVICE column (Wine cannot list \\.\pipe\).
    let (_, table, _) = run(&["services"]);
    let line = table.lines().find(|l| l.starts_with(&name)).expect("a row");
    assert!(
        line.contains("live") && line.contains("version=2"),
        "{line}"
    );
    if !ipckit::platform::is_wine() {
        let (_, ls, _) = run(&["ls", "--json"]);
        let ls: Vec<Value> = serde_json::from_str(&ls).unwrap();
        let e = ls
            .iter()
            .find(|e| e["address"] == addr.as_str())
            .unwrap_or_else(|| panic!("{addr} not in ls: {ls:?}"));
        assert_eq!(e["service"], name.as_str(), "{e}");
    }

    // A client by service name.
    let (status, out, err) = run_with_stdin(
        &["connect", "-m", "--count", "1", &format!("service:{name}")],
        b"hi\n".to_vec(),
    );
    assert!(status.success(), "{err}");
    assert_eq!(out, "hi\n");
    // Killed (no cleanup can run): the record is never shown again.
    drop(listen);
    assert!(services(&name).is_empty());
}

#[test]
fn serve_demo_and_recv_register_and_are_reached_by_name() {
    let rpc = unique_name("rpc");
    let mut server = Ipckit::start(&[
        "serve-demo",
        "-v",
        "--register",
        &rpc,
        &format!("pipe:{}", unique_name("rpc-ep")),
    ]);
    server.wait_for_stderr("listening on");
    assert_eq!(services(&rpc)[0]["kind"], "rpc");
    let (status, out, err) = run(&["call", &format!("service:{rpc}"), "add", "[2, 3]"]);
    assert!(status.success(), "{err}");
    assert_eq!(out.trim(), "5");

    let inbox = unique_name("inbox");
    let mut recv = Ipckit::start(&[
        "recv",
        "-v",
        "--count",
        "1",
        "--register",
        &inbox,
        &format!("mailslot:{}", unique_name("ms")),
    ]);
    recv.wait_for_stderr("receiving on");
    assert_eq!(services(&inbox)[0]["kind"], "mailslot");
    let record = services(&inbox)[0]["record"].as_str().unwrap().to_owned();
    let (status, _, err) = run(&["send", &format!("service:{inbox}"), "by name"]);
    assert!(status.success(), "{err}");
    // The normal end removes the record.
    assert!(recv.wait(limit()).success());
    assert!(services(&inbox).is_empty());
    assert!(!std::path::Path::new(&record).exists(), "{record} is left");

    let (status, _, err) = run(&["recv", "--register", "x", "--broadcast", "g"]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("--register cannot be used with --broadcast"),
        "{err}"
    );
}

/// `ipckit wait service:NAME` started before the server returns once the
/// server has registered, and `wait` at its timeout exits 1.
#[test]
fn wait_returns_when_the_service_registers_and_fails_at_the_timeout() {
    let name = unique_name("later");
    let addr = format!("pipe:{}", unique_name("ep"));
    let mut wait = Ipckit::start(&["wait", "--timeout", "60s", &format!("service:{name}")]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(services(&name).is_empty(), "nothing registered yet");
    let mut listen = Ipckit::start(&["listen", "-v", "--echo", "--register", &name, &addr]);
    listen.wait_for_stderr("registered");
    let registered = Instant::now();
    let status = wait.wait(limit());
    let took = registered.elapsed();
    assert!(status.success(), "{}", wait.stderr_to_end());
    println!("ipckit wait returned {took:?} after the server said it registered");
    assert!(
        took < Duration::from_secs(5) * util::slow_factor(),
        "{took:?}"
    );
    drop(listen);

    // connect --retry waits for a service that is not registered yet.
    let late = unique_name("late");
    let late_addr = format!("pipe:{}", unique_name("ep"));
    let (late_tx, late_rx) = std::sync::mpsc::channel();
    let client = std::thread::spawn({
        let late = late.clone();
        move || {
            let out = run_with_stdin(
                &[
                    "connect",
                    "-m",
                    "--count",
                    "1",
                    "--retry",
                    "--timeout",
                    "60s",
                    &format!("service:{late}"),
                ],
                b"late\n".to_vec(),
            );
            late_tx.send(()).unwrap();
            out
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(late_rx.try_recv().is_err(), "connect --retry did not wait");
    let mut server = Ipckit::start(&[
        "listen",
        "-v",
        "-m",
        "--echo",
        "--register",
        &late,
        &late_addr,
    ]);
    server.wait_for_stderr("listening on");
    let (status, out, err) = client.join().unwrap();
    assert!(status.success(), "{err}");
    assert_eq!(out, "late\n");
    drop(server);

    let begun = Instant::now();
    let (status, _, err) = run(&[
        "wait",
        "--timeout",
        "300ms",
        &format!("service:{}", unique_name("never")),
    ]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("did not answer within 300ms"), "{err}");
    assert!(begun.elapsed() >= Duration::from_millis(300));
    let (status, _, err) = run(&[
        "wait",
        "--timeout",
        "200ms",
        &format!("pipe:{}", unique_name("none")),
    ]);
    assert_eq!(status.code(), Some(1), "{err}");
}

/// SIGTERM removes the record (through the cleanup of Ctrl-C); SIGKILL cannot,
/// but the record of a killed owner is never shown.
#[cfg(unix)]
#[test]
fn sigterm_removes_the_record_and_a_killed_owner_is_not_shown() {
    util::watchdog(limit() * 2, || {
        for (sig, removed) in [("TERM", true), ("KILL", false)] {
            let name = unique_name("sig");
            let addr = format!("pipe:{}", unique_name("ep"));
            let listen = Ipckit::start(&["listen", "-v", "--echo", "--register", &name, &addr]);
            let mut listen = listen;
            listen.wait_for_stderr("listening on");
            let record = services(&name)[0]["record"].as_str().unwrap().to_owned();
            listen.signal(sig);
            let status = listen.wait(limit());
            assert!(!status.success());
            assert_eq!(
                !std::path::Path::new(&record).exists(),
                removed,
                "{sig}: {record}"
            );
            assert!(services(&name).is_empty(), "{sig}");
            if !removed {
                // A killed server leaves its socket file: not the test's to leave.
                let ep: ipckit::Address = addr.parse().unwrap();
                let _ = std::fs::remove_file(ep.os_name().unwrap());
            }
        }
    });
}

/// `connect service:NAME` whose oldest instance is stale (its owner, this
/// test, is alive; nothing listens there) falls back to the next live one.
#[test]
fn connect_falls_back_from_a_stale_instance_to_the_next_live_one() {
    let name = unique_name("svc");
    let stale = format!("pipe:{}", unique_name("stale"));
    let live = format!("pipe:{}", unique_name("live"));
    let _stale = ipckit::registry::Registration::builder(
        &name,
        stale.as_str(),
        ipckit::registry::Kind::Message,
    )
    .register()
    .unwrap();
    let mut listen = Ipckit::start(&["listen", "-v", "-m", "--echo", "--register", &name, &live]);
    listen.wait_for_stderr("listening on");
    let found = services(&name);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        found[0]["address"],
        stale.as_str(),
        "the stale one is first"
    );
    let (status, out, err) = run_with_stdin(
        &[
            "connect",
            "-v",
            "-m",
            "--count",
            "1",
            &format!("service:{name}"),
        ],
        b"hi\n".to_vec(),
    );
    assert!(status.success(), "{err}");
    assert_eq!(out, "hi\n");
    assert!(err.contains(&live), "{err}");
}
