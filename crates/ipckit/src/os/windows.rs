//! Windows-specific extensions, as `std::os::windows`: the settings only a
//! named pipe, a mailslot or a file mapping has, and the handle of each
//! one-handle type (`AsHandle`, `AsRawHandle`, implemented on the types
//! themselves), of the streams (`StreamExt`, `MessageStreamExt`: a pipe
//! handle or a socket), of a mailslot sender while it is borrowed mutably
//! (`MailslotSenderExt`), and the adoption of a pipe handle made elsewhere
//! (`TryFrom<OwnedHandle>` on `Stream` and `MessageStream`).
//!
//! # Examples
//!
//! ```no_run
//! # #[cfg(windows)] {
//! use ipckit::os::windows::ListenerOptionsExt;
//!
//! let listener = ipckit::ListenerOptions::new()
//!     .max_instances(16)
//!     .buffer_sizes(1 << 16, 1 << 16)
//!     .bind("pipe:app")?;
//! # }
//! # Ok::<(), ipckit::Error>(())
//! ```

use crate::ListenerOptions;
use crate::options::applies::Opt;
use crate::shm::CreateOptions;

/// Named-pipe (and mailslot) settings of [`ListenerOptions`]. A finisher whose
/// kind cannot use one (`tcp:`, a shared-memory channel, a mailslot for the
/// pipe-only ones) refuses it with
/// [`ErrorKind::InvalidOption`](crate::ErrorKind::InvalidOption).
pub trait ListenerOptionsExt: super::sealed::Sealed {
    /// The most pipe instances (connected clients plus the one waiting) the
    /// server allows, 1 to 254; unlimited by default (`nMaxInstances` of
    /// `CreateNamedPipeW`).
    fn max_instances(&mut self, n: u8) -> &mut Self;

    /// The sizes the OS reserves for each pipe instance's input and output
    /// buffers (`nInBufferSize`/`nOutBufferSize`; default 64 KiB each).
    fn buffer_sizes(&mut self, input: u32, output: u32) -> &mut Self;

    /// The security descriptor of the pipes (and mailslots) the listener
    /// creates, in SDDL, instead of the default that grants only the current
    /// user and SYSTEM. For example `"D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;AU)"`
    /// admits every authenticated user.
    ///
    /// This corresponds to `ConvertStringSecurityDescriptorToSecurityDescriptorW`;
    /// a text it cannot parse makes `bind` fail with
    /// [`ErrorKind::InvalidOption`](crate::ErrorKind::InvalidOption) naming the
    /// text.
    #[doc(alias = "SDDL")]
    fn security_descriptor(&mut self, sddl: &str) -> &mut Self;

    /// Whether clients on other machines may connect over SMB (default false:
    /// `PIPE_REJECT_REMOTE_CLIENTS`). They still need the descriptor's
    /// permission.
    fn accept_remote_clients(&mut self, yes: bool) -> &mut Self;
}

impl ListenerOptionsExt for ListenerOptions {
    fn max_instances(&mut self, n: u8) -> &mut Self {
        self.os_setting(Opt::MaxInstances).max_instances = Some(n);
        self
    }

    fn buffer_sizes(&mut self, input: u32, output: u32) -> &mut Self {
        let sys = self.os_setting(Opt::BufferSizes);
        sys.in_buffer = input;
        sys.out_buffer = output;
        self
    }

    fn security_descriptor(&mut self, sddl: &str) -> &mut Self {
        self.os_setting(Opt::SecurityDescriptor).sddl = Some(sddl.to_owned());
        self
    }

    fn accept_remote_clients(&mut self, yes: bool) -> &mut Self {
        self.os_setting(Opt::AcceptRemoteClients).accept_remote = yes;
        self
    }
}

