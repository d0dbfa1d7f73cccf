//! gRPC over ipckit streams: a [`Connector`] for a `tonic` client and an
//! [`Incoming`] stream of connections for a `tonic` server, so both ends talk
//! over a Windows named pipe or a Unix socket (any stream address ipckit takes).
//!
//! Available with the `tonic` feature (which implies `tokio`), for tonic 0.14
//! from 0.14.9 on (which needs Rust 1.88): the first release whose
//! `serve_with_incoming_shutdown` drops the incoming stream, and so the
//! listener, as soon as a graceful shutdown begins.
//!
//! # Server
//!
//! Bind a [`Listener`] and hand it, as an [`Incoming`], to
//! `serve_with_incoming` (or `serve_with_incoming_shutdown`):
//!
//! ```no_run
//! # async fn run<S>(greeter: S) -> Result<(), Box<dyn std::error::Error>>
//! # where
//! #     S: tower_service::Service<
//! #             http::Request<tonic::body::Body>,
//! #             Response = http::Response<tonic::body::Body>,
//! #             Error = std::convert::Infallible,
//! #         > + tonic::server::NamedService
//! #         + Clone
//! #         + Send
//! #         + Sync
//! #         + 'static,
//! #     S::Future: Send + 'static,
//! # {
//! use ipckit::tokio::tonic::Incoming;
//!
//! let incoming = Incoming::bind("pipe:greeter")?;
//! tonic::transport::Server::builder()
//!     .add_service(greeter) // e.g. GreeterServer::new(MyGreeter)
//!     .serve_with_incoming(incoming)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! A request's [`ConnectInfo`] is in its extensions:
//! `request.extensions().get::<ipckit::tokio::tonic::ConnectInfo>()`.
//!
//! # Client
//!
//! tonic wants a URI for every channel; with a custom connector it is only a
//! placeholder (it names the `:authority` of the requests, nothing is dialed
//! by it). [`endpoint`] gives an `Endpoint` with such a URI; set its options
//! (timeouts, keep-alive) and connect it with a [`Connector`]:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use ipckit::tokio::tonic::{Connector, endpoint};
//!
//! let mut options = ipckit::ConnectOptions::new();
//! options.timeout(Duration::from_secs(5)).retry_not_found(true);
//! let channel = endpoint()
//!     .connect_with_connector(Connector::with_options("pipe:greeter", &options)?)
//!     .await?;
//! // let mut client = GreeterClient::new(channel);
//! # drop(channel); Ok(()) }
//! ```
//!
//! The channel dials again (through the connector) when its connection breaks,
//! so a call after the server went away fails with `Unavailable` once the
//! connect fails — at once by default, or after the [`ConnectOptions`] timeout
//! when it retries while nobody listens.
//!
//! # Platform-specific behavior
//!
//! ### Windows
//!
//! The [`Listener`] keeps one pipe instance waiting for a client at all times,
//! also between two accepts, so a client never finds the pipe missing while
//! the server is up; a client that finds every instance busy waits for one
//! (within the connect timeout), as [`Stream::connect`] does.
//!
//! Named pipes have no half-close. When hyper ends a connection it shuts the
//! write side down first; that fails with `Unsupported` (see [`Stream`]) and
//! hyper then drops the stream, which closes the pipe. Nothing written before
//! is lost.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper_util::rt::TokioIo;

use super::{Listener, Stream};
use crate::address::{Address, ToAddress};
use crate::error::{Error, Result};
use crate::stream::{AcceptBackoff, ConnectOptions};

/// The placeholder URI of [`endpoint`]: `http://ipckit.invalid` (`.invalid`
/// is reserved, so it can never reach a real host by mistake).
pub const PLACEHOLDER_URI: &str = "http://ipckit.invalid";

