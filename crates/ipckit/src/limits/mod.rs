//! Limits and pacing shared by every capability: the accept loop's backoff
//! and connection cap, the maximum message size, and the time limits of one
//! direction of a handle (a timeout and a deadline). Re-exported at their
//! public paths in [`stream`](crate::stream).

mod accept;

use std::time::{Duration, Instant};

pub(crate) use accept::accept_through;
pub use accept::{AcceptBackoff, ConnectionLimit, ConnectionSlot};

use crate::error::{Error, ErrorKind, Result};

pub(crate) use crate::plain::DEFAULT_MAX_MESSAGE_SIZE;

/// Refuses a maximum message size of zero, which admits only empty messages and
/// is surely a mistake.
pub(crate) fn check_max_message_size(bytes: usize) -> Result<()> {
    if bytes == 0 {
        return Err(Error::new(
            ErrorKind::InvalidOption,
            "max_message_size(0): a maximum of 0 bytes is not allowed (it would admit only empty messages)",
        ));
    }
    Ok(())
}

/// Refuses a zero timeout (std's rule: `None` means no timeout).
pub(crate) fn check_timeout(timeout: Option<Duration>, what: &str) -> Result<()> {
    if timeout == Some(Duration::ZERO) {
        return Err(Error::new(
            ErrorKind::InvalidOption,
            format!("a {what} timeout of zero is not allowed (use None for no timeout)"),
        ));
    }
    Ok(())
}

/// The time limits of one direction: a per-call timeout and an absolute deadline.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Limits {
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Option<Instant>,
}

impl Limits {
    /// When the next call must give up: the earlier of now + timeout and the deadline.
    pub(crate) fn until(&self) -> Option<Instant> {
        let by_timeout = self.timeout.map(|t| Instant::now() + t);
        match (by_timeout, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The read and write limits of one handle: what the timeout and deadline
/// setters of every face change.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Deadlines {
    pub(crate) read: Limits,
    pub(crate) write: Limits,
}

impl Deadlines {
    /// `set_read_timeout`: refuses zero, as std does.
    pub(crate) fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        check_timeout(timeout, "read")?;
        self.read.timeout = timeout;
        Ok(())
    }

    /// `set_write_timeout`: refuses zero, as std does.
    pub(crate) fn set_write_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        check_timeout(timeout, "write")?;
        self.write.timeout = timeout;
        Ok(())
    }

    /// `set_deadline`: both directions (Go's `SetDeadline`).
    pub(crate) fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.read.deadline = deadline;
        self.write.deadline = deadline;
    }
}

/// The public timeout and deadline setters of a handle whose [`Deadlines`]
/// are at `self.<path>`, with their docs; `$read` and `$write` name the calls
/// they bound ("read", "`recv`"), an optional last text adds to the write
/// deadline's doc. One block for every face that keeps its
/// limits in `Deadlines` (the blocking streams and message channels, the
/// tokio message and child channels).
macro_rules! deadline_setters {
    ($($field:ident).+, $read:literal, $write:literal $(, $write_note:literal)?) => {
        #[doc = concat!("Bounds each later ", $read, " to `timeout` (None: no bound), as std's `set_read_timeout`.")]
        ///
        /// # Errors
        ///
        /// [`ErrorKind::InvalidOption`](crate::ErrorKind::InvalidOption) for a zero duration.
        pub fn set_read_timeout(&mut self, timeout: Option<std::time::Duration>) -> $crate::Result<()> {
            self.$($field).+.set_read_timeout(timeout)
        }

        #[doc = concat!("Bounds each later ", $write, " to `timeout` (None: no bound).")]
        ///
        /// # Errors
        ///
        /// [`ErrorKind::InvalidOption`](crate::ErrorKind::InvalidOption) for a zero duration.
        pub fn set_write_timeout(&mut self, timeout: Option<std::time::Duration>) -> $crate::Result<()> {
            self.$($field).+.set_write_timeout(timeout)
        }

        /// The read timeout.
        pub fn read_timeout(&self) -> Option<std::time::Duration> {
            self.$($field).+.read.timeout
        }

        /// The write timeout.
        pub fn write_timeout(&self) -> Option<std::time::Duration> {
            self.$($field).+.write.timeout
        }

        /// Sets both the read and the write deadline (Go's `SetDeadline`).
        pub fn set_deadline(&mut self, deadline: Option<std::time::Instant>) {
            self.$($field).+.set_deadline(deadline);
        }

        #[doc = concat!("An absolute time after which each ", $read, " fails with `TimedOut` until the deadline is moved (Go's `SetReadDeadline`). A deadline in the past fails it at once.")]
        pub fn set_read_deadline(&mut self, deadline: Option<std::time::Instant>) {
            self.$($field).+.read.deadline = deadline;
        }

        #[doc = concat!("An absolute time after which each ", $write, " fails with `TimedOut` (Go's `SetWriteDeadline`). A deadline in the past fails it at once.")]
        $(#[doc = $write_note])?
        pub fn set_write_deadline(&mut self, deadline: Option<std::time::Instant>) {
            self.$($field).+.write.deadline = deadline;
        }
    };
}
pub(crate) use deadline_setters;
