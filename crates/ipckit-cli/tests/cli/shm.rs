//! `shm` regions and `shm:` channels from the command line.

use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;
use crate::util::{unique_name, watchdog};

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

/// `listen --echo shm:NAME` and `connect shm:NAME`: messages whole, an empty
/// line an empty message, through shared memory; the echo server serves one
/// client after another (and at once), each on a channel of its own.
#[test]
fn shm_channel_echo_from_the_command_line() {
    let addr = format!("shm:{}", unique_name("cli-shm-echo"));
    let kids = Children::new();
    kids.clean_up(&addr);
    let mut server = kids.ipckit(&["-v", "listen", "--echo", &addr]);
    let mut first = kids.ipckit(&["connect", "--retry", "--timeout", "10s", &addr]);
    // The first client is connected (its channel is joined) while the
    // second one is served.
    let got = watchdog(limit(), move || {
        server.listening_on();
        let stdin = first.stdin.as_mut().expect("stdin");
        std::io::Write::write_all(stdin, b"first\n").expect("write");
        let mut line = String::new();
        let stdout = first.stdout.as_mut().expect("stdout");
        std::io::BufRead::read_line(stdout, &mut line).expect("read");
        (server, first, line)
    });
    let (server, first, line) = got;
    assert_eq!(line, "first\n");
    for _ in 0..2 {
        let (status, stdout, stderr) = run_with_stdin(
            &["connect", "-m", "--timeout", "10s", "--count", "3", &addr],
            b"one\n\nthree\n",
        );
        assert!(status.success(), "{status}: {stderr}");
        assert_eq!(stdout, "one\n\nthree\n");
    }
    assert!(
        server
            .with_child(|c| c.try_wait().expect("try_wait"))
            .is_none(),
        "the echo server goes on after its clients"
    );
    drop(first);
}
