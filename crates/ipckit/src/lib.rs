//! # ipckit
//!
//! Local inter-process communication with one std-like API on Windows and Unix.
//!
//! A [`Listener`] and a [`Stream`] carry bytes between processes on one machine
//! over the native mechanism of each OS — named pipes on Windows, Unix domain
//! sockets on Unix — or over TCP when the peers outgrow one machine. Every endpoint
//! is named by one text form, an [`Address`].
//!
//! ```no_run
//! use std::io::{Read, Write};
//!
//! let listener = ipckit::Listener::bind("pipe:hello")?;
//! std::thread::spawn(move || -> std::io::Result<()> {
//!     let mut s = listener.accept()?;
//!     let mut buf = [0; 5];
//!     s.read_exact(&mut buf)?;
//!     s.write_all(&buf)
//! });
//! let mut client = ipckit::Stream::connect("pipe:hello")?;
//! client.write_all(b"hello")?;
//! let mut back = [0; 5];
//! client.read_exact(&mut back)?;
//! assert_eq!(&back, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Which transport?
//!
//! | you want | address | Windows | Unix |
//! |---|---|---|---|
//! | a local byte stream with a portable name | `pipe:NAME` | named pipe `\\.\pipe\NAME` | socket file in a private per-user directory |
//! | a specific socket file | `unix:/path` | — | Unix socket |
//! | a name that leaves no file behind | `@NAME` | — | Linux abstract socket |
//! | to reach another machine | `tcp:HOST:PORT` | TCP | TCP |
//!
//! ## Messages
//!
//! A [`MessageListener`] and a [`MessageStream`] carry whole messages over the
//! same addresses: named pipes in message mode on Windows, `SOCK_SEQPACKET` on
//! Linux and FreeBSD, length-prefixed frames over a stream socket on macOS and
//! over TCP. [`Framed`] puts the same frames on
//! any byte stream. See [`message`].
//!
//! ## Async
//!
//! With the `tokio` feature, `ipckit::tokio::{Listener, Stream}` give the same
//! endpoints, timeouts and deadlines on tokio's own named-pipe, Unix-socket and
//! TCP types, `ipckit::tokio::{MessageListener, MessageStream}` the message
//! channels, and `ipckit::tokio::shm` the shared-memory channel (a waiting task
//! holds no thread and uses no CPU). With the `tonic` feature, `ipckit::tokio::tonic` runs a `tonic`
//! gRPC client and server over those streams.
//!
//! ## Mailslots
//!
//! A [`MailslotReceiver`] takes one-way messages from any number of
//! [`MailslotSender`]s (Windows mailslots, Unix datagram sockets), and
//! [`MailslotSender::broadcast`] reaches every receiver of a group. See
//! [`mailslot`].
//!
//! ## Shared memory
//!
//! [`shm::SharedMemory`] maps named regions and files; [`shm::ShmListener`] and
//! [`shm::ShmChannel`] carry messages between two processes through a ring
//! buffer in shared memory, waking the reader without polling. See [`shm`].
//!
//! ## Child processes
//!
//! [`child`]: spawn a `Command` with an inherited message channel and get it
//! back in the child with [`child::parent_channel`]; Node's `json` channel
//! (`child_process.fork`) too.
//!
//! ## Service discovery
//!
//! [`registry`]: a service registers its address under a name
//! ([`registry::Registration`]); clients [`registry::lookup`] it,
//! [`registry::wait_for`] it, or connect to `service:NAME`.
//!
//! ## Security
//!
//! Endpoints are owner-only by default (a current-user DACL on Windows, mode
//! 0600 sockets in a 0700 directory on Unix); [`security`] has the options that
//! open them up or close them further, and peer credentials (pid, uid/gid or
//! SID of the other end).
//!
//! ## RPC
//!
//! JSON-RPC 2.0 over any of these endpoints (blocking and tokio, with Python's
//! `multiprocessing.connection` and its `authkey` as a peer) is the companion
//! crate `ipckit-rpc`; gRPC runs over ipckit streams with the `tonic` feature.

#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]

mod address;
pub mod child;
mod error;
mod limits;
pub mod mailslot;
pub mod message;
mod options;
pub mod platform;
/// OS-specific extensions, as `std::os`: settings only one OS has, reached
/// through a trait of that OS's module so that code using them says which OS
/// it is for, and the OS handles of ipckit's types.
///
/// Each module exists on its OS only (and in the documentation).
pub mod os {
    #[cfg(any(unix, doc))]
    pub mod unix;
    #[cfg(any(windows, doc))]
    pub mod windows;

    /// Keeps the extension traits implemented by ipckit's types only, so
    /// that methods can be added to them.
    mod sealed {
        #[allow(unreachable_pub)] // named by the public traits, reachable by nobody
        pub trait Sealed {}
        impl Sealed for crate::ListenerOptions {}
        impl Sealed for crate::shm::CreateOptions {}
        impl Sealed for crate::MailslotSender {}
        impl Sealed for crate::MessageStream {}
        impl Sealed for crate::Stream {}
        #[cfg(feature = "tokio")]
        impl Sealed for crate::tokio::MessageStream {}
        #[cfg(feature = "tokio")]
        impl Sealed for crate::tokio::Stream {}
    }
}
pub mod registry;
pub mod security;
pub mod shm;
pub mod stream;
mod sys;
mod transport;
// What `sys` defines and the layers above share: the plain data and configs it
// takes and returns (`plain`, `peer`) and the atomics/lock shim (`sync`). They
// live in `sys`, which names nothing above it (scripts/check-layers.sh).
pub(crate) use sys::{peer, plain, sync};
#[cfg(feature = "tokio")]
pub mod tokio;

pub use address::{Address, ToAddress};
pub use error::{Error, ErrorKind, Result};
pub use mailslot::{MailslotReceiver, MailslotSender};
pub use message::{Framed, MessageListener, MessageStream};
pub use options::{ConnectOptions, ListenerOptions};
pub use stream::{Incoming, Listener, Stream};
