//! What the CLI tests share: the real `ipckit` binary run as children that a
//! [`Children`] guard kills and reaps on every path (and cleans up after),
//! and the checks every subcommand's tests make.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{self, watchdog};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_ipckit");

/// How long one test may take (Wine is much slower than Linux).
pub(crate) fn limit() -> Duration {
    Duration::from_secs(30) * util::slow_factor()
}

/// Whether the transport of `addr` can half-close: Windows named pipes cannot, so
/// there a relay whose stdin ends keeps waiting for the peer to close.
pub(crate) fn half_close(addr: &str) -> bool {
    !cfg!(windows) || addr.starts_with("tcp:")
}

pub(crate) type Shared = Arc<Mutex<Vec<Child>>>;

/// The child processes of one test. Dropping it kills and reaps every one of them,
/// then removes any socket file a killed listener or receiver left behind.
pub(crate) struct Children {
    all: Shared,
    leftovers: Mutex<Vec<Leftover>>,
}

/// What a killed child may leave behind (on Unix).
pub(crate) enum Leftover {
    /// The socket file of a listener or mailslot receiver at this address, or
    /// the region of a shared-memory channel (`shm:NAME`).
    Socket(String),
    /// The socket file of a member of this broadcast group.
    Member(String),
}

impl Children {
    pub(crate) fn new() -> Children {
        Children {
            all: Arc::new(Mutex::new(Vec::new())),
            leftovers: Mutex::new(Vec::new()),
        }
    }

    /// Starts `ipckit ARGS...` with every stdio piped.
    pub(crate) fn ipckit(&self, args: &[&str]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        self.spawn(cmd).expect("start ipckit")
    }

    pub(crate) fn spawn(&self, mut cmd: Command) -> std::io::Result<Proc> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(BufReader::new);
        let stderr = child.stderr.take().map(BufReader::new);
        let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        all.push(child);
        Ok(Proc {
            all: Arc::clone(&self.all),
            index: all.len() - 1,
            stdin,
            stdout,
            stderr,
        })
    }

    /// After the children are killed, remove the socket file `addr` may have left.
    pub(crate) fn clean_up(&self, addr: &str) {
        self.leave(Leftover::Socket(addr.to_owned()));
    }

    /// After the children are killed, remove the members they left in `group`,
    /// and the group's directory.
    pub(crate) fn clean_up_group(&self, group: &str) {
        self.leave(Leftover::Member(group.to_owned()));
    }

    pub(crate) fn leave(&self, leftover: Leftover) {
        self.leftovers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(leftover);
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        for child in all.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A killed listener or receiver cannot remove its Unix socket file.
        // Binding the same address replaces the stale file, and dropping the
        // listener removes it; a broadcast removes the members nobody receives on.
        for leftover in self
            .leftovers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            match leftover {
                Leftover::Socket(addr) if addr.starts_with("mailslot:") => {
                    let _ = ipckit::MailslotReceiver::bind(addr.as_str());
                }
                // A killed channel listener's region (`shm create`, the
                // demo's one-peer channel) or rendezvous (`listen`).
                Leftover::Socket(addr) if addr.starts_with("shm:") => {
                    let _ = ipckit::shm::SharedMemory::remove(addr.as_str());
                    let _ = ipckit::MessageListener::bind(addr.as_str());
                }
                Leftover::Socket(addr) => {
                    let _ = ipckit::Listener::bind(addr.as_str());
                }
                Leftover::Member(group) => {
                    let _ = ipckit::MailslotSender::broadcast(group, b"");
                    util::remove_group_dir(group);
                }
            }
        }
    }
}

/// One child process; its pipes are ours, the process itself stays in [`Children`].
pub(crate) struct Proc {
    all: Shared,
    index: usize,
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) stdout: Option<BufReader<ChildStdout>>,
    pub(crate) stderr: Option<BufReader<ChildStderr>>,
}

