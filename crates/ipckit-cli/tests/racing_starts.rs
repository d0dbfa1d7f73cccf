//! Racing starts, with the real binary: eight `ipckit listen --echo pipe:NAME`
//! started at once, on a fresh name and (Unix) over a stale socket file. Exactly
//! one is left running, reachable and echoing; each other exits 1 with a message
//! that says the address is in use and names the winner's pid (Linux).
//!
//! Every child is owned by a [`Racers`] guard, killed and reaped on every path
//! (a failed assertion, the watchdog giving up), and the socket file of the
//! killed winner is removed.

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use util::{slow_factor, unique_name, watchdog};

const BIN: &str = env!("CARGO_BIN_EXE_ipckit");
const RACERS: usize = 8;

fn trials() -> usize {
    // Under Wine each start takes a good part of a second.
    if ipckit::platform::is_wine() { 5 } else { 20 }
}

/// The racing children of one trial, killed and reaped when dropped; then the
/// winner's socket file, which a killed listener cannot remove, is removed by
/// binding the name again and dropping that listener.
struct Racers {
    addr: String,
    kids: Arc<Mutex<Vec<Child>>>,
}

impl Drop for Racers {
    fn drop(&mut self) {
        let mut kids = self.kids.lock().unwrap_or_else(PoisonError::into_inner);
        for kid in kids.iter_mut() {
            let _ = kid.kill();
            let _ = kid.wait();
        }
        if cfg!(unix) {
            let _ = ipckit::Listener::bind(self.addr.as_str());
        }
    }
}

/// How one racer ended up: its pid, and either the line saying it listens, or
/// its exit code and everything it wrote on stderr.
enum Outcome {
    Listening(u32),
    Exited(u32, Option<i32>, String),
}

/// Starts `RACERS` listeners of `addr` back to back, and waits until each one
/// either says it listens or has exited.
fn start_racers(racers: &Racers) -> Vec<Outcome> {
    let mut stderrs: Vec<(u32, BufReader<ChildStderr>)> = Vec::new();
    {
        let mut kids = racers.kids.lock().unwrap_or_else(PoisonError::into_inner);
        for _ in 0..RACERS {
            let mut kid = Command::new(BIN)
                .args(["-v", "listen", "--echo", &racers.addr])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start ipckit");
            stderrs.push((kid.id(), BufReader::new(kid.stderr.take().unwrap())));
            kids.push(kid);
        }
    }
    let kids = Arc::clone(&racers.kids);
    stderrs
        .into_iter()
        .enumerate()
        .map(|(i, (pid, mut stderr))| {
            let mut line = String::new();
            stderr.read_line(&mut line).expect("read a racer's stderr");
            if line.starts_with("listening on ") {
                // Keep its stderr drained, so it never blocks writing to it.
                thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
                return Outcome::Listening(pid);
            }
            stderr
                .read_to_string(&mut line)
                .expect("read a racer's stderr");
            let mut kids = kids.lock().unwrap_or_else(PoisonError::into_inner);
            let status = kids[i].wait().expect("wait for a racer");
            Outcome::Exited(pid, status.code(), line)
        })
        .collect()
}

/// A client of `addr` gets its bytes back.
fn echoes(addr: &str) {
    let mut client = ipckit::Stream::connect(addr).expect("connect to the winner");
    client.write_all(b"ping").unwrap();
    let mut back = [0; 4];
    client.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping", "the winner echoes");
}

fn race_once(addr: &str, trial: usize) {
    let racers = Racers {
        addr: addr.to_owned(),
        kids: Arc::new(Mutex::new(Vec::new())),
    };
    let outcomes = start_racers(&racers);
    let winners: Vec<u32> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Listening(pid) => Some(*pid),
            Outcome::Exited(..) => None,
        })
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "trial {trial}: exactly one of {RACERS} racing `ipckit listen --echo {addr}` listens \
         (pids {winners:?})"
    );
    let winner = format!("pid {}", winners[0]);
    for outcome in &outcomes {
        if let Outcome::Exited(pid, code, stderr) = outcome {
            assert_eq!(
                *code,
                Some(1),
                "trial {trial}: racer {pid} exits 1: {stderr}"
            );
            assert!(
                stderr.contains("already"),
                "trial {trial}: racer {pid} says the address is in use: {stderr}"
            );
            // Windows does not name it: reading a pipe server's pid takes a
            // connection to it (sys/windows/pipe.rs).
            if cfg!(target_os = "linux") {
                assert!(
                    stderr.contains(&winner),
                    "trial {trial}: racer {pid} names the winner's {winner}: {stderr}"
                );
            }
        }
    }
    echoes(addr);
    let mut kids = racers.kids.lock().unwrap_or_else(PoisonError::into_inner);
    let alive = kids
        .iter_mut()
        .map(|k| k.try_wait().is_ok_and(|s| s.is_none()))
        .filter(|&running| running)
        .count();
    assert_eq!(alive, 1, "trial {trial}: exactly one racer is left running");
}

/// (Unix) Leaves a stale socket file where `pipe:NAME` lives.
#[cfg(unix)]
fn leave_stale_file(name: &str) {
    // A bind creates the runtime directory as the library wants it.
    drop(ipckit::Listener::bind(format!("pipe:{}", unique_name("cli-mkdir"))).unwrap());
    let dir = ipckit::platform::runtime_dir().expect("Unix has a runtime directory");
    let path = dir.join(format!("{name}.sock"));
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists(), "{}", path.display());
}

fn race(stale: bool) {
    let limit = Duration::from_secs(120) * slow_factor();
    watchdog(limit, move || {
        for trial in 0..trials() {
            let name = unique_name("cli-race");
            #[cfg(unix)]
            if stale {
                leave_stale_file(&name);
            }
            #[cfg(not(unix))]
            let _ = stale;
            race_once(&format!("pipe:{name}"), trial);
        }
    });
}

#[test]
fn eight_racing_listeners_on_a_fresh_name_leave_exactly_one() {
    race(false);
}

#[cfg(unix)]
#[test]
fn eight_racing_listeners_over_a_stale_file_leave_exactly_one() {
    race(true);
}

/// A bind lock file left by a binder killed while binding is not listed by
/// `ipckit ls` as an endpoint, and the next bind of the name takes it over and
/// removes it.
#[cfg(unix)]
#[test]
fn a_leftover_bind_lock_is_not_listed_and_the_next_bind_removes_it() {
    watchdog(Duration::from_secs(30), || {
        let name = unique_name("cli-lock");
        drop(ipckit::Listener::bind(format!("pipe:{}", unique_name("cli-mkdir"))).unwrap());
        let dir = ipckit::platform::runtime_dir().expect("Unix has a runtime directory");
        let lock = dir.join(format!("{name}.sock.lock"));
        std::fs::write(&lock, b"").unwrap();
        let out = Command::new(BIN).args(["ls", "--json"]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            !stdout.contains(&name),
            "ls lists the lock file {}: {stdout}",
            lock.display()
        );
        let listener = ipckit::Listener::bind(format!("pipe:{name}")).unwrap();
        assert!(!lock.exists(), "the bind removed {}", lock.display());
        drop(listener);
    });
}
