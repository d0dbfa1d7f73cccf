//! The blocking and the tokio face of the types that lend their OS objects,
//! behind one interface ([`Face`]), so that each case of
//! `tests/handles_unix.rs` and `tests/handles_windows.rs` is written once and
//! run for both faces ([`Blocking`], [`Tokio`]). What a type lends (`AsFd`,
//! `MessageStreamExt`, ...) is the OS's: a case names it in its bounds.
//!
//! A tokio call runs to completion on one shared runtime (`block_on`); a
//! tokio type is made inside it. Include with
//! `#[path = "util/faces.rs"] mod faces;` next to `mod util;` (it needs
//! tokio, and `#[path = "util/tokio.rs"] mod tokio_util;`). Every call
//! panics on an error: the cases check what they lend.
#![allow(dead_code)] // each OS's test file uses a different subset

use std::process::Command;
use std::sync::LazyLock;

use ipckit::child::ChannelOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// The runtime every tokio call runs on.
fn rt() -> &'static Runtime {
    static RT: LazyLock<Runtime> = LazyLock::new(crate::tokio_util::runtime);
    &RT
}

/// A connection under way: waiting for it gives the connected end.
pub(crate) type Connecting<S> = Box<dyn FnOnce() -> S>;

/// One face of the listeners, streams, mailslot receivers and child
/// channels.
pub(crate) trait Face {
    /// "blocking" or "tokio", for the messages of failed assertions.
    const NAME: &'static str;
    /// Whether the face keeps a read pending on a pipe stream at all times
    /// (tokio on Windows: mio reads ahead into a buffer of its own), so that
    /// what the peer sends is not for a duplicate of the handle to read.
    const READS_AHEAD: bool;
    type Listener;
    type Stream;
    type MessageListener;
    type MessageStream;
    type MailslotReceiver;
    type Child;
    type ChildChannel;

    fn bind(addr: &str) -> Self::Listener;
    fn local_addr(listener: &Self::Listener) -> String;
    fn connect(addr: &str) -> Self::Stream;
    fn accept(listener: &Self::Listener) -> Self::Stream;
    fn write_all(stream: &mut Self::Stream, data: &[u8]);
    fn read_exact(stream: &mut Self::Stream, len: usize) -> Vec<u8>;

    /// Binds `addr`, connects a client and accepts it: the address bound
    /// (the port of `tcp:…:0` filled in), the client and the server's end.
    fn pair(addr: &str) -> (String, Self::Stream, Self::Stream) {
        let listener = Self::bind(addr);
        let addr = Self::local_addr(&listener);
        let client = Self::connect(&addr);
        let server = Self::accept(&listener);
        (addr, client, server)
    }

    /// A message listener of each kind, local (`pipe:`), `tcp:` and `shm:`,
    /// names made from `tag`, with the address to connect to.
    fn message_listeners(tag: &str) -> Vec<(Self::MessageListener, String)> {
        [
            format!("pipe:{}", crate::util::unique_name(tag)),
            "tcp:127.0.0.1:0".to_owned(),
            format!("shm:{}", crate::util::unique_name(&format!("{tag}-shm"))),
        ]
        .iter()
        .map(|addr| {
            let listener = Self::bind_message(addr);
            let addr = Self::message_addr(&listener);
            (listener, addr)
        })
        .collect()
    }

    fn bind_message(addr: &str) -> Self::MessageListener;
    fn message_addr(listener: &Self::MessageListener) -> String;
    /// Starts connecting to `addr` (a `shm:` client waits in `connect` for
    /// the region that `accept` offers).
    fn connect_message(addr: &str) -> Connecting<Self::MessageStream>;
    fn accept_message(listener: &Self::MessageListener) -> Self::MessageStream;
    fn send(channel: &Self::MessageStream, msg: &[u8]);
    fn recv(channel: &Self::MessageStream) -> Option<Vec<u8>>;

    fn bind_mailslot(addr: &str) -> Self::MailslotReceiver;
    fn recv_mailslot(inbox: &Self::MailslotReceiver) -> Vec<u8>;