impl Proc {
    pub(crate) fn with_child<T>(&self, f: impl FnOnce(&mut Child) -> T) -> T {
        let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut all[self.index])
    }

    /// Waits for the exit, at most `within`.
    #[track_caller]
    pub(crate) fn wait(&self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.with_child(|c| c.try_wait().expect("try_wait")) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the child did not exit within {within:?}"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    pub(crate) fn kill(&self) {
        self.with_child(|c| {
            let _ = c.kill();
            let _ = c.wait();
        });
    }

    pub(crate) fn write_stdin(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is still open");
        stdin.write_all(data).expect("write to the child's stdin");
        stdin.flush().expect("flush the child's stdin");
    }

    pub(crate) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Writes `data` to stdin on a thread, then closes stdin, so that a child that
    /// echoes can be read from at the same time without a deadlock.
    pub(crate) fn feed_stdin(&mut self, data: Vec<u8>) -> thread::JoinHandle<()> {
        let mut stdin = self.stdin.take().expect("stdin is still open");
        thread::spawn(move || {
            // The child may rightly stop reading early; the test checks its output.
            let _ = stdin.write_all(&data);
        })
    }

    pub(crate) fn stdout_line(&mut self) -> String {
        let mut line = String::new();
        let stdout = self.stdout.as_mut().expect("stdout is still open");
        stdout
            .read_line(&mut line)
            .expect("read the child's stdout");
        line
    }

    pub(crate) fn stdout_exact(&mut self, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        let stdout = self.stdout.as_mut().expect("stdout is still open");
        stdout
            .read_exact(&mut buf)
            .expect("read the child's stdout");
        buf
    }

    pub(crate) fn stdout_to_end(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        let stdout = self.stdout.as_mut().expect("stdout is still open");
        stdout
            .read_to_end(&mut buf)
            .expect("read the child's stdout");
        buf
    }

    pub(crate) fn stderr_to_end(&mut self) -> String {
        let mut text = String::new();
        let stderr = self.stderr.as_mut().expect("stderr is still open");
        stderr
            .read_to_string(&mut text)
            .expect("read the child's stderr");
        text
    }

    /// For `ipckit -v listen ...`: waits for "listening on ADDR" and returns ADDR
    /// (with the real port for tcp:HOST:0). The rest of stderr is drained on a
    /// thread so the server never blocks on it.
    pub(crate) fn listening_on(&mut self) -> String {
        let mut stderr = self.stderr.take().expect("stderr is still open");
        let addr = util::listening_on(&mut stderr);
        thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        addr
    }

    /// For `ipckit -v recv ...`: waits for the line that says the receiver exists
    /// (or has joined its group). The rest of stderr is left to read.
    pub(crate) fn receiving(&mut self) {
        let mut line = String::new();
        let stderr = self.stderr.as_mut().expect("stderr is still open");
        stderr
            .read_line(&mut line)
            .expect("read the receiver's stderr");
        assert!(
            line.starts_with("receiving "),
            "expected 'receiving ...', got {line:?}"
        );
    }
}

/// Runs `ipckit ARGS` to the end with empty stdin; returns (status, stdout, stderr).
pub(crate) fn run(args: &[&str]) -> (ExitStatus, String, String) {
    run_with_stdin(args, b"")
}

/// Runs `ipckit ARGS` to the end with `input` on stdin; returns (status, stdout,
/// stderr).
pub(crate) fn run_with_stdin(args: &[&str], input: &[u8]) -> (ExitStatus, String, String) {
    let kids = Children::new();
    let mut proc = kids.ipckit(args);
    let input = input.to_vec();
    watchdog(limit(), move || {
        let feeder = proc.feed_stdin(input);
        let stdout = String::from_utf8(proc.stdout_to_end()).expect("UTF-8 stdout");
        let stderr = proc.stderr_to_end();
        feeder.join().expect("feeder");
        (proc.wait(limit()), stdout, stderr)
    })
}

#[track_caller]
pub(crate) fn assert_one_line_error(stderr: &str, needles: &[&str]) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "the error must be one line: {stderr:?}");
    assert!(lines[0].starts_with("ipckit: "), "{stderr:?}");
    for needle in needles {
        assert!(lines[0].contains(needle), "{stderr:?} lacks {needle:?}");
    }
}

/// Bytes that are not all alike, so a shifted or lost byte shows.
pub(crate) fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}
