//! The `ipckit` command against classic Win32 C programs (Windows; under Wine
//! in CI): `connect -q` to an overlapped byte-mode server (a pipe has no
//! half-close, so `-q` is how the command leaves), `listen` for a
//! `WaitNamedPipe` client, `connect -m` to a `PIPE_TYPE_MESSAGE` server,
//! `listen -m` for a `PIPE_READMODE_MESSAGE` client, `send` to a
//! `CreateMailslot` reader and `recv` from a `WriteFile` writer. The programs
//! are ipckit's tests/win32/*.c (see ipckit's tests/win32_peers.rs).
#![cfg(windows)]

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

mod common;

use std::io::{Read, Write};

use common::{Ipckit, limit, run_with_stdin};
use util::win32::{Peer, pipe_path};
use util::{unique_name, watchdog};

#[test]
fn connect_q_to_an_overlapped_byte_server() {
    watchdog(limit(), || {
        let path = pipe_path("cli-w32-byte");
        let mut server = Peer::start("byte_server", &[&path, "1"]);
        assert_eq!(server.line(), "ready");
        let (status, stdout, stderr) = run_with_stdin(
            &["connect", "-q", "2s", &path],
            b"over a byte pipe".to_vec(),
        );
        assert!(status.success(), "{status}: {stderr}");
        assert_eq!(stdout, "over a byte pipe");
        let (ok, rest) = server.finish();
        assert!(ok, "{rest:?}");
        assert_eq!(rest, ["served 1"]);
    });
}

#[test]
fn listen_for_a_waitnamedpipe_client() {
    watchdog(limit(), || {
        let path = pipe_path("cli-w32-byte-client");
        let mut server = Ipckit::start(&["-v", "listen", &path]);
        server.wait_for_stderr("listening on");
        let client = Peer::start("byte_client", &[&path, "hi there"]);
        let mut out = server.stdout.take().expect("stdout");
        let mut got = [0u8; 8];
        out.read_exact(&mut got).expect("the client's bytes");
        assert_eq!(&got, b"hi there");
        let mut stdin = server.stdin.take().expect("stdin");
        stdin.write_all(b"hi there").expect("answer");
        drop(stdin);
        let (ok, lines) = client.finish();
        assert!(ok, "{lines:?}");
        assert_eq!(lines, ["echo hi there"]);
    });
}

#[test]
fn connect_message_to_a_message_type_server() {
    watchdog(limit(), || {
        let path = pipe_path("cli-w32-msg");
        let mut server = Peer::start("msg_server", &[&path]);
        assert_eq!(server.line(), "ready");
        let (status, stdout, stderr) = run_with_stdin(
            &["connect", "--message", "--count", "3", &path],
            b"one\n\ntwo words\n".to_vec(),
        );
        assert!(status.success(), "{status}: {stderr}");
        assert_eq!(stdout, "ONE\n\nTWO WORDS\n");
        let (ok, rest) = server.finish();
        assert!(ok, "{rest:?}");
        assert_eq!(rest, ["got 3:one", "got 0:", "got 9:two words", "done 3"]);
    });
}

#[test]
fn listen_message_for_a_readmode_message_client() {
    watchdog(limit(), || {
        let path = pipe_path("cli-w32-msg-client");
        let mut server = Ipckit::start(&["-v", "listen", "--message", "--count", "2", &path]);
        server.wait_for_stderr("listening on");
        let mut stdin = server.stdin.take().expect("stdin");
        stdin.write_all(b"FIRST\nsecond reply\n").expect("replies");
        drop(stdin);
        let client = Peer::start("msg_client", &[&path, "a", "bb"]);
        let (ok, lines) = client.finish();
        assert!(ok, "{lines:?}");
        assert_eq!(lines, ["reply 5:FIRST", "reply 12:second reply"]);
        let mut printed = String::new();
        server
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut printed)
            .expect("read");
        assert_eq!(printed, "a\nbb\n");
    });
}

#[test]
fn send_to_a_createmailslot_reader_and_recv_from_a_writer() {
    watchdog(limit(), || {
        let name = unique_name("cli-w32-slot");
        let slot = format!(r"\\.\mailslot\{name}");
        let mut reader = Peer::start("mailslot_reader", &[&slot, "2"]);
        assert_eq!(reader.line(), "ready");
        let (status, _, stderr) = run_with_stdin(
            &["send", &format!("mailslot:{name}")],
            b"m one\nm two\n".to_vec(),
        );
        assert!(status.success(), "{status}: {stderr}");
        let (ok, lines) = reader.finish();
        assert!(ok, "{lines:?}");
        assert_eq!(lines, ["msg 5:m one", "msg 5:m two"]);

        let name = unique_name("cli-w32-slot-recv");
        let mut recv = Ipckit::start(&["-v", "recv", "--count", "2", &format!("mailslot:{name}")]);
        recv.wait_for_stderr("receiving on");
        let writer = Peer::start(
            "mailslot_writer",
            &[&format!(r"\\.\mailslot\{name}"), "x y", "z"],
        );
        let (ok, lines) = writer.finish();
        assert!(ok, "{lines:?}");
        let mut printed = String::new();
        recv.stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut printed)
            .expect("read");
        assert_eq!(printed, "x y\nz\n");
        assert!(recv.wait(limit()).success());
    });
}
