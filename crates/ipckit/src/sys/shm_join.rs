//! Creating and joining a channel region: the listener that creates it and
//! waits for its one peer, the opener's checks of a region before it joins,
//! and the detection of regions left by processes that exited. The layout and
//! the channel itself are `shm_channel`'s.
#![allow(unsafe_code)]

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering as StdOrdering};
use std::time::Instant;

use super::ObjectOwner;
use super::shm::{Peer, Region, Wakers, current_pid, pid_alive, unlink};
use super::shm_channel::{
    DATA_OFFSET, Header, MAGIC, MIN_CAPACITY, PEER_CHECK, STATE_CONNECTED, STATE_LISTENING,
    STATE_NEW, STATE_WORD, Shared, ShmChannel, VERSION, header, protocol, region_size,
};
use crate::sys::plain::timed_out;

/// The listening end: a region that waits for its one peer.
#[derive(Debug)]
pub(crate) struct ShmListener {
    name: String,
    /// The region and its wake-ups until the peer is accepted (shared with
    /// an async accept's registration while it waits).
    parts: Option<Arc<Parts>>,
    capacity: usize,
    max_in: usize,
}

/// A listener's region and its wake-ups.
#[derive(Debug)]
pub(super) struct Parts {
    region: Region,
    pub(super) wakers: Wakers,
}

impl Parts {
    /// The state word, on which the creator waits for its peer.
    pub(super) fn state(&self) -> &AtomicU32 {
        &header(&self.region).state
    }
}

impl ShmListener {
    /// Creates channel region `name` with rings of `capacity` bytes (a multiple
    /// of 8, at least [`MIN_CAPACITY`]). A leftover region whose creator has
    /// exited is replaced; one whose creator runs is `AddrInUse`.
    pub(crate) fn bind(name: &str, capacity: usize, max_in: usize) -> io::Result<ShmListener> {
        let size = region_size(capacity)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "capacity too large"))?;
        let region = match Region::create(name, size) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && stale(name) => {
                let _ = unlink(name);
                Region::create(name, size)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "a shared-memory region of that name exists, and it is not a channel \
                 left by a process that has exited",
            )),
            other => other,
        }?;
        let wakers = match Wakers::create(name) {
            Ok(w) => w,
            Err(e) => {
                let _ = unlink(name);
                return Err(e);
            }
        };
        // SAFETY: the region was just created, zeroed, at least `DATA_OFFSET`
        // bytes and page-aligned; nobody else writes its plain fields (an opener
        // waits for `STATE_LISTENING`, stored last with release ordering).
        let hdr = unsafe { &mut *region.mapping().as_ptr().cast::<Header>() };
        hdr.magic = MAGIC;
        hdr.version = VERSION;
        hdr.data_offset = DATA_OFFSET as u32;
        hdr.capacity = capacity as u64;
        hdr.max_message[0].store(max_in as u64, StdOrdering::Relaxed);
        hdr.creator_pid.store(current_pid(), StdOrdering::Relaxed);
        hdr.state.store(STATE_LISTENING, StdOrdering::Release);
        Ok(ShmListener {
            name: name.to_owned(),
            parts: Some(Arc::new(Parts { region, wakers })),
            capacity,
            max_in,
        })
    }

    /// Waits until `limit` for the peer; then the name is removed (Unix: the
    /// channel needs it no more, and nothing is left behind if a side dies).
    pub(crate) fn accept(&mut self, limit: Option<Instant>) -> io::Result<ShmChannel> {
        loop {
            let (parts, state) = match self.try_accept()? {
                Accepted::Channel(ch) => return Ok(*ch),
                Accepted::Waiting(parts, state) => (parts, state),
            };
            let now = Instant::now();
            let slice = match limit {
                Some(l) if now >= l => return Err(timed_out("accept")),
                Some(l) => (l - now).min(PEER_CHECK),
                None => PEER_CHECK,
            };
            parts.wakers.wait(STATE_WORD, parts.state(), state, slice);
        }
    }

    /// The channel if the peer has come, else what to wait on: the state word
    /// (index [`STATE_WORD`]) while it holds the value returned.
    pub(super) fn try_accept(&mut self) -> io::Result<Accepted> {
        let Some(parts) = &self.parts else {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "this shared-memory listener has accepted its one peer already",
            ));
        };
        let hdr = header(&parts.region);
        let state = hdr.state.load(StdOrdering::Acquire);
        if state != STATE_CONNECTED {
            return Ok(Accepted::Waiting(Arc::clone(parts), state));
        }
        let peer = Peer::watch(hdr.opener_pid.load(StdOrdering::Acquire));
        let max_out =
            usize::try_from(hdr.max_message[1].load(StdOrdering::Acquire)).unwrap_or(usize::MAX);
        let parts = self.parts.take().expect("checked above");
        let Parts { region, wakers } = Arc::try_unwrap(parts).map_err(|parts| {
            self.parts = Some(parts);
            io::Error::other("the listener's region is still watched by an abandoned accept")
        })?;
        let _ = unlink(&self.name);
        let shared = Shared::new(region, wakers, peer, 0, self.capacity, self.max_in, max_out);
        Ok(Accepted::Channel(Box::new(ShmChannel::new(shared))))
    }
}

