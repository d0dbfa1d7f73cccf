//! The two error types: [`RpcError`], the error object of the JSON-RPC wire
//! format, and [`Error`], what a call or a server operation of this crate fails
//! with on this side.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A JSON-RPC 2.0 error object: what a handler returns to refuse a call, and
/// what the caller receives.
///
/// # Examples
///
/// ```
/// use ipckit_rpc::RpcError;
/// let err = RpcError::server_error(-32001, "the queue is full").unwrap();
/// assert_eq!(err.code, -32001);
/// let err = RpcError::new(42, "no such account").with_data(serde_json::json!({"id": 7}));
/// assert_eq!(err.to_string(), "no such account (JSON-RPC error 42)");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    /// The error code: the standard codes are the constants of this type,
    /// -32099 to -32000 are for server errors, any other is the application's.
    pub code: i64,
    /// A short description of the error.
    pub message: String,
    /// More about the error, if the server gave anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// -32700: the server could not parse the JSON text.
    pub const PARSE_ERROR: i64 = -32700;
    /// -32600: the JSON is not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// -32601: no method of that name.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// -32602: the parameters do not fit the method.
    pub const INVALID_PARAMS: i64 = -32602;
    /// -32603: the server failed inside (a handler that panicked, say).
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The lowest code of the range reserved for implementation-defined server errors.
    pub const SERVER_ERROR_MIN: i64 = -32099;
    /// The highest code of the range reserved for implementation-defined server errors.
    pub const SERVER_ERROR_MAX: i64 = -32000;
    /// -32000: this server is shutting down and takes no new calls.
    pub const SHUTTING_DOWN: i64 = -32000;

    /// An error with any code and message.
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// A server error, with a code from -32099 to -32000.
    ///
    /// # Errors
    ///
    /// Gives the message back when the code is outside that range.
    pub fn server_error(code: i64, message: impl Into<String>) -> Result<RpcError, String> {
        let message = message.into();
        if (Self::SERVER_ERROR_MIN..=Self::SERVER_ERROR_MAX).contains(&code) {
            Ok(RpcError::new(code, message))
        } else {
            Err(message)
        }
    }

    /// -32602 with `message`.
    pub fn invalid_params(message: impl Into<String>) -> RpcError {
        RpcError::new(Self::INVALID_PARAMS, message)
    }

    /// -32603 with `message`.
    pub fn internal(message: impl Into<String>) -> RpcError {
        RpcError::new(Self::INTERNAL_ERROR, message)
    }

    /// -32601 naming the method.
    pub fn method_not_found(method: &str) -> RpcError {
        RpcError::new(
            Self::METHOD_NOT_FOUND,
            format!("method not found: {method:?} is not a method of this server"),
        )
    }

    /// -32600 with `message`.
    pub fn invalid_request(message: impl Into<String>) -> RpcError {
        RpcError::new(Self::INVALID_REQUEST, message)
    }

    /// -32700 with `message`.
    pub fn parse_error(message: impl Into<String>) -> RpcError {
        RpcError::new(Self::PARSE_ERROR, message)
    }

    /// The same error with `data` attached.
    pub fn with_data(mut self, data: Value) -> RpcError {
        self.data = Some(data);
        self
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (JSON-RPC error {})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server answered the call with a JSON-RPC error ([`Error::rpc_error`]).
    Rpc,
    /// No response came within the call's timeout.
    TimedOut,
    /// The connection is gone (the peer closed it, or it failed); the call's
    /// fate on the server is unknown.
    Disconnected,
    /// The peer broke the wire format (a malformed frame, header or response).
    Protocol,
    /// A frame is larger than the maximum frame size.
    FrameTooLarge,
    /// The `authkey` handshake failed (wrong key, or a peer that does not do it).
    Authentication,
    /// The parameters or the result did not convert to or from JSON as asked.
    Serialization,
    /// An option or argument breaks a rule.
    InvalidOption,
    /// The transport failed to bind, connect or accept ([`Error::ipckit_error`]).
    Transport,
}

