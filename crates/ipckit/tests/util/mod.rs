//! Shared test helpers: unique endpoint names and a watchdog.
//!
//! Include from an integration test with `mod util;` (or, from another crate,
//! `#[path = "../../ipckit/tests/util/mod.rs"] mod util;`).
#![allow(dead_code)] // each test file uses a different subset

pub(crate) mod registry;
#[cfg(unix)]
pub(crate) mod users;
#[cfg(windows)]
pub(crate) mod win32;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A name no other test, process or earlier run uses: tag, pid, a counter and the
/// clock's nanoseconds.
pub(crate) fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("ipckit-t-{tag}-{}-{n}-{nanos:x}", std::process::id())
}

/// Runs `f` on its own thread and fails the test if it has not finished within
/// `limit`, so a hang fails fast instead of stalling CI. A panic in `f` is passed
/// on as the test's own panic.
pub(crate) fn watchdog<T, F>(limit: Duration, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name("watched".into())
        .spawn(move || {
            let out = f();
            let _ = tx.send(());
            out
        })
        .expect("spawn the watched thread");
    match rx.recv_timeout(limit) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: the test did not finish within {limit:?} (hung?)")
        }
    }
}

/// Wine is roughly ten to a hundred times slower at IPC than Linux: scale limits.
pub(crate) fn slow_factor() -> u32 {
    if ipckit::platform::is_wine() { 10 } else { 1 }
}

/// Prints why an assertion is skipped under Wine, and returns whether to skip it.
pub(crate) fn skip_under_wine(what: &str, why: &str) -> bool {
    match ipckit::platform::wine_version() {
        Some(version) => {
            eprintln!("SKIPPED under Wine {version}: {what}: {why}");
            true
        }
        None => false,
    }
}

/// A message whose every byte depends on its sequence number and size, so a
/// message that is split, joined, reordered or corrupted is caught.
pub(crate) fn pattern(seq: u64, size: usize) -> Vec<u8> {
    let mut x = (seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ size as u64) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A child process whose stdout the test reads line by line; killed and reaped
/// when dropped, so a failing test leaves no process behind.
pub(crate) struct Kid {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

/// The environment variables that tell a test program re-run as a child (by
/// [`this_test_as_child`]) which role to play, and with what argument.
const CHILD_ROLE: &str = "IPCKIT_TEST_CHILD_ROLE";
const CHILD_ARG: &str = "IPCKIT_TEST_CHILD_ARG";

/// A command that re-runs this test program as a child: only its `#[ignore]`d
/// test `entry`, which reads its role and argument with [`child_role`]. `prefix`
/// (e.g. `setpriv` and its arguments) runs in front of it, if not empty.
pub(crate) fn this_test_as_child(
    prefix: &[String],
    entry: &str,
    role: &str,
    arg: &str,
) -> std::process::Command {
    let exe = std::env::current_exe().expect("this test program's path");
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = std::process::Command::new(first);
            c.args(rest).arg("--").arg(exe);
            c
        }
        None => std::process::Command::new(exe),
    };
    cmd.args([entry, "--exact", "--ignored", "--nocapture", "--quiet"])
        .env(CHILD_ROLE, role)
        .env(CHILD_ARG, arg);
    cmd
}

/// In a child started by [`this_test_as_child`], its role and argument; `None`
/// when the program runs as a test program (the entry point then does nothing).
pub(crate) fn child_role() -> Option<(String, String)> {
    Some((
        std::env::var(CHILD_ROLE).ok()?,
        std::env::var(CHILD_ARG).ok()?,
    ))
}

impl Kid {
    /// Starts `cmd` with its stdin and stdout piped.
    pub(crate) fn spawn(mut cmd: std::process::Command) -> Kid {
        use std::process::Stdio;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the child");
        let out = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        Kid { child, out }
    }

    /// The child's next line that starts with an upper-case word (the test
    /// harness prints other lines too).
    pub(crate) fn line(&mut self) -> String {
        use std::io::BufRead;
        loop {
            let mut line = String::new();
            let n = self
                .out
                .read_line(&mut line)
                .expect("read the child's stdout");
            assert!(n > 0, "the child ended without saying anything more");
            let line = line.trim_end().to_owned();
            if line.starts_with(|c: char| c.is_ascii_uppercase()) {
                return line;
            }
        }
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the child (SIGKILL on Unix, `TerminateProcess` on Windows: no
    /// destructor of it runs) and reaps it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes the child's stdin: a child that waits for the end of its input
    /// goes on.
    pub(crate) fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of an echo server, on a byte stream or a message channel.
pub(crate) enum EchoClient {
    Bytes(ipckit::Stream),
    Messages(ipckit::MessageStream),
}

impl EchoClient {
    /// Connects to `addr`; every read gives up after `limit` (a bound for a
    /// broken test).
    pub(crate) fn connect(message: bool, addr: &str, limit: Duration) -> EchoClient {
        let t = Some(limit);
        if message {
            let mut m = ipckit::MessageStream::connect(addr).expect("connect");
            m.set_read_timeout(t).expect("set_read_timeout");
            EchoClient::Messages(m)
        } else {
            let mut s = ipckit::Stream::connect(addr).expect("connect");
            s.set_read_timeout(t).expect("set_read_timeout");
            EchoClient::Bytes(s)
        }
    }

    /// Sends 4 KiB that depend on `seq` and checks that they come back whole.
    pub(crate) fn round_trip(&mut self, seq: usize) {
        use std::io::{Read, Write};
        let sent = pattern(seq as u64, 4096);
        let got = match self {
            EchoClient::Bytes(s) => {
                s.write_all(&sent)
                    .unwrap_or_else(|e| panic!("client {seq}: write: {e}"));
                let mut got = vec![0; sent.len()];
                s.read_exact(&mut got)
                    .unwrap_or_else(|e| panic!("client {seq}: no echo: {e}"));
                got
            }
            EchoClient::Messages(m) => {
                m.send(&sent)
                    .unwrap_or_else(|e| panic!("client {seq}: send: {e}"));
                m.recv()
                    .unwrap_or_else(|e| panic!("client {seq}: no echo: {e}"))
                    .unwrap_or_else(|| panic!("client {seq}: the server closed the channel"))
            }
        };
        assert!(got == sent, "client {seq}: the echo differs");
    }
}

/// For `ipckit -v listen ...` and the like: reads the first line of the
/// server's stderr, "listening on ADDR", and returns ADDR (with the real port
/// for tcp:HOST:0).
pub(crate) fn listening_on(stderr: &mut impl std::io::BufRead) -> String {
    let mut line = String::new();
    stderr
        .read_line(&mut line)
        .expect("read the server's stderr");
    line.trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("expected 'listening on ADDR', got {line:?}"))
        .to_owned()
}

/// Removes broadcast group `name`'s directory, and any member left in it (by
/// a killed member), when dropped: members leave a group, but its directory
/// stays (`ipckit ls` shows it as empty), and a test must leave nothing
/// behind (`scripts/check-leftovers.sh`). Create it before the members, so
/// that it is dropped after them.
pub(crate) struct GroupDir(pub(crate) String);

impl Drop for GroupDir {
    fn drop(&mut self) {
        remove_group_dir(&self.0);
    }
}

/// Removes broadcast group `name`'s directory and what is left in it (Unix:
/// `NAME.group/` in the runtime directory; Windows: the group's directory of
/// member markers).
pub(crate) fn remove_group_dir(name: &str) {
    let Some(dir) = ipckit::platform::mailslot_group_dir(name) else {
        return;
    };
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let _ = std::fs::remove_dir(&dir);
}
