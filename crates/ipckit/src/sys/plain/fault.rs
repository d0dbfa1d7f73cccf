//! Failures that `sys` finds itself rather than the OS reporting them (an
//! oversized message, broken framing, an option the OS cannot take, a
//! deadline that passed), as `io::Error`s carrying a plain [`Fault`].
//!
//! `sys` builds no `ipckit::Error`: `error.rs`, above it, reads a
//! `Fault`'s kind when the layer above wraps the `io::Error` with what it was
//! doing (`Error::io`), so the caller sees the same [`crate::ErrorKind`] as
//! before (`FrameTooLarge`, `Protocol`, `InvalidOption`).

use std::fmt;
use std::io;

/// What rule a [`Fault`] says was broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// An incoming (or outgoing) message is over the limit.
    TooLarge,
    /// The peer broke the wire protocol, or serves the other kind of channel.
    Protocol,
    /// An option value the OS cannot take.
    InvalidOption,
}

/// A failure found in `sys`, with a full message.
#[derive(Debug)]
pub(crate) struct Fault {
    pub(crate) kind: FaultKind,
    pub(crate) message: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fault {}

impl Fault {
    /// An `io::Error` of the matching kind that carries this fault.
    pub(crate) fn io(kind: FaultKind, message: impl Into<String>) -> io::Error {
        let io_kind = match kind {
            FaultKind::TooLarge | FaultKind::Protocol => io::ErrorKind::InvalidData,
            FaultKind::InvalidOption => io::ErrorKind::InvalidInput,
        };
        io::Error::new(
            io_kind,
            Fault {
                kind,
                message: message.into(),
            },
        )
    }
}

/// What an OS error code means where its `io::ErrorKind` does not say enough
/// (`sys::os_error_class`); `error.rs` maps it to an `ErrorKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // each OS reports some of them
pub(crate) enum OsErrorClass {
    /// The name is not one the OS can serve (too long).
    InvalidAddress,
    /// Every instance of the endpoint is busy.
    Busy,
    /// The peer is gone.
    Disconnected,
}

/// The fault an `io::Error` carries, if it carries one.
pub(crate) fn fault_of(e: &io::Error) -> Option<&Fault> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<Fault>())
}

/// The error for an incoming message over the receiver's limit; it names both
/// sizes. The message is never delivered in part.
pub(crate) fn too_large(len: u64, max: usize) -> io::Error {
    Fault::io(
        FaultKind::TooLarge,
        format!(
            "an incoming message of {len} bytes exceeds the maximum message size of {max} bytes"
        ),
    )
}

/// The error every bounded operation returns when its timeout or deadline has
/// passed: `io::ErrorKind::TimedOut`, naming the operation.
pub(crate) fn timed_out(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{what} did not finish before its deadline"),
    )
}
