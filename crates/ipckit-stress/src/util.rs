//! What every scenario needs: the processes it starts (kept, killed and reaped
//! on every path), the figures of a process read from `/proc`, unique names,
//! data with checksums, and bounded waits.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

#[cfg(unix)]
use rustix::process::{Pid, Signal};

/// A scenario's result: `Ok(figures)` or `Err(why, with the figures so far)`.
pub(crate) type Outcome = Result<String, String>;

/// What the scenarios share: where the `ipckit` binary is, and a private
/// directory for this run.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The `ipckit` binary: a copy in `dir`, which other users may run.
    pub(crate) ipckit: PathBuf,
    /// This run's directory (`/tmp/ipckit-stress-PID`, mode 0755), removed at
    /// the end.
    pub(crate) dir: PathBuf,
    /// The runtime directory given to the servers this run starts as itself
    /// (`XDG_RUNTIME_DIR`), so that nothing here touches the user's own.
    pub(crate) xdg: PathBuf,
}

impl Ctx {
    /// A command running `ipckit ARGS` as this user, with this run's runtime
    /// directory and stdin from /dev/null (a caller may give it a pipe).
    pub(crate) fn ipckit(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.ipckit);
        cmd.args(args)
            .env("XDG_RUNTIME_DIR", &self.xdg)
            .stdin(Stdio::null());
        cmd
    }

    /// Where `pipe:NAME` lives for the servers this run starts as itself.
    pub(crate) fn sock_path(&self, name: &str) -> PathBuf {
        self.xdg.join("ipckit").join(format!("{name}.sock"))
    }
}

/// A name no other run or scenario uses: `ipckit-stress-PID-N-TAG`.
pub(crate) fn unique(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("ipckit-stress-{}-{n}-{tag}", std::process::id())
}

/// Locks a mutex, also after a panic elsewhere (the data stays usable here).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The pids of every child this run started and has not reaped yet. A pid
/// stays here until its child is reaped, under this lock, so a pid killed
/// through this list is never a recycled one.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Kills every child this run started and still holds (the watchdog's way out,
/// and after a scenario that hung). Returns how many were signalled.
pub(crate) fn kill_all_children() -> usize {
    let live = lock(&LIVE);
    for &pid in live.iter() {
        #[cfg(unix)]
        signal(pid, Signal::KILL);
        #[cfg(windows)]
        let _ = Command::new("taskkill")
            .args(["/F", "/PID", &pid.to_string()])
            .output();
    }
    live.len()
}

#[cfg(unix)]
fn signal(pid: u32, sig: Signal) {
    if let Some(pid) = Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Lines a child wrote to one of its pipes, collected by a thread.
#[derive(Debug, Default)]
struct Lines {
    lines: Mutex<(Vec<String>, bool)>,
    changed: Condvar,
}

impl Lines {
    fn collect(pipe: impl Read + Send + 'static) -> Arc<Lines> {
        let lines = Arc::new(Lines::default());
        let l = Arc::clone(&lines);
        thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&buf).trim_end().to_string();
                        lock(&l.lines).0.push(text);
                        l.changed.notify_all();
                    }
                }
            }
            lock(&l.lines).1 = true;
            l.changed.notify_all();
        });
        lines
    }

    /// Waits until a line holds `needle`; that line, or `None` at the deadline
    /// or at the end of the pipe.
    fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut g = lock(&self.lines);
        loop {
            if let Some(line) = g.0.iter().find(|l| l.contains(needle)) {
                return Some(line.clone());
            }
            let now = Instant::now();
            if g.1 || now >= deadline {
                return None;
            }
            g = self
                .changed
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits for the end of the pipe (at most `timeout`); all the text.
    fn all(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut g = lock(&self.lines);
        while !g.1 && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            g = self
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        g.0.join("\n")
    }
}

