//! The handle of a mailslot receiver (`ipckit::os::windows`): `AsHandle`
//! lends the mailslot itself, so a duplicate of it keeps the mailslot, and
//! its name, alive after the receiver is dropped; a mailslot sender lends its
//! client handle while borrowed mutably; the streams lend their pipe handle or
//! socket, and adopt pipe handles made elsewhere. A case that both faces have
//! is written once (`fn case<F: Face>`) and run for each (`case::blocking`,
//! `case::tokio`).
#![cfg(windows)]

#[path = "util/faces.rs"]
mod faces;
#[path = "util/tokio.rs"]
mod tokio_util;
mod util;

use std::os::windows::io::{AsHandle, AsRawHandle};
use std::time::Duration;

use faces::{Face, both_faces};
use ipckit::os::windows::{MessageStreamExt, StreamExt};
use ipckit::{ErrorKind, MailslotReceiver, MessageStream, Stream};
use util::{unique_name, watchdog};

const LIMIT: Duration = Duration::from_secs(120);

fn mailslot_receivers_lend_the_mailslot_handle<F: Face>()
where
    F::MailslotReceiver: AsHandle + AsRawHandle,
{
    let face = F::NAME;
    let addr = format!("mailslot:{}", unique_name("h-ms"));
    let inbox = F::bind_mailslot(&addr);
    assert_eq!(inbox.as_raw_handle(), inbox.as_handle().as_raw_handle());
    // DuplicateHandle: fails on anything but a live handle.
    let dup = inbox.as_handle().try_clone_to_owned().unwrap();
    drop(inbox);
    // The duplicate is the mailslot: its name is still taken.
    let err = MailslotReceiver::bind(addr.as_str()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{face}: {err:#}");
    drop(dup);
    MailslotReceiver::bind(addr.as_str()).expect("free once the last handle closed");
}

both_faces!(mailslot_receivers_lend_the_mailslot_handle, crate::LIMIT);

/// A mailslot sender lends its mailslot client handle while it is borrowed
/// mutably: a duplicate of it, written to as a file, is a writer to the same
/// mailslot (each write one message, between the sender's own).
#[test]
fn a_mailslot_sender_lends_its_client_handle() {
    use ipckit::MailslotSender;
    use ipckit::os::windows::MailslotSenderExt;
    use std::io::Write;

    watchdog(Duration::from_secs(60), || {
        let addr = format!("mailslot:{}", unique_name("h-mss"));
        let inbox = MailslotReceiver::bind(addr.as_str()).unwrap();
        let mut sender = MailslotSender::connect(addr.as_str()).unwrap();
        sender.send(b"first, by the sender").unwrap();
        let dup = sender
            .try_as_handle()
            .expect("a sender whose sends went through lends its handle")
            .try_clone_to_owned()
            .unwrap();
        // Another receiver, so that a handle lent to the wrong mailslot fails.
        let other = format!("mailslot:{}", unique_name("h-mso"));
        let other = MailslotReceiver::bind(other.as_str()).unwrap();
        std::fs::File::from(dup)
            .write_all(b"then through the lent handle")
            .unwrap();
        sender.send(b"last, by the sender").unwrap();
        let limit = Duration::from_secs(10);
        assert_eq!(inbox.recv_timeout(limit).unwrap(), b"first, by the sender");
        assert_eq!(
            inbox.recv_timeout(limit).unwrap(),
            b"then through the lent handle"
        );
        assert_eq!(inbox.recv_timeout(limit).unwrap(), b"last, by the sender");
        assert_eq!(other.try_recv().unwrap(), None, "nothing went elsewhere");
    });
}

/// A pipe stream lends its pipe handle (no socket), a `tcp:` stream its
/// socket (no handle); a duplicate of the pipe handle, adopted with
/// `TryFrom<OwnedHandle>`, is a working stream to the same server (reading
/// too, unless the face reads ahead on the original: tokio's), and a
/// duplicate of the socket writes to the same peer.
fn streams_lend_their_pipe_handle_or_socket<F: Face>()
where
    F::Stream: StreamExt,
{
    use std::io::{Read, Write};

    let face = F::NAME;
    let name = unique_name("h-adopt");
    let (_, client, mut server) = F::pair(&format!("pipe:{name}"));
    assert!(
        client.try_as_socket().is_none(),
        "{face}: a pipe has no socket"
    );
    let dup = client
        .try_as_handle()
        .unwrap()
        .try_clone_to_owned()
        .unwrap();
    let mut adopted = Stream::try_from(dup).unwrap();
    let shown = adopted.peer_addr().to_string();
    assert!(
        shown.contains(&name),
        "{face}: adopted peer_addr {shown} names the pipe {name}"
    );
    adopted.write_all(b"ping").unwrap();
    assert_eq!(
        F::read_exact(&mut server, 4),
        b"ping",
        "{face}: the adopted duplicate talks to the same server"
    );
    if !F::READS_AHEAD {
        F::write_all(&mut server, b"pong");
        let mut got = [0u8; 4];
        adopted.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong", "{face}");
    }

    let (addr, client, mut accepted) = F::pair("tcp:127.0.0.1:0");
    assert!(
        client.try_as_handle().is_none(),
        "{face} {addr}: a socket is no HANDLE"
    );
    let socket = client
        .try_as_socket()
        .expect("a tcp: stream lends its socket");
    // WSADuplicateSocket: a copy of the socket writes to the same peer.
    let mut copy = std::net::TcpStream::from(socket.try_clone_to_owned().unwrap());
    copy.write_all(b"sock").unwrap();
    assert_eq!(F::read_exact(&mut accepted, 4), b"sock", "{face} {addr}");
}

both_faces!(streams_lend_their_pipe_handle_or_socket, crate::LIMIT);

/// A message-mode pipe end, client or server, adopted as a `MessageStream`
/// keeps message boundaries (an empty message among them); the handles of
/// the wrong kind are refused with an error that says what they are.
#[test]
fn message_pipe_ends_are_adopted_and_wrong_handles_refused() {
    use ipckit::{Listener, MessageListener};
    use std::os::windows::io::OwnedHandle;

    watchdog(Duration::from_secs(60), || {
        let name = unique_name("h-madopt");
        let addr = format!("pipe:{name}");
        let listener = MessageListener::bind(addr.as_str()).unwrap();
        let client = MessageStream::connect(addr.as_str()).unwrap();
        let server = listener.accept().unwrap();
        assert!(client.try_as_socket().is_none());

        let dup = client
            .try_as_handle()
            .unwrap()
            .try_clone_to_owned()
            .unwrap();
        let adopted = MessageStream::try_from(dup).unwrap();
        adopted.send(b"").unwrap();
        adopted.send(b"abc").unwrap();
        assert_eq!(server.recv().unwrap().unwrap(), b"");
        assert_eq!(server.recv().unwrap().unwrap(), b"abc");

        let dup = server
            .try_as_handle()
            .unwrap()
            .try_clone_to_owned()
            .unwrap();
        let adopted_server = MessageStream::try_from(dup).unwrap();
        adopted_server.send(b"xyz").unwrap();
        assert_eq!(adopted.recv().unwrap().unwrap(), b"xyz");

        // A message-mode handle is no byte Stream...
        let dup = client
            .try_as_handle()
            .unwrap()
            .try_clone_to_owned()
            .unwrap();
        let err = Stream::try_from(dup).unwrap_err();
        assert!(format!("{err:#}").contains("message-mode"), "{err:#}");
        // ...a byte-mode one no MessageStream...
        let bytes = Listener::bind(format!("pipe:{name}-b").as_str()).unwrap();
        let b = Stream::connect(format!("pipe:{name}-b").as_str()).unwrap();
        let _b_server = bytes.accept().unwrap();
        let dup = b.try_as_handle().unwrap().try_clone_to_owned().unwrap();
        let err = MessageStream::try_from(dup).unwrap_err();
        assert!(format!("{err:#}").contains("byte-mode"), "{err:#}");
        // ...and a file is no pipe at all.
        let path = std::env::temp_dir().join(unique_name("h-file"));
        let file = std::fs::File::create(&path).unwrap();
        let err = Stream::try_from(OwnedHandle::from(file)).unwrap_err();
        assert!(format!("{err:#}").contains("not a pipe"), "{err:#}");
        let _ = std::fs::remove_file(&path);
        drop((client, server));
    });
}

/// A message stream lends its message-mode pipe handle (a duplicate adopted
/// is a working channel to the same server), the socket of `tcp:` (a
/// duplicate is connected to the listener's port), or neither for `shm:`.
fn message_streams_lend_their_pipe_handle_or_socket<F: Face>()
where
    F::MessageStream: MessageStreamExt,
{
    let face = F::NAME;
    for (listener, addr) in F::message_listeners("h-msg") {
        let connecting = F::connect_message(&addr);
        let server = F::accept_message(&listener);
        let client = connecting();
        let (handle, socket) = (client.try_as_handle(), client.try_as_socket());
        if addr.starts_with("shm:") {
            assert!(
                handle.is_none() && socket.is_none(),
                "{face} {addr}: neither"
            );
            assert!(
                server.try_as_handle().is_none() && server.try_as_socket().is_none(),
                "{face} {addr}: nor the server's end"
            );
        } else if addr.starts_with("tcp:") {
            assert!(handle.is_none(), "{face} {addr}: a socket is no HANDLE");
            let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
            // A duplicate of each end's socket is that end of the connection.
            let copy = std::net::TcpStream::from(socket.unwrap().try_clone_to_owned().unwrap());
            assert_eq!(copy.peer_addr().unwrap().port(), port, "{face} {addr}");
            let theirs = server.try_as_socket().expect("the server's end too");
            let theirs = std::net::TcpStream::from(theirs.try_clone_to_owned().unwrap());
            assert_eq!(theirs.local_addr().unwrap().port(), port, "{face} {addr}");
            assert_eq!(
                theirs.peer_addr().unwrap(),
                copy.local_addr().unwrap(),
                "{face} {addr}: the two ends of one connection"
            );
        } else {
            assert!(socket.is_none(), "{face} {addr}: a pipe has no socket");
            let dup = handle.unwrap().try_clone_to_owned().unwrap();
            // A message-mode pipe end: adopted as a message channel.
            let adopted = MessageStream::try_from(dup).unwrap();
            adopted.send(b"ping").unwrap();
            assert_eq!(
                F::recv(&server).as_deref(),
                Some(&b"ping"[..]),
                "{face} {addr}"
            );
        }
    }
}

both_faces!(
    message_streams_lend_their_pipe_handle_or_socket,
    crate::LIMIT
);

/// A child that exits at once: this test program, running no test.
fn quick_child() -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "no test has this name"])
        .stdout(std::process::Stdio::null());
    cmd
}

