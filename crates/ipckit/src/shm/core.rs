//! The shared-memory channel's policy, once for both faces ([`super::channel`]
//! and `crate::tokio::shm`): address checks, options, the owner check of a
//! region before it is read, the retry while nobody listens, and the error
//! context. The faces differ only in how they wait (a thread sleep or a tokio
//! sleep between the same pauses; a futex or a registered wake-up).

use std::fmt;
use std::time::Duration;

use crate::address::{Address, ToAddress};
use crate::error::{Error, ErrorKind, Result};
use crate::options::applies::Kind;
use crate::options::{ConnectOptions, ListenerOptions};
use crate::plain::{RetrySchedule, deadline, timed_out};
use crate::security::ServerUser;
use crate::sys;

/// Why a shared-memory channel cannot check its peer's user: the region is
/// owner-only, but the channel reads no identity from the OS.
const NO_IDENTITY: &str =
    "a shared-memory channel reads no peer identity from the OS (its region is owner-only)";

fn shm_name(addr: &Address) -> Result<String> {
    match addr {
        Address::Shm(name) => {
            super::check_name_fits(name, 0)?;
            Ok(name.clone())
        }
        other => Err(Error::new(
            ErrorKind::Unsupported,
            format!("{other} is not a shared-memory channel address (shm:NAME)"),
        )),
    }
}

/// Creates the channel region `addr` with `opts`' ring capacity and maximum
/// message size.
pub(crate) fn bind(
    opts: &ListenerOptions,
    addr: impl ToAddress,
) -> Result<(sys::shm_join::ShmListener, Address)> {
    opts.check()?;
    let addr = addr.to_address()?;
    opts.check_for(Kind::Shm, &addr)?;
    let name = shm_name(&addr)?;
    crate::security::refuse_identity_rule(
        opts.current_user_only,
        "current_user_only",
        &addr,
        NO_IDENTITY,
    )?;
    let capacity = ring_capacity(opts)?;
    let inner = sys::shm_join::ShmListener::bind(&name, capacity, opts.sys.max_message_size)
        .map_err(|e| Error::io(format!("bind {addr}"), e))?;
    Ok((inner, addr))
}

/// The ring capacity `opts` ask for, checked and rounded up to a multiple of 64.
pub(crate) fn ring_capacity(opts: &ListenerOptions) -> Result<usize> {
    if opts.shm_capacity < sys::shm_channel::MIN_CAPACITY {
        return Err(Error::new(
            ErrorKind::InvalidOption,
            format!(
                "a shared-memory ring needs at least {} bytes, not {}",
                sys::shm_channel::MIN_CAPACITY,
                opts.shm_capacity
            ),
        ));
    }
    Ok(opts.shm_capacity.next_multiple_of(64))
}

/// Joins the channel region `name` as its creator's peer, accepting messages
/// up to `max_in`, if its owner passes `rule` (named as `addr` in errors).
pub(crate) fn join_region(
    name: &str,
    addr: &Address,
    max_in: usize,
    rule: &ServerUser,
) -> std::io::Result<sys::shm_channel::ShmChannel> {
    let accept = |owner| {
        crate::security::check_object_owner(
            rule,
            &addr.to_string(),
            owner,
            crate::security::CONNECT_OPT_OUT,
        )
        .map_err(Into::into)
    };
    sys::shm_join::connect(name, max_in, &accept)
}

/// A connect in progress: the resolved address, the rule for the region's
/// owner, and the pauses left while nobody listens.
pub(crate) struct Connecting {
    pub(crate) addr: Address,
    name: String,
    rule: ServerUser,
    max_in: usize,
    retry: bool,
    pauses: RetrySchedule,
}

/// What one attempt gave.
pub(crate) enum Attempt {
    Joined(Box<sys::shm_channel::ShmChannel>),
    /// Nobody listens yet: try again after this pause.
    Retry(Duration),
}

impl Connecting {
    pub(crate) fn new(addr: impl ToAddress, opts: &ConnectOptions) -> Result<Connecting> {
        let addr = crate::registry::resolve(&addr.to_address()?)?;
        opts.check_for(Kind::Shm, &addr)?;
        let name = shm_name(&addr)?;
        let rule = opts.server_user.precheck(&addr, None)?;
        Ok(Connecting {
            addr,
            name,
            rule,
            max_in: opts.max_message_size,
            retry: opts.sys.retry_not_found,
            pauses: RetrySchedule::until(deadline(opts.sys.timeout)),
        })
    }