/// What `ShmListener::try_accept` found.
#[derive(Debug)]
pub(super) enum Accepted {
    Channel(Box<ShmChannel>),
    /// Not yet: the listener's parts and the state word's value to wait on.
    Waiting(Arc<Parts>, u32),
}

impl Drop for ShmListener {
    fn drop(&mut self) {
        if self.parts.is_some() {
            let _ = unlink(&self.name);
        }
    }
}

/// If region `name` is a channel: the id of the process that created it, and
/// whether that process still runs.
pub(crate) fn creator(name: &str) -> Option<(u32, bool)> {
    let region = Region::open(name).ok()?;
    if region.len() < DATA_OFFSET {
        return None;
    }
    let hdr = header(&region);
    if hdr.magic != MAGIC {
        return None;
    }
    let pid = hdr.creator_pid.load(StdOrdering::Acquire);
    Some((pid, pid_alive(pid)))
}

/// Whether region `name` is a channel whose creator has exited (or a region
/// too small to be one, left by a crash during creation).
fn stale(name: &str) -> bool {
    let Ok(region) = Region::open(name) else {
        return false;
    };
    if region.len() < DATA_OFFSET {
        return false;
    }
    let hdr = header(&region);
    hdr.magic == MAGIC && !pid_alive(hdr.creator_pid.load(StdOrdering::Acquire))
}

/// Refuses a region that is not an ipckit channel of this version, or whose
/// sizes do not fit it.
fn check(region: &Region) -> Result<usize, String> {
    if region.len() < DATA_OFFSET {
        return Err(format!(
            "it is {} bytes, smaller than a channel header ({DATA_OFFSET} bytes)",
            region.len()
        ));
    }
    let hdr = header(region);
    if hdr.magic != MAGIC {
        return Err(format!(
            "its magic is {:02x?}, not an ipckit channel's",
            hdr.magic
        ));
    }
    if hdr.version != VERSION {
        return Err(format!(
            "its layout version is {}, and this ipckit reads version {VERSION}",
            hdr.version
        ));
    }
    if hdr.data_offset as usize != DATA_OFFSET {
        return Err(format!(
            "its data offset is {}, not {DATA_OFFSET}",
            hdr.data_offset
        ));
    }
    let capacity = usize::try_from(hdr.capacity).unwrap_or(usize::MAX);
    let fits = region_size(capacity).is_some_and(|size| size <= region.len());
    if capacity < MIN_CAPACITY || capacity % 8 != 0 || !fits {
        return Err(format!(
            "its ring capacity of {} bytes does not fit a region of {} bytes",
            hdr.capacity,
            region.len()
        ));
    }
    Ok(capacity)
}

/// Opens channel region `name` as the creator's peer, if `accept` accepts the
/// region's owner (checked before anything in it is read or written).
pub(crate) fn connect(
    name: &str,
    max_in: usize,
    accept: &dyn Fn(io::Result<ObjectOwner>) -> io::Result<()>,
) -> io::Result<ShmChannel> {
    let region = Region::open(name)?;
    accept(region.owner())?;
    // A creator writes the magic, the fields, then the state: all-zero magic or
    // the first state is a channel still being made (try again), not a foreign
    // region.
    if region.len() >= DATA_OFFSET
        && (header(&region).magic == [0; 8]
            || (header(&region).magic == MAGIC
                && header(&region).state.load(StdOrdering::Acquire) == STATE_NEW))
    {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the channel is still being created",
        ));
    }
    let capacity = check(&region).map_err(|why| protocol(format!("refusing the region: {why}")))?;
    let hdr = header(&region);
    match hdr.state.load(StdOrdering::Acquire) {
        STATE_LISTENING => {}
        STATE_CONNECTED => {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "the channel has its peer already (a shared-memory channel joins two processes)",
            ));
        }
        state => {
            return Err(protocol(format!(
                "refusing the region: its state word is {state}, which no ipckit channel has"
            )));
        }
    }
    let creator = hdr.creator_pid.load(StdOrdering::Acquire);
    if !pid_alive(creator) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("the channel was left by process {creator}, which has exited"),
        ));
    }
    let wakers = Wakers::open(name)?;
    for owner in wakers.owners() {
        accept(owner)?;
    }
    hdr.max_message[1].store(max_in as u64, StdOrdering::Relaxed);
    hdr.opener_pid.store(current_pid(), StdOrdering::Relaxed);
    if hdr
        .state
        .compare_exchange(
            STATE_LISTENING,
            STATE_CONNECTED,
            StdOrdering::AcqRel,
            StdOrdering::Acquire,
        )
        .is_err()
    {
        return Err(io::Error::new(
            io::ErrorKind::ResourceBusy,
            "another process joined the channel first",
        ));
    }
    wakers.wake(STATE_WORD, &hdr.state);
    let peer = Peer::watch(hdr.creator_pid.load(StdOrdering::Acquire));
    let max_out =
        usize::try_from(hdr.max_message[0].load(StdOrdering::Acquire)).unwrap_or(usize::MAX);
    Ok(ShmChannel::new(Shared::new(
        region, wakers, peer, 1, capacity, max_in, max_out,
    )))
}