/// A child channel lends its pipe: message-mode for ipckit's messages (a
/// duplicate adopts as a `MessageStream`, not as a byte `Stream`), byte-mode
/// for Node's JSON lines (the other way round).
fn child_channels_lend_their_pipe_handle<F: Face>()
where
    F::ChildChannel: AsHandle + AsRawHandle,
{
    use ipckit::child::{ChannelOptions, Serialization};

    let face = F::NAME;
    for json in [false, true] {
        let mut opts = ChannelOptions::new();
        if json {
            opts.serialization(Serialization::Json);
        }
        let (child, channel) = F::spawn(&opts, quick_child());
        assert_eq!(channel.as_raw_handle(), channel.as_handle().as_raw_handle());
        let handle = channel.as_handle();
        let (one, other) = (
            handle.try_clone_to_owned().unwrap(),
            handle.try_clone_to_owned().unwrap(),
        );
        if json {
            assert!(Stream::try_from(one).is_ok(), "{face}: a byte pipe");
            assert!(
                MessageStream::try_from(other).is_err(),
                "{face}: not message-mode"
            );
        } else {
            assert!(
                MessageStream::try_from(one).is_ok(),
                "{face}: a message-mode pipe"
            );
            assert!(Stream::try_from(other).is_err(), "{face}: not byte-mode");
        }
        F::end(child);
    }
}

both_faces!(child_channels_lend_their_pipe_handle, crate::LIMIT);