    /// Opens the region once (its owner checked before anything in it is
    /// read).
    pub(crate) fn attempt(&mut self) -> Result<Attempt> {
        let joined = match join_region(&self.name, &self.addr, self.max_in, &self.rule) {
            Err(e) if self.retry && e.kind() == std::io::ErrorKind::NotFound => {
                match self.pauses.next() {
                    Some(pause) => return Ok(Attempt::Retry(pause)),
                    // As every other transport: a retry that runs out of
                    // time is a timeout, not a NotFound.
                    None => Err(timed_out("connect (nobody listening yet)")),
                }
            }
            other => other,
        };
        joined.map(|ch| Attempt::Joined(Box::new(ch))).map_err(|e| {
            let mut what = format!("connect to {}", self.addr);
            if e.kind() == std::io::ErrorKind::NotFound {
                what.push_str(": nobody listens there");
            }
            Error::io(what, e)
        })
    }
}

/// The error of an accept on `addr`.
pub(crate) fn accept_error(addr: &Address, e: std::io::Error) -> Error {
    Error::io(format!("accept on {addr}"), e)
}

/// The error of a send of `len` bytes on `addr`.
pub(crate) fn send_error(addr: &Address, len: usize, e: std::io::Error) -> Error {
    Error::io(format!("send {len} bytes on {addr}"), e)
}

/// The error of a receive on `addr`.
pub(crate) fn recv_error(addr: &Address, e: std::io::Error) -> Error {
    Error::io(format!("receive on {addr}"), e)
}

/// What both faces of the channel's types show the same way: the `Debug` of
/// the listener and the halves (type and address), the accessors of a
/// listener, a channel and each half. Each face's types keep the fields these
/// read (`addr`; a channel's `sizes()`, its ring capacity and maximum
/// incoming message; a half's `inner` and `timeout`).
macro_rules! end_debug {
    ($($ty:ident),+) => {
        $(impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                crate::shm::core::fmt_end(f, stringify!($ty), &self.addr)
            }
        })+
    };
}
pub(crate) use end_debug;

/// A listener's `local_addr` (see [`end_debug`]).
macro_rules! listener_accessors {
    () => {
        /// The address this listener serves.
        pub fn local_addr(&self) -> &Address {
            &self.addr
        }
    };
}
pub(crate) use listener_accessors;

/// A channel's `Debug` and its size and address getters (see [`end_debug`]).
macro_rules! channel_accessors {
    ($ty:ident) => {
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("addr", &self.addr)
                    .field("capacity", &self.sizes().0)
                    .field("max_message_size", &self.sizes().1)
                    .finish_non_exhaustive()
            }
        }

        impl $ty {
            /// The largest message this end accepts.
            pub fn max_message_size(&self) -> usize {
                self.sizes().1
            }

            /// The bytes of each direction's ring.
            pub fn capacity(&self) -> usize {
                self.sizes().0
            }

            /// The channel's address.
            pub fn peer_addr(&self) -> &Address {
                &self.addr
            }
        }
    };
}
pub(crate) use channel_accessors;

/// A sending half's timeout setter and the peer's limit (see [`end_debug`]).
macro_rules! sender_accessors {
    () => {
        /// Sets how long a `send` may wait for room (`None`: for ever).
        pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
            self.timeout = timeout;
        }

        /// The largest message the peer accepts.
        pub fn peer_max_message_size(&self) -> usize {
            self.inner.max_message_size()
        }
    };
}
pub(crate) use sender_accessors;

/// A receiving half's timeout setter and its limit (see [`end_debug`]).
macro_rules! receiver_accessors {
    () => {
        /// Sets how long a `recv` may wait (`None`: for ever).
        pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
            self.timeout = timeout;
        }

        /// The largest message this end accepts.
        pub fn max_message_size(&self) -> usize {
            self.inner.max_message_size()
        }
    };
}
pub(crate) use receiver_accessors;

/// The `Debug` of a listener or a half, on either face: its type and
/// address (the rest is internal).
pub(crate) fn fmt_end(f: &mut fmt::Formatter<'_>, name: &str, addr: &Address) -> fmt::Result {
    f.debug_struct(name)
        .field("addr", addr)
        .finish_non_exhaustive()
}
