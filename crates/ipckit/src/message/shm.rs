//! Message channels over shared memory (`shm:NAME`) with many clients: the
//! rendezvous that hands each client a channel of its own.
//!
//! A shared-memory channel joins exactly two processes, so a
//! [`MessageListener`](crate::MessageListener) at `shm:NAME` listens on a
//! rendezvous: a message socket (Unix) or message-mode pipe (Windows) at the
//! portable name `NAME.shm`, owner-only and checked as every listener. For
//! each client it accepts there, it creates a fresh channel region
//! `NAME.<64 random bits>` (owner-only), sends its name as one message
//! (`ipckit-shm/1 REGION`) and waits for the client to join it. The client
//! checks the region's owner with the rule it checked the server's user with,
//! joins, and both drop the rendezvous connection: from then on the messages
//! go through the region, never through the kernel (the wake-ups aside).
//!
//! The functions here are the policy both faces share (names, the offer,
//! what a client makes of it, the peer's credentials); the blocking face's
//! I/O is [`offer_channel`] and [`take_channel`], the tokio face's is in
//! `crate::tokio::message_shm`.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::time::{Duration, Instant};

use crate::address::{Address, Endpoint};
use crate::error::{Error, ErrorKind, Result};
use crate::peer::PeerCredentials;
use crate::security::ServerUser;
use crate::sys;

/// How long each side waits for the other during the hand-over.
pub(crate) const HANDOFF: Duration = Duration::from_secs(10);

/// What the offer starts with: the protocol and its version.
const OFFER: &str = "ipckit-shm/1 ";

/// The longest offer a client reads.
pub(crate) const MAX_OFFER: usize = 4096;

/// Where the rendezvous of `shm:NAME` lives: the portable name `NAME.shm`.
pub(crate) fn rendezvous(name: &str) -> Result<Endpoint> {
    Address::shm_rendezvous(name, &sys::env())
}

/// The endpoint a message channel at `addr` binds or connects: its own, or
/// for `shm:NAME` its rendezvous.
pub(crate) fn endpoint(addr: &Address) -> Result<Endpoint> {
    match addr {
        Address::Shm(name) => {
            crate::shm::check_name_fits(name, CLIENT_SUFFIX)?;
            rendezvous(name)
        }
        other => crate::transport::resolve(other),
    }
}

/// How many bytes a client's region name adds to `NAME`: `.` and 16 hex digits.
const CLIENT_SUFFIX: usize = 17;

/// What a message listener at `addr` binds: its endpoint (for `shm:NAME`, the
/// rendezvous), and for `shm:NAME` the name and the ring capacity `opts` ask
/// for the channels it hands out. Both faces' `bind`.
pub(crate) fn listening(
    addr: &Address,
    opts: &crate::options::ListenerOptions,
) -> Result<(Endpoint, Option<(String, usize)>)> {
    let ep = endpoint(addr)?;
    let shm = match addr {
        Address::Shm(name) => Some((name.clone(), crate::shm::core::ring_capacity(opts)?)),
        _ => None,
    };
    Ok((ep, shm))
}

/// A fresh, unguessable region name for one client of `shm:NAME`.
fn region_for_client(name: &str) -> String {
    // `RandomState` is seeded from the OS's random source once per process
    // and differs per instance.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{name}.{:016x}", h.finish())
}

/// The region name in an offer from the rendezvous of `shm:NAME`, if it is
/// one of that name's.
fn parse_offer(name: &str, msg: &[u8]) -> Result<String> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::Protocol,
            format!(
                "the rendezvous of shm:{name} offered {:?}, which is not an ipckit \
                 shared-memory channel offer: {why}",
                String::from_utf8_lossy(&msg[..msg.len().min(80)])
            ),
        )
    };
    let text = std::str::from_utf8(msg).map_err(|_| bad("not UTF-8"))?;
    let region = text
        .strip_prefix(OFFER)
        .ok_or_else(|| bad(&format!("it does not start with {OFFER:?}")))?;
    let suffix = region
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('.'))
        .ok_or_else(|| bad(&format!("the region is not named {name}.<hex>")))?;
    if suffix.len() != 16 || !suffix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("the region's suffix is not 16 hex digits"));
    }
    Ok(region.to_owned())
}

/// A fresh region for a client of `shm:NAME`, and the offer that names it.
pub(crate) fn new_offer(name: &str) -> (String, String) {
    let region = region_for_client(name);
    let offer = format!("{OFFER}{region}");
    (region, offer)
}

