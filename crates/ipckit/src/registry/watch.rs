//! Waiting for a service and watching the registry, woken by the OS's change
//! notification on the registry directory.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Service, check_service_name, ensure_dir, registry_error, scan};
use crate::error::{Error, ErrorKind, Result};
use crate::sys;

/// How often a [`Watch`] re-reads the registry when nothing in it changed, to
/// see owners that died without removing their record (killed): no
/// notification tells that a process is gone.
const LIVENESS_PERIOD: Duration = Duration::from_secs(1);

/// Waits until service `name` has a live instance, and returns the first;
/// returns at once if one is there.
///
/// A registration made while this waits wakes it through the OS's change
/// notification on the registry directory (inotify, `FindFirstChangeNotificationW`),
/// not by polling. The registry directory is created if it does not exist,
/// so that it can be watched.
///
/// # Errors
///
/// [`ErrorKind::TimedOut`] when no instance registered within `timeout`; the
/// errors of [`lookup`](super::lookup).
pub fn wait_for(name: &str, timeout: Duration) -> Result<Service> {
    wait_until(name, Instant::now() + timeout, None)
}

/// [`wait_for`] that, given `cancel`, also gives up (with `TimedOut`) soon
/// after it is set. Without it, each wait lasts to the next change or the
/// limit: no timer of its own wakes it.
pub(super) fn wait_until(
    name: &str,
    limit: Instant,
    cancel: Option<&AtomicBool>,
) -> Result<Service> {
    /// How long one wait lasts at most when there is `cancel` to see.
    const CANCEL_CHECK: Duration = Duration::from_millis(250);
    check_service_name(name)?;
    let dir = ensure_dir()?;
    // Watch first, then look: a record written between the two still wakes us.
    let mut watcher =
        sys::registry::DirWatcher::new(&dir).map_err(|e| registry_error("watch", &dir, e))?;
    loop {
        let (listing, _) = scan(&dir)?;
        if let Some(found) = listing.services.into_iter().find(|s| s.name() == name) {
            return Ok(found);
        }
        let left = limit.saturating_duration_since(Instant::now());
        if left.is_zero() || cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Error::new(
                ErrorKind::TimedOut,
                format!(
                    "wait for service {name:?}: no live instance registered in time (registry {})",
                    dir.display()
                ),
            ));
        }
        let wait = match cancel {
            Some(_) => left.min(CANCEL_CHECK),
            None => left,
        };
        watcher
            .wait(wait)
            .map_err(|e| registry_error("watch", &dir, e))?;
    }
}

/// A change in the registry, from [`Watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A live instance appeared (or was there when the watch began).
    Added(Service),
    /// An instance went: unregistered, or its owner process is gone.
    Removed(Service),
}

/// Watches the registry for instances that come and go ([`watch`]).
///
/// It is an iterator of events that blocks; [`next_timeout`](Watch::next_timeout)
/// waits at most a given time.
#[derive(Debug)]
pub struct Watch {
    dir: PathBuf,
    watcher: sys::registry::DirWatcher,
    known: BTreeMap<PathBuf, Service>,
    pending: VecDeque<Event>,
}

/// Starts watching every service of the registry. The instances live now come
/// first, as [`Event::Added`].
///
/// Registrations and removals wake the watch through the OS's change
/// notification; an owner killed without removing its record is noticed at
/// the next change or within about a second (the registry is re-read that
/// often while nothing changes, since no notification tells of a process's
/// end).
///
/// # Errors
///
/// The errors of [`list`](super::list); the OS error if the directory cannot
/// be watched.
pub fn watch() -> Result<Watch> {
    let dir = ensure_dir()?;
    let watcher =
        sys::registry::DirWatcher::new(&dir).map_err(|e| registry_error("watch", &dir, e))?;
    let mut w = Watch {
        dir,
        watcher,
        known: BTreeMap::new(),
        pending: VecDeque::new(),
    };
    w.rescan()?;
    Ok(w)
}

impl Watch {
    /// The next event, or `None` if none came within `timeout`.
    ///
    /// # Errors
    ///
    /// The errors of [`list`](super::list).
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Event>> {
        let limit = Instant::now() + timeout;
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            let left = limit.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.watcher
                .wait(left.min(LIVENESS_PERIOD))
                .map_err(|e| registry_error("watch", &self.dir, e))?;
            self.rescan()?;
        }
    }

    /// Compares the registry with what was known, queueing the differences.
    fn rescan(&mut self) -> Result<()> {
        let (listing, _) = scan(&self.dir)?;
        let now: BTreeMap<PathBuf, Service> = listing
            .services
            .into_iter()
            .map(|s| (s.path.clone(), s))
            .collect();
        let gone: Vec<PathBuf> = self
            .known
            .keys()
            .filter(|p| !now.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(s) = self.known.remove(&path) {
                self.pending.push_back(Event::Removed(s));
            }
        }
        for (path, s) in now {
            if !self.known.contains_key(&path) {
                self.pending.push_back(Event::Added(s.clone()));
                self.known.insert(path, s);
            }
        }
        Ok(())
    }
}

impl Iterator for Watch {
    type Item = Result<Event>;

    /// Blocks until the next event; `None` never comes.
    fn next(&mut self) -> Option<Result<Event>> {
        loop {
            match self.next_timeout(Duration::from_secs(3600)) {
                Ok(Some(event)) => return Some(Ok(event)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
