//! Child-process channels: a message channel between a parent and a child it
//! starts, like Node's `child_process.fork` (`process.send` /
//! `process.on('message')`).
//!
//! The parent spawns a [`std::process::Command`] with
//! [`spawn_with_channel`](CommandExt::spawn_with_channel) (or
//! [`ChannelOptions::spawn`]) and gets the [`Child`] and its [`ChildChannel`];
//! the child calls [`parent_channel`] once to get its end.
//!
//! ```no_run
//! use ipckit::child::{CommandExt, parent_channel};
//!
//! if std::env::args().nth(1).as_deref() == Some("child") {
//!     let parent = parent_channel()?;
//!     while let Some(msg) = parent.recv()? {
//!         parent.send(&msg)?; // echo
//!     }
//!     return Ok(());
//! }
//! let exe = std::env::current_exe()?;
//! let (mut child, channel) = std::process::Command::new(exe).arg("child").spawn_with_channel()?;
//! channel.send(b"hello")?;
//! assert_eq!(channel.recv()?, Some(b"hello".to_vec()));
//! drop(channel); // the child sees the end of the channel and exits
//! child.wait()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Serialization
//!
//! - [`Serialization::Messages`] (the default): whole messages of any bytes,
//!   boundaries kept, as [`MessageStream`](crate::MessageStream) carries them.
//!   The child finds its end through the variable `IPCKIT_CHANNEL`.
//! - [`Serialization::Json`]: Node's `json` serialization, one JSON value per
//!   line over a byte stream, through the variables `NODE_CHANNEL_FD` and
//!   `NODE_CHANNEL_SERIALIZATION_MODE=json` that Node's `child_process.fork`
//!   sets. A Rust parent can so start an unmodified Node child that uses
//!   `process.send` and `process.on('message')`, and a Node parent can `fork`
//!   a Rust child (`execPath` pointing at it): [`parent_channel`] finds either.
//!   Each message is one JSON value; [`send`](ChildChannel::send) refuses
//!   anything else, and a received line that is not valid JSON fails that
//!   [`recv`](ChildChannel::recv) with [`ErrorKind::Protocol`], quoting it — the
//!   channel goes on with the next line. Node's `advanced` (V8) serialization is
//!   not supported.
//!
//! # The end of the channel
//!
//! The parent keeps no copy of the child's end: when the child exits (or is
//! killed), the parent's `recv` returns `None`, after every message the child
//! sent before, also when the child exits without reading what the parent sent
//! it. That holds only while no other process keeps the child's end open: a
//! child that passes its end on to its own children (a `sh -c` wrapper that
//! forks the real program, or a program that spawns with the descriptor or
//! handle inheritable) ends the channel only when the last of them exits. The
//! child's end is the only inherited one, so when the parent dies the child's
//! `recv` returns `None`.
//! A child that is killed in the middle of a message never delivers part of it:
//! a message channel carries whole messages only, and a JSON line cut short
//! fails `recv` with [`ErrorKind::Protocol`] once before the end.
//!
//! # Platform-specific behavior
//!
//! ### Unix
//!
//! A `socketpair`: `SOCK_SEQPACKET` for messages, `SOCK_STREAM` for Node's
//! channel (as Node makes it). Both ends are close-on-exec; the forked child
//! clears the flag on its own end alone just before `exec` (a `pre_exec` hook),
//! so no other child, and no other thread's `fork`, inherits it. The variable
//! holds the descriptor number. [`parent_channel`] takes only a descriptor that
//! is above 2, not close-on-exec (everything std, tokio and ipckit open is, so
//! such a descriptor was inherited) and an `AF_UNIX` socket of the expected
//! type, and makes it close-on-exec again, so the child's own children do not
//! inherit it.
//!
//! ### Windows
//!
//! A pair of named-pipe ends in message mode under a unique, never-reused name
//! (one instance, remote clients refused, the default owner-only access); the
//! variable holds the child end's handle value. std's `Command` inherits every
//! inheritable handle and offers no handle list on stable Rust, so the child end
//! is made inheritable only for the spawn, under a lock shared by every ipckit
//! spawn: two ipckit spawns never leak ends into each other's children, but a
//! process spawned at that moment by another thread with plain `std` could
//! inherit it (it then holds the channel open until it exits).
//! [`parent_channel`] takes only an inheritable handle that is the client end
//! of a message-mode pipe, and makes it non-inheritable again.
//!
//! Node's channel ([`Serialization::Json`]) is a byte-mode pipe, which Node
//! finds as C runtime descriptor 3 (`NODE_CHANNEL_FD=3`) in the table that
//! C programs read from `STARTUPINFO.lpReserved2` at startup, and on which
//! libuv writes and expects its IPC frames (a 16-byte header before each
//! write); ipckit's end speaks them too.
//! - A Node parent forks a Rust child: [`parent_channel`] reads descriptor 3
//!   from that table (it must be an inheritable client end of a byte-mode
//!   pipe; it is made non-inheritable).
//! - A Rust parent spawns a Node child: `std::process::Command` cannot set
//!   `lpReserved2`, so the child is created suspended, the table is written
//!   into it and named in its process parameters, and then it is resumed (a
//!   child that cannot be given it is killed, and the spawn fails). To suspend
//!   it, the command's creation flags are set to `CREATE_SUSPENDED` for the
//!   spawn and to 0 after it: flags set on the command before are not kept.
//!   Only 64-bit children are supported.