/// A `tonic` [`Endpoint`](tonic::transport::Endpoint) with the placeholder URI
/// [`PLACEHOLDER_URI`], for `connect_with_connector` with a [`Connector`].
///
/// Connecting it in any other way (`connect()`) fails: the host does not exist.
pub fn endpoint() -> tonic::transport::Endpoint {
    tonic::transport::Endpoint::from_static(PLACEHOLDER_URI)
}

/// Dials a fixed ipckit address for a `tonic` channel: a
/// `tower::Service<Uri>` for
/// [`Endpoint::connect_with_connector`](tonic::transport::Endpoint::connect_with_connector)
/// (and `connect_with_connector_lazy`).
///
/// It ignores the URI tonic passes (see [`endpoint`]) and connects a
/// [`Stream`] to its address with its [`ConnectOptions`], as
/// [`ConnectOptions::connect_tokio`] does: a busy Windows pipe is retried
/// until an instance is free, and with `retry_not_found` a server that is not
/// up yet is waited for, all within the options' timeout.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let channel = ipckit::tokio::tonic::endpoint()
///     .connect_with_connector(ipckit::tokio::tonic::Connector::new("pipe:greeter")?)
///     .await?;
/// # drop(channel); Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Connector {
    addr: Address,
    options: ConnectOptions,
}

impl Connector {
    /// A connector for `addr` with the default [`ConnectOptions`] (no timeout,
    /// no retry while nobody listens).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidAddress`](crate::ErrorKind::InvalidAddress) when
    /// `addr` is not a valid address text.
    pub fn new(addr: impl ToAddress) -> Result<Connector> {
        Connector::with_options(addr, &ConnectOptions::new())
    }

    /// A connector for `addr` that connects with `options`.
    ///
    /// # Errors
    ///
    /// As [`Connector::new`].
    pub fn with_options(addr: impl ToAddress, options: &ConnectOptions) -> Result<Connector> {
        Ok(Connector {
            addr: addr.to_address()?,
            options: options.clone(),
        })
    }

    /// The address this connector dials.
    pub fn addr(&self) -> &Address {
        &self.addr
    }
}

/// The future of [`Connector::call`](tower_service::Service::call): a
/// connected [`Stream`], wrapped for hyper.
pub struct Connecting {
    inner: Pin<Box<dyn Future<Output = Result<TokioIo<Stream>>> + Send>>,
}

impl fmt::Debug for Connecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connecting").finish_non_exhaustive()
    }
}

impl Future for Connecting {
    type Output = Result<TokioIo<Stream>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Connects to the connector's address; `_uri` is ignored.
    fn call(&mut self, _uri: http::Uri) -> Connecting {
        let addr = self.addr.clone();
        let options = self.options.clone();
        Connecting {
            inner: Box::pin(async move { options.connect_tokio(addr).await.map(TokioIo::new) }),
        }
    }
}

/// What a `tonic` server learns about the connection a request came on: put in
/// each request's extensions by `serve_with_incoming` with an [`Incoming`].
///
/// ```no_run
/// # fn handler(request: tonic::Request<()>) {
/// if let Some(info) = request.extensions().get::<ipckit::tokio::tonic::ConnectInfo>() {
///     println!("a call on {}", info.local_addr());
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectInfo {
    local_addr: Address,
}

impl ConnectInfo {
    /// The address the connection was accepted on (the listener's address).
    pub fn local_addr(&self) -> &Address {
        &self.local_addr
    }
}

/// For `serve_with_incoming`: the connect info of an accepted stream.
impl tonic::transport::server::Connected for Stream {
    type ConnectInfo = ConnectInfo;

    fn connect_info(&self) -> ConnectInfo {
        ConnectInfo {
            local_addr: self.peer_addr().clone(),
        }
    }
}

/// How long [`Incoming`] waits before accepting again after an accept failed
/// with something other than a resource error (those pause as
/// [`AcceptBackoff`] says).
///
/// tonic logs a failed accept and polls for the next one at once; a failure
/// that repeats would make that a busy loop.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

type Accepting = Pin<Box<dyn Future<Output = Result<Stream>> + Send>>;

