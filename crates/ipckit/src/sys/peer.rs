//! Peer credentials and user ids as plain data: what `sys` reads from the OS and returns,
//! defined in `sys` so that it names nothing above it (the security module
//! re-exports both types; their examples and further methods live there).

/// Who is on the other end of a local connection. Each field is `None` where this
/// OS does not say.
///
/// | field | Linux | Windows |
/// |---|---|---|
/// | `pid` | `SO_PEERCRED` | `GetNamedPipeClientProcessId` / `GetNamedPipeServerProcessId` |
/// | `uid`, `gid` | `SO_PEERCRED` | `None` |
/// | `sid` | `None` | the user SID of the peer process's token |
///
/// On Unix the values are those of the peer when it called `connect` (a client)
/// or `listen` (a server), as the kernel recorded them; on Windows the pid is the
/// one the pipe recorded, and the SID is read from that process while the
/// connection is open.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerCredentials {
    /// The peer's process id.
    pub pid: Option<u32>,
    /// The peer's (effective) user id (Unix).
    pub uid: Option<u32>,
    /// The peer's (effective) group id (Unix).
    pub gid: Option<u32>,
    /// The peer's user SID, string form (Windows).
    pub sid: Option<String>,
}

/// A user as the operating system names it: a uid on Unix, a SID on Windows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UserId {
    /// A Unix user id.
    Uid(u32),
    /// A Windows security identifier in its string form (`S-1-5-21-...`).
    Sid(String),
}