/// A child process this run started. Dropping it kills (SIGKILL) and reaps it,
/// also when a scenario returns early or panics.
#[derive(Debug)]
pub(crate) struct Proc {
    child: Child,
    pub(crate) pid: u32,
    stderr: Arc<Lines>,
    stdout: Option<Arc<Lines>>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` (stdin null unless set, stderr collected, stdout collected
    /// unless `raw_stdout`).
    pub(crate) fn spawn(cmd: &mut Command, raw_stdout: bool) -> Result<Proc, String> {
        let what = format!("{cmd:?}");
        cmd.stderr(Stdio::piped()).stdout(Stdio::piped());
        let mut live = lock(&LIVE);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {what}: {e}"))?;
        live.push(child.id());
        drop(live);
        let stderr = Lines::collect(child.stderr.take().expect("piped"));
        let stdout = if raw_stdout {
            None
        } else {
            Some(Lines::collect(child.stdout.take().expect("piped")))
        };
        Ok(Proc {
            pid: child.id(),
            child,
            stderr,
            stdout,
            status: None,
        })
    }

    /// The child's stdin, when the command was given `Stdio::piped()`.
    pub(crate) fn stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// The child's stdout as a raw pipe (with `raw_stdout`).
    pub(crate) fn stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Its exit status if it ends within `timeout`; `None` while it runs.
    pub(crate) fn exited_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.status.is_none() {
                let mut live = lock(&LIVE);
                if let Ok(Some(st)) = self.child.try_wait() {
                    self.status = Some(st);
                    live.retain(|&p| p != self.pid);
                }
            }
            if self.status.is_some() || Instant::now() >= deadline {
                return self.status;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether it still runs.
    pub(crate) fn alive(&mut self) -> bool {
        self.exited_within(Duration::ZERO).is_none()
    }

    /// Sends a signal unless it was reaped already.
    #[cfg(unix)]
    pub(crate) fn signal(&mut self, sig: Signal) {
        let _live = lock(&LIVE);
        if self.status.is_none() {
            signal(self.pid, sig);
        }
    }

    /// Asks it to end: SIGTERM on Unix; Windows has no such request for a
    /// console program that is not ours to Ctrl-C, so nothing there.
    fn terminate(&mut self) {
        #[cfg(unix)]
        self.signal(Signal::TERM);
    }

    /// SIGKILL (`TerminateProcess` on Windows) and reap.
    pub(crate) fn kill(&mut self) -> Option<ExitStatus> {
        {
            let _live = lock(&LIVE);
            if self.status.is_none() {
                let _ = self.child.kill();
            }
        }
        self.exited_within(Duration::from_secs(10))
    }

    /// The end of what it wrote to stderr so far (at most 300 bytes), one line.
    pub(crate) fn stderr_text(&self) -> String {
        tail(&self.stderr.all(Duration::ZERO).replace('\n', " | "))
    }

    /// Everything it wrote to stderr, once it has ended (at most `timeout`).
    #[cfg(unix)]
    pub(crate) fn stderr_final(&self, timeout: Duration) -> String {
        self.stderr.all(timeout).replace('\n', " | ")
    }

    /// Everything it wrote to stdout once it ended (at most `timeout`).
    #[cfg(unix)]
    pub(crate) fn stdout_final(&self, timeout: Duration) -> String {
        self.stdout
            .as_ref()
            .map(|l| l.all(timeout))
            .unwrap_or_default()
    }

    /// The last line it wrote to stderr so far (its error, once it has died).
    pub(crate) fn stderr_last(&self) -> String {
        let all = self.stderr.all(Duration::ZERO);
        all.lines().last().unwrap_or("").to_string()
    }

    /// Waits for a line on stderr that holds `needle`.
    pub(crate) fn stderr_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.stderr.wait_for(needle, timeout)
    }

    /// Waits for a line on stdout that holds `needle`.
    pub(crate) fn stdout_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.stdout.as_ref()?.wait_for(needle, timeout)
    }

    /// This process's open fds and threads.
    pub(crate) fn usage(&self) -> Usage {
        Usage::of(self.pid)
    }
}

impl Drop for Proc {
    /// Asks it to end with SIGTERM (so that it removes what it created: the
    /// CLI promises that), gives it 2 s, then SIGKILL; reaps it in any case.
    fn drop(&mut self) {
        self.terminate();
        let grace = if cfg!(unix) { 2 } else { 0 };
        if self.exited_within(Duration::from_secs(grace)).is_none() {
            let mut live = lock(&LIVE);
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
            live.retain(|&p| p != self.pid);
        }
    }
}

/// The last 300 bytes of `text` (a child's stderr in a figures line).
fn tail(text: &str) -> String {
    match text.char_indices().rev().nth(299) {
        Some((i, _)) => format!("…{}", &text[i..]),
        None => text.to_string(),
    }
}

/// A process's open file descriptors and threads, from `/proc/PID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) fds: usize,
    pub(crate) threads: usize,
}