/// The connections a [`Listener`] accepts, as the `Stream` of
/// `Result<Stream, Error>` that `tonic`'s `Router::serve_with_incoming`
/// and `serve_with_incoming_shutdown` take.
///
/// It never ends. A failed accept is yielded as an error (tonic logs it and
/// goes on), and the next accept starts 50 ms later, so a failure that repeats
/// does not spin; after a resource error (out of file descriptors, see
/// [`AcceptBackoff`]) the pause starts at 5 ms and doubles up to 1 s while the
/// errors go on; a client refused by `current_user_only` is yielded as a
/// `PermissionDenied` error without that pause. Dropping it (as tonic does when a graceful shutdown begins)
/// drops the listener, so no new client is served: a Unix socket file is
/// removed at once; a Windows pipe name lives on while a connection on it is
/// open, so a client that comes meanwhile finds it busy and waits within its
/// connect timeout.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), ipckit::Error> {
/// let mut opts = ipckit::ListenerOptions::new();
/// #[cfg(windows)]
/// ipckit::os::windows::ListenerOptionsExt::max_instances(&mut opts, 16);
/// let listener = opts.bind_tokio("pipe:greeter")?;
/// let incoming = ipckit::tokio::tonic::Incoming::new(listener);
/// # drop(incoming); Ok(()) }
/// ```
///
/// # Cancel safety
///
/// A pending accept lives in the `Incoming` between polls, so a `select!` that
/// drops the `next()` future loses no client.
pub struct Incoming {
    listener: Arc<Listener>,
    accepting: Option<Accepting>,
    pause: Option<Pin<Box<::tokio::time::Sleep>>>,
    backoff: AcceptBackoff,
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("listener", &self.listener)
            .field("accepting", &self.accepting.is_some())
            .field("paused", &self.pause.is_some())
            .finish()
    }
}

impl Incoming {
    /// The connections of `listener`.
    pub fn new(listener: Listener) -> Incoming {
        Incoming {
            listener: Arc::new(listener),
            accepting: None,
            pause: None,
            backoff: AcceptBackoff::new(),
        }
    }

    /// Binds a [`Listener`] at `addr` with the default options; for options,
    /// bind with [`ListenerOptions::bind_tokio`](crate::ListenerOptions::bind_tokio)
    /// and use [`Incoming::new`].
    ///
    /// # Errors
    ///
    /// As [`Listener::bind`].
    pub fn bind(addr: impl ToAddress) -> Result<Incoming> {
        Listener::bind(addr).map(Incoming::new)
    }

    /// The address the listener serves.
    pub fn local_addr(&self) -> &Address {
        self.listener.local_addr()
    }
}

impl From<Listener> for Incoming {
    fn from(listener: Listener) -> Incoming {
        Incoming::new(listener)
    }
}

impl futures_core::Stream for Incoming {
    type Item = Result<Stream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Stream>>> {
        let this = self.get_mut();
        if let Some(pause) = &mut this.pause {
            ready!(pause.as_mut().poll(cx));
            this.pause = None;
        }
        let accepting = this.accepting.get_or_insert_with(|| {
            let listener = Arc::clone(&this.listener);
            Box::pin(async move { listener.accept().await })
        });
        let result = ready!(accepting.as_mut().poll(cx));
        this.accepting = None;
        // A client refused by `current_user_only` says nothing about the
        // listener, which is fine: pausing then would let another user stall
        // the server 50 ms per connection it makes.
        match &result {
            Ok(_) => {
                this.backoff.on_success();
            }
            Err(e) if e.kind() != crate::ErrorKind::PermissionDenied => {
                let pause = this.backoff.on_error(e).unwrap_or(ACCEPT_ERROR_PAUSE);
                this.pause = Some(Box::pin(::tokio::time::sleep(pause)));
            }
            Err(_) => {}
        }
        Poll::Ready(Some(result))
    }
}
