//! `ipckit bench`: round-trip latency, message rate and throughput of every
//! transport on this OS, between two real processes, against a plain-std
//! baseline in the same run.
//!
//! For each transport this process binds the endpoint and starts a peer (this
//! binary, hidden subcommand `__bench-peer`) that connects and serves. Every
//! message is `--size` bytes; its first byte tells the peer what to do:
//!
//! - `ECHO`: send it back. The parent times these round trips for the first
//!   half of `--duration` (after a short warm-up) into an HDR histogram, and
//!   checks that every echo is the bytes it sent.
//! - `SINK`: take it, answer nothing. The parent sends these back to back for
//!   the second half of `--duration`, then an `ACK`, which the peer echoes once
//!   it has taken everything before it: bytes sent / time to the echo is the
//!   one-way throughput, and messages sent / that time the message rate.
//! - `QUIT`: exit 0.
//!
//! The datagram transport is two mailslots, one each way. Every read and
//! write has a time limit, so a lost message fails the transport instead of
//! hanging it.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ipckit::shm::{ShmChannel, ShmListener};
use ipckit::{
    Address, Listener, MailslotReceiver, MailslotSender, MessageListener, MessageStream, Stream,
};
use serde_json::json;

use crate::stdout_error;

const ECHO: u8 = 0;
const SINK: u8 = 1;
const ACK: u8 = 2;
const QUIT: u8 = 3;

/// Bounds every read and write, and the peer's start.
const IO_LIMIT: Duration = Duration::from_secs(20);
/// Round trips before the timed ones, not recorded.
const WARM_UP: u32 = 200;
/// The largest message the datagram transport carries here (a Unix datagram
/// must fit the socket's send buffer; a Windows mailslot message is at most
/// 64 KiB between processes of one machine in practice).
const MAX_DATAGRAM: usize = 64 * 1024;

/// The transports `ipckit bench` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Transport {
    /// The baseline: std's UnixStream (Unix) or std's TcpStream on 127.0.0.1
    /// (Windows, which has no named pipes in std); always run.
    Std,
    /// ipckit's byte stream at a portable name (a Unix socket / a named pipe).
    Stream,
    /// ipckit's message channel (SOCK_SEQPACKET / a message-mode named pipe).
    Message,
    /// Two mailslots, one each way (SOCK_DGRAM sockets on Unix).
    Datagram,
    /// ipckit's shared-memory channel.
    Shm,
    /// ipckit's byte stream over TCP on 127.0.0.1.
    Tcp,
}

impl Transport {
    const ALL: [Transport; 6] = [
        Transport::Std,
        Transport::Stream,
        Transport::Message,
        Transport::Datagram,
        Transport::Shm,
        Transport::Tcp,
    ];

    fn name(self) -> &'static str {
        match self {
            Transport::Std => "std",
            Transport::Stream => "stream",
            Transport::Message => "message",
            Transport::Datagram => "datagram",
            Transport::Shm => "shm",
            Transport::Tcp => "tcp",
        }
    }

    fn from_name(name: &str) -> Option<Transport> {
        Transport::ALL.into_iter().find(|t| t.name() == name)
    }

    /// What the baseline is on this OS.
    fn describe_std() -> &'static str {
        if cfg!(unix) {
            "std::os::unix::net::UnixStream"
        } else {
            "std::net::TcpStream on 127.0.0.1 (std has no named pipes)"
        }
    }
}

/// `ipckit bench`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Transports to measure [default: all]; the std baseline always runs.
    #[arg(value_name = "TRANSPORTS", value_enum)]
    transports: Vec<Transport>,

    /// Bytes per message (1 to 1 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    size: u32,

    /// Time per transport, half for round trips and half for throughput:
    /// 500ms, 2s, 1m.
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = crate::duration::parse)]
    duration: Duration,

    /// Print the results as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,

    /// Also draw the latency distributions into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<std::path::PathBuf>,
}

/// One transport's figures.
#[derive(Debug)]
struct Measured {
    address: String,
    hist: Histogram<u64>,
    round_trip_time: Duration,
    sunk: u64,
    sink_time: Duration,
}

impl Measured {
    fn round_trips_per_sec(&self) -> f64 {
        self.hist.len() as f64 / self.round_trip_time.as_secs_f64()
    }
    fn messages_per_sec(&self) -> f64 {
        self.sunk as f64 / self.sink_time.as_secs_f64()
    }
    fn bytes_per_sec(&self, size: usize) -> f64 {
        self.messages_per_sec() * size as f64
    }
}

