//! The `ipckit` servers keep serving: under a low open-file limit (Linux,
//! `prlimit`), running out of descriptors in `accept` pauses the server instead
//! of ending it; and `--max-connections N` makes client N+1 wait until one of
//! the first N is done.

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::Duration;

use util::{EchoClient, unique_name, watchdog};

const BIN: &str = env!("CARGO_BIN_EXE_ipckit");

/// How long one test may take (Wine is much slower than Linux).
fn limit() -> Duration {
    Duration::from_secs(60) * util::slow_factor()
}

/// A running `ipckit -v` server; dropping it kills it and removes the socket
/// file it leaves.
struct Server {
    child: Child,
    /// Where it listens, as it said (the real port for tcp:HOST:0).
    addr: String,
    /// Its stderr after the "listening on" line, as it comes.
    log: Arc<Mutex<String>>,
    message: bool,
}

impl Server {
    /// Starts `PREFIX... ipckit -v ARGS...` and waits until it listens.
    fn start(prefix: &[&str], args: &[&str]) -> Server {
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let mut child = cmd
            .arg("-v")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ipckit");
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let addr = util::listening_on(&mut stderr);
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap_or_else(PoisonError::into_inner);
                log.push_str(&line);
                log.push('\n');
            }
        });
        Server {
            child,
            addr,
            log,
            message: args.contains(&"-m") || args.contains(&"serve-demo"),
        }
    }

    fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until the log passes `test` (the watchdog bounds the wait).
    fn wait_log(&self, test: impl Fn(&str) -> bool) {
        while !test(&self.log()) {
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[track_caller]
    fn assert_alive(&mut self) {
        let status = self.child.try_wait().expect("try_wait");
        assert!(
            status.is_none(),
            "the server ended: {status:?}\n{}",
            self.log()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A killed server cannot remove its socket file: binding replaces the
        // stale file, dropping the listener removes it.
        if self.message && !self.addr.starts_with("tcp:") {
            let _ = ipckit::MessageListener::bind(self.addr.as_str());
        } else {
            let _ = ipckit::Listener::bind(self.addr.as_str());
        }
    }
}

/// The server's open-file limit, and how many clients the test opens: more
/// than the server can hold.
#[cfg(target_os = "linux")]
const NOFILE: usize = 64;
#[cfg(target_os = "linux")]
const CLIENTS: usize = 100;

/// Runs `ipckit listen --echo [-m] ADDR` with at most 64 open files (and a
/// connection limit above that), opens 100 clients, and checks that the first
/// ones are echoed byte for byte while the server is out of descriptors, that
/// the server lives on, and that every client that waited is served once the
/// earlier ones are gone.
#[cfg(target_os = "linux")]
fn echo_server_survives_running_out_of_descriptors(message: bool, addr: String) {
    watchdog(limit(), move || {
        let nofile = format!("--nofile={NOFILE}:{NOFILE}");
        let mut args = vec!["listen", "--echo", "--max-connections", "1000"];
        if message {
            args.push("-m");
        }
        args.push(&addr);
        let mut server = Server::start(&["prlimit", &nofile, "--"], &args);
        let mut clients: Vec<EchoClient> = (0..CLIENTS)
            .map(|_| EchoClient::connect(message, &server.addr, limit()))
            .collect();
        // The server accepts until accept fails with EMFILE; -v says so once.
        while !server.log().contains("Too many open files") {
            server.assert_alive();
            thread::sleep(Duration::from_millis(5));
        }
        for (seq, c) in clients.iter_mut().take(30).enumerate() {
            c.round_trip(seq);
        }
        server.assert_alive();
        // Once clients go away, those that waited in the backlog are served
        // in turn, and so is a new one.
        for (seq, mut c) in clients.into_iter().enumerate() {
            c.round_trip(seq);
        }
        EchoClient::connect(message, &server.addr, limit()).round_trip(CLIENTS);
        server.assert_alive();
        // Reported once per burst of failed accepts: when it starts, and when
        // an accept succeeds again (each client that went away let one in).
        server.wait_log(|log| {
            log.matches("Too many open files").count()
                == log.matches("accepting again after").count()
        });
        let log = server.log();
        let bursts = log.matches("Too many open files").count();
        assert!(
            (1..=CLIENTS).contains(&bursts),
            "{bursts} bursts reported:\n{log}"
        );
    });
}

#[cfg(target_os = "linux")]
#[test]
fn listen_echo_survives_running_out_of_descriptors() {
    echo_server_survives_running_out_of_descriptors(
        false,
        format!("pipe:{}", unique_name("emfile")),
    );
}

#[cfg(target_os = "linux")]
#[test]
fn listen_echo_on_tcp_survives_running_out_of_descriptors() {
    echo_server_survives_running_out_of_descriptors(false, "tcp:127.0.0.1:0".to_owned());
}

#[cfg(target_os = "linux")]
#[test]
fn listen_message_echo_survives_running_out_of_descriptors() {
    echo_server_survives_running_out_of_descriptors(
        true,
        format!("pipe:{}", unique_name("emfile-m")),
    );
}

/// How long a client that must wait is given to show that it is not served.
const NOT_SERVED_WITHIN: Duration = Duration::from_millis(500);

/// With `--max-connections 3`: three clients are served; a fourth connects but
/// gets no answer while they stay; once one of them closes, it is answered.
/// `first` opens a served client (checking one round trip), `waiting` runs the
/// fourth client's round trip to the end and returns whether it was right;
/// `said` is what the server's log says at the limit, if anything.
fn fourth_client_waits<C: Send + 'static>(
    server: &Server,
    said: Option<&str>,
    first: impl Fn(usize) -> C,
    waiting: impl FnOnce() -> bool + Send + 'static,
) {
    let mut served: Vec<C> = (0..3).map(&first).collect();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(waiting());
    });
    assert!(
        matches!(
            rx.recv_timeout(NOT_SERVED_WITHIN),
            Err(mpsc::RecvTimeoutError::Timeout)
        ),
        "a fourth client was served while three were connected"
    );
    if let Some(said) = said {
        server.wait_log(|log| log.contains(said));
    }
    drop(served.remove(0));
    assert_eq!(
        rx.recv_timeout(limit()),
        Ok(true),
        "the fourth client was not served (right) once one of the first three closed"
    );
    // Closing more lets more in: a fifth is served at once.
    drop(served);
    drop(first(4));
}