impl Usage {
    pub(crate) fn of(pid: u32) -> Usage {
        let count = |what: &str| {
            std::fs::read_dir(format!("/proc/{pid}/{what}"))
                .map(|d| d.count())
                .unwrap_or(0)
        };
        Usage {
            fds: count("fd"),
            threads: count("task"),
        }
    }

    /// Waits (at most `timeout`) until `pid` is back to `base` or below; what
    /// it has then. Leaks show as a figure above the baseline at the deadline.
    pub(crate) fn settle(pid: u32, base: Usage, timeout: Duration) -> Usage {
        let deadline = Instant::now() + timeout;
        loop {
            let now = Usage::of(pid);
            if (now.fds <= base.fds && now.threads <= base.threads) || Instant::now() >= deadline {
                return now;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `fds=A->B threads=C->D`.
    pub(crate) fn show(base: Usage, after: Usage) -> String {
        if cfg!(windows) {
            return "fds/threads=not-measured(no-/proc)".into();
        }
        format!(
            "fds={}->{} threads={}->{}",
            base.fds, after.fds, base.threads, after.threads
        )
    }

    /// The end of a scenario whose server is `pid`: waits (5 s at most) for
    /// it to come back to `base`; `"{what} fds=… threads=… lost=0"`, or an
    /// error naming the leak.
    pub(crate) fn finish(pid: u32, base: Usage, what: &str) -> Outcome {
        let after = Usage::settle(pid, base, Duration::from_secs(5));
        let figures = format!("{what} {}", Usage::show(base, after));
        Usage::check(base, after, &figures)?;
        Ok(format!("{figures} lost=0"))
    }

    /// An error unless `after` is back to `base`.
    pub(crate) fn check(base: Usage, after: Usage, figures: &str) -> Result<(), String> {
        if after.fds > base.fds || after.threads > base.threads {
            return Err(format!(
                "{figures}: server not back to its baseline after the clients left (leak)"
            ));
        }
        Ok(())
    }
}

/// CPU time (user + system) of a process so far, in clock ticks (1/100 s).
#[cfg(unix)]
pub(crate) fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let at = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    at(11) + at(12)
}

/// A process's resident memory in KiB (`VmRSS`).
#[cfg(unix)]
pub(crate) fn rss_kib(pid: u32) -> u64 {
    proc_status(pid, "VmRSS:")
}

/// The number of a `/proc/PID/status` line (`Threads:`, `VmRSS:` in KiB); 0
/// when there is none.
#[cfg(unix)]
pub(crate) fn proc_status(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `len` bytes that depend on `seed`: what client `seed` sends.
pub(crate) fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A running FNV-1a 64 checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sum(pub(crate) u64);

impl Default for Sum {
    fn default() -> Sum {
        Sum(0xcbf2_9ce4_8422_2325)
    }
}

impl Sum {
    pub(crate) fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub(crate) fn of(bytes: &[u8]) -> Sum {
        let mut s = Sum::default();
        s.add(bytes);
        s
    }
}

/// Runs `f` on a thread and waits for it at most `timeout`: `None` means it
/// hung (the thread is left blocked; the caller reports the hang).
pub(crate) fn bounded<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .ok()?;
    rx.recv_timeout(timeout).ok()
}

/// Spawns a thread with a small stack (hundreds of clients run at once).
pub(crate) fn spawn<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(f)
        .expect("cannot start a thread")
}

/// Seconds with two decimals.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// Makes a directory (and its parents) with `mode`, owned by `uid:gid` when given.
#[cfg(unix)]
pub(crate) fn make_dir(
    path: &std::path::Path,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Every `/dev/shm` entry whose name starts with `prefix` (a leak check).
pub(crate) fn shm_left(prefix: &str) -> HashSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}
