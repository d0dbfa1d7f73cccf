//! `ipckit`: listen on, connect to and demonstrate local IPC endpoints, and send
//! and receive mailslot messages.
//!
//! The shape is `main -> run -> ExitCode`: `run` returns an `anyhow::Error`, and
//! `main` prints it as one line on stderr (`ipckit: what failed: why`) and exits
//! with 1. Usage errors exit with 2: clap's, and those found after parsing (a
//! name or address text that breaks the address rules, ipckit's
//! `ErrorKind::InvalidAddress`). An interrupt (Ctrl-C) exits with 130 after
//! removing what the command created (`cleanup`). A reader that closes our stdout
//! early (`ipckit connect ... | head -c 10`) is not an error: we stop and exit 0.

#![forbid(unsafe_code)]

mod accepting;
mod bench;
mod cleanup;
mod demo;
mod duration;
mod keyed;
mod ls;
mod mailslot;
mod message;
mod relay;
mod rpc;
mod serve;
mod server_user;
mod services;
mod shm;
mod spawn;
mod threaded;
mod wait;

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{ArgGroup, CommandFactory, Parser, Subcommand};
use ipckit::{Address, ConnectOptions};

const ADDRESS_HELP: &str = "\
Addresses:
  NAME, pipe:NAME   portable local name (a named pipe on Windows, a socket file in a
                    private per-user directory on Unix)
  unix:/path        a Unix socket file (any text with a '/' also works)
  @NAME             a Linux abstract socket
  tcp:HOST:PORT     TCP; port 0 lets the OS choose (see it with --verbose)
  mailslot:NAME     for send and recv: a mailslot on Windows, a datagram socket file
                    in the private per-user directory on Unix (where recv and send
                    also take unix:/path and @NAME)
  service:NAME      the first live instance of a service registered with --register
                    (see `ipckit services`); for connect, call, send, wait

Exit status:
  0    success
  1    failure; the reason is one line on stderr: `ipckit: what failed: why`
  2    usage error: an unknown option, a bad value, or an address or name text
       that breaks the address rules or is too long for the OS (even when
       found only on use)
  130  interrupted (Ctrl-C; SIGTERM and SIGHUP on Unix): the socket files,
       broadcast group members, shared-memory channels and service records the
       command created (listen, serve-demo, recv, bench) were removed first";