mod json;
mod uv_frame;

use std::any::type_name;
use std::fmt;
use std::io;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

#[cfg_attr(not(feature = "tokio"), allow(unused_imports))]
pub(crate) use self::json::{Lines, is_bad_line as is_bad_json_line};
use crate::error::{Error, ErrorKind, Result, breaks_channel};
use crate::limits::{DEFAULT_MAX_MESSAGE_SIZE, Deadlines, check_max_message_size};
use crate::sync::lock;
use crate::sys;

/// The variable that names the child's end of a message channel.
pub const CHANNEL_VAR: &str = "IPCKIT_CHANNEL";
/// The variable in which Node's `fork` names the child's end of its channel.
pub const NODE_CHANNEL_FD: &str = "NODE_CHANNEL_FD";
/// The variable in which Node's `fork` names the serialization (`json` or
/// `advanced`).
pub const NODE_CHANNEL_SERIALIZATION_MODE: &str = "NODE_CHANNEL_SERIALIZATION_MODE";

/// How messages travel over a child-process channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Serialization {
    /// Whole messages of any bytes (`SOCK_SEQPACKET`, message-mode pipes).
    #[default]
    Messages,
    /// Node's `json` serialization: one JSON value per line.
    Json,
}

impl fmt::Display for Serialization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Serialization::Messages => "messages",
            Serialization::Json => "json",
        })
    }
}

/// Options for spawning a child with a channel: the serialization and the
/// largest message the parent's end accepts.
///
/// # Examples
///
/// ```no_run
/// use ipckit::child::{ChannelOptions, Serialization};
/// let mut cmd = std::process::Command::new("node");
/// cmd.arg("child.js");
/// let (child, channel) = ChannelOptions::new()
///     .serialization(Serialization::Json)
///     .spawn(&mut cmd)?;
/// channel.send_json(&serde_json::json!({ "hello": "node" }))?;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChannelOptions {
    serialization: Serialization,
    max_message_size: usize,
}

impl Default for ChannelOptions {
    fn default() -> ChannelOptions {
        ChannelOptions::new()
    }
}

/// What [`ChannelOptions::spawn_using`] needs from the command it spawns.
pub(crate) trait SpawnTarget {
    /// What a spawn returns.
    type Child;
    /// The `std` command inside.
    fn std_mut(&mut self) -> &mut Command;
    /// Spawns the process.
    fn spawn_it(&mut self) -> io::Result<Self::Child>;
    /// The process id of what was spawned.
    fn pid(child: &Self::Child) -> Option<u32>;
}

