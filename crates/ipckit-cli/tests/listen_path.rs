//! `ipckit -v listen NAME` says where a portable name lives on this OS (the
//! socket file on Unix, the pipe path on Windows), on the line after
//! "listening on": what a foreign peer must be given. Checked by connecting to
//! that place with std's own socket type, not through ipckit's names.
#![cfg(unix)]

#[path = "../../ipckit/tests/util/mod.rs"]
mod util;

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use common::{Ipckit, limit};
use util::{unique_name, watchdog};

#[test]
fn listen_v_names_the_socket_file_of_a_portable_name() {
    let name = unique_name("cli-path");
    let addr = format!("pipe:{name}");
    let mut server = Ipckit::start(&["-v", "listen", "--echo", &addr]);
    server.wait_for_stderr("listening on");
    let line = server.wait_for_stderr(&format!("{addr} is "));
    let path = line[addr.len() + 4..].to_owned();
    assert!(path.ends_with(&format!("/{name}.sock")), "{line}");
    watchdog(limit(), move || {
        let mut peer = UnixStream::connect(&path).expect("connect to the socket file it named");
        peer.write_all(b"ping").expect("write");
        let mut back = [0u8; 4];
        peer.read_exact(&mut back).expect("read the echo");
        assert_eq!(&back, b"ping");
    });
}

#[test]
fn listen_v_adds_no_line_for_an_address_that_shows_its_place() {
    let path = std::env::temp_dir().join(format!("{}.sock", unique_name("cli-path-unix")));
    let addr = format!("unix:{}", path.display());
    let mut server = Ipckit::start(&["-v", "listen", "--echo", &addr]);
    server.wait_for_stderr("listening on");
    server.signal("TERM");
    let _ = server.wait(limit());
    let rest = server.stderr_to_end();
    assert!(!rest.contains(" is /"), "{rest:?}");
}