struct Row {
    transport: Transport,
    outcome: Result<Measured>,
}

/// `ipckit bench`.
pub(crate) fn run(args: Args) -> Result<()> {
    let size = args.size as usize;
    if let Some(plot) = &args.plot {
        // Found before the measuring, not after it.
        std::fs::write(plot, b"")
            .with_context(|| format!("cannot write the plot to {}", plot.display()))?;
    }
    let mut chosen = vec![Transport::Std];
    let wanted: &[Transport] = if args.transports.is_empty() {
        &Transport::ALL
    } else {
        &args.transports
    };
    for &t in wanted {
        if !chosen.contains(&t) {
            chosen.push(t);
        }
    }
    let exe = std::env::current_exe().context("find this program to run the bench's peer")?;
    let tag = format!("ipckit-bench-{}", std::process::id());

    let bar = if io::stderr().is_terminal() {
        ProgressBar::with_draw_target(
            Some(chosen.len() as u64 * 100),
            ProgressDrawTarget::stderr(),
        )
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:30}] {msg}")
            .map_err(|e| anyhow!("progress bar template: {e}"))?
            .progress_chars("=> "),
    );

    let mut rows = Vec::new();
    for (i, &transport) in chosen.iter().enumerate() {
        bar.set_prefix(transport.name());
        bar.set_message(format!("{} of {}", i + 1, chosen.len()));
        let base = i as u64 * 100;
        let progress = |fraction: f64| bar.set_position(base + (fraction * 100.0) as u64);
        let outcome = measure(&exe, transport, &tag, size, args.duration, &progress);
        rows.push(Row { transport, outcome });
    }
    bar.finish_and_clear();

    let baseline = rows
        .iter()
        .find(|r| r.transport == Transport::Std)
        .and_then(|r| r.outcome.as_ref().ok());
    let text = if args.json {
        json_report(&rows, baseline, size, args.duration)?
    } else {
        table(&rows, baseline, size, args.duration)
    };
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(stdout_error)?;
    if let Some(plot) = &args.plot {
        std::fs::write(plot, svg(&rows)?)
            .with_context(|| format!("cannot write the plot to {}", plot.display()))?;
    }
    let failed: Vec<_> = rows
        .iter()
        .filter(|r| r.outcome.is_err())
        .map(|r| r.transport.name())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        bail!(
            "bench: {} of {} transports failed: {}",
            failed.len(),
            rows.len(),
            failed.join(", ")
        )
    }
}

/// A connected end: the byte streams carry fixed-size messages.
enum Conn {
    Bytes(Box<dyn Duplex>),
    Message(MessageStream),
    Datagram {
        rx: MailslotReceiver,
        tx: MailslotSender,
    },
    Shm(Box<ShmChannel>),
}

trait Duplex: Read + Write + Send {}
impl<T: Read + Write + Send> Duplex for T {}

