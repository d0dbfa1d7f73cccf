//! Local or TCP: the policy every stream-like face follows, written once. The
//! blocking [`Listener`](crate::Listener) / [`Stream`](crate::Stream), the
//! message channels (blocking and tokio) and the tokio streams call these and
//! differ only in how they wait. It sits below all of them (it names
//! `options`, `security`, `address` and `sys`, none of the faces); `tcp`
//! holds the blocking faces' TCP.
//!
//! - bind: resolve the address, refuse `current_user_only` on TCP, bind the
//!   local endpoint (a `sys` call the face passes in) or TCP, name the address
//!   in the error, put the port the OS chose into a `tcp:` address with port 0;
//! - connect: resolve, check the server's user before (what can be checked
//!   without a connection) and after (its credentials), name the address in
//!   the error; the TCP retry rule and its give-up error;

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::address::{Address, Endpoint};
use crate::error::{Error, Result};
use crate::options::{ConnectOptions, ListenerOptions};
use crate::peer::PeerCredentials;
use crate::plain::{ConnectConfig, ListenConfig};
use crate::security::{self, ServerUser, unknown_server};
use crate::sys;

pub(crate) mod tcp;

/// One endpoint of a face: a local one (`sys`) or a TCP one.
pub(crate) enum Either<L, T> {
    Local(L),
    Tcp(T),
}

/// A TCP listener type of one face (std's, tokio's).
pub(crate) trait TcpBind: Sized {
    /// Binds `host:port`, ready for the face's way of waiting.
    fn bind_tcp(host: &str, port: u16) -> io::Result<Self>;
    /// The address the OS bound (the port it chose for port 0).
    fn bound_addr(&self) -> io::Result<SocketAddr>;
}

/// What a bind produced: the endpoint and what the listener serves.
pub(crate) struct Bound<L, T> {
    pub(crate) inner: Either<L, T>,
    pub(crate) serving: Serving,
}

/// What a listener of any face (blocking or tokio, stream or message) keeps
/// beside its endpoint, and the policy of its `accept`, written once: the
/// address it serves, whether a local client of another user is refused, and
/// the error context that names the address.
#[derive(Clone)]
pub(crate) struct Serving {
    addr: Address,
    current_user_only: bool,
}

impl Serving {
    pub(crate) fn new(addr: Address, current_user_only: bool) -> Serving {
        Serving {
            addr,
            current_user_only,
        }
    }

    /// The address served; for `tcp:` with port 0, the port the OS chose.
    pub(crate) fn addr(&self) -> &Address {
        &self.addr
    }

    /// What an accept returned, its error naming the address.
    pub(crate) fn accepted<S>(&self, r: io::Result<S>) -> Result<S> {
        self.context("accept on", r)
    }

    /// `r`, its error saying `what` and the address (e.g. "hand a channel to
    /// a client of").
    pub(crate) fn context<S>(&self, what: &str, r: io::Result<S>) -> Result<S> {
        r.map_err(|e| Error::io(format!("{what} {}", self.addr), e))
    }

    /// Refuses a local client of another user when the listener was bound
    /// with `current_user_only` (`found` reads the client's credentials).
    pub(crate) fn verify(&self, found: impl FnOnce() -> io::Result<PeerCredentials>) -> Result<()> {
        security::verify_client(self.current_user_only, &self.addr, found)
    }

    /// The `Debug` output of a listener called `name`: its address, and
    /// `extra` fields the caller adds before finishing.
    pub(crate) fn debug<'a, 'b>(
        &self,
        f: &'a mut fmt::Formatter<'b>,
        name: &str,
    ) -> fmt::DebugStruct<'a, 'b> {
        let mut d = f.debug_struct(name);
        d.field("addr", &self.addr);
        d
    }
}

/// Where `addr` lives on this OS, as a stream (or message channel) endpoint.
pub(crate) fn resolve(addr: &Address) -> Result<Endpoint> {
    addr.stream_endpoint(&sys::env())
}

/// What every listener that keeps a [`Serving`] in a field `serving` (blocking
/// or tokio, stream or message) has the same way: its `Debug` (with its
/// `max_message_size` where it has one, in the field named last), `bind` with
/// the default options through the given finisher (its docs given first), and
/// `local_addr`.
macro_rules! listener_face {
    ($(#[$doc:meta])* $ty:ident, $finisher:ident $(, $max:ident)?) => {
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                let mut d = self.serving.debug(f, stringify!($ty));
                $(d.field("max_message_size", &self.$max);)?
                d.finish_non_exhaustive()
            }
        }

        impl $ty {
            $(#[$doc])*
            pub fn bind(addr: impl crate::address::ToAddress) -> crate::error::Result<$ty> {
                crate::options::ListenerOptions::new().$finisher(addr)
            }

            /// The address this listener serves; for `tcp:` with port 0, the
            /// port the OS chose.
            pub fn local_addr(&self) -> &crate::address::Address {
                self.serving.addr()
            }
        }
    };
}
pub(crate) use listener_face;

