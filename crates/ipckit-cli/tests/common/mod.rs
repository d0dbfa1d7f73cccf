//! Helpers the CLI's per-feature test files share (`tests/signals.rs`,
//! `tests/broadcast_loss.rs`, `tests/exit_codes.rs`): the real binary run as a
//! child that is killed and reaped on every path, and a guard that removes what
//! a test (or a child it killed) may have left behind.
//!
//! Include with `mod common;` next to
//! `#[path = "../../ipckit/tests/util/mod.rs"] mod util;`.
#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::util;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_ipckit");

/// How long one step may take (Wine is much slower than Linux).
pub(crate) fn limit() -> Duration {
    Duration::from_secs(30) * util::slow_factor()
}

/// `ipckit ARGS...` running, its stdio piped. Dropping it kills and reaps it.
pub(crate) struct Ipckit {
    child: Child,
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) stdout: Option<ChildStdout>,
    pub(crate) stderr: Option<BufReader<ChildStderr>>,
}

impl Ipckit {
    /// Starts `ipckit ARGS...` with stdin, stdout and stderr piped.
    pub(crate) fn start(args: &[&str]) -> Ipckit {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ipckit");
        Ipckit {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take().map(BufReader::new),
            child,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads stderr lines, under a watchdog, until one starts with `prefix`
    /// ("listening on", "receiving"), and returns it. Only the reader goes to
    /// the watchdog's thread: the process stays here, killed on every path.
    #[track_caller]
    pub(crate) fn wait_for_stderr(&mut self, prefix: &str) -> String {
        let mut stderr = self.stderr.take().expect("stderr is still ours");
        let want = prefix.to_owned();
        let (stderr, line) = util::watchdog(limit(), move || {
            let mut seen = String::new();
            loop {
                let mut line = String::new();
                let n = stderr.read_line(&mut line).expect("read ipckit's stderr");
                assert!(n > 0, "ipckit's stderr ended before {want:?}: {seen:?}");
                if line.starts_with(&want) {
                    return (stderr, line.trim_end().to_owned());
                }
                seen.push_str(&line);
            }
        });
        self.stderr = Some(stderr);
        line
    }

    /// Reads the rest of stderr (until the process closes it), under a
    /// watchdog.
    #[track_caller]
    pub(crate) fn stderr_to_end(&mut self) -> String {
        let Some(mut stderr) = self.stderr.take() else {
            return String::new();
        };
        util::watchdog(limit(), move || {
            let mut text = String::new();
            stderr
                .read_to_string(&mut text)
                .expect("read ipckit's stderr");
            text
        })
    }

    /// Whether the process is still running (not exited, not reaped).
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for the exit, at most `within`.
    #[track_caller]
    pub(crate) fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ipckit did not exit within {within:?}"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends signal `sig` (INT, TERM, HUP) with kill(1): the tests have no
    /// unsafe code.
    #[cfg(unix)]
    #[track_caller]
    pub(crate) fn signal(&self, sig: &str) {
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{sig} {pid}: {sent}");
    }
}

impl Drop for Ipckit {
    /// Asks first (SIGTERM on Unix: the command removes the endpoints it
    /// created, as on Ctrl-C, so a test leaves nothing behind), then kills.
    fn drop(&mut self) {
        #[cfg(unix)]
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                thread::sleep(Duration::from_millis(5));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ipckit ARGS` to the end with empty stdin, under a watchdog; returns
/// (status, stdout, stderr).
pub(crate) fn run(args: &[&str]) -> (ExitStatus, String, String) {
    run_with_stdin(args, Vec::new())
}

/// Runs `ipckit ARGS` to the end with `input` on stdin (written by a thread of
/// its own), under a watchdog; returns (status, stdout, stderr).
pub(crate) fn run_with_stdin(args: &[&str], input: Vec<u8>) -> (ExitStatus, String, String) {
    let mut proc = Ipckit::start(args);
    if let Some(mut stdin) = proc.stdin.take() {
        // The command may rightly stop reading early; the test checks the rest.
        thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    }
    let out = proc.stdout.take();
    let err = proc.stderr.take();
    let (stdout, stderr) = util::watchdog(limit(), move || {
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut out) = out {
            out.read_to_string(&mut stdout)
                .expect("read ipckit's stdout");
        }
        if let Some(mut err) = err {
            err.read_to_string(&mut stderr)
                .expect("read ipckit's stderr");
        }
        (stdout, stderr)
    });
    (proc.wait(limit()), stdout, stderr)
}

/// Files, directories and shared-memory regions to remove when the test ends,
/// on every path (a failed assertion included), so that no test leaves
/// anything behind (`scripts/check-leftovers.sh`). Declare it before the
/// processes that create them, so that it is dropped after they are killed.
#[derive(Default)]
pub(crate) struct Leftovers {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    regions: Vec<String>,
}

impl Leftovers {
    pub(crate) fn new() -> Leftovers {
        Leftovers::default()
    }

    /// A socket or marker file.
    pub(crate) fn file(&mut self, path: impl Into<PathBuf>) {
        self.files.push(path.into());
    }

    /// A directory, removed if empty (after the files).
    pub(crate) fn dir(&mut self, path: impl Into<PathBuf>) {
        self.dirs.push(path.into());
    }

    /// A broadcast group's directory and every member file in it.
    pub(crate) fn group(&mut self, group: &str) {
        self.dirs
            .extend(ipckit::platform::mailslot_group_dir(group));
    }

    /// A shared-memory region or channel, by name.
    pub(crate) fn region(&mut self, name: &str) {
        self.regions.push(name.to_owned());
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
        for dir in &self.dirs {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
            let _ = std::fs::remove_dir(dir);
        }
        for name in &self.regions {
            let _ = ipckit::shm::SharedMemory::remove(name);
        }
    }
}
