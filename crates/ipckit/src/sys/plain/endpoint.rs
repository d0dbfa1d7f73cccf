//! Where an address lives on this OS, as plain data: what the resolver in
//! the address resolver (`address.rs`) produces and `sys` consumes.

use std::fmt;
use std::path::PathBuf;

/// The operating-system families whose mappings differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // each platform builds one variant; the unit tests use all three
pub(crate) enum Os {
    Windows,
    Linux,
    /// macOS and the BSDs: Unix sockets, but no abstract names and a 104-byte `sun_path`.
    OtherUnix,
}

/// What the resolver needs to know about the running system.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    pub(crate) os: Os,
    /// ipckit's private per-user directory for portable names (Unix).
    pub(crate) runtime_dir: PathBuf,
    /// The directory .NET's `Path.GetTempPath()` returns (Unix).
    pub(crate) temp_dir: PathBuf,
}

/// A stream endpoint as this operating system sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// A full Windows pipe path.
    Pipe(String),
    /// A Unix socket file; `private` when it lives in ipckit's runtime directory.
    UnixPath { path: PathBuf, private: bool },
    /// A Linux abstract socket name (without the leading NUL).
    Abstract(Vec<u8>),
    /// A TCP host and port.
    Tcp { host: String, port: u16 },
    /// A full Windows mailslot path, `\\.\mailslot\NAME`.
    Mailslot(String),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Pipe(path) => f.write_str(path),
            Endpoint::UnixPath { path, .. } => write!(f, "socket file {}", path.display()),
            Endpoint::Abstract(name) => {
                write!(f, "abstract socket @{}", String::from_utf8_lossy(name))
            }
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Mailslot(path) => f.write_str(path),
        }
    }
}