/// Local IPC from the command line: named pipes, Unix sockets and TCP behind one
/// address syntax.
#[derive(Debug, Parser)]
#[command(name = "ipckit", version, after_help = ADDRESS_HELP)]
struct Cli {
    /// Report progress (the bound address, accepted clients, broadcast deliveries)
    /// on stderr.
    #[arg(short, long, global = true)]
    verbose: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum ShmAction {
    /// Create a region of SIZE bytes, all zero, only the current user can open.
    /// On Unix it stays until `ipckit shm rm`; on Windows, where a mapping lives
    /// only while a process holds it, the command holds it until stdin ends.
    /// An existing NAME is an error: remove it first with `ipckit shm rm`.
    Create {
        name: String,
        #[arg(value_parser = shm::parse_size)]
        size: usize,
    },
    /// Copy stdin into the region at --offset. A region of another user, or
    /// one other users can write to (Unix: its group or others; Windows: its
    /// DACL), is refused unless --allow-foreign is given.
    Write {
        name: String,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Open the region even if another user owns it or other users can
        /// write to it: only for a region shared on purpose.
        #[arg(long)]
        allow_foreign: bool,
    },
    /// Print --len bytes of the region from --offset (default: to the end).
    /// A region of another user, or one other users can write to (Unix: its
    /// group or others; Windows: its DACL), is refused unless --allow-foreign
    /// is given.
    Read {
        name: String,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        #[arg(long)]
        len: Option<usize>,
        /// Open the region even if another user owns it or other users can
        /// write to it: only for a region shared on purpose.
        #[arg(long)]
        allow_foreign: bool,
    },
    /// Remove the region's name (Unix; processes that map it keep it). A NAME
    /// that does not exist is an error.
    Rm { name: String },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Wait for a client and relay stdin/stdout to it, or run an echo server.
    ///
    /// Without --echo, like `nc -l`: accept one client, copy stdin to it and its
    /// bytes to stdout, and exit 0 when the client closes its end of the stream.
    /// At the end of stdin the write half is shut down so the client sees the end
    /// of the stream (Windows named pipes have no half-close: there the client
    /// must close first).
    ///
    /// With --echo, serve concurrent clients, sending every byte back, until
    /// killed; at most --max-connections at once (the others wait), and running
    /// out of file descriptors only pauses accepting (see --max-connections).
    ///
    /// With --message, serve a message channel instead of a byte stream, with the
    /// rules of `ipckit connect --message`: a message per line of stdin, a line of
    /// stdout per message. With --echo too, every message is sent back whole.
    #[command(after_help = concat!(
        "Examples:\n",
        "  ipckit listen pipe:chat                 # talk to one client\n",
        "  ipckit listen --echo -v tcp:127.0.0.1:0 # echo server on a free port\n",
        "  ipckit listen unix:/tmp/in.sock > received.bin\n",
        "  ipckit listen --message --echo pipe:echo  # echo each message back whole\n",
        "  ipckit listen -m --count 1 pipe:inbox < /dev/null  # print one message, exit\n\n",
    ))]
    Listen {
        /// Echo every client's bytes (or messages) back, serving clients
        /// concurrently, until killed.
        #[arg(long)]
        echo: bool,

        /// Carry messages, one per line (see `ipckit connect --help`).
        #[arg(short, long)]
        message: bool,

        /// With --message: print N messages, then stop receiving; exit once stdin
        /// has ended too. An error if the client closes first.
        #[arg(long, value_name = "N", requires = "message", conflicts_with = "echo")]
        count: Option<u64>,

        /// With --message: be a Python multiprocessing.connection.Listener with
        /// this authkey: the client must pass the authkey handshake, then
        /// messages travel as Connection.send_bytes/recv_bytes carry them
        /// (length-prefixed frames; pipe messages on Windows). One client.
        #[arg(
            long,
            value_name = "KEY",
            requires = "message",
            conflicts_with = "echo"
        )]
        authkey: Option<String>,

        /// With --echo: serve at most N clients at once [default: half the
        /// open-file limit, `ulimit -n`; 4096 on Windows]. The server queues:
        /// at the limit it accepts nobody until a client is done, so a new
        /// client's connect succeeds but it is served only then (clients beyond
        /// the listener's backlog are refused by the OS). An accept that fails
        /// for lack of resources (out of file descriptors) never ends the
        /// server: it pauses, 5 ms doubling to 1 s, and goes on; -v reports it.
        #[arg(long, value_name = "N", requires = "echo", value_parser = parse_max_connections)]
        max_connections: Option<usize>,

        #[command(flatten)]
        register: services::RegisterArgs,

        /// Where to listen.
        #[arg(value_name = "ADDR", value_parser = parse_address)]
        addr: Address,
    },

    /// Connect to a listener and relay stdin/stdout to it.
    ///
    /// Like `nc`: copy stdin to the stream and the stream to stdout. At the end of
    /// stdin the write half is shut down (where the transport allows) and the
    /// command keeps reading until the server closes, then exits 0. Windows
    /// named pipes have no half-close, so a server there is never told that
    /// stdin ended: give -q DUR to leave DUR after the end of stdin.
    ///
    /// With --message, open a message channel (a named pipe in message mode on
    /// Windows, a SOCK_SEQPACKET socket on Linux, length-prefixed frames over tcp:)
    /// and carry whole messages: each line of stdin, without its \n or \r\n, is
    /// sent as one message, an empty line as an empty message; each message
    /// received is printed, its bytes unchanged, followed by \n. A message that
    /// itself holds a \n is printed as it is, so the lines no longer tell where
    /// each message ends.
    ///
    /// A message channel cannot be half-closed, and an empty message is data, so
    /// the peer cannot be told that stdin ended: sending stops there, and the
    /// command keeps printing messages until the peer closes the channel, then
    /// exits 0. With --count N it prints N messages, stops receiving, and exits 0
    /// once stdin has ended too (--count 0: send stdin, then exit); the peer
    /// closing before the N-th message is then an error. Two relays whose stdin
    /// has ended wait for each other: give one of them --count.
    #[command(after_help = concat!(
        "Examples:\n",
        "  echo hello | ipckit connect pipe:echo\n",
        "  ipckit connect --retry --timeout 5s unix:/tmp/app.sock < request.json\n",
        "  ipckit connect --timeout 1.5s tcp:127.0.0.1:7000\n",
        "  printf 'one\\n\\nthree\\n' | ipckit connect --message --count 3 pipe:echo\n",
        "  ipckit connect -m --count 0 pipe:inbox < lines.txt  # send, don't wait\n",
        "  ipckit connect -q 2s pipe:legacy-server < request.bin  # nc -q style\n\n",
    ))]
    Connect {
        /// Give up connecting after this long: 500ms, 2s, 1.5s, 1m.
        #[arg(long, value_name = "DUR", value_parser = duration::parse)]
        timeout: Option<Duration>,

        /// Keep trying while nobody listens at the address yet (until --timeout);
        /// for service:NAME, wait until the service registers.
        #[arg(long)]
        retry: bool,

        /// Carry messages, one per line of stdin and of stdout (see --help).
        #[arg(short, long)]
        message: bool,

        /// With --message: print N messages, then stop receiving; exit once stdin
        /// has ended too. An error if the peer closes first.
        #[arg(long, value_name = "N", requires = "message")]
        count: Option<u64>,

        /// After the end of stdin, wait at most DUR for the peer, then exit 0
        /// (as `nc -q`; `-q 0` exits at once). Needed on transports without a
        /// half-close (Windows named pipes, message channels), where the peer
        /// is never told that stdin ended and may keep the channel open.
        #[arg(short = 'q', long = "quit-after", value_name = "DUR", value_parser = duration::parse_or_zero)]
        quit_after: Option<Duration>,

        /// With --message: be a Python multiprocessing.connection.Client with
        /// this authkey: pass the server's authkey handshake, then carry
        /// messages as Connection.send_bytes/recv_bytes do (length-prefixed
        /// frames; pipe messages on Windows), so a keyed Listener is a peer.
        #[arg(long, value_name = "KEY", requires = "message")]
        authkey: Option<String>,

        #[command(flatten)]
        server_user: server_user::ServerUserArg,

        /// Where to connect.
        #[arg(value_name = "ADDR", value_parser = parse_address)]
        addr: Address,
    },

    /// Send messages to a mailslot, or broadcast them to a group.
    ///
    /// Sends MSG as one message or, without MSG, each line of stdin, without its
    /// \n or \r\n, as one message: an empty line is an empty message, and an empty
    /// stdin sends nothing. Nobody receiving at ADDR is an error (exit 1), found
    /// before stdin is read. A message arrives whole or not at all; on Unix a
    /// sender waits while the receiver's queue is full.
    ///
    /// With --broadcast GROUP, each message goes to every receiver on this machine
    /// that joined the group (`ipckit recv --broadcast GROUP`), and the first
    /// argument is MSG. A group nobody has joined reaches nobody, which is not an
    /// error; --verbose reports on stderr, for each message, how many members got
    /// it and how many dead members (receivers killed without leaving) were
    /// removed from the group, and a summary at the end.
    ///
    /// A broadcast never waits for a member: on Unix a member whose queue is full
    /// (it reads too slowly, or not at all) is skipped and loses that message.
    /// Then a summary line on stderr says how many messages were sent and how
    /// many deliveries were skipped to which members, and the command exits 1;
    /// with --best-effort it still prints the line but exits 0.
    #[command(
        override_usage = "ipckit send [OPTIONS] <ADDR> [MSG]\n       \
                          ipckit send [OPTIONS] --broadcast <GROUP> [MSG]",
        after_help = concat!(
            "Examples:\n",
            "  ipckit send mailslot:logs 'service started'\n",
            "  tail -f app.log | ipckit send mailslot:logs  # a message per line\n",
            "  ipckit send -v --broadcast workers reload    # tell every member\n",
            "  tail -f app.log | ipckit send --broadcast --best-effort viewers\n\n",
        ),
    )]
    Send {
        /// Send to every member of this broadcast group instead of to ADDR.
        #[arg(long, value_name = "GROUP")]
        broadcast: Option<String>,

        #[command(flatten)]
        server_user: server_user::ServerUserArg,

        /// With --broadcast: exit 0 even when a member missed messages because
        /// its queue was full (they are still counted on stderr).
        #[arg(long, requires = "broadcast")]
        best_effort: bool,

        /// Where to send (with --broadcast: MSG).
        #[arg(value_name = "ADDR", required_unless_present = "broadcast")]
        addr: Option<OsString>,

        /// The message; without it, each line of stdin is one. On Windows it is
        /// sent as UTF-8.
        #[arg(value_name = "MSG", conflicts_with = "broadcast")]
        msg: Option<OsString>,
    },

    /// Receive messages on a mailslot, or as a member of a broadcast group, and
    /// print them.
    ///
    /// Creates the receiver of ADDR, or with --broadcast GROUP joins the group
    /// (and leaves it at exit), then prints each message, its bytes unchanged,
    /// followed by \n. Without --count and --timeout it runs until killed.
    ///
    /// --count N: exit 0 after the N-th message.
    ///
    /// --timeout DUR: stop when no message came within DUR of the start or of the
    /// previous message. Without --count that is the normal end: exit 0 (drain
    /// until quiet). With --count, stopping before the N-th message is an error:
    /// exit 1.
    ///
    /// A message larger than --max-size is dropped with a warning on stderr and
    /// not counted (Unix; on Windows the sender's send fails instead).
    ///
    /// With --verbose, a line on stderr ("receiving on ADDR", "receiving
    /// broadcasts to group GROUP") tells that the receiver exists and senders can
    /// start.
    #[command(
        group(ArgGroup::new("from").required(true).args(["addr", "broadcast"])),
        after_help = concat!(
            "Examples:\n",
            "  ipckit recv mailslot:logs                    # print messages until killed\n",
            "  ipckit recv --count 1 --timeout 5s mailslot:reply  # one, or fail after 5s\n",
            "  ipckit recv --timeout 500ms mailslot:inbox > drained.txt  # until quiet\n",
            "  ipckit recv --broadcast workers              # join the group\n\n",
        ),
    )]
    Recv {
        /// Join this broadcast group instead of receiving on ADDR.
        #[arg(long, value_name = "GROUP")]
        broadcast: Option<String>,

        /// Exit 0 after N messages.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,

        /// Stop when no message came within DUR of the start or of the previous
        /// message: 500ms, 2s, 1m (see above for the exit code).
        #[arg(long, value_name = "DUR", value_parser = duration::parse)]
        timeout: Option<Duration>,

        /// The largest message accepted [default: 64 MiB].
        #[arg(long, value_name = "BYTES",
              value_parser = clap::value_parser!(u32).range(1..))]
        max_size: Option<u32>,

        /// Where to receive: mailslot:NAME (on Unix also unix:/path or @NAME).
        #[arg(value_name = "ADDR", value_parser = parse_address)]
        addr: Option<Address>,

        #[command(flatten)]
        register: services::RegisterArgs,
    },

    /// Create, write, read and remove named shared-memory regions.
    ///
    /// NAME is `shm:NAME` or `NAME`: the POSIX object `/NAME` on Unix (as Python's
    /// `multiprocessing.shared_memory` names it), the mapping `Local\NAME` on
    /// Windows. For a message channel through shared memory, use
    /// `ipckit listen shm:NAME` and `ipckit connect shm:NAME`.
    #[command(after_help = concat!(
        "Examples:\n",
        "  ipckit shm create status 4096\n",
        "  printf ready | ipckit shm write status --offset 0\n",
        "  ipckit shm read status --len 5      # prints: ready\n",
        "  ipckit shm rm status\n",
        "  ipckit listen --echo shm:fast & ipckit connect shm:fast  # a channel\n\n",
    ))]
    Shm {
        #[command(subcommand)]
        action: ShmAction,
    },

    /// Run a child with a channel and bridge it to stdin/stdout, a message per line.
    ///
    /// Starts CMD with ARGS and an inherited channel, like Node's
    /// child_process.fork: each line of stdin, without its \n or \r\n, is sent
    /// to the child as one message, and each message from the child is printed
    /// followed by \n. The child's own stdout goes to stderr; its stdin is empty.
    ///
    /// --serialization json (the default) is Node's: the channel is the
    /// descriptor in NODE_CHANNEL_FD, with NODE_CHANNEL_SERIALIZATION_MODE=json,
    /// one JSON value per line, so an unmodified Node child that uses
    /// process.send and process.on('message') works. A line of stdin that is not
    /// JSON is reported on stderr and not sent; so is a line from the child that
    /// is not JSON, and the bridge goes on.
    ///
    /// --serialization messages is ipckit's own channel (IPCKIT_CHANNEL): whole
    /// messages of any bytes, for a child that calls ipckit's parent_channel().
    ///
    /// At the end of stdin the channel stays open for the child's replies,
    /// which are all printed, in order; it is closed (a Node child sees
    /// 'disconnect') once the child has sent nothing for --linger, or earlier
    /// when the child closes it or exits. A reply that takes longer than
    /// --linger after the previous one is lost: raise --linger for slow
    /// children. The command exits when the child has closed the channel and
    /// exited: 0 if it succeeded and every message from it was printed, 1
    /// otherwise (a message cut short by the child's end, or a line that is
    /// not JSON, is reported on stderr and makes the exit 1).
    #[command(after_help = concat!(
        "Examples:\n",
        "  echo '{\"job\": 1}' | ipckit spawn -- node worker.js\n",
        "  ipckit spawn -v -- node child.js < requests.jsonl > replies.jsonl\n",
        "  ipckit spawn --serialization messages -- ./my-rust-child --serve\n\n",
    ))]
    Spawn {
        /// How messages travel: json (Node's) or messages (ipckit's).
        #[arg(long, value_name = "S", default_value = "json", value_parser = parse_serialization)]
        serialization: ipckit::child::Serialization,

        /// After the end of stdin, close the channel once the child has been
        /// quiet this long (checked every DUR, so it may be up to twice that).
        /// On every OS.
        #[arg(long, value_name = "DUR", default_value = "1s", value_parser = duration::parse)]
        linger: std::time::Duration,

        /// The program to run and its arguments (after --).
        #[arg(
            value_name = "CMD",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        cmd: Vec<OsString>,
    },

    /// Measure real inter-process round trips and throughput on every transport.
    ///
    /// For each stream transport this OS has, this process binds a listener and
    /// echoes, and a child process (this same binary) connects, times round trips,
    /// sends a bulk transfer and checks every byte that comes back; the server
    /// checks a checksum of everything it received. A shared-memory channel
    /// (shm:) does the same with messages, and a mailslot carries --rounds
    /// messages one way from the child, each checked. Nothing is left behind.
    /// Exits 0 only if every transport passed.
    #[command(after_help = concat!(
        "Examples:\n",
        "  ipckit demo\n",
        "  ipckit demo --rounds 5000 --size 1024 --bulk-mib 64\n\n",
    ))]
    Demo {
        /// Round trips per transport [default: 1000; 200 under Wine].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        rounds: Option<u32>,

        /// Bytes per round trip, at most 64 KiB: a round trip writes all of them
        /// before reading the echo, so they must fit in the transport's buffers.
        #[arg(long, value_name = "BYTES", default_value_t = 64,
              value_parser = clap::value_parser!(u32).range(1..=64 * 1024))]
        size: u32,

        /// MiB echoed in the bulk transfer.
        #[arg(long, value_name = "MIB", default_value_t = 4,
              value_parser = clap::value_parser!(u32).range(1..=4096))]
        bulk_mib: u32,
    },

    /// List the IPC endpoints on this machine: sockets, pipes, mailslots, shared memory.
    ///
    /// Unix: the entries of ipckit's per-user directory (portable names, mailslot
    /// receivers, broadcast groups and their members); on Linux also every
    /// listening Unix socket from /proc/net/unix (its path or @abstract name, and
    /// the owning process where /proc/PID/fd can be read) and ipckit's
    /// shared-memory channels in /dev/shm. A socket file that nothing is bound to
    /// is marked stale (its listener died without removing it; binding the name
    /// again replaces it), and so is a channel whose creator has exited.
    ///
    /// Windows: the entries of \\.\pipe\ and the members of ipckit's mailslot
    /// broadcast groups, each checked by opening its mailslot. Windows has no list
    /// of plain mailslots, so `mailslot:NAME` receivers are not shown.
    ///
    /// SERVICE shows the names under which a live process registered the
    /// endpoint's address (`--register`; see `ipckit services`).
    #[command(after_help = concat!(
        "Examples:\n",
        "  ipckit ls\n",
        "  ipckit ls --json | jq '.[] | select(.state == \"stale\")'\n\n",
    ))]
    Ls {
        /// Print a JSON array of {kind, address, state, pid, process, path,
        /// service}.
        #[arg(long)]
        json: bool,
    },

    /// Measure latency, message rate and throughput of every transport, against its bare loop.
    ///
    /// For each transport (default: all of them on this OS) this process binds
    /// the endpoint and a peer process (this same binary) connects. For the first
    /// half of --duration it times round trips of --size bytes into an HDR
    /// histogram (p50, p99, p999), checking every echo; for the second half it
    /// sends messages one way as fast as the transport takes them (message rate
    /// and throughput). Each transport's baseline runs in the same run, and its
    /// median and message rate are shown as ratios to it: the bare loop of the
    /// mechanism it runs on (std's stream for `stream`, a raw SOCK_SEQPACKET
    /// socket for `message` on Linux and FreeBSD, two bare shared-memory rings
    /// for `shm`, std's TCP for `tcp`). A
    /// plain-std stream always runs too (std's UnixStream on Unix; std's
    /// TcpStream on 127.0.0.1 on Windows, as std has no named pipes), and every
    /// median is also shown over its. --pin same|split puts both processes on
    /// one CPU, or one each (Linux and FreeBSD). A progress bar is drawn on
    /// stderr when it is a terminal. Exits 1 if any transport failed (its row
    /// says why).
    #[command(after_help = concat!(
        "Transports: std (std's stream), stream, seqpacket (bare), message, datagram,\n",
        "ring (bare), shm, std-tcp (bare), tcp\n\n",
        "Examples:\n",
        "  ipckit bench\n",
        "  ipckit bench stream shm --size 4096 --duration 2s\n",
        "  ipckit bench message --pin split\n",
        "  ipckit bench --json --duration 500ms > bench.json\n",
        "  ipckit bench --plot latency.svg\n\n",
    ))]
    Bench(bench::Args),

    /// The peer half of `ipckit bench` (run by the bench as a child process).
    #[command(name = "__bench-peer", hide = true)]
    BenchPeer {
        transport: String,
        addr: String,
        size: usize,
        reply: Option<String>,
        /// The CPU to run on (`ipckit bench --pin`).
        #[arg(long)]
        cpu: Option<usize>,
    },

    /// Call a JSON-RPC 2.0 method and print its result as JSON.
    ///
    /// Connects to ADDR, calls METHOD with PARAMS_JSON (an array or an object;
    /// none if left out), prints the result as one line of JSON on stdout and
    /// exits 0. A JSON-RPC error from the server is printed as one line on
    /// stderr, with its code, and exits 1; so does a failure to connect or a
    /// timeout. Usage errors (bad JSON, bad options) exit 2.
    ///
    /// The framing (--framing) must be the server's: length-prefix (the 4-byte
    /// big-endian length of Python's multiprocessing.connection, the default),
    /// content-length (LSP's headers) or message (an ipckit message channel).
    /// With --authkey the connection first passes multiprocessing's authkey
    /// handshake, so a Python multiprocessing.connection.Listener can be called.
    #[command(after_help = concat!(
        "Examples:\n",
        "  ipckit call pipe:rpc-demo add '[2, 3]'          # prints 5\n",
        "  ipckit call --timeout 2s pipe:rpc-demo sleep '[500]'\n",
        "  ipckit call --authkey secret unix:/tmp/py.sock echo '{\"a\": 1}'\n\n",
    ))]
    Call {
        /// Give up when the whole call takes longer (connecting, the authkey
        /// handshake and the response together): 500ms, 2s, 1m.
        #[arg(long, value_name = "DUR", value_parser = duration::parse)]
        timeout: Option<Duration>,

        #[command(flatten)]
        conn: rpc::ConnArgs,

        #[command(flatten)]
        server_user: server_user::ServerUserArg,

        /// Where the server listens.
        #[arg(value_name = "ADDR", value_parser = parse_address)]
        addr: Address,

        /// The method to call.
        #[arg(value_name = "METHOD")]
        method: String,

        /// The params: a JSON array or object.
        #[arg(value_name = "PARAMS_JSON", value_parser = rpc::parse_params)]
        params: Option<serde_json::Value>,
    },

    /// Serve a few JSON-RPC 2.0 methods to try `ipckit call` (or any client) on.
    ///
    /// The methods: echo (returns its params), add (takes [a, b], integers),
    /// sleep (takes [ms], returns ms after that long; calls run concurrently, so
    /// a short sleep called after a long one returns first). Serves any number
    /// of clients until killed. With --authkey every client must pass
    /// multiprocessing.connection's authkey handshake, so a Python
    /// multiprocessing.connection.Client(ADDR, authkey=b"KEY") can call it.
    /// --verbose reports the address and clients that fail. Ctrl-C (SIGTERM,
    /// SIGHUP) removes its socket file and exits 130.
    #[command(after_help = concat!(
        "Examples:\n",
        "  ipckit serve-demo pipe:rpc-demo\n",
        "  ipckit serve-demo --authkey secret unix:/tmp/rpc.sock  # for Python\n",
        "  ipckit serve-demo -v --framing content-length tcp:127.0.0.1:0\n\n",
    ))]
    ServeDemo {
        #[command(flatten)]
        conn: rpc::ConnArgs,

        /// Serve at most N clients at once [default: half the open-file limit,
        /// `ulimit -n`; 4096 on Windows]. The server queues: at the limit it
        /// accepts nobody until a client disconnects, so a new client's connect
        /// succeeds but its calls are answered only then. An accept that fails
        /// for lack of resources (out of file descriptors) never ends the
        /// server: it pauses, 5 ms doubling to 1 s, and goes on; -v reports it.
        #[arg(long, value_name = "N", value_parser = parse_max_connections)]
        max_connections: Option<usize>,

        #[command(flatten)]
        register: services::RegisterArgs,

        /// Where to listen.
        #[arg(value_name = "ADDR", value_parser = parse_address)]
        addr: Address,
    },

    /// List the services registered in the per-user service registry.
    ///
    /// One line per live instance: NAME, ADDRESS, KIND (stream, message, rpc,
    /// shm, mailslot), PID and PROCESS of its owner, STATE (live: the address
    /// answers; not answering: its owner runs but nothing serves the address;
    /// unknown: it cannot be told without connecting) and METADATA. A record
    /// whose owner has exited is never shown. Records that are not the user's
    /// own, or cannot be read, are skipped with a warning on stderr.
    #[command(after_help = concat!(
        "Examples:\n",
        "  ipckit listen --echo --register billing --meta version=2 pipe:billing-1 &\n",
        "  ipckit services\n",
        "  ipckit services --json | jq '.[] | select(.name == \"billing\")'\n\n",
    ))]
    Services {
        /// Print a JSON array of {name, address, kind, pid, process, metadata,
        /// state, record}.
        #[arg(long)]
        json: bool,
    },

    /// Wait until ADDR answers: exit 0 as soon as it does, 1 at the timeout.
    ///
    /// For scripts that start a server and must wait for it. ADDR is any
    /// address, or service:NAME: then the wait is woken by the registration
    /// itself (the registry's change notification, not polling), and ends once
    /// the registered address answers. Whether an address answers is told
    /// without taking a connection where that would be a server's only client
    /// (a listening socket, free pipe instances, a live shared-memory channel,
    /// a mailslot that opens); a tcp: address is connected to and closed.
    /// Other addresses are checked every 20 ms.
    #[command(after_help = concat!(
        "Examples:\n",
        "  ipckit serve-demo --register calc pipe:calc & ipckit wait --timeout 5s service:calc\n",
        "  ipckit wait --timeout 10s tcp:127.0.0.1:7000 && ./client\n\n",
    ))]
    Wait {
        /// Give up after this long (exit 1): 500ms, 2s, 1m.
        #[arg(long, value_name = "DUR", value_parser = duration::parse)]
        timeout: Duration,

        /// What to wait for: service:NAME or any address.
        #[arg(value_name = "ADDR", value_parser = parse_address)]
        addr: Address,
    },

    /// The client half of `ipckit demo` (run by the demo as a child process).
    #[command(name = "__demo-peer", hide = true)]
    DemoPeer {
        #[arg(value_parser = parse_address)]
        addr: Address,
        rounds: u32,
        size: u32,
        bulk: u64,
    },
}

