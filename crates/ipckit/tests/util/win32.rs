//! Classic Win32 C programs (tests/win32/*.c, built by scripts/test-windows.sh
//! with mingw into the directory IPCKIT_WIN32_PEERS names) run as peers.
#![allow(dead_code)] // each test program uses a different subset

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};

/// A fresh `\\.\pipe\NAME` path.
pub(crate) fn pipe_path(tag: &str) -> String {
    format!(r"\\.\pipe\{}", super::unique_name(tag))
}

pub(crate) fn peer(name: &str) -> PathBuf {
    let dir = std::env::var_os("IPCKIT_WIN32_PEERS").expect(
        "IPCKIT_WIN32_PEERS names the directory of the Win32 peers built from tests/win32 \
         (scripts/test-windows.sh builds them and sets it)",
    );
    PathBuf::from(dir).join(format!("{name}.exe"))
}

/// A Win32 peer running; killed and reaped when dropped.
pub(crate) struct Peer {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Peer {
    pub(crate) fn start(name: &str, args: &[&str]) -> Peer {
        let mut child = Command::new(peer(name))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}.exe: {e}"));
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        Peer { child, out }
    }

    pub(crate) fn line(&mut self) -> String {
        let mut line = String::new();
        self.out
            .read_line(&mut line)
            .expect("read the peer's stdout");
        line.trim_end().to_owned()
    }

    /// The rest of its stdout, and whether it exited 0.
    pub(crate) fn finish(mut self) -> (bool, Vec<String>) {
        let mut rest = String::new();
        self.out
            .read_to_string(&mut rest)
            .expect("read the peer's stdout");
        let ok = self.child.wait().expect("wait for the peer").success();
        (ok, rest.lines().map(str::to_owned).collect())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Under Wine, starts the Unix program `program` (a Unix path) with `args`
/// (Wine starts a Unix executable that a Windows program names), then waits
/// until `done` sees its work: Wine gives no handle of such a process to wait
/// on or to read its exit status from. The error says why not.
pub(crate) fn run_unix(
    program: &str,
    args: &[&str],
    done: impl Fn() -> bool,
) -> Result<(), String> {
    use std::time::{Duration, Instant};
    Command::new(format!("Z:{}", program.replace('/', r"\")))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {program} through Wine: {e}"))?;
    let limit = Instant::now() + Duration::from_secs(10) * super::slow_factor();
    while !done() {
        if Instant::now() > limit {
            return Err(format!("{program} {args:?} showed no effect within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// The Unix path of a Windows path, under Wine (`winepath -u`).
pub(crate) fn unix_path(path: &std::path::Path) -> String {
    let out = Command::new("winepath")
        .arg("-u")
        .arg(path)
        .output()
        .expect("winepath runs under Wine");
    assert!(out.status.success(), "winepath -u {}", path.display());
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}
