//! `connect --message --authkey KEY` and `listen --message --authkey KEY`: the
//! CLI as a peer of Python's `multiprocessing.connection` (`Listener`/`Client`
//! with an authkey). The connection first passes the authkey handshake (the
//! `Client` answers the `Listener`'s challenge, then delivers one of its own),
//! then carries messages as `Connection.send_bytes`/`recv_bytes` do: on Unix
//! sockets and TCP in length-prefixed frames (`ipckit::Framed`), on Windows
//! named pipes as pipe messages (message mode), as Python's `PipeConnection`.

use std::time::Duration;

use anyhow::{Context, Result};
use ipckit::registry::Kind;
use ipckit::{Address, ConnectOptions, Framed, Listener, MessageListener, MessageStream, Stream};
use ipckit_rpc::ChallengeDigest;
use ipckit_rpc::auth::{self, HandshakeIo, MAX_HANDSHAKE_FRAME};

use crate::message::relay_with;

/// Which of Python's wires an address takes.
fn pipe_messages(addr: &Address) -> bool {
    cfg!(windows)
        && matches!(
            addr,
            Address::Name(_) | Address::PipePath { .. } | Address::DotNet(_)
        )
}

/// A handshake over either wire.
enum Handshake<'a> {
    Framed(&'a mut Framed<Stream>),
    Message(&'a MessageStream),
}

impl HandshakeIo for Handshake<'_> {
    fn send_frame(&mut self, frame: &[u8]) -> ipckit_rpc::Result<()> {
        match self {
            Handshake::Framed(f) => f.send(frame).map_err(|e| rpc_io("send", &e)),
            Handshake::Message(m) => m.send(frame).map_err(|e| rpc_io("send", &e.into())),
        }
    }

    fn recv_frame(&mut self) -> ipckit_rpc::Result<Vec<u8>> {
        let got = match self {
            Handshake::Framed(f) => f.recv().map_err(|e| rpc_io("receive", &e))?,
            Handshake::Message(m) => m.recv().map_err(|e| rpc_io("receive", &e.into()))?,
        };
        got.ok_or_else(|| {
            ipckit_rpc::Error::from(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the peer closed the connection during the authkey handshake",
            ))
        })
    }
}

fn rpc_io(what: &str, e: &std::io::Error) -> ipckit_rpc::Error {
    ipckit_rpc::Error::from(std::io::Error::new(
        e.kind(),
        format!("{what} a frame of the authkey handshake: {e}"),
    ))
}

/// Runs `half` of the handshake on `channel`, naming the peer on failure.
fn handshake(mut channel: Handshake<'_>, peer: &Address, key: &[u8], server: bool) -> Result<()> {
    let result = if server {
        auth::deliver(&mut channel, key, ChallengeDigest::default())
            .and_then(|()| auth::answer_peer(&mut channel, key))
    } else {
        auth::answer_peer(&mut channel, key)
            .and_then(|()| auth::deliver(&mut channel, key, ChallengeDigest::default()))
    };
    result.with_context(|| format!("authkey handshake with {peer}"))
}

/// The relay of a keyed Framed stream: the handshake's reader keeps reading
/// (it may hold bytes past the handshake), a clone writes.
fn relay_framed(
    stream: Stream,
    key: &[u8],
    server: bool,
    count: Option<u64>,
    quit_after: Option<Duration>,
) -> Result<()> {
    let peer = stream.peer_addr().clone();
    let mut writer = Framed::new(stream.try_clone()?);
    let mut reader = Framed::new(stream);
    let max = reader.max_message_size();
    reader.set_max_message_size(MAX_HANDSHAKE_FRAME)?;
    handshake(Handshake::Framed(&mut reader), &peer, key, server)?;
    reader.set_max_message_size(max)?;
    relay_with(
        &peer,
        move |msg| writer.send(msg),
        move |buf| reader.recv_into(buf),
        count,
        quit_after,
    )
}

fn relay_messages(
    channel: MessageStream,
    key: &[u8],
    server: bool,
    count: Option<u64>,
    quit_after: Option<Duration>,
) -> Result<()> {
    let peer = channel.peer_addr().clone();
    handshake(Handshake::Message(&channel), &peer, key, server)?;
    let sender = channel.try_clone()?;
    relay_with(
        &peer,
        move |msg| sender.send(msg),
        move |buf| channel.recv_into(buf),
        count,
        quit_after,
    )
}

/// `ipckit connect --message --authkey KEY ADDR`: a `multiprocessing.connection.Client`.
pub(crate) fn connect(
    opts: &ConnectOptions,
    addr: &Address,
    key: &[u8],
    count: Option<u64>,
    quit_after: Option<Duration>,
    verbose: bool,
) -> Result<()> {
    if pipe_messages(addr) {
        let channel = opts.connect_message(addr)?;
        if verbose {
            eprintln!("connected to {}", channel.peer_addr());
        }
        relay_messages(channel, key, false, count, quit_after)
    } else {
        let stream = opts.connect(addr)?;
        if verbose {
            eprintln!("connected to {}", stream.peer_addr());
        }
        relay_framed(stream, key, false, count, quit_after)
    }
}

/// `ipckit listen --message --authkey KEY ADDR`: a `multiprocessing.connection.Listener`
/// that serves one client, as `listen` without --echo does.
pub(crate) fn listen(addr: &Address, key: &[u8], count: Option<u64>, verbose: bool) -> Result<()> {
    if pipe_messages(addr) {
        let listener = crate::serve_at(
            addr,
            Kind::Message,
            verbose,
            || Ok(MessageListener::bind(addr)?),
            MessageListener::local_addr,
        )?;
        let channel = listener.accept()?;
        drop(listener);
        relay_messages(channel, key, true, count, None)
    } else {
        let listener = crate::serve_at(
            addr,
            Kind::Message,
            verbose,
            || Ok(Listener::bind(addr)?),
            Listener::local_addr,
        )?;
        let stream = listener.accept()?;
        drop(listener);
        relay_framed(stream, key, true, count, None)
    }
}
