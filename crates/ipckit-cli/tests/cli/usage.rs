//! Usage errors, `--help`, bad addresses and durations, a closed stdout.

use crate::support::*;
use crate::util::{unique_name, watchdog};

#[test]
fn a_bad_address_names_the_rule_it_broke() {
    for sub in ["listen", "connect"] {
        let (status, _, stderr) = run(&[sub, "ftp:x"]);
        assert_eq!(status.code(), Some(2), "{sub}: {stderr}");
        assert!(stderr.contains("ftp:x"), "{stderr}");
        assert!(stderr.contains("unknown scheme \"ftp\""), "{stderr}");
        assert!(stderr.contains("known schemes are"), "{stderr}");
    }
    // Valid text, but not a stream endpoint: a runtime error, exit 1, one line.
    let (status, _, stderr) = run(&["listen", "mailslot:region"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_one_line_error(
        &stderr,
        &["mailslot:region", "cannot be used here", "not a stream"],
    );
}

#[test]
fn a_bad_duration_is_a_usage_error() {
    for bad in ["5x", "5", "0s", "-1s"] {
        let option = format!("--timeout={bad}");
        let (status, _, stderr) = run(&["connect", &option, "pipe:whatever"]);
        assert_eq!(status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains(&format!("{bad:?}")), "{stderr}");
    }
    let (_, _, stderr) = run(&["connect", "--timeout", "5x", "pipe:whatever"]);
    assert!(stderr.contains("500ms, 2s, 1.5s or 1m"), "{stderr}");
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    for sub in [
        "listen",
        "connect",
        "send",
        "recv",
        "shm",
        "spawn",
        "demo",
        "call",
        "serve-demo",
        "ls",
        "bench",
    ] {
        let (status, stdout, _) = run(&[sub, "--help"]);
        assert!(status.success());
        assert!(stdout.contains("Examples:"), "{sub}: {stdout}");
        assert!(stdout.contains(&format!("ipckit {sub}")), "{sub}: {stdout}");
        if sub == "listen" || sub == "connect" {
            assert!(
                stdout.contains(&format!("ipckit {sub} --message")),
                "{stdout}"
            );
        }
    }
    let (status, stdout, _) = run(&["--help"]);
    assert!(status.success());
    assert!(stdout.contains("tcp:HOST:PORT"), "{stdout}");
    assert!(
        !stdout.contains("__demo-peer") && !stdout.contains("__bench-peer"),
        "the peers are hidden: {stdout}"
    );
    // A hidden peer's summary does not stand on a public command.
    assert!(
        !stdout.contains("child process"),
        "a hidden peer's text shows: {stdout}"
    );
    assert!(stdout.contains("Exit status:"), "{stdout}");
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let addr = format!("pipe:{}", unique_name("cli-head"));
    let kids = Children::new();
    kids.clean_up(&addr);
    let mut server = kids.ipckit(&["-v", "listen", "--echo", &addr]);
    let addr = watchdog(limit(), move || server.listening_on());
    let mut client = kids.ipckit(&["connect", &addr]);
    watchdog(limit(), move || {
        // Like `ipckit connect ... | head -c 0`: the reader is gone before any data.
        drop(client.stdout.take());
        let feeder = client.feed_stdin(payload(1 << 20));
        let status = client.wait(limit());
        let stderr = client.stderr_to_end();
        assert!(status.success(), "{status}: {stderr}");
        assert!(stderr.is_empty(), "{stderr}");
        feeder.join().expect("feeder");
    });
}

/// A name that breaks the address rules, found only when it is used, is a
/// usage error too: exit 2, one line.
#[test]
fn a_bad_name_found_on_use_is_a_usage_error() {
    for args in [
        &["shm", "create", "a/b", "10"][..],
        &["recv", "--broadcast", "a/b", "--timeout", "1s"][..],
    ] {
        let (status, _, stderr) = run(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert_one_line_error(&stderr, &["a/b", "may not contain '/'"]);
    }
}
