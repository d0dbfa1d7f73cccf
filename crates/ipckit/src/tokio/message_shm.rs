//! The tokio face of `shm:NAME` message channels: the hand-over through the
//! rendezvous with async waits, and the channel a
//! [`MessageStream`](super::MessageStream) then runs on. The names, the offer
//! and what a client makes of it are the blocking face's
//! (`crate::message::shm`), so either end may be blocking and the other async.

use std::io;
use std::time::Instant;

use ::tokio::sync::Mutex;

use super::message::bounded;
use crate::address::Address;
use crate::error::Result;
use crate::message::shm::{HANDOFF, MAX_OFFER, join_offered, new_offer, offered_region};
use crate::peer::PeerCredentials;
use crate::plain::too_large;
use crate::security::ServerUser;
use crate::sys;
use crate::sys::shm_tokio::{AsyncReceiver, AsyncSender};

/// A shared-memory channel of an async message stream: each direction behind
/// an async lock (sends take turns, receives take turns), and who the peer
/// was on the rendezvous.
pub(crate) struct ShmConn {
    tx: Mutex<AsyncSender>,
    rx: Mutex<AsyncReceiver>,
    pub(super) peer: Option<PeerCredentials>,
}

impl ShmConn {
    fn new(channel: sys::shm_channel::ShmChannel, rendezvous: &sys::tokio::MsgStream) -> ShmConn {
        let (tx, rx) = channel.split();
        ShmConn {
            tx: Mutex::new(AsyncSender::new(tx)),
            rx: Mutex::new(AsyncReceiver::new(rx)),
            peer: rendezvous.peer_credentials().ok(),
        }
    }

    /// Sends `msg` whole (a dropped send finishes a begun message at the next).
    pub(super) async fn send(&self, msg: &[u8]) -> io::Result<()> {
        self.tx.lock().await.send(msg).await
    }

    /// Receives the next message into `out`; `false` at the end.
    pub(super) async fn recv(&self, out: &mut Vec<u8>, max: usize) -> io::Result<bool> {
        match self.rx.lock().await.recv(out).await? {
            true if out.len() > max => Err(too_large(out.len() as u64, max)),
            more => Ok(more),
        }
    }
}

/// The server's side, on a client just accepted on the rendezvous of
/// `shm:NAME`: creates its region, offers it, and waits (up to the hand-over
/// time) for the client to join.
pub(super) async fn offer_channel(
    rendezvous: &sys::tokio::MsgStream,
    name: &str,
    capacity: usize,
    max_in: usize,
) -> io::Result<ShmConn> {
    let (region, offer) = new_offer(name);
    let mut listener = sys::shm_join::ShmListener::bind(&region, capacity, max_in)?;
    let limit = Some(Instant::now() + HANDOFF);
    let handover = async {
        rendezvous.send(offer.as_bytes(), limit).await?;
        sys::shm_tokio::accept(&mut listener).await
    };
    let channel = bounded(limit, "hand over the channel", handover).await?;
    Ok(ShmConn::new(channel, rendezvous))
}

/// The client's side, connected to the rendezvous of `addr` (`shm:NAME`):
/// takes the offer and joins the region if its owner passes `rule`.
pub(super) async fn take_channel(
    rendezvous: &sys::tokio::MsgStream,
    addr: &Address,
    name: &str,
    max_in: usize,
    rule: &ServerUser,
) -> Result<ShmConn> {
    let mut msg = Vec::new();
    let limit = Some(Instant::now() + HANDOFF);
    let got = bounded(limit, "receive", rendezvous.recv(&mut msg, MAX_OFFER)).await;
    let region = offered_region(addr, name, got, &msg)?;
    let channel = join_offered(&region, addr, max_in, rule)?;
    Ok(ShmConn::new(channel, rendezvous))
}