fn echo_queues_at_the_connection_limit(message: bool, addr: String) {
    watchdog(limit(), move || {
        let mut args = vec!["listen", "--echo", "--max-connections", "3"];
        if message {
            args.push("-m");
        }
        args.push(&addr);
        let mut server = Server::start(&[], &args);
        let at = server.addr.clone();
        let fourth = server.addr.clone();
        fourth_client_waits(
            &server,
            Some("3 clients, the limit"),
            |seq| {
                let mut c = EchoClient::connect(message, &at, limit());
                c.round_trip(seq);
                c
            },
            move || {
                EchoClient::connect(message, &fourth, limit()).round_trip(3);
                true
            },
        );
        server.assert_alive();
    });
}

#[test]
fn listen_echo_queues_at_max_connections() {
    echo_queues_at_the_connection_limit(false, format!("pipe:{}", unique_name("maxconn")));
}

#[test]
fn listen_echo_on_tcp_queues_at_max_connections() {
    echo_queues_at_the_connection_limit(false, "tcp:127.0.0.1:0".to_owned());
}

#[test]
fn listen_message_echo_queues_at_max_connections() {
    echo_queues_at_the_connection_limit(true, format!("pipe:{}", unique_name("maxconn-m")));
}

#[test]
fn serve_demo_queues_at_max_connections() {
    watchdog(limit(), || {
        let addr = format!("pipe:{}", unique_name("maxconn-rpc"));
        let mut server = Server::start(&[], &["serve-demo", "--max-connections", "3", &addr]);
        let at = server.addr.clone();
        let fourth = server.addr.clone();
        let mut opts = ipckit_rpc::ClientOptions::new();
        opts.timeout(limit());
        let first_opts = opts.clone();
        fourth_client_waits(
            &server,
            None,
            move |seq| {
                let client = first_opts.connect(at.as_str()).expect("connect");
                let sum: i64 = client.call("add", (seq, 1)).expect("call add");
                assert_eq!(sum, seq as i64 + 1);
                client
            },
            move || {
                let client = opts.connect(fourth.as_str()).expect("connect");
                client.call::<_, i64>("add", (40, 2)).ok() == Some(42)
            },
        );
        server.assert_alive();
    });
}

#[test]
fn max_connections_of_zero_is_a_usage_error() {
    for args in [
        &["listen", "--echo", "--max-connections", "0", "pipe:x"][..],
        &["serve-demo", "--max-connections", "0", "pipe:x"],
        &["listen", "--max-connections", "3", "pipe:x"],
    ] {
        let out = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ipckit");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--max-connections"), "{args:?}: {stderr}");
    }
}
