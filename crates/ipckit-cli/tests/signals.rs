//! SIGINT, SIGTERM and SIGHUP, sent with kill(1) to the real `ipckit` binary:
//! every subcommand that creates an endpoint removes it and exits 130
//! (`src/cleanup.rs`). Windows' Ctrl-C is tested in `tests/ctrl_c.rs`.
//!
//! Not here: `spawn` creates no named endpoint (its channel is an inherited
//! socketpair), and `shm create` on Unix exits at once, leaving its region on
//! purpose until `ipckit shm rm`.
#![cfg(unix)]

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

mod common;

use std::path::PathBuf;

use common::{Ipckit, Leftovers, limit};
use util::unique_name;

const SIGNALS: [&str; 3] = ["INT", "TERM", "HUP"];

/// One endpoint-creating command: its arguments (after `-v`), the stderr line
/// that says the endpoint exists, and the file or region it made.
struct Case {
    args: Vec<String>,
    ready: &'static str,
    made: PathBuf,
}

fn runtime_dir() -> PathBuf {
    ipckit::platform::runtime_dir().expect("a runtime directory on Unix")
}

/// A command that serves portable name `pipe:NAME`: its socket file.
fn on_name(args: &[&str], tag: &str, left: &mut Leftovers) -> Case {
    let name = unique_name(tag);
    let made = runtime_dir().join(format!("{name}.sock"));
    left.file(&made);
    let mut args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
    args.push(format!("pipe:{name}"));
    Case {
        args,
        ready: "listening on ",
        made,
    }
}

/// Starts the case, waits until its endpoint exists, sends `sig`, and checks
/// the exit code and that the endpoint is gone.
#[track_caller]
fn check(case: &Case, sig: &str) {
    let mut args = vec!["-v"];
    args.extend(case.args.iter().map(String::as_str));
    let what = format!("ipckit {} (SIG{sig})", args.join(" "));
    let mut proc = Ipckit::start(&args);
    proc.wait_for_stderr(case.ready);
    assert!(case.made.exists(), "{what} made no {}", case.made.display());
    proc.signal(sig);
    let status = proc.wait(limit());
    assert_eq!(status.code(), Some(130), "{what}: {status}");
    assert!(!case.made.exists(), "{what} left {}", case.made.display());
}

/// `listen` in every mode, on a portable name, a socket path and (Linux) a
/// shared-memory channel.
#[test]
fn listen_removes_its_endpoint_on_int_term_and_hup() {
    let mut left = Leftovers::new();
    let mut cases = vec![
        on_name(&["listen"], "sig-listen", &mut left),
        on_name(&["listen", "--echo"], "sig-echo", &mut left),
        on_name(&["listen", "-m"], "sig-msg", &mut left),
        on_name(&["listen", "-m", "--echo"], "sig-msg-echo", &mut left),
    ];
    let path = std::env::temp_dir().join(format!("{}.sock", unique_name("sig-path")));
    left.file(&path);
    cases.push(Case {
        args: vec!["listen".into(), format!("unix:{}", path.display())],
        ready: "listening on ",
        made: path,
    });
    // A shared-memory listener's endpoint is its rendezvous socket (its
    // channels' regions are made per client and unlinked once joined).
    for echo in [false, true] {
        let name = unique_name("sig-shm");
        let rendezvous = runtime_dir().join(format!("{name}.shm.sock"));
        left.file(&rendezvous);
        let mut args = vec!["listen".to_owned()];
        if echo {
            args.push("--echo".into());
        }
        args.push(format!("shm:{name}"));
        cases.push(Case {
            args,
            ready: "listening on ",
            made: rendezvous,
        });
    }
    for sig in SIGNALS {
        for case in &cases {
            check(case, sig);
        }
    }
}

/// `serve-demo` promised cleanup in `--help` but left its socket file.
#[test]
fn serve_demo_removes_its_socket_file_on_int_term_and_hup() {
    let mut left = Leftovers::new();
    let case = on_name(&["serve-demo"], "sig-rpc", &mut left);
    for sig in SIGNALS {
        check(&case, sig);
    }
}