impl SpawnTarget for Command {
    type Child = Child;
    fn std_mut(&mut self) -> &mut Command {
        self
    }
    fn spawn_it(&mut self) -> io::Result<Child> {
        self.spawn()
    }
    fn pid(child: &Child) -> Option<u32> {
        Some(child.id())
    }
}

/// A channel's connection: ipckit's messages or Node's JSON lines. With the
/// defaults, the parent's end before it is wrapped (and the blocking face's
/// connection); the tokio face holds its async forms.
pub(crate) enum Conn<M = sys::MsgStream, J = Lines> {
    Messages(M),
    Json(J),
}

/// How a connection of either face is closed, both ways, once a receive
/// broke it.
pub(crate) trait Closing {
    fn close(&self);
}

impl Closing for sys::MsgStream {
    fn close(&self) {
        sys::MsgStream::close(self);
    }
}

impl Closing for Lines {
    fn close(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

impl<M: Closing, J: Closing> Conn<M, J> {
    pub(crate) fn serialization(&self) -> Serialization {
        match self {
            Conn::Messages(_) => Serialization::Messages,
            Conn::Json(_) => Serialization::Json,
        }
    }

    pub(crate) fn close(&self) {
        match self {
            Conn::Messages(s) => s.close(),
            Conn::Json(l) => l.close(),
        }
    }
}

impl ChannelOptions {
    /// Messages, with a 64 MiB limit on incoming messages.
    pub fn new() -> ChannelOptions {
        ChannelOptions {
            serialization: Serialization::Messages,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }

    /// How messages travel (default [`Serialization::Messages`]).
    pub fn serialization(&mut self, serialization: Serialization) -> &mut ChannelOptions {
        self.serialization = serialization;
        self
    }

    /// The largest incoming message the parent's end accepts (default 64 MiB).
    pub fn max_message_size(&mut self, bytes: usize) -> &mut ChannelOptions {
        self.max_message_size = bytes;
        self
    }

    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn get_max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Spawns `cmd` with a channel, as [`CommandExt::spawn_with_channel`] does.
    ///
    /// The channel's variables are set on `cmd` for this spawn and removed
    /// afterwards (with the other serialization's), so a later plain spawn of
    /// the same command passes no channel.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] for a maximum message size of 0,
    /// [`ErrorKind::Unsupported`] for [`Serialization::Json`] with a 32-bit
    /// child on Windows, and the OS error of creating the channel or of the spawn (a program that does not
    /// exist is [`ErrorKind::NotFound`]), naming the program.
    ///
    /// # Platform-specific behavior
    ///
    /// ### Unix
    ///
    /// Each spawn adds one `pre_exec` hook to `cmd` (the one that lets the child
    /// inherit its end), and std has no way to remove a hook: spawning the same
    /// `Command` again adds another, and they pile up. A hook of an earlier spawn
    /// does nothing in later ones, but each costs a call in every later fork of
    /// that command, so build a fresh `Command` for each child when spawning
    /// many.
    #[doc(alias = "fork")]
    pub fn spawn(&self, cmd: &mut Command) -> Result<(Child, ChildChannel)> {
        let (child, conn, peer) = self.spawn_using(cmd)?;
        Ok((child, ChildChannel::new(conn, peer, self)))
    }

    /// Spawns through any [`SpawnTarget`] (a `std` or a tokio command).
    pub(crate) fn spawn_using<C: SpawnTarget>(
        &self,
        cmd: &mut C,
    ) -> Result<(C::Child, Conn, String)> {
        check_max_message_size(self.max_message_size)?;
        let program = cmd.std_mut().get_program().to_string_lossy().into_owned();
        let create = |e| {
            Error::io(
                format!("create the {} channel for {program:?}", self.serialization),
                e,
            )
        };
        let what = |e| {
            Error::io(
                format!("spawn {program:?} with a {} channel", self.serialization),
                e,
            )
        };
        let (conn, end) = match self.serialization {
            Serialization::Messages => sys::child::message_pair()
                .map(|(s, end)| (Conn::Messages(s), end))
                .map_err(create)?,
            Serialization::Json => sys::child::stream_pair()
                .map(|(s, end)| (Conn::Json(Lines::new(s)), end))
                .map_err(create)?,
        };
        let token = end.token();
        let std = cmd.std_mut();
        match self.serialization {
            Serialization::Messages => {
                std.env(CHANNEL_VAR, &token)
                    .env_remove(NODE_CHANNEL_FD)
                    .env_remove(NODE_CHANNEL_SERIALIZATION_MODE);
            }
            Serialization::Json => {
                std.env(NODE_CHANNEL_FD, &token)
                    .env(NODE_CHANNEL_SERIALIZATION_MODE, "json")
                    .env_remove(CHANNEL_VAR);
            }
        }
        let spawned = end.spawn_with(cmd, C::std_mut, C::spawn_it, C::pid);
        cmd.std_mut()
            .env_remove(CHANNEL_VAR)
            .env_remove(NODE_CHANNEL_FD)
            .env_remove(NODE_CHANNEL_SERIALIZATION_MODE);
        let child = spawned.map_err(what)?;
        let peer = match C::pid(&child) {
            Some(pid) => format!("child process {pid} ({program})"),
            None => format!("child process ({program})"),
        };
        Ok((child, conn, peer))
    }

    /// The channel to the parent, with these options' maximum message size (the
    /// serialization is the one the parent chose). See [`parent_channel`].
    ///
    /// # Errors
    ///
    /// As for [`parent_channel`].
    pub fn parent_channel(&self) -> Result<ChildChannel> {
        check_max_message_size(self.max_message_size)?;
        let (conn, serialization) = adopt_parent(true)?;
        let mut opts = self.clone();
        opts.serialization = serialization;
        Ok(ChildChannel::new(conn, "the parent process".into(), &opts))
    }
}

/// Whether this process has taken its channel to the parent. Held while the
/// channel is taken, so two threads cannot both adopt it; set only once the
/// adoption has succeeded, so a failed one can be retried.
static TAKEN: Mutex<bool> = Mutex::new(false);

/// Finds the inherited channel in this process's environment and takes it, once
/// per process. With `json_ok` false a Node (json) channel is refused before
/// anything is done to it, so it stays open for a later taker that can use it.
pub(crate) fn adopt_parent(json_ok: bool) -> Result<(Conn, Serialization)> {
    let var = |name: &str| std::env::var(name).ok();
    let mut taken = lock(&TAKEN);
    if *taken {
        return Err(Error::new(
            ErrorKind::InvalidOption,
            "take the channel to the parent process: it was already taken by this \
             process (parent_channel can be called once; clone the channel instead)",
        ));
    }
    if let Some(token) = var(CHANNEL_VAR) {
        let s = sys::child::adopt_messages(&token, CHANNEL_VAR)
            .map_err(|e| Error::io("take the channel to the parent process", e))?;
        *taken = true;
        return Ok((Conn::Messages(s), Serialization::Messages));
    }
    if let Some(token) = var(NODE_CHANNEL_FD) {
        let mode = var(NODE_CHANNEL_SERIALIZATION_MODE).unwrap_or_else(|| "json".into());
        if mode != "json" {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "take the channel to the parent process: its serialization is \
                     {NODE_CHANNEL_SERIALIZATION_MODE}={mode:?}; only \"json\" is \
                     supported (fork with {{ serialization: 'json' }})"
                ),
            ));
        }
        if !json_ok {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "take the channel to the parent process: it is Node's json channel \
                     ({NODE_CHANNEL_FD}={token}), which async child channels do not \
                     carry; it is left open for ipckit::child::parent_channel"
                ),
            ));
        }
        let s = sys::child::adopt_stream(&token, NODE_CHANNEL_FD)
            .map_err(|e| Error::io("take Node's channel to the parent process", e))?;
        *taken = true;
        return Ok((Conn::Json(Lines::new(s)), Serialization::Json));
    }
    Err(Error::new(
        ErrorKind::NotFound,
        format!(
            "take the channel to the parent process: this process was not started with \
             one (neither {CHANNEL_VAR} nor {NODE_CHANNEL_FD} is set; start it with \
             ipckit's spawn_with_channel or Node's child_process.fork)"
        ),
    ))
}