impl Conn {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        match self {
            Conn::Bytes(s) => s.write_all(msg)?,
            Conn::Message(m) => m.send(msg)?,
            Conn::Datagram { tx, .. } => tx.send(msg)?,
            Conn::Shm(c) => c.send(msg)?,
        }
        Ok(())
    }

    /// Receives one message of `size` bytes into `buf`; false at the peer's end.
    fn recv(&mut self, buf: &mut Vec<u8>, size: usize) -> Result<bool> {
        match self {
            Conn::Bytes(s) => {
                buf.resize(size, 0);
                let mut got = 0;
                while got < size {
                    match s.read(&mut buf[got..]) {
                        Ok(0) if got == 0 => return Ok(false),
                        Ok(0) => bail!("the stream ended {got} bytes into a message"),
                        Ok(n) => got += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(true)
            }
            Conn::Message(m) => Ok(m.recv_into(buf)?),
            Conn::Datagram { rx, .. } => {
                rx.recv_into(buf, Some(IO_LIMIT))?;
                Ok(true)
            }
            Conn::Shm(c) => Ok(c.recv_into(buf)?),
        }
    }
}

/// What the parent bound for one transport.
enum Bound {
    #[cfg(unix)]
    Std(std::os::unix::net::UnixListener, std::path::PathBuf),
    #[cfg(not(unix))]
    Std(std::net::TcpListener),
    Stream(Listener),
    Message(MessageListener),
    /// Taken by the connection once the peer is ready.
    Datagram(Option<MailslotReceiver>),
    Shm(ShmListener),
}

impl Drop for Bound {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Bound::Std(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds `transport` at a fresh name; returns it and the address the peer uses.
fn bind(transport: Transport, tag: &str) -> Result<(Bound, String)> {
    let name = format!("{tag}-{}", transport.name());
    Ok(match transport {
        Transport::Std => bind_std(&name)?,
        Transport::Stream | Transport::Tcp => {
            let text = if transport == Transport::Tcp {
                "tcp:127.0.0.1:0".to_owned()
            } else {
                format!("pipe:{name}")
            };
            let addr: Address = text.parse()?;
            let pending = crate::cleanup::pending();
            let listener = Listener::bind(&addr)?;
            pending.socket_of(&addr);
            let local = listener.local_addr().to_string();
            (Bound::Stream(listener), local)
        }
        Transport::Message => {
            let addr: Address = format!("pipe:{name}").parse()?;
            let pending = crate::cleanup::pending();
            let listener = MessageListener::bind(&addr)?;
            pending.socket_of(&addr);
            (Bound::Message(listener), addr.to_string())
        }
        Transport::Datagram => {
            // Our inbox (the replies); the peer binds its own and says so.
            let addr: Address = format!("mailslot:{name}-a").parse()?;
            let mut opts = ipckit::ListenerOptions::new();
            opts.max_message_size(MAX_DATAGRAM);
            let pending = crate::cleanup::pending();
            let rx = opts.bind_mailslot(&addr)?;
            pending.socket_of(&addr);
            (Bound::Datagram(Some(rx)), addr.to_string())
        }
        Transport::Shm => {
            let addr: Address = format!("shm:{name}").parse()?;
            let pending = crate::cleanup::pending();
            let listener = ShmListener::bind(&addr)?;
            pending.shm_channel(&addr);
            (Bound::Shm(listener), addr.to_string())
        }
    })
}

#[cfg(unix)]
fn bind_std(name: &str) -> Result<(Bound, String)> {
    let path = std::env::temp_dir().join(format!("{name}.sock"));
    let addr: Address = format!("unix:{}", path.display()).parse()?;
    let pending = crate::cleanup::pending();
    let listener = std::os::unix::net::UnixListener::bind(&path)
        .with_context(|| format!("bind std's UnixListener at {}", path.display()))?;
    pending.socket_of(&addr);
    Ok((
        Bound::Std(listener, path.clone()),
        path.display().to_string(),
    ))
}

#[cfg(not(unix))]
fn bind_std(_name: &str) -> Result<(Bound, String)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("bind std's TcpListener on 127.0.0.1")?;
    let addr = listener.local_addr()?.to_string();
    Ok((Bound::Std(listener), addr))
}

/// Accepts the peer (with the time limit) and returns our end.
fn accept(bound: &mut Bound, peer_ready: &dyn Fn() -> Result<String>) -> Result<Conn> {
    Ok(match bound {
        #[cfg(unix)]
        Bound::Std(l, _) => {
            let l = l.try_clone()?;
            let (s, _) = accept_within(move || l.accept())?;
            s.set_read_timeout(Some(IO_LIMIT))?;
            s.set_write_timeout(Some(IO_LIMIT))?;
            Conn::Bytes(Box::new(s))
        }
        #[cfg(not(unix))]
        Bound::Std(l) => {
            let l = l.try_clone()?;
            let (s, _) = accept_within(move || l.accept())?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(IO_LIMIT))?;
            s.set_write_timeout(Some(IO_LIMIT))?;
            Conn::Bytes(Box::new(s))
        }
        Bound::Stream(l) => {
            let mut s = l.accept()?;
            s.set_read_timeout(Some(IO_LIMIT))?;
            s.set_write_timeout(Some(IO_LIMIT))?;
            Conn::Bytes(Box::new(s))
        }
        Bound::Message(l) => {
            let mut m = l.accept()?;
            m.set_read_timeout(Some(IO_LIMIT))?;
            m.set_write_timeout(Some(IO_LIMIT))?;
            Conn::Message(m)
        }
        Bound::Datagram(rx) => {
            let theirs = peer_ready()?;
            Conn::Datagram {
                rx: rx
                    .take()
                    .context("the datagram receiver was taken already")?,
                tx: MailslotSender::connect(theirs.as_str())?,
            }
        }
        Bound::Shm(l) => {
            let mut c = l.accept_timeout(IO_LIMIT)?;
            c.set_read_timeout(Some(IO_LIMIT));
            c.set_write_timeout(Some(IO_LIMIT));
            Conn::Shm(Box::new(c))
        }
    })
}

/// std's blocking accept has no timeout: run it on a thread and wait for it
/// within [`IO_LIMIT`]. A peer that never connects fails the transport; the
/// thread is left blocked until the process exits.
fn accept_within<T: Send + 'static>(
    accept: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("bench-accept".into())
        .spawn(move || {
            let _ = tx.send(accept());
        })
        .context("start the accepting thread")?;
    match rx.recv_timeout(IO_LIMIT) {
        Ok(accepted) => Ok(accepted?),
        Err(_) => bail!("the peer did not connect within {IO_LIMIT:?}"),
    }
}

