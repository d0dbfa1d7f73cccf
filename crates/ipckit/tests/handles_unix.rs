//! The descriptors of ipckit's types (`ipckit::os::unix`): `AsFd`/`AsRawFd`
//! hand out the socket itself, so poll(2) sees what the type will read, and
//! `From<OwnedFd>` adopts a connected socket that another library made. A
//! case that both faces have is written once (`fn case<F: Face>`) and run
//! for each (`case::blocking`, `case::tokio`).
#![cfg(unix)]

#[path = "util/faces.rs"]
mod faces;
#[path = "util/tokio.rs"]
mod tokio_util;
mod util;

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use faces::{Face, both_faces};
use ipckit::os::unix::MessageStreamExt;
use ipckit::{
    Address, ErrorKind, Listener, MailslotSender, MessageListener, MessageStream, Stream,
};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType, sockopt};
use util::{unique_name, watchdog};

const LIMIT: Duration = Duration::from_secs(30);

/// Whether `fd` is readable within `ms` milliseconds, by poll(2).
fn readable(fd: impl AsFd, ms: i64) -> bool {
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    };
    poll(&mut fds, Some(&timeout)).unwrap() == 1 && fds[0].revents().contains(PollFlags::IN)
}

fn streams_and_listeners_lend_the_socket_that_poll_waits_on<F: Face>()
where
    F::Listener: AsFd + AsRawFd,
    F::Stream: AsFd + AsRawFd,
{
    let face = F::NAME;
    for addr in [
        format!("pipe:{}", unique_name("fd")),
        "tcp:127.0.0.1:0".to_owned(),
    ] {
        let listener = F::bind(&addr);
        let addr = F::local_addr(&listener);
        assert!(
            !readable(&listener, 0),
            "{face} {addr}: nobody connected yet"
        );
        let mut client = F::connect(&addr);
        // The listener's socket turns readable once a client waits.
        assert!(readable(&listener, 10_000), "{face} {addr}: a client waits");
        let mut server = F::accept(&listener);
        assert!(!readable(&client, 0), "{face} {addr}: nothing sent yet");
        F::write_all(&mut server, b"ping");
        assert!(
            readable(&client, 10_000),
            "{face} {addr}: the bytes are there"
        );
        assert_eq!(F::read_exact(&mut client, 4), b"ping");
        assert!(!readable(&client, 0), "{face} {addr}: taken");
        // The raw descriptor is the same socket, and it is a stream one.
        assert_eq!(client.as_raw_fd(), client.as_fd().as_raw_fd());
        assert_eq!(listener.as_raw_fd(), listener.as_fd().as_raw_fd());
        assert_eq!(sockopt::socket_type(&client).unwrap(), SocketType::STREAM);
        assert_ne!(client.as_raw_fd(), server.as_raw_fd());
    }
}

both_faces!(
    streams_and_listeners_lend_the_socket_that_poll_waits_on,
    crate::LIMIT
);

#[test]
fn a_connected_unix_socket_is_adopted_with_its_peers_name() {
    watchdog(LIMIT, || {
        let addr = format!("pipe:{}", unique_name("adopt"));
        let listener = Listener::bind(addr.as_str()).unwrap();
        let path = ipckit::platform::socket_file(&addr.parse().unwrap()).unwrap();
        // Made by std, handed over as an OwnedFd.
        let std_client = UnixStream::connect(&path).unwrap();
        let mut client = Stream::from(OwnedFd::from(std_client));
        assert_eq!(client.peer_addr(), &Address::UnixPath(path.clone()));
        let mut server = listener.accept().unwrap();
        client.write_all(b"adopted").unwrap();
        let mut got = [0; 7];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"adopted");
        // ipckit's own calls work on it: the deadline, the peer's credentials.
        client
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let err = client.read(&mut got).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        let creds = client.peer_credentials().unwrap();
        assert_eq!(creds.pid, Some(std::process::id()));
    });
}