fn parse_serialization(text: &str) -> Result<ipckit::child::Serialization, String> {
    match text {
        "json" => Ok(ipckit::child::Serialization::Json),
        "messages" => Ok(ipckit::child::Serialization::Messages),
        _ => Err("expected json or messages".into()),
    }
}

fn parse_address(text: &str) -> Result<Address, ipckit::Error> {
    text.parse()
}

/// --max-connections N: a whole number of at least 1.
fn parse_max_connections(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("a server limited to 0 connections would serve nobody: give 1 or more".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number of connections: {e}")),
    }
}

/// Sorts out `send`'s arguments: with --broadcast its first argument is MSG.
/// ADDR is checked here, not by clap, for that reason; a bad one is a usage error.
fn send_args(
    broadcast: Option<String>,
    first: Option<OsString>,
    second: Option<OsString>,
) -> Result<(mailslot::Target, Option<OsString>), clap::Error> {
    use clap::error::ErrorKind;
    if let Some(group) = broadcast {
        // clap refuses a second argument with --broadcast.
        return Ok((mailslot::Target::Group(group), first));
    }
    let Some(text) = first else {
        return Err(send_usage_error(
            ErrorKind::MissingRequiredArgument,
            "ADDR or --broadcast GROUP is required",
        ));
    };
    let addr = text
        .to_str()
        .ok_or_else(|| {
            send_usage_error(
                ErrorKind::InvalidUtf8,
                format!("invalid value {text:?} for '<ADDR>': it is not UTF-8"),
            )
        })?
        .parse()
        .map_err(|err| {
            send_usage_error(
                ErrorKind::ValueValidation,
                format!("invalid value {text:?} for '<ADDR>': {err}"),
            )
        })?;
    Ok((mailslot::Target::Addr(addr), second))
}