fn measure(
    exe: &Path,
    transport: Transport,
    tag: &str,
    size: usize,
    duration: Duration,
    progress: &dyn Fn(f64),
) -> Result<Measured> {
    if transport == Transport::Datagram && size > MAX_DATAGRAM {
        bail!(
            "datagram messages are limited to {MAX_DATAGRAM} bytes here; use --size {MAX_DATAGRAM} or less"
        );
    }
    let (bound, address) = bind(transport, tag)?;
    let peer_addr = match transport {
        Transport::Datagram => format!("mailslot:{tag}-datagram-b"),
        _ => address.clone(),
    };
    let mut cmd = Command::new(exe);
    cmd.arg("__bench-peer")
        .arg(transport.name())
        .arg(&peer_addr)
        .arg(size.to_string());
    if transport == Transport::Datagram {
        cmd.arg(&address);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start the bench's peer")?;
    let stdout = child.stdout.take();
    let result = run_with_peer(bound, stdout, size, duration, progress, &peer_addr);
    // Which endpoint failed: the causes below (an I/O error, a wrong echo)
    // do not name it.
    finish_peer(child, result.is_ok())
        .and(result)
        .with_context(|| format!("measure {address}"))
        .map(|mut m| {
            m.address = address;
            m
        })
}

fn run_with_peer(
    bound: Bound,
    stdout: Option<ChildStdout>,
    size: usize,
    duration: Duration,
    progress: &dyn Fn(f64),
    peer_addr: &str,
) -> Result<Measured> {
    // The peer prints "ready" once its end exists (only the datagram peer
    // has an end of its own to make); read it within the limit.
    let (ready_tx, ready_rx) = mpsc::channel();
    if let Some(stdout) = stdout {
        thread::Builder::new()
            .name("bench-peer-stdout".into())
            .spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let _ = ready_tx.send(lines.next());
                // Drain the rest so the peer never blocks on a full pipe.
                for _ in lines {}
            })
            .context("start the peer's stdout reader")?;
    }
    let peer_ready = move || -> Result<String> {
        match ready_rx.recv_timeout(IO_LIMIT) {
            Ok(Some(Ok(line))) if line == "ready" => Ok(peer_addr.to_owned()),
            Ok(Some(Ok(line))) => bail!("the peer said {line:?} instead of \"ready\""),
            _ => bail!("the peer did not get ready within {IO_LIMIT:?}"),
        }
    };
    // Held to the end: the listener keeps its name while we measure.
    let mut bound = bound;
    let mut conn = accept(&mut bound, &peer_ready)?;

    let mut msg = vec![0u8; size];
    let mut back = Vec::with_capacity(size);
    for (i, b) in msg.iter_mut().enumerate().skip(1) {
        *b = (i % 251) as u8;
    }
    // 1 ns to 1 minute, 3 significant digits.
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| anyhow!("create the histogram: {e}"))?;
    let half = duration / 2;

    msg[0] = ECHO;
    for _ in 0..WARM_UP {
        round_trip(&mut conn, &msg, &mut back)?;
    }
    let started = Instant::now();
    let mut next_report = started;
    loop {
        // Only the send and the echo are timed; the check comes after.
        let t0 = Instant::now();
        echo(&mut conn, &msg, &mut back)?;
        let t1 = Instant::now();
        hist.saturating_record(u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX));
        check_echo(&msg, &back)?;
        if t1 >= next_report {
            let done = (t1 - started).as_secs_f64() / duration.as_secs_f64();
            progress(done.min(0.5));
            if t1 - started >= half {
                break;
            }
            next_report = t1 + Duration::from_millis(20);
        }
    }
    let round_trip_time = started.elapsed();

    msg[0] = SINK;
    let sink_started = Instant::now();
    let mut sunk = 0u64;
    loop {
        conn.send(&msg)?;
        sunk += 1;
        if sunk.is_multiple_of(64) {
            let spent = sink_started.elapsed();
            progress(0.5 + (spent.as_secs_f64() / duration.as_secs_f64()).min(0.5));
            if spent >= half {
                break;
            }
        }
    }
    msg[0] = ACK;
    round_trip(&mut conn, &msg, &mut back).context("wait for the peer to take every message")?;
    let sink_time = sink_started.elapsed();
    msg[0] = QUIT;
    conn.send(&msg)?;
    progress(1.0);
    Ok(Measured {
        address: String::new(),
        hist,
        round_trip_time,
        sunk,
        sink_time,
    })
}

