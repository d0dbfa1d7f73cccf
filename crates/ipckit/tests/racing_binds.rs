//! Racing starts: many binders of one name at the same instant, on a fresh name
//! and (Unix) over a stale socket file. Exactly one wins; every other fails
//! with `AddrInUse` naming the winner's pid where the OS lets it be read; and
//! the winner is the one a client reaches.

mod util;

use std::io::{Read, Write};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use ipckit::{
    Error, ErrorKind, Listener, MailslotReceiver, MailslotSender, MessageListener, MessageStream,
    Stream,
};
use util::{slow_factor, unique_name, watchdog};

const RACERS: usize = 8;

/// 50 everywhere, Wine included (a trial there takes up to a few seconds).
const TRIALS: usize = 50;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Stream,
    Message,
    Mailslot,
}

enum Server {
    Stream(Listener),
    Message(MessageListener),
    Mailslot(MailslotReceiver),
}

impl Kind {
    fn address(self, name: &str) -> String {
        match self {
            Kind::Stream | Kind::Message => format!("pipe:{name}"),
            Kind::Mailslot => format!("mailslot:{name}"),
        }
    }

    fn bind(self, addr: &str) -> Result<Server, Error> {
        Ok(match self {
            Kind::Stream => Server::Stream(Listener::bind(addr)?),
            Kind::Message => Server::Message(MessageListener::bind(addr)?),
            Kind::Mailslot => Server::Mailslot(MailslotReceiver::bind(addr)?),
        })
    }

    /// Whether a loser can be told the winner's pid on this OS.
    fn pid_readable(self) -> bool {
        match self {
            // Windows: reading a pipe server's pid takes a client connection
            // to it, which a loser must not make (see sys/windows/pipe.rs).
            Kind::Stream | Kind::Message => cfg!(target_os = "linux"),
            // Unix datagram sockets tell no pid; /proc does (Linux). Windows
            // has no way to ask who created a mailslot.
            Kind::Mailslot => cfg!(target_os = "linux"),
        }
    }

    /// (Unix) Leaves a stale socket file where `name` lives: bound, then closed.
    #[cfg(unix)]
    fn leave_stale_file(self, name: &str) {
        let dir = ipckit::platform::runtime_dir().expect("Unix has a runtime directory");
        // A bind creates the directory as the library wants it.
        drop(Listener::bind(format!("pipe:{}", unique_name("mkdir"))).unwrap());
        let path = dir.join(self.file_name(name));
        match self {
            Kind::Stream | Kind::Message => {
                drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
            }
            Kind::Mailslot => {
                drop(std::os::unix::net::UnixDatagram::bind(&path).unwrap());
            }
        }
        assert!(path.exists(), "{}", path.display());
    }

    /// (Unix) The socket file of `name` in the runtime directory.
    #[cfg(unix)]
    fn file_name(self, name: &str) -> String {
        match self {
            Kind::Stream | Kind::Message => format!("{name}.sock"),
            Kind::Mailslot => format!("{name}.dgram"),
        }
    }
}

/// (Unix) No bind lock file is left behind beside the socket file.
#[cfg(unix)]
fn no_lock_left(kind: Kind, name: &str) {
    let dir = ipckit::platform::runtime_dir().unwrap();
    let lock = dir.join(format!("{}.lock", kind.file_name(name)));
    assert!(!lock.exists(), "left behind: {}", lock.display());
}

