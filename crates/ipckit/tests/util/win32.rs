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