fn round_trip(conn: &mut Conn, msg: &[u8], back: &mut Vec<u8>) -> Result<()> {
    echo(conn, msg, back)?;
    check_echo(msg, back)
}

/// Sends `msg` and receives the answer into `back`, unchecked.
fn echo(conn: &mut Conn, msg: &[u8], back: &mut Vec<u8>) -> Result<()> {
    conn.send(msg)?;
    ensure!(
        conn.recv(back, msg.len())?,
        "the peer closed before answering"
    );
    Ok(())
}

/// Whether the answer is the message sent, byte for byte.
fn check_echo(msg: &[u8], back: &[u8]) -> Result<()> {
    ensure!(
        back == msg,
        "the answer differs from the message sent ({} bytes back for {})",
        back.len(),
        msg.len()
    );
    Ok(())
}

/// Waits for the peer to exit (killing it if it does not within the limit,
/// or at once if we failed) and turns its failure into an error with its
/// stderr.
fn finish_peer(mut child: Child, we_succeeded: bool) -> Result<()> {
    let mut stderr = child.stderr.take();
    let deadline = Instant::now()
        + if we_succeeded {
            IO_LIMIT
        } else {
            Duration::ZERO
        };
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let mut text = String::new();
    if let Some(stderr) = stderr.as_mut() {
        let _ = stderr.read_to_string(&mut text);
    }
    let text = text.trim().replace('\n', " ");
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => bail!("the peer failed ({s}): {text}"),
        None if we_succeeded => bail!("the peer did not exit within {IO_LIMIT:?}"),
        None => Ok(()),
    }
}

/// `ipckit __bench-peer TRANSPORT ADDR SIZE [REPLY_ADDR]`: the peer half.
pub(crate) fn peer(transport: &str, addr: &str, size: usize, reply: Option<&str>) -> Result<()> {
    let transport = Transport::from_name(transport)
        .with_context(|| format!("unknown transport {transport:?}"))?;
    let mut conn = match transport {
        #[cfg(unix)]
        Transport::Std => {
            let s = std::os::unix::net::UnixStream::connect(addr)
                .with_context(|| format!("connect std's UnixStream to {addr}"))?;
            s.set_read_timeout(Some(IO_LIMIT))?;
            s.set_write_timeout(Some(IO_LIMIT))?;
            Conn::Bytes(Box::new(s))
        }
        #[cfg(not(unix))]
        Transport::Std => {
            let s = std::net::TcpStream::connect(addr)
                .with_context(|| format!("connect std's TcpStream to {addr}"))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(IO_LIMIT))?;
            s.set_write_timeout(Some(IO_LIMIT))?;
            Conn::Bytes(Box::new(s))
        }
        Transport::Stream | Transport::Tcp => {
            let mut s = Stream::connect(addr)?;
            s.set_read_timeout(Some(IO_LIMIT))?;
            s.set_write_timeout(Some(IO_LIMIT))?;
            Conn::Bytes(Box::new(s))
        }
        Transport::Message => {
            let mut m = MessageStream::connect(addr)?;
            m.set_read_timeout(Some(IO_LIMIT))?;
            m.set_write_timeout(Some(IO_LIMIT))?;
            Conn::Message(m)
        }
        Transport::Datagram => {
            let reply = reply.context("the datagram peer needs the address to reply to")?;
            let ours: Address = addr.parse()?;
            let mut opts = ipckit::ListenerOptions::new();
            opts.max_message_size(MAX_DATAGRAM);
            let pending = crate::cleanup::pending();
            let rx = opts.bind_mailslot(&ours)?;
            pending.socket_of(&ours);
            let tx = MailslotSender::connect(reply)?;
            let mut out = io::stdout().lock();
            writeln!(out, "ready").and_then(|()| out.flush())?;
            Conn::Datagram { rx, tx }
        }
        Transport::Shm => {
            let mut opts = ipckit::ConnectOptions::new();
            opts.timeout(IO_LIMIT);
            let mut c = opts.connect_shm(addr)?;
            c.set_read_timeout(Some(IO_LIMIT));
            c.set_write_timeout(Some(IO_LIMIT));
            Conn::Shm(Box::new(c))
        }
    };
    let mut buf = Vec::with_capacity(size);
    let mut sunk = 0u64;
    while conn.recv(&mut buf, size)? {
        match buf.first() {
            Some(&ECHO) | Some(&ACK) => conn.send(&buf)?,
            Some(&SINK) => sunk += 1,
            Some(&QUIT) => return Ok(()),
            other => bail!("unexpected message kind {other:?} after {sunk} sink messages"),
        }
    }
    // The parent closed without QUIT: it failed, and says so itself.
    Ok(())
}

