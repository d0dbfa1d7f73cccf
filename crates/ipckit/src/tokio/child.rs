//! Async child-process channels: the async form of [`crate::child`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::tokio::process::{Child, Command};

use super::in_runtime;
use super::message::bounded;
use crate::child::{
    ChannelOptions, ChannelState, Conn, Serialization, Settings, SpawnTarget, adopt_parent,
};
use crate::error::{Error, ErrorKind, Result};
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

/// Spawns a tokio [`Command`] with a [`Serialization::Messages`] channel; the
/// async form of [`crate::child::CommandExt`].
pub trait CommandExt {
    /// Spawns the command with a channel, inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// As for [`ChannelOptions::spawn`]; [`ErrorKind::Unsupported`] outside a
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
    /// As for [`ChannelOptions::spawn`]; [`ErrorKind::Unsupported`] outside a
    /// tokio runtime and, for now, for [`Serialization::Json`] (use the blocking
    /// [`crate::child::ChildChannel`] for Node's channel).
    pub fn spawn_tokio(&self, cmd: &mut Command) -> Result<(Child, ChildChannel)> {
        if self.get_serialization() == Serialization::Json {
            return Err(json_unsupported());
        }
        spawn(self, cmd, self.get_max_message_size())
    }
}

fn json_unsupported() -> Error {
    Error::new(
        ErrorKind::Unsupported,
        "async child channels carry ipckit messages only; Node's json channel is \
         blocking only (ipckit::child::ChildChannel) for now",
    )
}

/// The channel to the parent, for async use: the async form of
/// [`crate::child::parent_channel`].
///
/// # Errors
///
/// As for [`crate::child::parent_channel`]; [`ErrorKind::Unsupported`] outside a
/// tokio runtime and for a Node (json) channel. Refused, a Node channel is left
/// as it was: the blocking [`crate::child::parent_channel`] can still take it.
pub fn parent_channel() -> Result<ChildChannel> {
    in_runtime("take the channel to the parent process")?;
    let (conn, _) = adopt_parent(false)?;
    ChildChannel::new(conn, "the parent process".into(), DEFAULT_MAX_MESSAGE_SIZE)
}

struct Shared {
    io: sys::tokio::MsgStream,
    state: ChannelState,
}

/// An async message channel between a parent and a child process: the async
/// form of [`crate::child::ChildChannel`] (messages only).
///
/// # Cancel safety
///
/// `recv` is cancel safe: a message is taken only by the call that returns it.
/// A `send` dropped part-way sends the message whole or not at all.
pub struct ChildChannel {
    shared: Arc<Shared>,
    settings: Settings,
}

impl fmt::Debug for ChildChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildChannel")
            .field("peer", &self.shared.state.peer())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ChildChannel {
    fn new(conn: Conn, peer: String, max: usize) -> Result<ChildChannel> {
        let io = match conn {
            Conn::Messages(s) => sys::tokio::MsgStream::from_blocking(s)
                .map_err(|e| Error::io(format!("watch the channel to the {peer}"), e))?,
            Conn::Json(_) => return Err(json_unsupported()),
        };
        Ok(ChildChannel {
            shared: Arc::new(Shared {
                io,
                state: ChannelState::new(peer),
            }),
            settings: Settings::new(max),
        })
    }

    /// Who is at the other end.
    pub fn peer(&self) -> &str {
        self.shared.state.peer()
    }

    /// Sends `msg` as one message.
    ///
    /// # Errors
    ///
    /// As for [`crate::child::ChildChannel::send`].
    pub async fn send(&self, msg: &[u8]) -> Result<()> {
        self.shared.state.check_open()?;
        let limit = self.settings.lim.write.until();
        bounded(limit, "send", self.shared.io.send(msg, limit))
            .await
            .map_err(|e| {
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
        let op = self.shared.io.recv(&mut out, self.settings.max);
        match bounded(self.settings.lim.read.until(), "receive", op).await {
            Ok(more) => Ok(more.then_some(out)),
            Err(e) => Err(self
                .shared
                .state
                .recv_failed(e, false, || self.shared.io.close())),
        }
    }

    /// Sets the largest incoming message this handle accepts (default 64 MiB).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] for 0.
    pub fn set_max_message_size(&mut self, bytes: usize) -> Result<()> {
        self.settings.set_max_message_size(bytes)
    }

    /// Bounds every later `recv` to `timeout` (None: no bound).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] for a zero duration.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.settings.lim.set_read_timeout(timeout)
    }

    /// Bounds every later `send` to `timeout` (None: no bound).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] for a zero duration.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.settings.lim.set_write_timeout(timeout)
    }

    /// An absolute time after which `recv` fails with `TimedOut`.
    pub fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        self.settings.lim.read.deadline = deadline;
    }

    /// An absolute time after which `send` fails with `TimedOut`.
    pub fn set_write_deadline(&mut self, deadline: Option<Instant>) {
        self.settings.lim.write.deadline = deadline;
    }

    /// Another handle to the same channel, with this one's limits.
    ///
    /// # Errors
    ///
    /// None today.
    pub fn try_clone(&self) -> Result<ChildChannel> {
        Ok(ChildChannel {
            shared: Arc::clone(&self.shared),
            settings: self.settings,
        })
    }
}
