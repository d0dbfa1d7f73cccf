//! A benchmark baseline, not a channel: a bare single-producer,
//! single-consumer ring in a named shared-memory region, with no wake-ups, no
//! peer-death detection and no chunking; both sides spin. It is what the
//! [`ShmChannel`](super::ShmChannel) is measured against (`benches/shm.rs`,
//! `ipckit bench`): two positions and a `memcpy` of length-prefixed records,
//! the least any shared-memory channel between two processes has to do.
//!
//! A receiver spins on a CPU until a message comes, for as long as it takes,
//! and a sender spins while the ring is full; a peer that dies leaves the
//! other side spinning forever. Use [`ShmChannel`](super::ShmChannel) for
//! anything but measuring.
//!
//! ```no_run
//! use ipckit::shm::baseline::BareRing;
//!
//! let ring = BareRing::create("shm:bench-ring", 1 << 20)?;
//! let peer = BareRing::open("shm:bench-ring")?; // as another process would
//! ring.send(b"ping");
//! let mut buf = [0u8; 64];
//! let n = peer.recv(&mut buf);
//! assert_eq!(&buf[..n], b"ping");
//! # Ok::<(), ipckit::Error>(())
//! ```

use std::fmt;

use crate::address::Address;
use crate::error::{Error, ErrorKind, Result};
use crate::security::{self, ServerUser};
use crate::shm::region_name;
use crate::sys;

/// One end of a bare ring (see the [module docs](self)): one handle sends,
/// one receives, each used by one thread at a time (it is `Send`, not
/// `Sync`). The first [`send`](BareRing::send) makes a handle the ring's
/// writer and the first [`recv`](BareRing::recv) its reader, until it is
/// dropped; another handle that tries either panics.
pub struct BareRing {
    inner: sys::bare_ring::BareRing,
    /// The name, removed on drop by the creator (Unix).
    name: String,
    remove_on_drop: bool,
}

impl fmt::Debug for BareRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BareRing")
            .field("name", &self.name)
            .field("max_message", &self.max_message())
            .finish_non_exhaustive()
    }
}

impl BareRing {
    /// Creates the region `name` (`shm:NAME` or `NAME`) holding a ring of
    /// `capacity` bytes (rounded up to a multiple of 8), which only the
    /// current user can open. Dropping it removes the name (Unix).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidOption`] for a capacity under 64 bytes,
    /// [`ErrorKind::AddrInUse`] when a region of that name exists,
    /// [`ErrorKind::InvalidAddress`] for a bad name, and the OS error
    /// otherwise.
    pub fn create(name: &str, capacity: usize) -> Result<BareRing> {
        let name = region_name(name)?;
        let cap = capacity.checked_next_multiple_of(8);
        let size = cap.and_then(sys::bare_ring::BareRing::region_size);
        let (Some(cap), Some(size), true) = (cap, size, capacity >= 64) else {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!(
                    "a bare ring needs a capacity of at least 64 bytes (and less than the address space), not {capacity}"
                ),
            ));
        };
        let what = || format!("create the bare ring shm:{name} of {cap} bytes");
        let region = sys::shm::Region::create(&name, size).map_err(|e| {
            let e = if e.kind() == std::io::ErrorKind::AlreadyExists {
                std::io::Error::new(std::io::ErrorKind::AddrInUse, e)
            } else {
                e
            };
            Error::io(what(), e)
        })?;
        let inner = sys::bare_ring::BareRing::create(region, cap).map_err(|e| {
            let _ = sys::shm::unlink(&name);
            Error::io(what(), e)
        })?;
        Ok(BareRing {
            inner,
            name,
            remove_on_drop: true,
        })
    }

    /// Opens the bare ring `name` that [`create`](BareRing::create) made.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no region has the name,
    /// [`ErrorKind::PermissionDenied`] for a region of another user or one
    /// other users can write to, and an error naming the rule when the region
    /// is not a bare ring.
    pub fn open(name: &str) -> Result<BareRing> {
        let name = region_name(name)?;
        let addr = format!("shm:{name}");
        let rule = ServerUser::Default.precheck(&Address::Shm(name.clone()), None)?;
        let region =
            sys::shm::Region::open(&name).map_err(|e| Error::io(format!("open {addr}"), e))?;
        security::check_object_owner(&rule, &addr, region.owner(), security::REGION_OPT_OUT)?;
        let inner = sys::bare_ring::BareRing::open(region)
            .map_err(|e| Error::io(format!("open the bare ring {addr}"), e))?;
        Ok(BareRing {
            inner,
            name,
            remove_on_drop: false,
        })
    }

    /// The largest message: half the capacity less 8 bytes.
    pub fn max_message(&self) -> usize {
        self.inner.max_message()
    }

    /// Sends `msg`, spinning while the ring is full (forever, if nobody
    /// receives).
    ///
    /// # Panics
    ///
    /// When `msg` is over [`max_message`](BareRing::max_message), or another
    /// handle is the ring's writer.
    pub fn send(&self, msg: &[u8]) {
        if let Err(why) = self.inner.send(msg) {
            panic!("shm:{}: {why}", self.name);
        }
    }

    /// Receives the next message into `buf`, spinning while the ring is empty
    /// (forever, if nobody sends), and returns its length.
    ///
    /// # Panics
    ///
    /// When the message does not fit `buf`, another handle is the ring's
    /// reader, or the ring holds records no writer of it writes.
    pub fn recv(&self, buf: &mut [u8]) -> usize {
        match self.inner.recv(buf) {
            Ok(n) => n,
            Err(why) => panic!("shm:{}: {why}", self.name),
        }
    }
}

impl Drop for BareRing {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = sys::shm::unlink(&self.name);
        }
    }
}
