//! A server that runs out of file descriptors keeps serving: `incoming()` rides
//! out `EMFILE` (Linux: the server is this test program re-run as a child under
//! `prlimit --nofile=64:64`, util-linux; the clients are this process).
#![cfg(target_os = "linux")]

mod util;

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use ipckit::{Listener, MessageListener};
use util::{EchoClient, Kid, this_test_as_child, unique_name, watchdog};

const LIMIT: Duration = Duration::from_secs(60);

/// The server's descriptor limit, and how many clients the test opens: more
/// than the server can hold.
const NOFILE: usize = 64;
const CLIENTS: usize = 100;

/// The clients checked while the server is out of descriptors.
const EARLY: usize = 30;

/// Not a test: the entry point of this program when a test re-runs it as the
/// server (`util::this_test_as_child`). It echoes on every connection that
/// `incoming()` gives, and stops at the first error it yields.
#[test]
#[ignore = "entry point of the child processes that the other tests start"]
fn accept_child_entry() {
    let Some((role, addr)) = util::child_role() else {
        return;
    };
    match role.as_str() {
        "stream" => {
            let listener = Listener::bind(addr.as_str()).unwrap();
            println!("LISTENING {}", listener.local_addr());
            for conn in listener.incoming() {
                match conn {
                    Ok(mut s) => {
                        thread::spawn(move || {
                            let mut buf = vec![0; 4096];
                            while let Ok(n @ 1..) = s.read(&mut buf) {
                                if s.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        });
                    }
                    Err(e) => {
                        println!("FAILED {e}");
                        break;
                    }
                }
            }
        }
        "message" => {
            let listener = MessageListener::bind(addr.as_str()).unwrap();
            println!("LISTENING {}", listener.local_addr());
            for conn in listener.incoming() {
                match conn {
                    Ok(m) => {
                        thread::spawn(move || {
                            while let Ok(Some(msg)) = m.recv() {
                                if m.send(&msg).is_err() {
                                    break;
                                }
                            }
                        });
                    }
                    Err(e) => {
                        println!("FAILED {e}");
                        break;
                    }
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(1);
}

/// How many descriptors process `pid` has open; `None` once it has exited
/// (a zombie until the test reaps it).
fn open_fds(pid: u32) -> Option<usize> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit_once(") ")?.1.chars().next()?;
    if state == 'Z' || state == 'X' {
        return None;
    }
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The server child; dropping it kills it and removes the socket file it
/// leaves.
struct Server {
    kid: Option<Kid>,
    role: &'static str,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.kid.take());
        // Binding replaces the stale file; dropping the listener removes it.
        if self.role == "stream" {
            let _ = Listener::bind(self.addr.as_str());
        } else {
            let _ = MessageListener::bind(self.addr.as_str());
        }
    }
}

fn survives_running_out_of_descriptors(role: &'static str, addr: String) {
    watchdog(LIMIT, move || {
        let prlimit = vec!["prlimit".to_owned(), format!("--nofile={NOFILE}:{NOFILE}")];
        let mut kid = Kid::spawn(this_test_as_child(
            &prlimit,
            "accept_child_entry",
            role,
            &addr,
        ));
        let line = kid.line();
        let addr = line
            .strip_prefix("LISTENING ")
            .unwrap_or_else(|| panic!("{line}"))
            .to_owned();
        let server = Server {
            kid: Some(kid),
            role,
            addr: addr.clone(),
        };
        let pid = server.kid.as_ref().map_or(0, Kid::pid);
        let message = role == "message";
        let mut clients: Vec<EchoClient> = (0..CLIENTS)
            .map(|_| EchoClient::connect(message, &addr, LIMIT))
            .collect();
        // The server accepts until it holds all the descriptors it may have
        // (then `accept` fails with EMFILE), or ends.
        let start = Instant::now();
        while open_fds(pid).is_some_and(|n| n < NOFILE - 2) {
            assert!(
                start.elapsed() < LIMIT,
                "the server never ran out of descriptors"
            );
            thread::sleep(Duration::from_millis(5));
        }
        // The clients it had are served on.
        for (seq, c) in clients.iter_mut().take(EARLY).enumerate() {
            c.round_trip(seq);
        }
        assert!(open_fds(pid).is_some(), "the server ended");
        // Once clients go away, those that waited are served, in turn.
        for (seq, mut c) in clients.into_iter().enumerate() {
            c.round_trip(seq);
        }
        EchoClient::connect(message, &addr, LIMIT).round_trip(CLIENTS);
        drop(server);
    });
}

#[test]
fn stream_incoming_survives_running_out_of_descriptors() {
    survives_running_out_of_descriptors("stream", format!("pipe:{}", unique_name("emfile")));
}

#[test]
fn tcp_incoming_survives_running_out_of_descriptors() {
    survives_running_out_of_descriptors("stream", "tcp:127.0.0.1:0".to_owned());
}

#[test]
fn message_incoming_survives_running_out_of_descriptors() {
    survives_running_out_of_descriptors("message", format!("pipe:{}", unique_name("emfile-m")));
}