/// Returns this process's channel to the parent that started it, with
/// [`spawn_with_channel`](CommandExt::spawn_with_channel) or with Node's
/// `child_process.fork`. It can be taken once per process.
///
/// # Errors
///
/// [`ErrorKind::NotFound`] when the process was not started with a channel
/// (the message says which variables are missing), or when the variable names
/// a descriptor or handle that is not open; [`ErrorKind::InvalidOption`] when it
/// names something that is not such a channel (standard input, output or error,
/// a descriptor or handle this process opened itself, anything but a socket or
/// pipe of the right kind; nothing is closed then), and when the channel was
/// taken already; [`ErrorKind::Unsupported`] for Node's `advanced`
/// serialization (and for Node's channel on Windows).
pub fn parent_channel() -> Result<ChildChannel> {
    ChannelOptions::new().parent_channel()
}

/// Spawning a [`Command`] with a channel.
pub trait CommandExt {
    /// Spawns the command with a [`Serialization::Messages`] channel; see
    /// [`ChannelOptions::spawn`].
    ///
    /// # Errors
    ///
    /// As for [`ChannelOptions::spawn`].
    fn spawn_with_channel(&mut self) -> Result<(Child, ChildChannel)>;
}

impl CommandExt for Command {
    fn spawn_with_channel(&mut self) -> Result<(Child, ChildChannel)> {
        ChannelOptions::new().spawn(self)
    }
}

