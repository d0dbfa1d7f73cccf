//! The one error type of ipckit.
//!
//! Operations that name an endpoint (`bind`, `connect`, `accept`) return
//! [`Error`]: it says what was attempted on which address and why it failed,
//! keeps the operating system's error ([`io_error`](Error::io_error),
//! [`raw_os_error`](Error::raw_os_error)), and says whether retrying can help
//! ([`is_timeout`](Error::is_timeout), [`is_temporary`](Error::is_temporary)).
//!
//! The text says what was attempted and, in ipckit's words, why it failed
//! (`receive a message from pipe:app: an incoming message of 2000 bytes
//! exceeds ...`); the operating system's own error, where the OS gave one, is
//! not repeated in it but returned by [`source`](std::error::Error::source),
//! as std's guidelines for error types ask, so a reporter that walks the chain
//! (anyhow, `ipckit`'s CLI) prints each part once. The alternate form (`{:#}`)
//! prints the whole chain on one line, `connect to pipe:app: No such file or
//! directory (os error 2)`, as anyhow's does.
//!
//! Byte-level I/O (`Read`/`Write`) returns plain [`io::Error`]s straight from the
//! operating system, as std does.

use std::fmt;
use std::io;

use crate::plain::{FaultKind, OsErrorClass, fault_of};

