//! Platform layer: everything that talks to the operating system.
//!
//! All FFI and every `unsafe` block of ipckit live below this module; the portable
//! modules above it wrap the types re-exported here and carry no `#[cfg]`.
//!
//! Each platform provides:
//!
//! - `OS`: which `plain::Os` mapping applies, and `env()`, the
//!   directories the address resolver needs.
//! - `Listener` / `Stream`: local byte streams. Unix: `SOCK_STREAM` Unix sockets
//!   (path and, on Linux, abstract names). Windows: named pipes in byte mode with
//!   overlapped I/O, always one instance waiting.
//! - `MsgListener` / `MsgStream`: message channels (`send`, `recv` of whole
//!   messages with a size limit, `close`). Unix: `SOCK_SEQPACKET` (large messages
//!   as a `memfd` on Linux and FreeBSD); macOS, which has no `SOCK_SEQPACKET`
//!   for Unix sockets: length-prefixed frames (`plain::frame`) over
//!   `SOCK_STREAM`. Windows: named pipes in message mode, `ERROR_MORE_DATA`
//!   reassembled.
//! - `tcp_read` / `tcp_write`: TCP reads and writes bounded by a deadline.
//! - `tokio` (feature `tokio`): the async `Listener`, `Stream` and its halves,
//!   built on tokio's own types. Unix: `UnixListener`/`UnixStream` adopted from
//!   the blocking layer's sockets. Windows: `NamedPipeServer`/`NamedPipeClient`,
//!   always one instance waiting. The async message channel (`MsgListener`,
//!   `MsgStream`, `connect_message`) likewise.
//! - `shm`: shared memory: `Region` (named), `Mapping`, `map_file`, `unlink`;
//!   `Wakers` (futex on Linux, `os_sync_wait_on_address` on macOS, `_umtx_op`
//!   on FreeBSD, named events on Windows), `Peer` (watching the other process
//!   for its exit: pidfd, kqueue, process handle). Unix: `shm_open` + `mmap`. Windows:
//!   `CreateFileMappingW` in `Local\`.
//!
//! `tokio_blocking` (feature `tokio`, portable): blocking calls on tokio's
//! blocking pool kept in flight across dropped futures (Windows message pipes
//! and mailslots, Node's json child channel on every OS).
//!
//! Portable parts that need `unsafe` live here too: `ring` (the SPSC ring of
//! records in shared memory), `bare_ring` (the benchmark baseline: a ring with
//! no wake-ups, both sides spinning), `shm_channel` (the channel's header and its
//! waiting), `shm_join` (creating and joining a channel region), `shm_tokio`
//! (the channel's async waits, on each platform's `shm_async`), `mem` (bounds-checked copies in and out of a mapping).
//! `spin` (safe, beside them) is how long a blocking channel end spins before
//! it sleeps, learnt from its last waits.
//!
//! - `wine_version()`: the Wine version when running under Wine (Windows only; `None`
//!   elsewhere).

/// Who owns a named object (a shared-memory region), as the OS recorded it
/// when the object was made, and on Unix its permission bits.
#[derive(Debug, Clone)]
pub(crate) struct ObjectOwner {
    /// The owner: `uid` and `gid` on Unix, `sid` on Windows.
    pub(crate) user: crate::sys::peer::PeerCredentials,
    /// The permission bits (Unix).
    pub(crate) mode: Option<u32>,
    /// Windows: why the object's DACL lets someone other than the current
    /// user write it (the ACE found and the rule), if it does.
    pub(crate) others_write: Option<String>,
}

pub(crate) mod bare_ring;
pub(crate) mod mem;
pub(crate) mod peer;
pub(crate) mod plain;
pub(crate) mod ring;
pub(crate) mod shm_channel;
pub(crate) mod shm_join;
#[cfg(feature = "tokio")]
pub(crate) mod shm_tokio;
pub(crate) mod spin;
pub(crate) mod sync;
#[cfg(feature = "tokio")]
pub(crate) mod tokio_blocking;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;