/// The limits of one handle to a channel, blocking or async: timeouts and
/// deadlines of each direction and the maximum message size, checked when set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) lim: Deadlines,
    pub(crate) max: usize,
}

impl Settings {
    pub(crate) fn new(max: usize) -> Settings {
        Settings {
            lim: Deadlines::default(),
            max,
        }
    }

    pub(crate) fn set_max_message_size(&mut self, bytes: usize) -> Result<()> {
        check_max_message_size(bytes)?;
        self.max = bytes;
        Ok(())
    }
}

/// Who is at the other end of a channel (blocking or async) and whether this
/// side has closed it.
#[derive(Debug)]
pub(crate) struct ChannelState {
    peer: String,
    /// Why the channel was closed (an oversized message), once it was.
    closed: OnceLock<String>,
}

impl ChannelState {
    pub(crate) fn new(peer: String) -> ChannelState {
        ChannelState {
            peer,
            closed: OnceLock::new(),
        }
    }

    pub(crate) fn peer(&self) -> &str {
        &self.peer
    }

    /// `Disconnected`, saying why, once the channel was closed here.
    pub(crate) fn check_open(&self) -> Result<()> {
        match self.closed.get() {
            None => Ok(()),
            Some(why) => Err(Error::new(
                ErrorKind::Disconnected,
                format!("the channel to the {} is closed: {why}", self.peer),
            )),
        }
    }

    /// The error of a failed receive. One that leaves the channel out of step
    /// (an oversized message, a broken frame) closes it through `close`, unless
    /// `message_only` says it spoilt that message alone.
    pub(crate) fn recv_failed(
        &self,
        e: io::Error,
        message_only: bool,
        close: impl FnOnce(),
    ) -> Error {
        let broken = breaks_channel(&e) && !message_only;
        let err = Error::io(format!("receive a message from the {}", self.peer), e);
        if broken {
            let _ = self.closed.set(err.to_string());
            close();
        }
        err
    }
}

/// What every clone of a child channel (either face) shares.
pub(crate) struct Shared<M = sys::MsgStream, J = Lines> {
    pub(crate) conn: Conn<M, J>,
    pub(crate) state: ChannelState,
}