fn micros(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn table(rows: &[Row], baseline: Option<&Measured>, size: usize, duration: Duration) -> String {
    let mut text = format!(
        "ipckit bench: {size}-byte messages, {:?} per transport (half round trips, half \
         one-way throughput), two processes; baseline: {}\n\n",
        duration,
        Transport::describe_std()
    );
    let _ = writeln!(
        text,
        "{:<9}  {:>9}  {:>9}  {:>9}  {:>12}  {:>12}  {:>10}  {:>8}  {:>10}",
        "transport",
        "p50 µs",
        "p99 µs",
        "p999 µs",
        "round trip/s",
        "messages/s",
        "MiB/s",
        "p50 ×std",
        "MiB/s ×std"
    );
    for row in rows {
        match &row.outcome {
            Ok(m) => {
                let (lat, thr) = ratios(m, baseline);
                let _ = writeln!(
                    text,
                    "{:<9}  {:>9.1}  {:>9.1}  {:>9.1}  {:>12.0}  {:>12.0}  {:>10.1}  {:>8}  {:>10}",
                    row.transport.name(),
                    micros(m.hist.value_at_quantile(0.5)),
                    micros(m.hist.value_at_quantile(0.99)),
                    micros(m.hist.value_at_quantile(0.999)),
                    m.round_trips_per_sec(),
                    m.messages_per_sec(),
                    m.bytes_per_sec(size) / f64::from(1 << 20),
                    lat.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")),
                    thr.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")),
                );
            }
            Err(err) => {
                let _ = writeln!(
                    text,
                    "{:<9}  FAILED: {}",
                    row.transport.name(),
                    crate::one_line(err)
                );
            }
        }
    }
    text.push_str(
        "\np50 ×std: the median round trip over the baseline's (lower is faster); \
         MiB/s ×std: the throughput over the baseline's (higher is faster).\n",
    );
    text
}

/// The transport's median round trip and throughput, each over the baseline's.
fn ratios(m: &Measured, baseline: Option<&Measured>) -> (Option<f64>, Option<f64>) {
    let Some(b) = baseline else {
        return (None, None);
    };
    let lat = m.hist.value_at_quantile(0.5) as f64 / b.hist.value_at_quantile(0.5).max(1) as f64;
    let thr = m.messages_per_sec() / b.messages_per_sec();
    (Some(lat), thr.is_finite().then_some(thr))
}

fn json_report(
    rows: &[Row],
    baseline: Option<&Measured>,
    size: usize,
    duration: Duration,
) -> Result<String> {
    let results: Vec<_> = rows
        .iter()
        .map(|row| match &row.outcome {
            Ok(m) => {
                let (lat, thr) = ratios(m, baseline);
                json!({
                    "transport": row.transport.name(),
                    "ok": true,
                    "address": m.address,
                    "round_trips": m.hist.len(),
                    "p50_ns": m.hist.value_at_quantile(0.5),
                    "p99_ns": m.hist.value_at_quantile(0.99),
                    "p999_ns": m.hist.value_at_quantile(0.999),
                    "max_ns": m.hist.max(),
                    "round_trips_per_sec": m.round_trips_per_sec(),
                    "messages": m.sunk,
                    "messages_per_sec": m.messages_per_sec(),
                    "bytes_per_sec": m.bytes_per_sec(size),
                    "p50_vs_std": lat,
                    "throughput_vs_std": thr,
                })
            }
            Err(err) => json!({
                "transport": row.transport.name(),
                "ok": false,
                "error": crate::one_line(err),
            }),
        })
        .collect();
    let report = json!({
        "os": std::env::consts::OS,
        "wine": ipckit::platform::wine_version(),
        "size": size,
        "duration_ms": duration.as_millis() as u64,
        "baseline": Transport::describe_std(),
        "results": results,
    });
    let mut text = serde_json::to_string_pretty(&report)?;
    text.push('\n');
    Ok(text)
}

/// The latency distributions as an SVG, drawn with `plotters`: for each
/// transport, the round-trip time (log scale) at each percentile from 0 to
/// 99.99 % (x on a "nines" scale: 90 %, 99 %, 99.9 % equally spaced).
fn svg(rows: &[Row]) -> Result<String> {
    use plotters::prelude::*;
    const NINES: f64 = 4.0;
    const COLOURS: [RGBColor; 6] = [
        RGBColor(0x00, 0x00, 0x00),
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x94, 0x67, 0xbd),
    ];
    let ok: Vec<(&str, &Measured)> = rows
        .iter()
        .filter_map(|r| r.outcome.as_ref().ok().map(|m| (r.transport.name(), m)))
        .collect();
    let lo = ok
        .iter()
        .map(|(_, m)| m.hist.min().max(1))
        .min()
        .unwrap_or(1);
    let hi = ok
        .iter()
        .map(|(_, m)| m.hist.value_at_quantile(0.9999))
        .max()
        .unwrap_or(2)
        .max(lo * 10);
    let mut text = String::new();
    let plot_error = |e: &dyn std::fmt::Display| anyhow!("draw the latency plot: {e}");
    {
        let root = SVGBackend::with_string(&mut text, (760, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "ipckit bench: round-trip latency by percentile",
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..NINES, (lo as f64..hi as f64).log_scale())
            .map_err(|e| plot_error(&e))?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .x_labels(NINES as usize + 1)
            .x_label_formatter(&|nines| match nines.round() as i32 {
                0 => "0%".to_owned(),
                k => format!("{}%", 100.0 - 100.0 / 10f64.powi(k)),
            })
            .y_label_formatter(&|ns| {
                if *ns >= 1e6 {
                    format!("{} ms", ns / 1e6)
                } else if *ns >= 1e3 {
                    format!("{} µs", ns / 1e3)
                } else {
                    format!("{ns} ns")
                }
            })
            .draw()
            .map_err(|e| plot_error(&e))?;
        for (i, (name, m)) in ok.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let points = (0..=80).map(|step| {
                let nines = f64::from(step) * NINES / 80.0;
                let ns = m.hist.value_at_quantile(1.0 - 10f64.powf(-nines)) as f64;
                (nines, ns.max(lo as f64))
            });
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(|e| plot_error(&e))?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 2), (x + 16, y + 2)], colour.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot_error(&e))?;
        root.present().map_err(|e| plot_error(&e))?;
    }
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte stream that answers what was written to it, with byte `flip`
    /// of every answer changed if set.
    struct Echo {
        pending: std::collections::VecDeque<u8>,
        flip: Option<usize>,
    }

    impl Read for Echo {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.pending.read(buf)
        }
    }

    impl Write for Echo {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            let mut answer = data.to_vec();
            if let Some(at) = self.flip {
                answer[at] ^= 1;
            }
            self.pending.extend(answer);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn conn(flip: Option<usize>) -> Conn {
        Conn::Bytes(Box::new(Echo {
            pending: Default::default(),
            flip,
        }))
    }

    #[test]
    fn a_round_trip_checks_the_echo() {
        let msg: Vec<u8> = (0..100u8).collect();
        let mut back = Vec::new();
        round_trip(&mut conn(None), &msg, &mut back).expect("a faithful echo");
        assert_eq!(back, msg);
        let err = round_trip(&mut conn(Some(42)), &msg, &mut back).unwrap_err();
        assert!(err.to_string().contains("differs"), "{err}");
        // The unchecked half takes anything; the check is separate.
        echo(&mut conn(Some(42)), &msg, &mut back).expect("unchecked");
        assert!(check_echo(&msg, &back).is_err());
    }
}
