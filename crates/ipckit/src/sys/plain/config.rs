//! The settings `sys` takes, as plain values: the public option builders
//! ([`ListenerOptions`](crate::ListenerOptions),
//! [`ConnectOptions`](crate::ConnectOptions)) check what the user set and
//! build these; `sys` never sees the builders.

use std::time::Duration;

/// How `sys` creates a local listener (a pipe, a socket, a mailslot).
#[derive(Debug, Clone)]
#[allow(dead_code)] // each OS reads the fields of its own mechanism
pub(crate) struct ListenConfig {
    /// Windows: `nMaxInstances` (None: unlimited).
    pub(crate) max_instances: Option<u8>,
    /// Windows: `nInBufferSize`.
    pub(crate) in_buffer: u32,
    /// Windows: `nOutBufferSize`.
    pub(crate) out_buffer: u32,
    /// Unix: replace a socket file nobody listens on.
    pub(crate) replace_stale: bool,
    /// Unix: the `listen` backlog.
    pub(crate) backlog: i32,
    /// The largest incoming message a message channel accepts.
    pub(crate) max_message_size: usize,
    /// Unix: the socket file's mode instead of 0600.
    pub(crate) mode: Option<u32>,
    /// Windows: the security descriptor, in SDDL, instead of the current-user DACL.
    pub(crate) sddl: Option<String>,
    /// Windows: admit remote clients (no `PIPE_REJECT_REMOTE_CLIENTS`).
    pub(crate) accept_remote: bool,
}

/// The largest incoming message a message stream accepts unless told otherwise.
pub(crate) const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;

/// The defaults of [`ListenerOptions`](crate::ListenerOptions): owner-only,
/// unlimited instances with 64 KiB buffers, stale socket files replaced.
impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            max_instances: None,
            in_buffer: 64 * 1024,
            out_buffer: 64 * 1024,
            replace_stale: true,
            backlog: 1024,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            mode: None,
            sddl: None,
            accept_remote: false,
        }
    }
}

/// How `sys` connects to a local endpoint (default: no timeout, no retries).
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectConfig {
    /// The longest the whole connect may take, retries included.
    pub(crate) timeout: Option<Duration>,
    /// Keep trying while nobody listens (until the timeout).
    pub(crate) retry_not_found: bool,
}