/// Windows settings of a shared-memory region's [`CreateOptions`].
pub trait CreateOptionsExt: super::sealed::Sealed {
    /// The security descriptor of the file mapping, in SDDL, instead of the
    /// default that grants only the current user and SYSTEM, like
    /// [`ListenerOptionsExt::security_descriptor`]. A descriptor that lets
    /// other users write the region makes the default
    /// [`SharedMemory::open`](crate::shm::SharedMemory::open) refuse it: they
    /// need [`OpenOptions::allow_foreign`](crate::shm::OpenOptions::allow_foreign).
    #[doc(alias = "SDDL")]
    fn security_descriptor(&mut self, sddl: &str) -> &mut Self;
}

impl CreateOptionsExt for CreateOptions {
    fn security_descriptor(&mut self, sddl: &str) -> &mut Self {
        self.sddl = Some(sddl.to_owned());
        self
    }
}

/// The OS object of a [`Stream`](crate::Stream): one pipe handle for a
/// named pipe, one socket for `tcp:`, so the type has neither `AsHandle`
/// nor `AsSocket`, and these say which it is.
// Windows only, even in documentation built elsewhere: `std::os::windows`
// exists on Windows only.
#[cfg(windows)]
pub trait StreamExt: super::sealed::Sealed {
    /// The pipe handle (`pipe:`, `\\.\pipe\`), or `None` for `tcp:`.
    ///
    /// The tokio `ipckit::tokio::Stream` reads ahead: tokio's reactor (mio)
    /// keeps a read pending on the pipe, into a buffer of its own, whenever
    /// that buffer is empty. What the peer sends goes to that stream, not to
    /// a read through this handle or a duplicate of it (which waits): use the
    /// handle of a tokio stream to write, or to ask the OS about the pipe.
    fn try_as_handle(&self) -> Option<std::os::windows::io::BorrowedHandle<'_>>;

    /// The socket of a `tcp:` stream, or `None` for a pipe.
    fn try_as_socket(&self) -> Option<std::os::windows::io::BorrowedSocket<'_>>;
}

/// The OS object of a [`MessageStream`](crate::MessageStream): a
/// message-mode pipe handle, the socket of `tcp:` (carrying ipckit's frames,
/// not whole messages: wait on it, do not read it), or, for a shared-memory
/// channel, none of either (a mapped region and events).
#[cfg(windows)]
pub trait MessageStreamExt: super::sealed::Sealed {
    /// The message-mode pipe handle, or `None` for `tcp:` and `shm:`.
    fn try_as_handle(&self) -> Option<std::os::windows::io::BorrowedHandle<'_>>;

    /// The socket of a `tcp:` channel, or `None` for a pipe and `shm:`.
    fn try_as_socket(&self) -> Option<std::os::windows::io::BorrowedSocket<'_>>;
}

/// The handle of a [`MailslotSender`](crate::MailslotSender): a mailslot
/// client handle (`CreateFileW` on `\\.\mailslot\NAME`, opened for
/// overlapped writes), which the sender holds until a send has not completed
/// in time (a receiver gone or stopped: under Wine the handle would keep its
/// mailslot, and the name, alive) and then closes. So the type has no
/// `AsHandle`, and the loan takes `&mut self`: while the handle is lent no
/// `send` can run, so none can close it.
///
/// # Examples
///
/// ```no_run
/// # #[cfg(windows)] {
/// use ipckit::os::windows::MailslotSenderExt;
///
/// let mut logs = ipckit::MailslotSender::connect("mailslot:logs")?;
/// if let Some(handle) = logs.try_as_handle() {
///     // A duplicate writes to the same mailslot, each write one message.
///     let _copy = handle.try_clone_to_owned()?;
/// }
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(windows)]
pub trait MailslotSenderExt: super::sealed::Sealed {
    /// The mailslot client handle, or `None` once a send gave it up (every
    /// send has failed with
    /// [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected) since).
    fn try_as_handle(&mut self) -> Option<std::os::windows::io::BorrowedHandle<'_>>;
}

// The handles of ipckit's types (`AsHandle`, `AsRawHandle`, `TryFrom<OwnedHandle>`).
#[cfg(windows)]
mod handles;
