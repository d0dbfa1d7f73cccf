//! Builders for listeners and client connections.

use std::time::{Duration, Instant};

use super::{Listener, Stream};
use crate::address::ToAddress;
use crate::error::{Error, ErrorKind, Result};

/// Options for [`Listener::bind`], like tokio's `ServerOptions`: set once, bind many.
///
/// The defaults are the safe ones: owner-only access, a stale Unix socket file is
/// replaced while a live one is an error, and on Windows unlimited pipe instances
/// with 64 KiB buffers.
///
/// # Examples
///
/// ```no_run
/// let mut opts = ipckit::ListenerOptions::new();
/// opts.max_instances(16).buffer_sizes(1 << 16, 1 << 16);
/// let listener = opts.bind("pipe:app")?;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    pub(crate) max_instances: Option<u8>,
    pub(crate) in_buffer: u32,
    pub(crate) out_buffer: u32,
    pub(crate) replace_stale: bool,
    pub(crate) backlog: i32,
    pub(crate) max_message_size: usize,
    pub(crate) shm_capacity: usize,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            max_instances: None,
            in_buffer: 64 * 1024,
            out_buffer: 64 * 1024,
            replace_stale: true,
            backlog: 1024,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            shm_capacity: crate::sys::shm_channel::DEFAULT_CAPACITY,
        }
    }
}

impl ListenerOptions {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most pipe instances (connected clients plus the one waiting) the server
    /// allows, 1 to 254; unlimited by default.
    ///
    /// # Platform-specific behavior
    ///
    /// Windows only (`nMaxInstances` of `CreateNamedPipeW`); Unix sockets and TCP
    /// have no such limit and ignore it.
    pub fn max_instances(&mut self, n: u8) -> &mut Self {
        self.max_instances = Some(n);
        self
    }

    /// The sizes the OS reserves for each instance's input and output buffers.
    ///
    /// # Platform-specific behavior
    ///
    /// Windows only (`nInBufferSize`/`nOutBufferSize`); elsewhere ignored.
    pub fn buffer_sizes(&mut self, input: u32, output: u32) -> &mut Self {
        self.in_buffer = input;
        self.out_buffer = output;
        self
    }

    /// Whether `bind` replaces a Unix socket file that nobody listens on (default
    /// true). A file a live listener serves is never replaced.
    pub fn replace_stale(&mut self, yes: bool) -> &mut Self {
        self.replace_stale = yes;
        self
    }

    /// The listen backlog for Unix sockets (default 1024, capped by the kernel).
    pub fn backlog(&mut self, n: i32) -> &mut Self {
        self.backlog = n;
        self
    }

    /// The largest message a [`MessageListener`](crate::MessageListener)'s
    /// streams accept (default 64 MiB); byte streams ignore it. See
    /// [`MessageStream::set_max_message_size`](crate::MessageStream::set_max_message_size).
    pub fn max_message_size(&mut self, bytes: usize) -> &mut Self {
        self.max_message_size = bytes;
        self
    }

    /// Binds a listener at `addr` with these options.
    ///
    /// # Errors
    ///
    /// See [`Listener::bind`]; also [`ErrorKind::InvalidOption`] for a
    /// `max_instances` of 0 or 255.
    pub fn bind(&self, addr: impl ToAddress) -> Result<Listener> {
        self.check()?;
        Listener::bind_with(addr.to_address()?, self)
    }

    /// Refuses option values no listener can use.
    pub(crate) fn check(&self) -> Result<()> {
        check_max_message_size(self.max_message_size)?;
        if let Some(n) = self.max_instances {
            if n == 0 || n == 255 {
                return Err(Error::new(
                    ErrorKind::InvalidOption,
                    format!("max_instances must be from 1 to 254, not {n}"),
                ));
            }
        }
        Ok(())
    }
}

/// Options for [`Stream::connect`].
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// let mut opts = ipckit::ConnectOptions::new();
/// opts.timeout(Duration::from_secs(2)).retry_not_found(true);
/// let stream = opts.connect("pipe:app")?;
/// # Ok::<(), ipckit::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) retry_not_found: bool,
    pub(crate) max_message_size: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            timeout: None,
            retry_not_found: false,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// The largest incoming message a message stream accepts unless told otherwise.
pub(crate) const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;

/// Refuses a maximum message size of zero, which admits only empty messages and
/// is surely a mistake.
pub(crate) fn check_max_message_size(bytes: usize) -> Result<()> {
    if bytes == 0 {
        return Err(Error::new(
            ErrorKind::InvalidOption,
            "a maximum message size of 0 bytes is not allowed (it would admit only empty messages)",
        ));
    }
    Ok(())
}

impl ConnectOptions {
    /// The default options: no timeout, no retry when nobody listens.
    pub fn new() -> Self {
        Self::default()
    }

    /// The longest `connect` may take, retries included. On Windows this bounds
    /// the wait for a free instance of a busy pipe.
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = Some(timeout);
        self
    }

    /// Keep trying while nobody listens at the address yet (until the timeout, or
    /// for ever without one), instead of failing at once with `NotFound`.
    pub fn retry_not_found(&mut self, yes: bool) -> &mut Self {
        self.retry_not_found = yes;
        self
    }

    /// The largest message a [`MessageStream`](crate::MessageStream) connected
    /// with these options accepts (default 64 MiB); byte streams ignore it.
    pub fn max_message_size(&mut self, bytes: usize) -> &mut Self {
        self.max_message_size = bytes;
        self
    }

    /// Connects to `addr` with these options.
    ///
    /// # Errors
    ///
    /// See [`Stream::connect`].
    pub fn connect(&self, addr: impl ToAddress) -> Result<Stream> {
        Stream::connect_with(addr.to_address()?, self)
    }
}

/// How long a client waits between tries while nobody listens yet.
const RETRY_PAUSE: Duration = Duration::from_millis(5);

/// The pause before the next connect attempt with `retry_not_found`: at most
/// `RETRY_PAUSE`, never past `limit`; `None` once no time is left, so a timeout
/// never fires before its full duration.
pub(crate) fn retry_pause(limit: Option<Instant>) -> Option<Duration> {
    match limit {
        None => Some(RETRY_PAUSE),
        Some(limit) => {
            let left = limit.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| left.min(RETRY_PAUSE))
        }
    }
}