impl ErrorKind {
    fn from_ipckit(kind: ipckit::ErrorKind) -> ErrorKind {
        match kind {
            ipckit::ErrorKind::TimedOut => ErrorKind::TimedOut,
            ipckit::ErrorKind::Disconnected => ErrorKind::Disconnected,
            ipckit::ErrorKind::FrameTooLarge => ErrorKind::FrameTooLarge,
            ipckit::ErrorKind::Protocol => ErrorKind::Protocol,
            ipckit::ErrorKind::InvalidOption => ErrorKind::InvalidOption,
            _ => ErrorKind::Transport,
        }
    }

    fn from_io(err: &io::Error) -> ErrorKind {
        if let Some(inner) = err.get_ref() {
            if let Some(e) = inner.downcast_ref::<ipckit::Error>() {
                return ErrorKind::from_ipckit(e.kind());
            }
            if let Some(e) = inner.downcast_ref::<Error>() {
                return e.kind;
            }
        }
        match err.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ErrorKind::TimedOut,
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof => ErrorKind::Disconnected,
            io::ErrorKind::InvalidData => ErrorKind::Protocol,
            _ => ErrorKind::Transport,
        }
    }
}

/// A failure of this crate: what was attempted and why it failed.
///
/// The message is complete on its own (`call "add" on unix:/tmp/s.sock:
/// ...`); a JSON-RPC error from the server is kept whole in
/// [`rpc_error`](Error::rpc_error), an ipckit error in
/// [`ipckit_error`](Error::ipckit_error).
pub struct Error {
    kind: ErrorKind,
    message: String,
    rpc: Option<Box<RpcError>>,
    ipckit: Option<Box<ipckit::Error>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            rpc: None,
            ipckit: None,
        }
    }

    /// The server's JSON-RPC error for a call (`context` names the call).
    pub(crate) fn rpc(context: impl std::fmt::Display, err: RpcError) -> Error {
        Error {
            kind: ErrorKind::Rpc,
            message: format!("{context}: {err}"),
            rpc: Some(Box::new(err)),
            ipckit: None,
        }
    }

    /// An ipckit error, with what was being attempted.
    pub(crate) fn ipckit(context: &str, err: ipckit::Error) -> Error {
        Error {
            kind: ErrorKind::from_ipckit(err.kind()),
            // `{:#}`: ipckit's text with its OS error, as this message is
            // complete on its own.
            message: format!("{context}: {err:#}"),
            rpc: None,
            ipckit: Some(Box::new(err)),
        }
    }

    /// An ipckit error whose message already says what was attempted where
    /// (a failed bind or connect).
    pub(crate) fn from_ipckit(err: ipckit::Error) -> Error {
        Error {
            kind: ErrorKind::from_ipckit(err.kind()),
            message: format!("{err:#}"),
            rpc: None,
            ipckit: Some(Box::new(err)),
        }
    }

    /// An I/O error of a connection, with what was being attempted.
    pub(crate) fn io(context: &str, err: &io::Error) -> Error {
        Error::new(ErrorKind::from_io(err), format!("{context}: {err}"))
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The JSON-RPC error the server answered with, for [`ErrorKind::Rpc`].
    pub fn rpc_error(&self) -> Option<&RpcError> {
        self.rpc.as_deref()
    }

    /// The ipckit error of a failed bind, connect or accept.
    pub fn ipckit_error(&self) -> Option<&ipckit::Error> {
        self.ipckit.as_deref()
    }

    /// True when the call's timeout passed; the call may still have run.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::TimedOut
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("rpc", &self.rpc)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `source()` is `None`: the cause's text is already part of the message.
impl std::error::Error for Error {}

/// An I/O failure of a channel this crate does not own (one a caller's
/// handshake code drives, say): its kind follows the
/// `io::Error`'s (timeouts, a closed peer), its message is the error's text.
impl From<io::Error> for Error {
    fn from(err: io::Error) -> Error {
        Error::new(ErrorKind::from_io(&err), err.to_string())
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match err.kind {
            ErrorKind::TimedOut => io::ErrorKind::TimedOut,
            ErrorKind::Disconnected => io::ErrorKind::BrokenPipe,
            ErrorKind::Protocol | ErrorKind::FrameTooLarge | ErrorKind::Serialization => {
                io::ErrorKind::InvalidData
            }
            ErrorKind::Authentication => io::ErrorKind::PermissionDenied,
            ErrorKind::InvalidOption => io::ErrorKind::InvalidInput,
            ErrorKind::Rpc | ErrorKind::Transport => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}

/// A specialized `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