    /// Spawns `cmd` (stdin as it was set) with a channel made by `opts`.
    fn spawn(opts: &ChannelOptions, cmd: Command) -> (Self::Child, Self::ChildChannel);
    /// Closes the child's stdin, if piped, and waits for it to exit.
    fn end(child: Self::Child);
    fn child_recv(channel: &Self::ChildChannel) -> Option<Vec<u8>>;
}

/// The blocking types: `ipckit::Listener`, `ipckit::MessageStream`, ...
pub(crate) struct Blocking;

/// The async types of `ipckit::tokio`.
pub(crate) struct Tokio;

impl Face for Blocking {
    const NAME: &'static str = "blocking";
    const READS_AHEAD: bool = false;
    type Listener = ipckit::Listener;
    type Stream = ipckit::Stream;
    type MessageListener = ipckit::MessageListener;
    type MessageStream = ipckit::MessageStream;
    type MailslotReceiver = ipckit::MailslotReceiver;
    type Child = std::process::Child;
    type ChildChannel = ipckit::child::ChildChannel;

    fn bind(addr: &str) -> ipckit::Listener {
        ipckit::Listener::bind(addr).unwrap()
    }

    fn local_addr(listener: &ipckit::Listener) -> String {
        listener.local_addr().to_string()
    }

    fn connect(addr: &str) -> ipckit::Stream {
        ipckit::Stream::connect(addr).unwrap()
    }

    fn accept(listener: &ipckit::Listener) -> ipckit::Stream {
        listener.accept().unwrap()
    }

    fn write_all(stream: &mut ipckit::Stream, data: &[u8]) {
        std::io::Write::write_all(stream, data).unwrap();
    }

    fn read_exact(stream: &mut ipckit::Stream, len: usize) -> Vec<u8> {
        let mut got = vec![0; len];
        std::io::Read::read_exact(stream, &mut got).unwrap();
        got
    }

    fn bind_message(addr: &str) -> ipckit::MessageListener {
        ipckit::MessageListener::bind(addr).unwrap()
    }

    fn message_addr(listener: &ipckit::MessageListener) -> String {
        listener.local_addr().to_string()
    }

    fn connect_message(addr: &str) -> Connecting<ipckit::MessageStream> {
        let addr = addr.to_owned();
        let connecting =
            std::thread::spawn(move || ipckit::MessageStream::connect(addr.as_str()).unwrap());
        Box::new(move || connecting.join().unwrap())
    }

    fn accept_message(listener: &ipckit::MessageListener) -> ipckit::MessageStream {
        listener.accept().unwrap()
    }

    fn send(channel: &ipckit::MessageStream, msg: &[u8]) {
        channel.send(msg).unwrap();
    }

    fn recv(channel: &ipckit::MessageStream) -> Option<Vec<u8>> {
        channel.recv().unwrap()
    }

    fn bind_mailslot(addr: &str) -> ipckit::MailslotReceiver {
        ipckit::MailslotReceiver::bind(addr).unwrap()
    }

    fn recv_mailslot(inbox: &ipckit::MailslotReceiver) -> Vec<u8> {
        inbox.recv().unwrap()
    }

    fn spawn(
        opts: &ChannelOptions,
        mut cmd: Command,
    ) -> (std::process::Child, ipckit::child::ChildChannel) {
        opts.spawn(&mut cmd).unwrap()
    }

    fn end(mut child: std::process::Child) {
        drop(child.stdin.take());
        child.wait().unwrap();
    }

    fn child_recv(channel: &ipckit::child::ChildChannel) -> Option<Vec<u8>> {
        channel.recv().unwrap()
    }
}

impl Face for Tokio {
    const NAME: &'static str = "tokio";
    const READS_AHEAD: bool = cfg!(windows);
    type Listener = ipckit::tokio::Listener;
    type Stream = ipckit::tokio::Stream;
    type MessageListener = ipckit::tokio::MessageListener;
    type MessageStream = ipckit::tokio::MessageStream;
    type MailslotReceiver = ipckit::tokio::MailslotReceiver;
    type Child = tokio::process::Child;
    type ChildChannel = ipckit::tokio::child::ChildChannel;