/// A specialized `Result` for ipckit operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text does not name a valid endpoint (empty, NUL, too long, unknown scheme).
    InvalidAddress,
    /// The address is valid, but this operating system (or transport) cannot serve it.
    Unsupported,
    /// An option value breaks a rule (for example a zero buffer size).
    InvalidOption,
    /// The operation did not finish before its timeout or deadline.
    TimedOut,
    /// The address is already served by a live listener.
    AddrInUse,
    /// Nobody serves the address.
    NotFound,
    /// Every instance of the endpoint is busy.
    Busy,
    /// The peer is gone.
    Disconnected,
    /// The operating system refused access.
    PermissionDenied,
    /// An incoming message is larger than the receiver's maximum message size.
    FrameTooLarge,
    /// The peer broke the wire protocol (a malformed or truncated frame).
    Protocol,
    /// Any other failure reported by the operating system.
    Os,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidAddress => "invalid address",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::InvalidOption => "invalid option",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::AddrInUse => "address in use",
            ErrorKind::NotFound => "not found",
            ErrorKind::Busy => "busy",
            ErrorKind::Disconnected => "disconnected",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::FrameTooLarge => "message too large",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Os => "operating system error",
        }
    }

    fn from_io(err: &io::Error) -> ErrorKind {
        // An ipckit error that travelled through an `io::Error` keeps its kind.
        if let Some(inner) = err.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
            return inner.kind;
        }
        if let Some(fault) = fault_of(err) {
            return match fault.kind {
                FaultKind::TooLarge => ErrorKind::FrameTooLarge,
                FaultKind::Protocol => ErrorKind::Protocol,
                FaultKind::InvalidOption => ErrorKind::InvalidOption,
            };
        }
        if let Some(class) = err.raw_os_error().and_then(crate::sys::os_error_class) {
            return match class {
                OsErrorClass::InvalidAddress => ErrorKind::InvalidAddress,
                OsErrorClass::Busy => ErrorKind::Busy,
                OsErrorClass::Disconnected => ErrorKind::Disconnected,
            };
        }
        match err.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ErrorKind::TimedOut,
            io::ErrorKind::AddrInUse => ErrorKind::AddrInUse,
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ErrorKind::NotFound,
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            io::ErrorKind::ResourceBusy => ErrorKind::Busy,
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof => ErrorKind::Disconnected,
            io::ErrorKind::Unsupported => ErrorKind::Unsupported,
            io::ErrorKind::InvalidInput => ErrorKind::InvalidOption,
            _ => ErrorKind::Os,
        }
    }

    fn to_io(self) -> io::ErrorKind {
        match self {
            ErrorKind::InvalidAddress | ErrorKind::InvalidOption => io::ErrorKind::InvalidInput,
            ErrorKind::Unsupported => io::ErrorKind::Unsupported,
            ErrorKind::TimedOut => io::ErrorKind::TimedOut,
            ErrorKind::AddrInUse => io::ErrorKind::AddrInUse,
            ErrorKind::NotFound => io::ErrorKind::NotFound,
            ErrorKind::Busy => io::ErrorKind::ResourceBusy,
            ErrorKind::Disconnected => io::ErrorKind::BrokenPipe,
            ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            ErrorKind::FrameTooLarge | ErrorKind::Protocol => io::ErrorKind::InvalidData,
            ErrorKind::Os => io::ErrorKind::Other,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ipckit error: what was attempted, on which address, and why it failed.
///
/// # Examples
///
/// ```
/// let err = "".parse::<ipckit::Address>().unwrap_err();
/// assert_eq!(err.kind(), ipckit::ErrorKind::InvalidAddress);
/// assert!(err.to_string().contains("empty"));
/// ```
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<io::Error>,
}

impl Error {
    /// A domain error of `kind` with a full message (what broke which rule).
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Wraps an operating-system error with what was being attempted, e.g.
    /// `"connect to pipe:app"`. The kind is derived from the OS error.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error {
            kind: ErrorKind::from_io(&source),
            message: context.into(),
            source: Some(source),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The operating system's error code, if this error came from the OS.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.as_ref().and_then(io::Error::raw_os_error)
    }

    /// The operating system's error, if this error came from the OS.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.source.as_ref()
    }

    /// True when a timeout or deadline expired; the same call may succeed later.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::TimedOut
    }

    /// True when retrying the same call can help: timeouts, busy endpoints,
    /// interrupted calls, and an endpoint that is not (yet) there.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::TimedOut | ErrorKind::Busy | ErrorKind::NotFound
        ) || self
            .source
            .as_ref()
            .is_some_and(|e| e.kind() == io::ErrorKind::Interrupted)
    }

    /// True when the process or the machine ran out of something the call
    /// needed: file descriptors or handles, socket buffers, memory, kernel
    /// quota. Retrying at once fails the same way; retrying once something has
    /// been freed (a connection closed) can succeed. A server meets this in
    /// `accept`, and should pause and go on rather than stop: see
    /// [`AcceptBackoff`](crate::stream::AcceptBackoff).
    ///
    /// # Platform-specific behavior
    ///
    /// ### Unix
    ///
    /// `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`.
    ///
    /// ### Windows
    ///
    /// `ERROR_TOO_MANY_OPEN_FILES`, `ERROR_NOT_ENOUGH_MEMORY`, `ERROR_OUTOFMEMORY`,
    /// `ERROR_NO_SYSTEM_RESOURCES` and its paged/non-paged pool, working-set,
    /// pagefile and commit-limit variants, `ERROR_NOT_ENOUGH_QUOTA` (what
    /// `CreateNamedPipeW` returns when no pipe buffers can be had), and
    /// Winsock's `WSAEMFILE`, `WSAENOBUFS`.
    pub fn is_resource_exhausted(&self) -> bool {
        self.raw_os_error()
            .is_some_and(crate::sys::is_resource_error)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

/// What was attempted and why it failed; with `{:#}`, followed by the OS
/// error (`: No such file or directory (os error 2)`) and its own causes.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        // A reason ipckit gave itself (an io::Error without an OS code: an
        // oversized message, a squatted name) is part of the text; an OS
        // error is the source.
        if let Some(reason) = self.source.as_ref().filter(|e| e.raw_os_error().is_none()) {
            write!(f, ": {reason}")?;
        }
        if f.alternate() {
            let mut cause = std::error::Error::source(self);
            while let Some(e) = cause {
                write!(f, ": {e}")?;
                cause = e.source();
            }
        }
        Ok(())
    }
}

/// `source()` is the operating system's error under this one, if any: the
/// [`io_error`](Error::io_error) when it has an OS code; for a reason ipckit
/// gave itself (already part of the text), what lies under that reason.
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let io = self.source.as_ref()?;
        if io.raw_os_error().is_some() {
            Some(io)
        } else {
            io.source()
        }
    }
}

