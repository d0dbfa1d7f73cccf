//! `shm` regions and `shm:` channels from the command line.

use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;
use crate::util::unique_name;

/// `shm create`, `write`, `read` and `rm` on a named region, and their errors.
/// (On Windows `shm create` holds the region until its stdin ends.)
#[test]
fn shm_regions_from_the_command_line() {
    let name = unique_name("cli-shm");
    let kids = Children::new();
    let mut creator = kids.ipckit(&["shm", "create", &name, "4096"]);
    if cfg!(windows) {
        let started = Instant::now();
        while ipckit::shm::SharedMemory::open(&name).is_err() {
            assert!(started.elapsed() < limit(), "shm create made no region");
            thread::sleep(Duration::from_millis(20));
        }
    } else {
        creator.close_stdin();
        assert!(creator.wait(limit()).success());
    }
    let (status, _, stderr) = run_with_stdin(&["shm", "write", &name, "--offset", "100"], b"hello");
    assert!(status.success(), "{stderr}");
    let (status, stdout, stderr) = run(&["shm", "read", &name, "--offset", "100", "--len", "5"]);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, "hello");
    let (status, stdout, _) = run(&["shm", "read", &format!("shm:{name}"), "--offset", "4090"]);
    assert!(status.success());
    assert_eq!(stdout.len(), 6, "to the end of the region");
    let (status, _, stderr) = run_with_stdin(&["shm", "write", &name, "--offset", "4094"], b"abc");
    assert_eq!(status.code(), Some(1));
    assert_one_line_error(&stderr, &["offset 4094", "4096 bytes"]);
    if cfg!(windows) {
        creator.close_stdin();
        assert!(creator.wait(limit()).success());
    } else {
        let (status, _, stderr) = run(&["shm", "rm", &name]);
        assert!(status.success(), "{stderr}");
    }
    let (status, _, stderr) = run(&["shm", "read", &name]);
    assert_eq!(status.code(), Some(1));
    assert_one_line_error(&stderr, &[&name, "no shared-memory region"]);
    // A name that breaks the rules is a usage error, though found on use.
    let (status, _, stderr) = run(&["shm", "create", "a/b", "10"]);
    assert_eq!(status.code(), Some(2));
    assert_one_line_error(&stderr, &["a/b"]);
}

/// `listen --echo shm:NAME` and `connect -m shm:NAME`: messages whole, an empty
/// line an empty message, through shared memory.
#[test]
fn shm_channel_echo_from_the_command_line() {
    let addr = format!("shm:{}", unique_name("cli-shm-echo"));
    let kids = Children::new();
    let mut server = kids.ipckit(&["-v", "listen", "--echo", &addr]);
    let (status, stdout, stderr) = run_with_stdin(
        &[
            "connect",
            "--retry",
            "--timeout",
            "10s",
            "-m",
            "--count",
            "3",
            &addr,
        ],
        b"one\n\nthree\n",
    );
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stdout, "one\n\nthree\n");
    let ended = server.wait(limit());
    // Its stderr says why, should it fail (seen once under heavy load).
    let said = if ended.success() {
        String::new()
    } else {
        server.stderr_to_end()
    };
    assert!(
        ended.success(),
        "the echo server ends with its peer, but: {ended}: {said}"
    );
}