#[test]
fn a_socketpair_end_and_a_tcp_connection_are_adopted() {
    watchdog(LIMIT, || {
        let (a, b) = UnixStream::pair().unwrap();
        let mut ours = Stream::from(OwnedFd::from(a));
        assert_eq!(ours.peer_addr().to_string(), "unix:", "no name to report");
        let mut theirs = b;
        ours.write_all(b"pair").unwrap();
        let mut got = [0; 4];
        theirs.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pair");

        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        let std_client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut client = Stream::from(OwnedFd::from(std_client));
        assert_eq!(
            client.peer_addr(),
            &Address::Tcp {
                host: "127.0.0.1".into(),
                port
            }
        );
        let (mut server, _) = tcp.accept().unwrap();
        client.write_all(b"tcp").unwrap();
        let mut got = [0; 3];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"tcp");
        // A TCP stream has no local peer: the TCP path is taken, not the Unix one.
        let err = client.peer_credentials().unwrap_err();
        assert!(err.to_string().contains("TCP"), "{err}");
    });
}

fn mailslot_ends_lend_their_datagram_sockets<F: Face>()
where
    F::MailslotReceiver: AsFd + AsRawFd,
{
    let face = F::NAME;
    let addr = format!("mailslot:{}", unique_name("fd-ms"));
    let inbox = F::bind_mailslot(&addr);
    let sender = MailslotSender::connect(addr.as_str()).unwrap();
    assert_eq!(sockopt::socket_type(&inbox).unwrap(), SocketType::DGRAM);
    assert_eq!(sockopt::socket_type(&sender).unwrap(), SocketType::DGRAM);
    assert!(!readable(&inbox, 0), "{face}: nothing sent yet");
    sender.send(b"hello").unwrap();
    assert!(readable(&inbox, 10_000), "{face}: the datagram is queued");
    assert_eq!(F::recv_mailslot(&inbox), b"hello");
    assert!(!readable(&inbox, 0), "{face}: taken");
    assert_eq!(inbox.as_raw_fd(), inbox.as_fd().as_raw_fd());
    assert_ne!(inbox.as_raw_fd(), sender.as_raw_fd());
}

both_faces!(mailslot_ends_lend_their_datagram_sockets, crate::LIMIT);

/// The socket type of this OS's message channels.
fn message_socket() -> SocketType {
    if cfg!(target_os = "macos") {
        SocketType::STREAM
    } else {
        SocketType::SEQPACKET
    }
}

fn message_listeners_lend_their_socket_and_message_streams_say_whether_they_have_one<F: Face>()
where
    F::MessageListener: AsFd + AsRawFd,
    F::MessageStream: MessageStreamExt,
{
    let face = F::NAME;
    for (listener, addr) in F::message_listeners("fd-msg") {
        assert!(
            !readable(&listener, 0),
            "{face} {addr}: nobody connected yet"
        );
        let connecting = F::connect_message(&addr);
        // The listening socket (for shm:, the rendezvous) turns readable.
        assert!(readable(&listener, 10_000), "{face} {addr}: a client waits");
        let server = F::accept_message(&listener);
        let client = connecting();
        assert_eq!(listener.as_raw_fd(), listener.as_fd().as_raw_fd());
        let Some(fd) = client.try_as_fd() else {
            assert!(
                addr.starts_with("shm:"),
                "{face} {addr}: a socket channel has one"
            );
            assert!(
                server.try_as_fd().is_none(),
                "{face} {addr}: nor the server's end"
            );
            continue;
        };
        assert!(
            !addr.starts_with("shm:"),
            "{face} {addr}: a region has no descriptor"
        );
        let kind = sockopt::socket_type(fd).unwrap();
        if addr.starts_with("tcp:") {
            assert_eq!(kind, SocketType::STREAM, "{face} {addr}");
        } else {
            assert_eq!(kind, message_socket(), "{face} {addr}");
        }
        // Both ends of one connection: the same kind, another descriptor.
        // The server's end is polled: the client's may hold ipckit's
        // greeting already.
        let theirs = server.try_as_fd().unwrap();
        assert_eq!(sockopt::socket_type(theirs).unwrap(), kind, "{face} {addr}");
        assert_ne!(theirs.as_raw_fd(), fd.as_raw_fd(), "{face} {addr}");
        assert!(!readable(theirs, 0), "{face} {addr}: nothing sent yet");
        F::send(&client, b"ping");
        assert!(
            readable(theirs, 10_000),
            "{face} {addr}: the message is there"
        );
        assert_eq!(
            F::recv(&server).as_deref(),
            Some(&b"ping"[..]),
            "{face} {addr}"
        );
        // The descriptor stays valid while the channel is used from both sides.
        assert_eq!(sockopt::socket_type(theirs).unwrap(), kind, "{face} {addr}");
    }
}

