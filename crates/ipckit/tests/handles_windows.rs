//! The handle of a mailslot receiver (`ipckit::os::windows`): `AsHandle`
//! lends the mailslot itself, so a duplicate of it keeps the mailslot, and
//! its name, alive after the receiver is dropped; the streams lend their pipe
//! handle or socket, and adopt pipe handles made elsewhere.
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
