//! Exit codes and messages of the real `ipckit` binary for names that cannot
//! work: a name too long for the OS is a usage error (2) in every subcommand
//! that takes one, and `shm create`/`shm rm` name the region and the rule
//! instead of showing a raw OS error. Unix: the lengths are those of
//! `sockaddr_un.sun_path` and of POSIX shared-memory names.
#![cfg(unix)]

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

mod common;

use common::{Leftovers, run};
use util::unique_name;

/// Checks that `ipckit ARGS` exits 2 and that the first line on stderr
/// contains every one of `needles` (clap adds a hint to the errors it finds
/// while parsing; those found on use are one line).
#[track_caller]
fn assert_usage_error(args: &[&str], needles: &[&str]) {
    let (status, _, stderr) = run(args);
    assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    for needle in needles {
        assert!(
            first.contains(needle),
            "{args:?}: {stderr:?} lacks {needle:?}"
        );
    }
}

#[track_caller]
fn assert_one_line(stderr: &str, needles: &[&str], args: &[&str]) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line: {stderr:?}");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{args:?}: {stderr:?} lacks {needle:?}"
        );
    }
}

/// A name of `len` bytes that the address rules accept but whose socket file
/// (`RUNTIME_DIR/NAME.sock`, `/tmp/NAME`) cannot fit in `sun_path`.
fn long_name(len: usize) -> String {
    let tag = unique_name("long");
    format!("{tag}{}", "n".repeat(len - tag.len()))
}

#[test]
fn a_name_too_long_for_the_os_is_a_usage_error_in_every_subcommand() {
    let name = long_name(110);
    let pipe = format!("pipe:{name}");
    let slot = format!("mailslot:{name}");
    let path = format!("unix:/tmp/{name}");
    let rule = "sun_path holds at most";
    for args in [
        &["listen", &pipe][..],
        &["listen", "--echo", &pipe],
        &["listen", "-m", &pipe],
        &["listen", "-m", "--echo", &pipe],
        &["listen", &path],
        &["connect", &pipe],
        &["connect", "-m", &pipe],
        &["send", &slot, "hi"],
        &["recv", &slot],
        &["serve-demo", &pipe],
        &["serve-demo", &path],
        &["call", &pipe, "echo"],
    ] {
        assert_usage_error(args, &[&name, rule]);
    }

    // A group whose member sockets (RUNTIME_DIR/GROUP.group/PID-N.dgram)
    // cannot fit, though the group's directory could.
    let group = long_name(90);
    let rule = "each member is a socket file";
    assert_usage_error(&["send", "--broadcast", &group, "hi"], &[&group, rule]);
    assert_usage_error(&["recv", "--broadcast", &group], &[&group, rule]);

    // A shared-memory name over NAME_MAX.
    let region = long_name(300);
    let shm = format!("shm:{region}");
    for args in [
        &["shm", "create", &region, "10"][..],
        &["shm", "write", &region],
        &["shm", "read", &region],
        &["shm", "rm", &region],
        &["listen", &shm],
        &["connect", &shm],
    ] {
        assert_usage_error(args, &[&region]);
    }
}

/// A fresh region name, removed when `left` is dropped.
fn region_name(tag: &str, left: &mut Leftovers) -> String {
    let name = unique_name(tag);
    left.region(&name);
    name
}

#[test]
fn shm_create_on_an_existing_name_and_rm_of_a_missing_one_name_the_region_and_the_rule() {
    let mut left = Leftovers::new();
    let name = region_name("cli-shm-exists", &mut left);
    let (status, _, stderr) = run(&["shm", "create", &name, "16"]);
    assert!(status.success(), "{status}: {stderr}");

    let args = ["shm", "create", &name, "16"];
    let (status, _, stderr) = run(&args);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let exists = format!("shm create {name}: a region named {name} exists already");
    let hint = format!("`ipckit shm rm {name}`");
    assert_one_line(&stderr, &[&exists, &hint], &args);

    let (status, _, stderr) = run(&["shm", "rm", &format!("shm:{name}")]);
    assert!(status.success(), "{status}: {stderr}");
    let args = ["shm", "rm", &name];
    let (status, _, stderr) = run(&args);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let missing = format!("shm rm {name}: no region named {name} exists");
    assert_one_line(&stderr, &[&missing], &args);
}

#[test]
fn shm_create_of_zero_bytes_is_a_usage_error() {
    let mut left = Leftovers::new();
    let name = region_name("cli-shm-zero", &mut left);
    assert_usage_error(
        &["shm", "create", &name, "0"],
        &["'<SIZE>'", "a region holds at least 1 byte"],
    );
    assert!(!std::path::Path::new("/dev/shm").join(&name).exists());
}
