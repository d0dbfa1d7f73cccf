//! A client that sends requests and never reads a response, for the servers'
//! reply timeout.

use std::io::{ErrorKind as IoKind, Read};
use std::sync::mpsc;
use std::time::Duration;

use ipckit::{Address, Framed, Stream};
use ipckit_rpc::{ErrorKind, ServerOptions};
use serde_json::json;

/// Server options with a short reply timeout whose connection errors go to
/// the receiver returned.
pub(crate) fn options() -> (ServerOptions, mpsc::Receiver<(ErrorKind, String)>) {
    let (tx, rx) = mpsc::channel();
    let mut so = ServerOptions::new();
    so.reply_timeout(Duration::from_millis(300))
        .on_connection_error(move |err| {
            let _ = tx.send((err.kind(), err.to_string()));
        });
    (so, rx)
}

/// Connects to the server at `addr` (length-prefixed framing) and sends
/// 256 KiB `echo` calls without reading, until a send fails: the buffers are
/// full and the server reads no more, or the server closed the connection.
/// Then checks that the server reported the response it could not send
/// (within `limit`) and that the connection ends: what the client was sent,
/// then the end.
pub(crate) fn flood_and_check(
    addr: &Address,
    limit: Duration,
    errors: &mpsc::Receiver<(ErrorKind, String)>,
) {
    let mut f = Framed::new(Stream::connect(addr).expect("connect"));
    f.get_mut()
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("set the write timeout");
    let big = "x".repeat(256 * 1024);
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": [big]}).to_string();
    let mut sent = 0;
    while f.send(request.as_bytes()).is_ok() {
        sent += 1;
    }
    assert!(sent > 0, "not even one request went out");
    let (kind, msg) = errors
        .recv_timeout(limit)
        .expect("the server reports the response it could not send");
    assert_eq!(kind, ErrorKind::TimedOut, "{msg}");
    assert!(msg.contains("reply timeout"), "{msg}");
    assert!(msg.contains("closing the connection"), "{msg}");
    // The server closed the connection: reading finds its end (or, as a
    // socket closed with unread requests in it does on Linux, a reset)
    // rather than waiting.
    f.get_mut()
        .set_read_timeout(Some(limit))
        .expect("set the read timeout");
    let mut rest = Vec::new();
    match f.get_mut().read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) => assert!(
            matches!(
                e.kind(),
                IoKind::ConnectionReset | IoKind::BrokenPipe | IoKind::ConnectionAborted
            ),
            "the connection is not closed: {e}"
        ),
    }
}
