//! Async child-process channels: the async form of [`crate::child`].

use std::sync::Arc;

use ::tokio::process::{Child, Command};

use super::child_json::JsonLines;
use super::in_runtime;
use super::message::bounded;
use crate::child::{
    ChannelOptions, Closing, Conn, Settings, Shared, SpawnTarget, adopt_parent, is_bad_json_line,
};
use crate::error::{Error, Result};
use crate::limits::DEFAULT_MAX_MESSAGE_SIZE;
use crate::sys;

impl SpawnTarget for Command {
    type Child = Child;
    fn std_mut(&mut self) -> &mut std::process::Command {
        self.as_std_mut()
    }
    fn spawn_it(&mut self) -> std::io::Result<Child> {
        self.spawn()
    }
    fn pid(child: &Child) -> Option<u32> {
        child.id()
    }
}

/// Spawns a tokio [`Command`] with a [`Serialization::Messages`](crate::child::Serialization::Messages) channel; the
/// async form of [`crate::child::CommandExt`].
pub trait CommandExt {
    /// Spawns the command with a channel, inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// As for [`ChannelOptions::spawn`]; [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) outside a
    /// tokio runtime.
    fn spawn_with_channel(&mut self) -> Result<(Child, ChildChannel)>;
}

impl CommandExt for Command {
    fn spawn_with_channel(&mut self) -> Result<(Child, ChildChannel)> {
        spawn(&ChannelOptions::new(), self, DEFAULT_MAX_MESSAGE_SIZE)
    }
}

/// Spawns `cmd` with `opts`' channel, wrapped for async use.
fn spawn(opts: &ChannelOptions, cmd: &mut Command, max: usize) -> Result<(Child, ChildChannel)> {
    in_runtime("spawn a child with a channel")?;
    let (child, conn, peer) = opts.spawn_using(cmd)?;
    Ok((child, ChildChannel::new(conn, peer, max)?))
}

impl ChannelOptions {
    /// Spawns a tokio `cmd` with a channel: the async form of
    /// [`ChannelOptions::spawn`].
    ///
    /// # Errors
    ///
    /// As for [`ChannelOptions::spawn`]; [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) outside a
    /// tokio runtime.
    pub fn spawn_tokio(&self, cmd: &mut Command) -> Result<(Child, ChildChannel)> {
        spawn(self, cmd, self.get_max_message_size())
    }
}

/// The channel to the parent, for async use: the async form of
/// [`crate::child::parent_channel`]; a Node parent's json channel too.
///
/// # Errors
///
/// As for [`crate::child::parent_channel`]; [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) outside a
/// tokio runtime.
pub fn parent_channel() -> Result<ChildChannel> {
    in_runtime("take the channel to the parent process")?;
    let (conn, _) = adopt_parent(true)?;
    ChildChannel::new(conn, "the parent process".into(), DEFAULT_MAX_MESSAGE_SIZE)
}

impl Closing for sys::tokio::MsgStream {
    fn close(&self) {
        sys::tokio::MsgStream::close(self);
    }
}

impl Closing for JsonLines {
    fn close(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

/// An async message channel between a parent and a child process: the async
/// form of [`crate::child::ChildChannel`], with either serialization.
///
/// # Cancel safety
///
/// `recv` is cancel safe: a message is taken only by the call that returns it.
/// A `send` dropped part-way sends the message whole or not at all (on a json
/// channel it runs to its end on tokio's blocking pool).
///
/// # Platform-specific behavior
///
/// A json channel (Node's) waits on tokio's blocking pool, on every OS: a
/// waiting `recv` holds one of its threads (as a Windows message channel
/// does). A messages channel on Unix waits in the reactor, with no thread.
pub struct ChildChannel {
    /// ipckit's messages on a message channel, or Node's json serialization:
    /// lines on a byte stream.
    pub(crate) shared: Arc<Shared<sys::tokio::MsgStream, JsonLines>>,
    settings: Settings,
}

crate::child::channel_face!(ChildChannel);

impl ChildChannel {
    fn new(conn: Conn, peer: String, max: usize) -> Result<ChildChannel> {
        let io = match conn {
            Conn::Messages(s) => Conn::Messages(
                sys::tokio::MsgStream::from_blocking(s)
                    .map_err(|e| Error::io(format!("watch the channel to the {peer}"), e))?,
            ),
            Conn::Json(lines) => Conn::Json(JsonLines::new(lines)),
        };
        Ok(ChildChannel {
            shared: Shared::new(io, peer),
            settings: Settings::new(max),
        })
    }

    /// Sends `msg` as one message.
    ///
    /// # Errors
    ///
    /// As for [`crate::child::ChildChannel::send`].
    pub async fn send(&self, msg: &[u8]) -> Result<()> {
        self.shared.state.check_open()?;
        let limit = self.settings.lim.write.until();
        let op = async {
            match &self.shared.conn {
                Conn::Messages(s) => s.send(msg, limit).await,
                Conn::Json(l) => l.send(msg, limit).await,
            }
        };
        bounded(limit, "send", op).await.map_err(|e| {
            Error::io(
                format!("send a message to the {}", self.shared.state.peer()),
                e,
            )
        })
    }

    /// Receives the next message; `None` when the other process has closed the
    /// channel.
    ///
    /// # Errors
    ///
    /// As for [`crate::child::ChildChannel::recv`].
    pub async fn recv(&self) -> Result<Option<Vec<u8>>> {
        self.shared.state.check_open()?;
        let mut out = Vec::new();
        let max = self.settings.max;
        let op = async {
            match &self.shared.conn {
                Conn::Messages(s) => s.recv(&mut out, max).await,
                Conn::Json(l) => l.recv(&mut out, max).await,
            }
        };
        match bounded(self.settings.lim.read.until(), "receive", op).await {
            Ok(more) => Ok(more.then_some(out)),
            Err(e) => {
                let bad_line = matches!(self.shared.conn, Conn::Json(_)) && is_bad_json_line(&e);
                Err(self
                    .shared
                    .state
                    .recv_failed(e, bad_line, || self.shared.close()))
            }
        }
    }
}