/// A usage error of `ipckit send`, shown with its usage like clap's own.
fn send_usage_error(kind: clap::error::ErrorKind, message: impl fmt::Display) -> clap::Error {
    usage_error("send", kind, message)
}

/// A usage error of the subcommand `name` found after parsing, shown with its
/// usage like clap's own.
fn usage_error(
    name: &str,
    kind: clap::error::ErrorKind,
    message: impl fmt::Display,
) -> clap::Error {
    let mut cli = Cli::command();
    cli.build();
    match cli.find_subcommand_mut(name) {
        Some(sub) => sub.error(kind, message),
        None => cli.error(kind, message),
    }
}

/// Stdout was closed by its reader. Not a failure: the reader has what it wanted.
#[derive(Debug)]
pub(crate) struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Maps a failed write to stdout: a closed pipe becomes [`StdoutClosed`].
pub(crate) fn stdout_error(err: io::Error) -> anyhow::Error {
    if err.kind() == io::ErrorKind::BrokenPipe {
        anyhow::Error::new(StdoutClosed)
    } else {
        anyhow::Error::new(err).context("write to stdout")
    }
}

/// The error and its causes on one line, joined by ": ". A cause whose text the
/// line already ends with is not repeated (ipckit's errors show their OS error in
/// their own message and also return it as their source).
pub(crate) fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || line.ends_with(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line.replace(['\r', '\n'], " ")
}