impl<M: Closing, J: Closing> Shared<M, J> {
    pub(crate) fn new(conn: Conn<M, J>, peer: String) -> Arc<Shared<M, J>> {
        Arc::new(Shared {
            conn,
            state: ChannelState::new(peer),
        })
    }

    pub(crate) fn close(&self) {
        self.conn.close();
    }
}

/// What both faces' `ChildChannel` have the same way (each keeps `shared`
/// and `settings`): its `Debug`, the serialization, the peer, the size limit,
/// the deadline setters and `try_clone`.
macro_rules! channel_face {
    ($ty:ident) => {
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("peer", &self.shared.state.peer())
                    .field("serialization", &self.serialization())
                    .field("settings", &self.settings)
                    .finish_non_exhaustive()
            }
        }

        impl $ty {
            /// The serialization of this channel.
            pub fn serialization(&self) -> crate::child::Serialization {
                self.shared.conn.serialization()
            }

            /// Who is at the other end: `child process PID (PROGRAM)` or `the
            /// parent process`.
            pub fn peer(&self) -> &str {
                self.shared.state.peer()
            }

            /// The largest incoming message this handle accepts.
            pub fn max_message_size(&self) -> usize {
                self.settings.max
            }

            /// Sets the largest incoming message this handle accepts (default
            /// 64 MiB).
            ///
            /// # Errors
            ///
            /// [`ErrorKind::InvalidOption`](crate::ErrorKind::InvalidOption)
            /// for 0.
            pub fn set_max_message_size(&mut self, bytes: usize) -> crate::error::Result<()> {
                self.settings.set_max_message_size(bytes)
            }

            crate::limits::deadline_setters!(settings.lim, "`recv`", "`send`");

            /// Another handle to the same channel, with this one's limits to
            /// start with.
            ///
            /// # Errors
            ///
            /// None today; the `Result` leaves room for transports that must
            /// duplicate an OS handle.
            pub fn try_clone(&self) -> crate::error::Result<$ty> {
                Ok($ty {
                    shared: ::std::sync::Arc::clone(&self.shared),
                    settings: self.settings,
                })
            }
        }
    };
}
pub(crate) use channel_face;

/// A message channel between a parent and a child process: each
/// [`send`](ChildChannel::send) arrives as one [`recv`](ChildChannel::recv),
/// whole and in order; the end of the channel (the other process exited) is
/// `None`.
///
/// `send` and `recv` take `&self`, so one thread can receive while another
/// sends; [`try_clone`](ChildChannel::try_clone) gives another handle with its
/// own timeouts. The handles share one receive turn and one send turn: a `recv`
/// blocked on one handle holds the turn, so a `recv` on another waits behind
/// it, however short its own timeout (likewise for `send`). Timeouts and
/// deadlines work as for
/// [`MessageStream`](crate::MessageStream): a `recv` that runs out of time loses
/// nothing, and a JSON line cut short by a send timeout is finished by the next
/// `send`, never torn.
///
/// See the [module documentation](self) for the serializations and the end of
/// the channel.
pub struct ChildChannel {
    /// Read by the OS handle impls of [`os`](crate::os) too.
    pub(crate) shared: Arc<Shared>,
    settings: Settings,
}

crate::child::channel_face!(ChildChannel);

impl ChildChannel {
    fn new(conn: Conn, peer: String, opts: &ChannelOptions) -> ChildChannel {
        ChildChannel {
            shared: Shared::new(conn, peer),
            settings: Settings::new(opts.max_message_size),
        }
    }

    /// Sends `msg` as one message. With [`Serialization::Json`] it must be one
    /// JSON value (newlines between its tokens are sent as spaces).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Protocol`] for a message that is not JSON on a JSON channel
    /// (nothing is sent), [`ErrorKind::TimedOut`] when the write timeout or
    /// deadline passes, [`ErrorKind::Disconnected`] when the other process has
    /// gone, and the OS error otherwise.
    pub fn send(&self, msg: &[u8]) -> Result<()> {
        self.shared.state.check_open()?;
        let limit = self.settings.lim.write.until();
        match &self.shared.conn {
            Conn::Messages(s) => s.send(msg, limit),
            Conn::Json(l) => l.send(msg, limit),
        }
        .map_err(|e| {
            Error::io(
                format!("send a message to the {}", self.shared.state.peer()),
                e,
            )
        })
    }