both_faces!(
    message_listeners_lend_their_socket_and_message_streams_say_whether_they_have_one,
    crate::LIMIT
);

#[test]
fn a_connected_message_socket_is_adopted_as_a_foreign_peer() {
    watchdog(LIMIT, || {
        let addr = format!("pipe:{}", unique_name("adopt-msg"));
        let listener = MessageListener::bind(addr.as_str()).unwrap();
        let path = ipckit::platform::socket_file(&addr.parse().unwrap()).unwrap();
        // A message socket made outside ipckit, handed over as an OwnedFd.
        let sock = rustix::net::socket_with(
            AddressFamily::UNIX,
            message_socket(),
            SocketFlags::empty(), // CLOEXEC is not a socket() flag on macOS; a test needs none
            None,
        )
        .unwrap();
        rustix::net::connect(&sock, &SocketAddrUnix::new(&path).unwrap()).unwrap();
        let client = MessageStream::from(sock);
        assert_eq!(client.peer_addr(), &Address::UnixPath(path.clone()));
        let server = listener.accept().unwrap();
        client.send(b"adopted").unwrap();
        assert_eq!(server.recv().unwrap().as_deref(), Some(&b"adopted"[..]));
        server.send(b"back").unwrap();
        assert_eq!(client.recv().unwrap().as_deref(), Some(&b"back"[..]));
        let creds = client.peer_credentials().unwrap();
        assert_eq!(creds.pid, Some(std::process::id()));
        if cfg!(target_os = "linux") {
            // Taken for foreign: a message too large for one record is refused,
            // never sent as an ipckit-private memfd record.
            let err = client.send(&vec![7; 16 << 20]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::FrameTooLarge, "{err}");
        }
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(
            MessageStream::from(OwnedFd::from(a))
                .peer_addr()
                .to_string(),
            "unix:",
            "no name to report"
        );
    });
}

/// A child that writes one JSON line on its channel (`NODE_CHANNEL_FD`, a
/// stream socket) and then waits for its stdin to end. bash: dash redirects
/// only descriptors 0 to 9, and a channel's may be higher.
fn json_child() -> std::process::Command {
    let mut cmd = std::process::Command::new("bash");
    cmd.args([
        "-c",
        "printf '{\"hi\":1}\\n' >&\"$NODE_CHANNEL_FD\"; read -r _",
    ])
    .stdin(std::process::Stdio::piped());
    cmd
}

fn child_channels_lend_their_socket<F: Face>()
where
    F::ChildChannel: AsFd + AsRawFd,
{
    use ipckit::child::{ChannelOptions, Serialization};
    let face = F::NAME;
    // ipckit's messages: a message socket, whatever the child runs.
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "read -r _"])
        .stdin(std::process::Stdio::piped());
    let (child, channel) = F::spawn(&ChannelOptions::new(), cmd);
    assert_eq!(
        sockopt::socket_type(&channel).unwrap(),
        message_socket(),
        "{face}: a messages channel"
    );
    assert_eq!(channel.as_raw_fd(), channel.as_fd().as_raw_fd());
    assert!(!readable(&channel, 0), "{face}: the child said nothing");
    F::end(child);
    assert!(
        readable(&channel, 10_000),
        "{face}: the end of the channel is readable"
    );
    assert_eq!(F::child_recv(&channel), None);

    // Node's JSON lines: a stream socket, readable once the child wrote.
    let mut opts = ChannelOptions::new();
    opts.serialization(Serialization::Json);
    let (child, channel) = F::spawn(&opts, json_child());
    assert_eq!(sockopt::socket_type(&channel).unwrap(), SocketType::STREAM);
    assert!(
        readable(&channel, 10_000),
        "{face}: the child's line is there"
    );
    assert_eq!(F::child_recv(&channel).as_deref(), Some(&b"{\"hi\":1}"[..]));
    F::end(child);
}

both_faces!(child_channels_lend_their_socket, crate::LIMIT);
