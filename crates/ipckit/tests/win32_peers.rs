//! Classic Win32 C programs as peers (Windows; under Wine in CI): the
//! overlapped multi-instance byte-mode server, the `WaitNamedPipe` +
//! `CreateFile` client, a `PIPE_TYPE_MESSAGE` server, a client that sets
//! `PIPE_READMODE_MESSAGE`, a `CreateMailslot` reader and a `WriteFile`
//! mailslot writer, each against the library in both directions, message
//! boundaries checked. The programs' sources are in `tests/win32/`;
//! scripts/test-windows.sh builds them with mingw and names their directory
//! in IPCKIT_WIN32_PEERS.
#![cfg(windows)]

mod util;

use std::io::{Read, Write};
use std::thread;
use std::time::Duration;

use ipckit::{Listener, MailslotReceiver, MailslotSender, MessageListener, MessageStream, Stream};
use util::win32::Peer;
use util::{slow_factor, unique_name, watchdog};

fn limit() -> Duration {
    Duration::from_secs(20) * slow_factor()
}

#[test]
fn library_clients_of_an_overlapped_multi_instance_byte_server() {
    watchdog(limit(), || {
        let path = util::win32::pipe_path("w32-byte-server");
        let mut server = Peer::start("byte_server", &[&path, "3"]);
        assert_eq!(server.line(), "ready");
        let clients: Vec<_> = (0..3)
            .map(|i| {
                let path = path.clone();
                thread::spawn(move || {
                    let mut s = Stream::connect(path.as_str()).expect("connect");
                    let text = format!("hello from client {i}");
                    s.write_all(text.as_bytes()).expect("write");
                    let mut back = vec![0; text.len()];
                    s.read_exact(&mut back).expect("read the echo");
                    assert_eq!(back, text.as_bytes());
                })
            })
            .collect();
        for c in clients {
            c.join().expect("a client failed");
        }
        let (ok, rest) = server.finish();
        assert!(ok, "{rest:?}");
        assert_eq!(rest, ["served 3"]);
    });
}

#[test]
fn a_waitnamedpipe_client_of_a_library_byte_server() {
    watchdog(limit(), || {
        let path = util::win32::pipe_path("w32-byte-client");
        let listener = Listener::bind(path.as_str()).expect("bind");
        let client = Peer::start("byte_client", &[&path, "ping over bytes"]);
        let mut s = listener.accept().expect("accept");
        let mut buf = vec![0; "ping over bytes".len()];
        s.read_exact(&mut buf).expect("read");
        s.write_all(&buf).expect("echo");
        let (ok, out) = client.finish();
        assert!(ok, "{out:?}");
        assert_eq!(out, ["echo ping over bytes"]);
    });
}

#[test]
fn library_messages_to_a_message_type_server() {
    watchdog(limit(), || {
        let path = util::win32::pipe_path("w32-msg-server");
        let mut server = Peer::start("msg_server", &[&path]);
        assert_eq!(server.line(), "ready");
        let ch = MessageStream::connect(path.as_str()).expect("connect");
        for msg in [&b"one"[..], b"", b"two words", b"x"] {
            ch.send(msg).expect("send");
            let reply = ch.recv().expect("recv").expect("a reply");
            assert_eq!(reply, msg.to_ascii_uppercase());
        }
        drop(ch);
        let (ok, out) = server.finish();
        assert!(ok, "{out:?}");
        assert_eq!(
            out,
            [
                "got 3:one",
                "got 0:",
                "got 9:two words",
                "got 1:x",
                "done 4"
            ]
        );
    });
}

#[test]
fn a_readmode_message_client_of_a_library_message_server() {
    watchdog(limit(), || {
        let path = util::win32::pipe_path("w32-msg-client");
        let listener = MessageListener::bind(path.as_str()).expect("bind");
        let client = Peer::start("msg_client", &[&path, "alpha", "beta gamma", "d"]);
        let ch = listener.accept().expect("accept");
        for _ in 0..3 {
            let msg = ch.recv().expect("recv").expect("a message");
            ch.send(&msg.to_ascii_uppercase()).expect("reply");
        }
        let (ok, out) = client.finish();
        assert!(ok, "{out:?}");
        assert_eq!(out, ["reply 5:ALPHA", "reply 10:BETA GAMMA", "reply 1:D"]);
    });
}

#[test]
fn library_sender_to_a_createmailslot_reader() {
    watchdog(limit(), || {
        let name = unique_name("w32-slot-reader");
        let mut reader = Peer::start("mailslot_reader", &[&format!(r"\\.\mailslot\{name}"), "2"]);
        assert_eq!(reader.line(), "ready");
        let sender = MailslotSender::connect(format!("mailslot:{name}")).expect("connect");
        sender.send(b"first").expect("send");
        sender.send(b"second one").expect("send");
        let (ok, out) = reader.finish();
        assert!(ok, "{out:?}");
        assert_eq!(out, ["msg 5:first", "msg 10:second one"]);
    });
}

#[test]
fn a_writefile_mailslot_writer_to_a_library_receiver() {
    watchdog(limit(), || {
        let name = unique_name("w32-slot-writer");
        let receiver = MailslotReceiver::bind(format!("mailslot:{name}")).expect("bind");
        let writer = Peer::start(
            "mailslot_writer",
            &[&format!(r"\\.\mailslot\{name}"), "one", "two words", "3"],
        );
        let (ok, out) = writer.finish();
        assert!(ok, "{out:?}");
        assert_eq!(out, ["sent 3"]);
        for want in [&b"one"[..], b"two words", b"3"] {
            assert_eq!(receiver.recv_timeout(limit()).expect("recv"), want);
        }
    });
}