/// The `-v` line of a server that is ready: `listening on ADDR` (or `receiving
/// on ADDR`), then, for a name whose place on this OS its text does not show,
/// a second line with that place (`pipe:app is /run/user/1000/ipckit/app.sock`),
/// which is what a foreign peer must be given.
pub(crate) fn report_ready(what: &str, addr: &ipckit::Address) {
    eprintln!("{what} on {addr}");
    if let Ok(place) = addr.os_name()
        && place != addr.to_string()
        && !matches!(
            addr,
            Address::UnixPath(_) | Address::Tcp { .. } | Address::Abstract(_)
        )
    {
        eprintln!("{addr} is {place}");
    }
}

/// Binds a server endpoint of `addr` with `bind` and makes it known: removed
/// on Ctrl-C/SIGTERM/SIGHUP (a signal during the bind waits for this),
/// registered as a service with `--register`, and reported under `-v`.
pub(crate) fn serve_at<L>(
    addr: &Address,
    kind: ipckit::registry::Kind,
    verbose: bool,
    bind: impl FnOnce() -> Result<L>,
    local_addr: impl Fn(&L) -> &Address,
) -> Result<L> {
    let pending = cleanup::pending();
    let server = bind()?;
    pending.socket_of(addr);
    services::registered(local_addr(&server), kind, verbose)?;
    if verbose {
        report_ready("listening", local_addr(&server));
    }
    Ok(server)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Listen {
            echo,
            message,
            count,
            authkey,
            max_connections,
            register,
            addr,
        } => {
            services::will_register(register);
            if let Some(key) = authkey {
                return keyed::listen(&addr, key.as_bytes(), count, cli.verbose);
            }
            // A shared-memory channel carries messages only.
            if message || matches!(addr, Address::Shm(_)) {
                message::listen(&addr, echo, count, max_connections, cli.verbose)
            } else {
                relay::listen(&addr, echo, max_connections, cli.verbose)
            }
        }
        Command::Connect {
            timeout,
            retry,
            message,
            count,
            quit_after,
            authkey,
            server_user,
            addr,
        } => {
            let mut opts = ConnectOptions::new();
            server_user.apply(&mut opts);
            opts.retry_not_found(retry);
            if let Some(timeout) = timeout {
                opts.timeout(timeout);
            }
            // service:NAME may name a shared-memory channel; otherwise the
            // library tries each live instance in turn.
            let found = services::resolve(&addr, retry, timeout)?;
            let addr = if matches!(found, Address::Shm(_)) {
                found
            } else {
                addr
            };
            if let Some(key) = authkey {
                return keyed::connect(
                    &opts,
                    &addr,
                    key.as_bytes(),
                    count,
                    quit_after,
                    cli.verbose,
                );
            }
            if message || matches!(addr, Address::Shm(_)) {
                message::connect(&opts, &addr, count, quit_after, cli.verbose)
            } else {
                relay::connect(&opts, &addr, quit_after, cli.verbose)
            }
        }
        Command::Send {
            broadcast,
            server_user,
            best_effort,
            addr,
            msg,
        } => {
            if broadcast.is_some() && server_user.is_set() {
                return Err(send_usage_error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--server-user cannot be used with --broadcast: a group's members are \
                     checked through the private runtime directory they live in",
                )
                .into());
            }
            let (to, msg) = send_args(broadcast, addr, msg)?;
            let msg = msg.as_deref().map(std::ffi::OsStr::as_encoded_bytes);
            let mut opts = ConnectOptions::new();
            server_user.apply(&mut opts);
            mailslot::send(&opts, &to, msg, best_effort, cli.verbose)
        }
        Command::Recv {
            broadcast,
            count,
            timeout,
            max_size,
            addr,
            register,
        } => {
            if broadcast.is_some() && register.register.is_some() {
                return Err(usage_error(
                    "recv",
                    clap::error::ErrorKind::ArgumentConflict,
                    "--register cannot be used with --broadcast: a group has no address to register",
                )
                .into());
            }
            services::will_register(register);
            let from = match (addr, broadcast) {
                (Some(addr), _) => mailslot::Target::Addr(addr),
                (None, Some(group)) => mailslot::Target::Group(group),
                (None, None) => anyhow::bail!("recv needs ADDR or --broadcast GROUP"),
            };
            let args = mailslot::Recv {
                from,
                count,
                timeout,
                max_size: max_size.map(|n| n as usize),
            };
            mailslot::recv(&args, cli.verbose)
        }
        Command::Shm { action } => match action {
            ShmAction::Create { name, size } => shm::create(&name, size, cli.verbose),
            ShmAction::Write {
                name,
                offset,
                allow_foreign,
            } => shm::write(&name, offset, allow_foreign),
            ShmAction::Read {
                name,
                offset,
                len,
                allow_foreign,
            } => shm::read(&name, offset, len, allow_foreign),
            ShmAction::Rm { name } => shm::remove(&name),
        },
        Command::Spawn {
            serialization,
            linger,
            cmd,
        } => spawn::run(serialization, linger, &cmd, cli.verbose),
        Command::Demo {
            rounds,
            size,
            bulk_mib,
        } => demo::run(demo::Settings {
            rounds: rounds.unwrap_or_else(demo::default_rounds),
            size,
            bulk: u64::from(bulk_mib) << 20,
        }),
        Command::Call {
            timeout,
            conn,
            server_user,
            addr,
            method,
            params,
        } => rpc::call(
            &rpc::Call {
                addr: &addr,
                method: &method,
                params,
                conn: &conn,
                server_user: &server_user,
                timeout,
            },
            cli.verbose,
        ),
        Command::ServeDemo {
            conn,
            max_connections,
            register,
            addr,
        } => {
            services::will_register(register);
            rpc::serve_demo(&addr, &conn, max_connections, cli.verbose)
        }
        Command::Services { json } => services::run(json),
        Command::Wait { timeout, addr } => wait::run(&addr, timeout, cli.verbose),
        Command::DemoPeer {
            addr,
            rounds,
            size,
            bulk,
        } => demo::peer(&addr, rounds, size, bulk),
        Command::Ls { json } => ls::run(json),
        Command::Bench(args) => bench::run(args),
        Command::BenchPeer {
            transport,
            addr,
            size,
            reply,
            cpu,
        } => bench::peer(&transport, &addr, size, reply.as_deref(), cpu),
    }
}