    fn bind(addr: &str) -> ipckit::tokio::Listener {
        let _in = rt().enter();
        ipckit::tokio::Listener::bind(addr).unwrap()
    }

    fn local_addr(listener: &ipckit::tokio::Listener) -> String {
        listener.local_addr().to_string()
    }

    fn connect(addr: &str) -> ipckit::tokio::Stream {
        rt().block_on(ipckit::tokio::Stream::connect(addr)).unwrap()
    }

    fn accept(listener: &ipckit::tokio::Listener) -> ipckit::tokio::Stream {
        rt().block_on(listener.accept()).unwrap()
    }

    fn write_all(stream: &mut ipckit::tokio::Stream, data: &[u8]) {
        rt().block_on(stream.write_all(data)).unwrap();
    }

    fn read_exact(stream: &mut ipckit::tokio::Stream, len: usize) -> Vec<u8> {
        let mut got = vec![0; len];
        rt().block_on(stream.read_exact(&mut got)).unwrap();
        got
    }

    fn bind_message(addr: &str) -> ipckit::tokio::MessageListener {
        let _in = rt().enter();
        ipckit::tokio::MessageListener::bind(addr).unwrap()
    }

    fn message_addr(listener: &ipckit::tokio::MessageListener) -> String {
        listener.local_addr().to_string()
    }

    fn connect_message(addr: &str) -> Connecting<ipckit::tokio::MessageStream> {
        let addr = addr.to_owned();
        let connecting = rt().spawn(async move {
            ipckit::tokio::MessageStream::connect(addr.as_str())
                .await
                .unwrap()
        });
        Box::new(move || rt().block_on(connecting).unwrap())
    }

    fn accept_message(listener: &ipckit::tokio::MessageListener) -> ipckit::tokio::MessageStream {
        rt().block_on(listener.accept()).unwrap()
    }

    fn send(channel: &ipckit::tokio::MessageStream, msg: &[u8]) {
        rt().block_on(channel.send(msg)).unwrap();
    }

    fn recv(channel: &ipckit::tokio::MessageStream) -> Option<Vec<u8>> {
        rt().block_on(channel.recv()).unwrap()
    }

    fn bind_mailslot(addr: &str) -> ipckit::tokio::MailslotReceiver {
        let _in = rt().enter();
        ipckit::tokio::MailslotReceiver::bind(addr).unwrap()
    }

    fn recv_mailslot(inbox: &ipckit::tokio::MailslotReceiver) -> Vec<u8> {
        rt().block_on(inbox.recv()).unwrap()
    }

    fn spawn(
        opts: &ChannelOptions,
        cmd: Command,
    ) -> (tokio::process::Child, ipckit::tokio::child::ChildChannel) {
        let _in = rt().enter();
        opts.spawn_tokio(&mut tokio::process::Command::from(cmd))
            .unwrap()
    }

    fn end(mut child: tokio::process::Child) {
        drop(child.stdin.take());
        rt().block_on(child.wait()).unwrap();
    }

    fn child_recv(channel: &ipckit::tokio::child::ChildChannel) -> Option<Vec<u8>> {
        rt().block_on(channel.recv()).unwrap()
    }
}

/// Two tests of `case` (a `fn case<F: Face>()`), each under the watchdog
/// for `limit` (a path from the crate root, as `crate::LIMIT`):
/// `case::blocking` and `case::tokio`. The test crate names this module
/// `faces` and the shared helpers `util`.
macro_rules! both_faces {
    ($case:ident, $limit:expr) => {
        mod $case {
            #[test]
            fn blocking() {
                crate::util::watchdog($limit, super::$case::<crate::faces::Blocking>);
            }

            #[test]
            fn tokio() {
                crate::util::watchdog($limit, super::$case::<crate::faces::Tokio>);
            }
        }
    };
}
pub(crate) use both_faces;