/// Binds `addr` with `opts`: the local endpoint with `local`, a `tcp:` one
/// with `T`; the error names the address; a `tcp:` address with port 0
/// becomes the port the OS chose.
pub(crate) fn bind<L, T: TcpBind>(
    addr: Address,
    opts: &ListenerOptions,
    local: impl FnOnce(&Endpoint, &ListenConfig) -> io::Result<L>,
) -> Result<Bound<L, T>> {
    let ep = resolve(&addr)?;
    bind_at(addr, ep, opts, local)
}

/// As [`bind`], at an endpoint the caller resolved (a message channel over
/// shared memory binds its rendezvous endpoint; see `message::shm`).
pub(crate) fn bind_at<L, T: TcpBind>(
    addr: Address,
    ep: Endpoint,
    opts: &ListenerOptions,
    local: impl FnOnce(&Endpoint, &ListenConfig) -> io::Result<L>,
) -> Result<Bound<L, T>> {
    if matches!(ep, Endpoint::Tcp { .. }) {
        security::refuse_current_user_only(opts.current_user_only, &addr)?;
    }
    let inner = match &ep {
        Endpoint::Tcp { host, port } => T::bind_tcp(host, *port).map(Either::Tcp),
        ep => local(ep, opts.config()).map(Either::Local),
    }
    .map_err(|e| Error::bind(&addr, &ep, e))?;
    let addr = match &inner {
        Either::Tcp(l) => match l.bound_addr() {
            Ok(sa) => Address::Tcp {
                host: sa.ip().to_string(),
                port: sa.port(),
            },
            Err(_) => addr,
        },
        Either::Local(_) => addr,
    };
    Ok(Bound {
        inner,
        serving: Serving::new(addr, opts.current_user_only),
    })
}

/// A connect under way: the address, where it lives, and the server-user
/// check still to make once connected.
pub(crate) struct Connecting {
    pub(crate) addr: Address,
    pub(crate) ep: Endpoint,
    /// The rule the server's user is checked against.
    pub(crate) server_user: ServerUser,
}

/// Starts a connect to `addr` with `opts`: resolves it and checks what can be
/// checked before any connection is made. A `service:NAME` address was
/// turned into its instances' addresses before (`registry::connect`).
pub(crate) fn connecting(addr: Address, opts: &ConnectOptions) -> Result<Connecting> {
    connecting_with(addr, opts, resolve)
}

/// As [`connecting`], with the endpoint of the (registry-resolved) address
/// found by `resolve`.
pub(crate) fn connecting_with(
    addr: Address,
    opts: &ConnectOptions,
    resolve: fn(&Address) -> Result<Endpoint>,
) -> Result<Connecting> {
    let ep = resolve(&addr)?;
    let server_user = opts.server_user.precheck(&addr, unknown_server(&ep))?;
    Ok(Connecting {
        addr,
        ep,
        server_user,
    })
}

impl Connecting {
    /// Ends the connect: names the address in an error, and checks a local
    /// server's user with `creds`. Returns the connection and its address.
    pub(crate) fn finish<L, T>(
        self,
        made: io::Result<Either<L, T>>,
        creds: impl FnOnce(&L) -> io::Result<PeerCredentials>,
    ) -> Result<(Either<L, T>, Address)> {
        let conn = made.map_err(|e| Error::connect(&self.addr, &self.ep, e))?;
        if let Either::Local(s) = &conn {
            self.server_user.verify(&self.addr, "server", || creds(s))?;
        }
        Ok((conn, self.addr))
    }
}

/// Whether a failed TCP connect attempt is tried again: with
/// `retry_not_found`, while nobody listens (the connection is refused). Both
/// faces follow it, with the pauses of [`RetrySchedule`](crate::plain::RetrySchedule).
pub(crate) fn retry_tcp(opts: &ConnectConfig, e: &io::Error) -> bool {
    opts.retry_not_found && e.kind() == io::ErrorKind::ConnectionRefused
}

/// The error of a TCP connect whose retries ran out of time.
pub(crate) fn tcp_gave_up() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "connect did not succeed before its timeout (nobody listening yet)",
    )
}

/// The error of a TCP connect that found no address for the host.
pub(crate) fn no_address() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        "the host name resolved to no address",
    )
}