/// What a client of `addr` (`shm:NAME`) makes of the receive of the offer
/// (`got`, with the message in `msg`): the region to join.
pub(crate) fn offered_region(
    addr: &Address,
    name: &str,
    got: io::Result<bool>,
    msg: &[u8],
) -> Result<String> {
    let got = got.map_err(|e| Error::io(taking(addr), e))?;
    if !got {
        // The server went away (it is stopping, or turned this client away):
        // a peer gone, not a broken protocol.
        return Err(Error::new(
            ErrorKind::Disconnected,
            format!(
                "{}: the server closed the rendezvous without an offer (it stopped, or \
                 turned this client away)",
                taking(addr)
            ),
        ));
    }
    parse_offer(name, msg)
}

/// Joins the offered `region` if its owner passes `rule`.
pub(crate) fn join_offered(
    region: &str,
    addr: &Address,
    max_in: usize,
    rule: &ServerUser,
) -> Result<sys::shm_channel::ShmChannel> {
    crate::shm::core::join_region(region, addr, max_in, rule)
        .map_err(|e| Error::io(format!("{}: join {region}", taking(addr)), e))
}

fn taking(addr: &Address) -> String {
    format!("connect to {addr}: take the channel the server offers")
}

/// The peer's credentials on a shared-memory channel to `peer`: what the
/// rendezvous told, if it did.
pub(crate) fn credentials(
    creds: Option<&PeerCredentials>,
    peer: &Address,
) -> Result<PeerCredentials> {
    creds.cloned().ok_or_else(|| {
        Error::new(
            ErrorKind::Unsupported,
            format!(
                "read the peer credentials on {peer}: the OS did not tell who \
                 joined the shared-memory channel"
            ),
        )
    })
}

/// The server's side, on a client just accepted on the rendezvous of
/// `shm:NAME`: creates its region (rings of `capacity` bytes, messages up to
/// `max_in`), offers it, and waits for the client to join.
pub(crate) fn offer_channel(
    rendezvous: &sys::MsgStream,
    name: &str,
    capacity: usize,
    max_in: usize,
) -> io::Result<sys::shm_channel::ShmChannel> {
    let (region, offer) = new_offer(name);
    let mut listener = sys::shm_join::ShmListener::bind(&region, capacity, max_in)?;
    let limit = Some(Instant::now() + HANDOFF);
    rendezvous.send(offer.as_bytes(), limit)?;
    listener.accept(limit)
}

/// The client's side, connected to the rendezvous of `addr` (`shm:NAME`):
/// takes the offer and joins the region if its owner passes `rule`.
pub(crate) fn take_channel(
    rendezvous: &sys::MsgStream,
    addr: &Address,
    name: &str,
    max_in: usize,
    rule: &ServerUser,
) -> Result<sys::shm_channel::ShmChannel> {
    let mut msg = Vec::new();
    let got = rendezvous.recv(&mut msg, MAX_OFFER, Some(Instant::now() + HANDOFF));
    let region = offered_region(addr, name, got, &msg)?;
    join_offered(&region, addr, max_in, rule)
}

/// A shared-memory channel of a [`MessageStream`](crate::MessageStream), and
/// who the peer was on the rendezvous.
pub(crate) struct ShmConn {
    pub(crate) channel: sys::shm_channel::ShmChannel,
    pub(crate) peer: Option<PeerCredentials>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_names_a_region_of_the_listener() {
        let region = region_for_client("app");
        assert_ne!(region, region_for_client("app"), "fresh each time");
        assert_eq!(region.len(), "app".len() + CLIENT_SUFFIX);
        let msg = format!("{OFFER}{region}");
        assert_eq!(parse_offer("app", msg.as_bytes()).unwrap(), region);
    }

    #[test]
    fn a_foreign_offer_is_refused_naming_the_rule() {
        for (msg, rule) in [
            ("hello", "does not start with"),
            ("ipckit-shm/1 other.0123456789abcdef", "not named app.<hex>"),
            ("ipckit-shm/1 app.0123", "16 hex digits"),
            ("ipckit-shm/1 app.0123456789abcdeg", "16 hex digits"),
        ] {
            let err = parse_offer("app", msg.as_bytes()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{msg}");
            assert!(err.to_string().contains(rule), "{msg}: {err}");
        }
    }
}