/// `recv` on a mailslot, and `recv --broadcast` (its member's socket file,
/// named after its pid, so it is found once the process runs).
#[test]
fn recv_removes_its_receiver_and_its_group_member_on_int_term_and_hup() {
    let mut left = Leftovers::new();
    let slot = unique_name("sig-slot");
    let slot_file = runtime_dir().join(format!("{slot}.dgram"));
    left.file(&slot_file);
    let case = Case {
        args: vec!["recv".into(), format!("mailslot:{slot}")],
        ready: "receiving ",
        made: slot_file,
    };
    for sig in SIGNALS {
        check(&case, sig);
    }

    let group = unique_name("sig-group");
    left.group(&group);
    let group_dir = runtime_dir().join(format!("{group}.group"));
    for sig in SIGNALS {
        let mut proc = Ipckit::start(&["-v", "recv", "--broadcast", &group]);
        let member = group_dir.join(format!("{}-0.dgram", proc.pid()));
        proc.wait_for_stderr("receiving ");
        let what = format!("recv --broadcast {group} (SIG{sig})");
        assert!(member.exists(), "{what} made no {}", member.display());
        proc.signal(sig);
        let status = proc.wait(limit());
        assert_eq!(status.code(), Some(130), "{what}: {status}");
        assert!(!member.exists(), "{what} left {}", member.display());
    }
}

/// SIGTERM at a random early moment of `listen pipe:NAME`, 0–30 ms after the
/// spawn: before the handler is installed (the default action: nothing was
/// bound yet), during the bind, between the bind and its registration for
/// cleanup, or after. No moment may leave the socket file: a signal that comes
/// while the command binds waits until the endpoint is registered
/// (`cleanup::Pending`). `IPCKIT_EARLY_SIGNALS` sets the number of processes
/// (default 2500, four at a time).
#[test]
fn a_signal_at_any_early_moment_leaves_no_socket_file() {
    let trials: usize = std::env::var("IPCKIT_EARLY_SIGNALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2500);
    let mut left = Leftovers::new();
    let dir = runtime_dir();
    let names: Vec<String> = (0..trials).map(|_| unique_name("sig-early")).collect();
    for name in &names {
        left.file(dir.join(format!("{name}.sock")));
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let limit = limit() * 10;
    let results = util::watchdog(limit, move || {
        std::thread::scope(|s| {
            let workers: Vec<_> = names
                .chunks(trials.div_ceil(4).max(1))
                .enumerate()
                .map(|(i, chunk)| {
                    let dir = dir.clone();
                    s.spawn(move || {
                        let mut rng = seed.wrapping_mul(i as u64 + 1) | 1;
                        chunk
                            .iter()
                            .map(|name| {
                                // xorshift64: a delay of 0 to 30 ms, in µs.
                                rng ^= rng << 13;
                                rng ^= rng >> 7;
                                rng ^= rng << 17;
                                let delay = std::time::Duration::from_micros(rng % 30_001);
                                let mut proc = Ipckit::start(&["listen", &format!("pipe:{name}")]);
                                std::thread::sleep(delay);
                                proc.signal("TERM");
                                let status = proc.wait(common::limit());
                                let file = dir.join(format!("{name}.sock"));
                                (status.code(), file.exists().then_some(file))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("a trial thread panicked"))
                .collect::<Vec<_>>()
        })
    });
    let cleaned = results.iter().filter(|r| r.0 == Some(130)).count();
    let default_action = results.iter().filter(|r| r.0.is_none()).count();
    let leftovers: Vec<_> = results.iter().filter_map(|r| r.1.as_ref()).collect();
    println!(
        "{trials} listen processes sent SIGTERM 0-30 ms after spawn: {cleaned} exited 130 \
         (handler ran), {default_action} ended by the signal (before the handler), \
         {} leftover socket files",
        leftovers.len()
    );
    let other: Vec<_> = results
        .iter()
        .filter(|r| !matches!(r.0, None | Some(130)))
        .collect();
    assert!(other.is_empty(), "unexpected exit codes: {other:?}");
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
