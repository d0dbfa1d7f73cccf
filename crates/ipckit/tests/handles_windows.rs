//! The handle of a mailslot receiver (`ipckit::os::windows`): `AsHandle`
//! lends the mailslot itself, so a duplicate of it keeps the mailslot, and
//! its name, alive after the receiver is dropped; a mailslot sender lends its
//! client handle while borrowed mutably; the streams lend their pipe handle or
//! socket, and adopt pipe handles made elsewhere.
#![cfg(windows)]

mod util;

use std::os::windows::io::{AsHandle, AsRawHandle};
use std::time::Duration;

use ipckit::{ErrorKind, MailslotReceiver};
use util::{unique_name, watchdog};

#[test]
fn a_mailslot_receiver_lends_the_mailslot_handle() {
    watchdog(Duration::from_secs(60), || {
        let addr = format!("mailslot:{}", unique_name("h-ms"));
        let inbox = MailslotReceiver::bind(addr.as_str()).unwrap();
        assert_eq!(inbox.as_raw_handle(), inbox.as_handle().as_raw_handle());
        // DuplicateHandle: fails on anything but a live handle.
        let dup = inbox.as_handle().try_clone_to_owned().unwrap();
        drop(inbox);
        // The duplicate is the mailslot: its name is still taken.
        let err = MailslotReceiver::bind(addr.as_str()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err:#}");
        drop(dup);
        MailslotReceiver::bind(addr.as_str()).expect("free once the last handle closed");
    });
}

#[test]
fn a_tokio_mailslot_receiver_lends_the_mailslot_handle() {
    watchdog(Duration::from_secs(60), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let addr = format!("mailslot:{}", unique_name("h-tms"));
        let inbox = rt.block_on(async { ipckit::tokio::MailslotReceiver::bind(addr.as_str()) });
        let inbox = inbox.unwrap();
        assert_eq!(inbox.as_raw_handle(), inbox.as_handle().as_raw_handle());
        let dup = inbox.as_handle().try_clone_to_owned().unwrap();
        drop(inbox);
        // The duplicate is the mailslot: its name is still taken.
        let err = MailslotReceiver::bind(addr.as_str()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err:#}");
        drop(dup);
        MailslotReceiver::bind(addr.as_str()).expect("free once the last handle closed");
    });
}

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
/// `TryFrom<OwnedHandle>`, is a working stream to the same server.
#[test]
fn a_pipe_stream_lends_its_handle_and_an_adopted_handle_is_a_stream() {
    use ipckit::os::windows::StreamExt;
    use ipckit::{Listener, Stream};
    use std::io::{Read, Write};

    watchdog(Duration::from_secs(60), || {
        let name = unique_name("h-adopt");
        let listener = Listener::bind(format!("pipe:{name}").as_str()).unwrap();
        let client = Stream::connect(format!("pipe:{name}").as_str()).unwrap();
        let mut server = listener.accept().unwrap();
        assert!(client.try_as_socket().is_none());
        let dup = client
            .try_as_handle()
            .unwrap()
            .try_clone_to_owned()
            .unwrap();
        let mut adopted = Stream::try_from(dup).unwrap();
        let shown = adopted.peer_addr().to_string();
        assert!(
            shown.contains(&name),
            "adopted peer_addr {shown} names the pipe {name}"
        );
        adopted.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        server.write_all(b"pong").unwrap();
        adopted.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong");

        let tcp = Listener::bind("tcp:127.0.0.1:0").unwrap();
        let t = Stream::connect(tcp.local_addr().to_string().as_str()).unwrap();
        let mut accepted = tcp.accept().unwrap();
        assert!(t.try_as_handle().is_none());
        let socket = t.try_as_socket().expect("a tcp: stream lends its socket");
        // WSADuplicateSocket: a copy of the socket writes to the same peer.
        let mut copy = std::net::TcpStream::from(socket.try_clone_to_owned().unwrap());
        copy.write_all(b"sock").unwrap();
        accepted.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"sock");
        drop(client);
    });
}

