//! # ipckit-rpc
//!
//! JSON-RPC 2.0 over ipckit's local channels — named pipes, Unix sockets,
//! message channels, TCP — with Python's `multiprocessing.connection` as a peer.
//!
//! - [`jsonrpc`]: the codec (requests, notifications, batches, responses, the
//!   standard error codes).
//! - [`framing`]: how texts are cut out of a connection, chosen per connection:
//!   a 4-byte big-endian length prefix (Python's `send_bytes`/`recv_bytes`),
//!   `Content-Length:` headers (as LSP), or one message of an ipckit message
//!   channel per text.
//! - [`Server`] and [`Client`]: the blocking server (its connections on two
//!   threads of its own, the calls on a bounded pool) and client (calls from many threads in flight on one connection,
//!   matched by id); with the `tokio` feature, `tokio::Server` and
//!   `tokio::Client` are the async ones.
//! - [`auth`]: the `authkey` challenge/response of `multiprocessing.connection`,
//!   in its Python ≤ 3.11 (HMAC-MD5) and 3.12+ (`{sha256}`) forms.
//!
//! ```no_run
//! use ipckit_rpc::{Client, Methods, RpcError, Server};
//!
//! let mut methods = Methods::new();
//! methods.method("add", |(a, b): (i64, i64)| Ok(a + b));
//! methods.method("fail", |()| -> Result<(), RpcError> { Err(RpcError::new(7, "no")) });
//! let server = Server::bind("pipe:calc", methods)?;
//!
//! let client = Client::connect("pipe:calc")?;
//! assert_eq!(client.call::<_, i64>("add", (2, 3))?, 5);
//! let err = client.call::<_, ()>("fail", ()).unwrap_err();
//! assert_eq!(err.rpc_error().map(|e| e.code), Some(7));
//! server.shutdown(); // finishes the calls in flight
//! # Ok::<(), ipckit_rpc::Error>(())
//! ```
//!
//! See `docs/RPC.md` in the repository for the framings, Python interop and errors.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]

mod aconn;
pub mod auth;
mod budget;
mod client;
mod conn;
mod core;
mod error;
mod fast;
pub mod framing;
pub mod jsonrpc;
mod methods;
mod options;
mod outbox;
mod pending;
mod pool;
mod server;
mod serving;
mod signal;
mod threaded;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use auth::ChallengeDigest;
pub use client::{Client, ClientOptions};
pub use error::{Error, ErrorKind, Result, RpcError};
pub use framing::Framing;
pub use methods::Methods;
pub use options::ServerOptions;
pub use server::Server;