/// A client reaches `server` at `addr`: it says hello and gets an answer. The
/// server skips connections that say nothing: the losers' probes (a loser
/// connects to find out who serves the name, then hangs up).
fn reach(server: Server, addr: &str) {
    match server {
        Server::Stream(listener) => {
            let t = thread::spawn(move || {
                loop {
                    let mut conn = listener.accept().unwrap();
                    let mut hello = [0; 2];
                    if conn.read_exact(&mut hello).is_ok() && &hello == b"hi" {
                        return conn.write_all(b"won");
                    }
                }
            });
            let mut client = Stream::connect(addr).unwrap();
            client.write_all(b"hi").unwrap();
            let mut got = String::new();
            client.read_to_string(&mut got).unwrap();
            t.join().unwrap().unwrap();
            assert_eq!(got, "won");
        }
        Server::Message(listener) => {
            let t = thread::spawn(move || {
                loop {
                    let conn = listener.accept().unwrap();
                    if conn.recv().ok().flatten().as_deref() == Some(&b"hi"[..]) {
                        return conn.send(b"won");
                    }
                }
            });
            let client = MessageStream::connect(addr).unwrap();
            client.send(b"hi").unwrap();
            let got = client.recv().unwrap();
            t.join().unwrap().unwrap();
            assert_eq!(got.as_deref(), Some(&b"won"[..]));
        }
        Server::Mailslot(inbox) => {
            MailslotSender::connect(addr).unwrap().send(b"won").unwrap();
            let got = inbox
                .recv_timeout(Duration::from_secs(10 * u64::from(slow_factor())))
                .unwrap();
            assert_eq!(got, b"won");
        }
    }
}

/// `RACERS` threads bind `addr` at once: exactly one wins, the others fail
/// with `AddrInUse` naming the address (and our pid where readable), and a
/// client reaches the winner.
fn race_once(kind: Kind, addr: &str, trial: usize) {
    let start = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|_| {
            let start = Arc::clone(&start);
            let addr = addr.to_owned();
            thread::spawn(move || {
                start.wait();
                kind.bind(&addr)
            })
        })
        .collect();
    let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    let mut winners = Vec::new();
    let mut named = 0;
    let pid = format!("pid {}", std::process::id());
    for result in results {
        match result {
            Ok(server) => winners.push(server),
            Err(e) => {
                assert_eq!(
                    e.kind(),
                    ErrorKind::AddrInUse,
                    "{kind:?} trial {trial}: {e}"
                );
                let text = e.to_string();
                assert!(
                    text.contains(addr),
                    "{kind:?}: the error names {addr}: {text}"
                );
                if text.contains(&pid) {
                    named += 1;
                } else {
                    assert!(
                        !kind.pid_readable(),
                        "{kind:?}: the error names {pid}: {text}"
                    );
                }
            }
        }
    }
    if kind.pid_readable() {
        assert!(named > 0, "{kind:?} trial {trial}: no loser named {pid}");
    }
    assert_eq!(
        winners.len(),
        1,
        "{kind:?} trial {trial} at {addr}: exactly one of {RACERS} racing binds wins"
    );
    reach(winners.pop().unwrap(), addr);
}

fn race(kind: Kind, stale: bool) {
    watchdog(
        Duration::from_secs(120 * u64::from(slow_factor())),
        move || {
            for trial in 0..TRIALS {
                let name = unique_name("race");
                #[cfg(unix)]
                if stale {
                    kind.leave_stale_file(&name);
                }
                #[cfg(not(unix))]
                let _ = stale;
                race_once(kind, &kind.address(&name), trial);
                #[cfg(unix)]
                no_lock_left(kind, &name);
            }
        },
    );
}

#[test]
fn racing_stream_binds_leave_exactly_one() {
    race(Kind::Stream, false);
}

#[test]
fn racing_message_binds_leave_exactly_one() {
    race(Kind::Message, false);
}

#[test]
fn racing_mailslot_binds_leave_exactly_one() {
    race(Kind::Mailslot, false);
}

#[cfg(unix)]
#[test]
fn racing_stream_binds_over_a_stale_file_leave_exactly_one() {
    race(Kind::Stream, true);
}

#[cfg(unix)]
#[test]
fn racing_message_binds_over_a_stale_file_leave_exactly_one() {
    race(Kind::Message, true);
}

#[cfg(unix)]
#[test]
fn racing_mailslot_binds_over_a_stale_file_leave_exactly_one() {
    race(Kind::Mailslot, true);
}
