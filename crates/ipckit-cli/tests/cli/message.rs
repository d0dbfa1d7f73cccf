//! `listen --message` and `connect --message`: whole messages both ways.

use crate::support::*;
use crate::util::{unique_name, watchdog};

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