    /// Sends `value` as one JSON message.
    ///
    /// # Errors
    ///
    /// As for [`send`](ChildChannel::send); also [`ErrorKind::Protocol`] when
    /// `value` cannot be serialized as JSON.
    pub fn send_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        let text = serde_json::to_vec(value).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                format!(
                    "serialize a message for the {} as JSON: {e}",
                    self.shared.state.peer()
                ),
            )
        })?;
        self.send(&text)
    }

    /// Receives the next message; `None` when the other process has closed the
    /// channel (it exited).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Protocol`] for a line that is not valid JSON on a JSON
    /// channel (the line is consumed, the channel goes on) or one cut short by
    /// the end of the channel, [`ErrorKind::TimedOut`] when the read timeout or
    /// deadline passes (nothing is lost), [`ErrorKind::FrameTooLarge`] for a
    /// message over the maximum message size (the channel is then closed), and
    /// the OS error otherwise.
    pub fn recv(&self) -> Result<Option<Vec<u8>>> {
        let mut msg = Vec::new();
        Ok(self.recv_into(&mut msg)?.then_some(msg))
    }

    /// Receives the next message into `buf`, replacing its contents and reusing
    /// its allocation; `false` at the end of the channel.
    ///
    /// # Errors
    ///
    /// As for [`recv`](ChildChannel::recv). On an error `buf` is left empty.
    pub fn recv_into(&self, buf: &mut Vec<u8>) -> Result<bool> {
        buf.clear();
        self.shared.state.check_open()?;
        let limit = self.settings.lim.read.until();
        let got = match &self.shared.conn {
            Conn::Messages(s) => s.recv(buf, self.settings.max, limit),
            Conn::Json(l) => l.recv(buf, self.settings.max, limit),
        };
        got.map_err(|e| {
            buf.clear();
            let bad_line = is_bad_line(&e, &self.shared.conn);
            self.shared
                .state
                .recv_failed(e, bad_line, || self.shared.close())
        })
    }

    /// Receives the next message and parses it as JSON into a `T` (for example
    /// [`serde_json::Value`]); `None` at the end of the channel.
    ///
    /// # Errors
    ///
    /// As for [`recv`](ChildChannel::recv); a message that is not JSON, or
    /// JSON that does not parse as a `T`, fails with [`ErrorKind::Protocol`]
    /// (saying which) and the channel goes on.
    pub fn recv_json<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        let Some(msg) = self.recv()? else {
            return Ok(None);
        };
        serde_json::from_slice(&msg).map(Some).map_err(|e| {
            Error::io(
                format!("receive a message from the {}", self.shared.state.peer()),
                json::not_a(&msg, type_name::<T>(), &e),
            )
        })
    }

    /// Tells the other process that no more messages come: its `recv` returns
    /// `None` once it has taken every message sent before. Messages it sends
    /// are still received here (Node closes its side on that end, so a Node
    /// peer sees `'disconnect'`).
    ///
    /// # Errors
    ///
    /// The OS error. On Windows a message channel cannot be half-closed:
    /// [`ErrorKind::Unsupported`] (drop every handle to the channel instead).
    pub fn shutdown_send(&self) -> Result<()> {
        match &self.shared.conn {
            Conn::Messages(s) => sys::child::shutdown_messages(s),
            Conn::Json(l) => l.shutdown(std::net::Shutdown::Write),
        }
        .map_err(|e| {
            Error::io(
                format!("end the channel to the {}", self.shared.state.peer()),
                e,
            )
        })
    }
}

/// A JSON line that failed to parse: an error for that message only.
fn is_bad_line(e: &io::Error, conn: &Conn) -> bool {
    matches!(conn, Conn::Json(_)) && json::is_bad_line(e)
}