/// A message-mode pipe end, client or server, adopted as a `MessageStream`
/// keeps message boundaries (an empty message among them); the handles of
/// the wrong kind are refused with an error that says what they are.
#[test]
fn message_pipe_ends_are_adopted_and_wrong_handles_refused() {
    use ipckit::os::windows::{MessageStreamExt, StreamExt};
    use ipckit::{Listener, MessageListener, MessageStream, Stream};
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

/// The tokio streams lend what the blocking ones do: a pipe stream its pipe
/// handle (a duplicate adopted is a working stream to the same server), a
/// `tcp:` one its socket, a shared-memory channel neither.
#[test]
fn tokio_streams_lend_their_pipe_handle_or_socket() {
    use ipckit::os::windows::{MessageStreamExt, StreamExt};
    use ipckit::{MessageStream, Stream};
    use std::io::Write;

    watchdog(Duration::from_secs(120), || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use tokio::io::AsyncReadExt;
            // Byte streams.
            let name = unique_name("h-tpipe");
            let listener = ipckit::tokio::Listener::bind(format!("pipe:{name}").as_str()).unwrap();
            let client = ipckit::tokio::Stream::connect(format!("pipe:{name}").as_str())
                .await
                .unwrap();
            let mut server = listener.accept().await.unwrap();
            assert!(client.try_as_socket().is_none(), "a pipe has no socket");
            let dup = client
                .try_as_handle()
                .unwrap()
                .try_clone_to_owned()
                .unwrap();
            let mut adopted = Stream::try_from(dup).unwrap();
            tokio::task::spawn_blocking(move || adopted.write_all(b"ping").unwrap())
                .await
                .unwrap();
            let mut got = [0u8; 4];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(
                &got, b"ping",
                "the adopted duplicate talks to the same server"
            );

            let listener = ipckit::tokio::Listener::bind("tcp:127.0.0.1:0").unwrap();
            let addr = listener.local_addr().to_string();
            let client = ipckit::tokio::Stream::connect(addr.as_str()).await.unwrap();
            let _server = listener.accept().await.unwrap();
            assert!(
                client.try_as_handle().is_none(),
                "{addr}: a socket is no HANDLE"
            );
            assert!(client.try_as_socket().is_some(), "{addr}: the socket");

            // Message channels.
            for addr in [
                format!("pipe:{}", unique_name("h-tmsg")),
                "tcp:127.0.0.1:0".to_owned(),
                format!("shm:{}", unique_name("h-tshm")),
            ] {
                let listener = ipckit::tokio::MessageListener::bind(addr.as_str()).unwrap();
                let addr = listener.local_addr().to_string();
                let connecting = {
                    let addr = addr.clone();
                    tokio::spawn(async move {
                        ipckit::tokio::MessageStream::connect(addr.as_str()).await
                    })
                };
                let server = listener.accept().await.unwrap();
                let client = connecting.await.unwrap().unwrap();
                let (handle, socket) = (client.try_as_handle(), client.try_as_socket());
                if addr.starts_with("shm:") {
                    assert!(handle.is_none() && socket.is_none(), "{addr}: neither");
                } else if addr.starts_with("tcp:") {
                    assert!(handle.is_none() && socket.is_some(), "{addr}: the socket");
                    assert!(server.try_as_socket().is_some(), "{addr}: the server's too");
                } else {
                    assert!(socket.is_none(), "{addr}: a pipe has no socket");
                    let dup = handle.unwrap().try_clone_to_owned().unwrap();
                    // A message-mode pipe end: adopted as a message channel.
                    let adopted = MessageStream::try_from(dup).unwrap();
                    tokio::task::spawn_blocking(move || adopted.send(b"ping").unwrap())
                        .await
                        .unwrap();
                    let got = server.recv().await.unwrap();
                    assert_eq!(got.as_deref(), Some(&b"ping"[..]), "{addr}");
                }
            }
        });
    });
}

/// A child that exits at once: this test program, running no test.
fn quick_child() -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "no test has this name"])
        .stdout(std::process::Stdio::null());
    cmd
}

/// A child channel lends its pipe: message-mode for ipckit's messages (a
/// duplicate adopts as a `MessageStream`, not as a byte `Stream`), byte-mode
/// for Node's JSON lines (the other way round); on both faces.
#[test]
fn child_channels_lend_their_pipe_handle() {
    use ipckit::child::{ChannelOptions, Serialization};
    use ipckit::{MessageStream, Stream};

    watchdog(Duration::from_secs(120), || {
        let check = |handle: std::os::windows::io::BorrowedHandle<'_>, json: bool| {
            let (one, other) = (
                handle.try_clone_to_owned().unwrap(),
                handle.try_clone_to_owned().unwrap(),
            );
            if json {
                Stream::try_from(one).expect("a byte pipe");
                MessageStream::try_from(other).expect_err("not message-mode");
            } else {
                MessageStream::try_from(one).expect("a message-mode pipe");
                Stream::try_from(other).expect_err("not byte-mode");
            }
        };
        for json in [false, true] {
            let mut opts = ChannelOptions::new();
            if json {
                opts.serialization(Serialization::Json);
            }
            let (mut child, channel) = opts.spawn(&mut quick_child()).unwrap();
            assert_eq!(channel.as_raw_handle(), channel.as_handle().as_raw_handle());
            check(channel.as_handle(), json);
            child.wait().unwrap();
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for json in [false, true] {
                let mut opts = ChannelOptions::new();
                if json {
                    opts.serialization(Serialization::Json);
                }
                let mut cmd = tokio::process::Command::from(quick_child());
                let (mut child, channel) = opts.spawn_tokio(&mut cmd).unwrap();
                assert_eq!(channel.as_raw_handle(), channel.as_handle().as_raw_handle());
                check(channel.as_handle(), json);
                child.wait().await.unwrap();
            }
        });
    });
}