/// An `io::Error` handed straight to the caller (by `Framed`) that carries a
/// `sys` fault becomes one that carries the [`Error`] of the fault's kind, so
/// it can be downcast to an [`Error`] like every other ipckit failure.
pub(crate) fn lift_fault(e: io::Error) -> io::Error {
    match fault_of(&e) {
        Some(fault) => Error::new(ErrorKind::from_io(&e), fault.message.clone()).into(),
        None => e,
    }
}

/// Whether a receive error leaves the channel out of step with its peer (an
/// oversized message, broken framing), so it must be closed rather than used on.
pub(crate) fn breaks_channel(e: &io::Error) -> bool {
    let kind = match fault_of(e) {
        Some(fault) => return matches!(fault.kind, FaultKind::TooLarge | FaultKind::Protocol),
        None => e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<Error>())
            .map(Error::kind),
    };
    matches!(kind, Some(ErrorKind::FrameTooLarge | ErrorKind::Protocol))
}

/// Converts into an [`io::Error`] whose kind matches and whose inner error is this
/// [`Error`] (reach it with [`io::Error::get_ref`] and `downcast_ref`).
impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        io::Error::new(err.kind.to_io(), err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plain::too_large;

    #[test]
    fn io_errors_keep_their_code_and_context() {
        let err = Error::io("connect to pipe:x", io::Error::from_raw_os_error(2));
        assert_eq!(err.raw_os_error(), Some(2));
        // What was attempted; the OS error is the source, printed once by
        // reporters that walk the chain, and by `{:#}`.
        assert_eq!(err.to_string(), "connect to pipe:x");
        let source = std::error::Error::source(&err).expect("the OS error");
        let os = source.downcast_ref::<io::Error>().unwrap();
        assert_eq!(os.raw_os_error(), Some(2));
        let full = format!("{err:#}");
        assert_eq!(full, format!("connect to pipe:x: {os}"));
        assert!(full.contains("os error 2"), "{full}");
        assert_eq!(err.io_error().unwrap().raw_os_error(), Some(2));
        // Through an io::Error, the chain still reaches the OS error.
        let wrapped = io::Error::from(err);
        let inner = std::error::Error::source(&wrapped).expect("the OS error");
        assert!(inner.to_string().contains("os error 2"), "{inner}");

        // A reason ipckit gave itself is part of the text, and not a source.
        let reason = Error::io("receive on pipe:x", too_large(2000, 1000));
        let text = reason.to_string();
        assert!(text.starts_with("receive on pipe:x: "), "{text}");
        assert!(
            text.contains("2000 bytes") && text.contains("1000"),
            "{text}"
        );
        assert!(std::error::Error::source(&reason).is_none());
        assert_eq!(format!("{reason:#}"), text);
        // ... and an OS error under such a reason is still reached.
        let os_err = Error::io("open x", io::Error::from_raw_os_error(13));
        let outer = Error::io("bind pipe:y", io::Error::from(os_err));
        assert_eq!(outer.to_string(), "bind pipe:y: open x");
        let under = std::error::Error::source(&outer).expect("the OS error");
        assert!(under.to_string().contains("os error 13"), "{under}");
        assert!(format!("{outer:#}").ends_with(&under.to_string()));
    }

    #[test]
    fn timeouts_are_temporary_and_convert_to_io_timed_out() {
        let err = Error::io("read", io::Error::from(io::ErrorKind::TimedOut));
        assert!(err.is_timeout());
        assert!(err.is_temporary());
        let io_err = io::Error::from(err);
        assert_eq!(io_err.kind(), io::ErrorKind::TimedOut);
        let inner = io_err.get_ref().unwrap().downcast_ref::<Error>().unwrap();
        assert!(inner.is_timeout());
    }

    #[test]
    fn domain_errors_are_not_temporary() {
        let err = Error::new(ErrorKind::InvalidAddress, "bad");
        assert!(!err.is_temporary());
        assert!(!err.is_timeout());
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidInput);
    }
}