/// The exit code of a usage error, clap's.
const USAGE: u8 = 2;

/// Whether `err` is a text on the command line that names nothing valid (a
/// group or region name found bad only when it is used, a name too long for
/// the OS), also when ipckit-rpc carries the ipckit error (`serve-demo`,
/// `call`).
fn is_usage_error(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let lib = cause
            .downcast_ref::<ipckit::Error>()
            .or_else(|| {
                cause
                    .downcast_ref::<io::Error>()
                    .and_then(|io| io.get_ref())
                    .and_then(|inner| inner.downcast_ref::<ipckit::Error>())
            })
            .or_else(|| {
                cause
                    .downcast_ref::<ipckit_rpc::Error>()
                    .and_then(ipckit_rpc::Error::ipckit_error)
            });
        lib.is_some_and(|e| e.kind() == ipckit::ErrorKind::InvalidAddress)
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version land here too, with exit code 0. If stdout is
            // closed under them there is nothing left to do.
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    cleanup::install();
    let result = run(cli);
    services::unregister();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<StdoutClosed>() => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<clap::Error>() {
            // A usage error found after parsing (`send`'s ADDR): shown as clap's are.
            Some(usage) => {
                let _ = usage.print();
                ExitCode::from(u8::try_from(usage.exit_code()).unwrap_or(2))
            }
            None => {
                let _ = writeln!(io::stderr(), "ipckit: {}", one_line(&err));
                if is_usage_error(&err) {
                    ExitCode::from(USAGE)
                } else {
                    ExitCode::FAILURE
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn one_line_joins_causes_without_repeating_them() {
        let os = io::Error::new(io::ErrorKind::NotFound, "no such file");
        let err = anyhow::Error::new(os).context("connect to pipe:x");
        assert_eq!(one_line(&err), "connect to pipe:x: no such file");

        // ipckit's Error shows its source in its own text: not shown twice.
        let lib = ipckit::Stream::connect("unix:/nonexistent/ipckit-cli-test.sock").unwrap_err();
        let err = anyhow::Error::new(lib);
        let line = one_line(&err);
        assert!(line.contains("unix:/nonexistent/"), "{line}");
        if let Some(source) = err.chain().nth(1) {
            assert_eq!(line.matches(&source.to_string()).count(), 1, "{line}");
        }
    }

    #[test]
    fn one_line_flattens_newlines() {
        let err = Err::<(), _>(anyhow::anyhow!("first\nsecond"))
            .context("outer")
            .unwrap_err();
        assert_eq!(one_line(&err), "outer: first second");
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
