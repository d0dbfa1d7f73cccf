//! Async wake-ups of the shared-memory channel on Unix (feature `tokio`).
//!
//! The blocking side sleeps on a futex word of the region (`shm::wait`); a
//! notifier bumps the word and `FUTEX_WAKE`s it. A tokio task cannot sleep in
//! `FUTEX_WAIT`, so one *waker thread* per process (one more per
//! [`PER_THREAD`] waiting words) sleeps for every waiting task at once in
//! `futex_waitv` (Linux 5.16+): on its private control word and on each
//! registered word, each with the value the task saw before it announced its
//! sleep. When a word moves from that value, the kernel wakes the thread, which
//! signals the task's `Notify` and forgets the word. The waker thread is the
//! futex sleeper of the blocking protocol, so nothing changes for a notifier
//! (blocking or async): it bumps the word and wakes it as before. A word that
//! moved before the thread reached `futex_waitv` makes the call fail with
//! `EAGAIN`, and the thread compares every word with its value before each
//! call: no wake-up is lost between a task's announcement and the thread's
//! sleep (see `shm_channel` for the Dekker pair that covers the announcement).
//!
//! Without `futex_waitv` (older kernels, other Unix systems) the thread looks
//! at its words every [`POLL`] instead: correct, but not free while a task waits.
//!
//! The peer's exit comes from its pidfd, readable once the process has
//! exited, through tokio's reactor; without a pidfd, from a check every
//! `PEER_CHECK`.
#![allow(unsafe_code)]

use std::any::Any;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use super::shm::{Peer, Wakers};
use crate::sys::sync::relock;

/// What keeps a watched word's memory mapped while the waker thread may read
/// it: the region (or the channel) that holds it.
pub(crate) type Keep = Arc<dyn Any + Send + Sync>;

/// Words per waker thread: `futex_waitv` takes at most 128, one of them the
/// thread's control word.
const PER_THREAD: usize = 127;

/// How often a waker thread without `futex_waitv` looks at its words.
const POLL: Duration = Duration::from_millis(1);

/// One task's sleep: wake `notify` once `word` differs from `seen`.
struct Entry {
    id: u64,
    word: *const AtomicU32,
    seen: u32,
    notify: Arc<Notify>,
    /// Keeps the memory of `word` mapped while the entry is listed.
    _keep: Keep,
}

// SAFETY: `word` points into a shared mapping that `_keep` keeps mapped for the
// entry's whole life; it is read only as an `AtomicU32` (`load`), which any
// thread may do. The rest is `Send` already.
unsafe impl Send for Entry {}

impl Entry {
    fn moved(&self) -> bool {
        // SAFETY: `_keep` keeps the mapping that holds `word` alive while the
        // entry exists; the word is 4-aligned (a field of a `repr(C)` header)
        // and only ever accessed atomically.
        unsafe { &*self.word }.load(Ordering::Acquire) != self.seen
    }
}

/// A waker thread and the words it sleeps on.
struct Thread {
    entries: Mutex<Vec<Entry>>,
    /// Bumped (and woken) when `entries` changes, so the thread picks up the
    /// new set.
    control: AtomicU32,
}

impl Thread {
    fn changed(&self) {
        self.control.fetch_add(1, Ordering::Release);
        wake_private(&self.control);
    }

    /// Signals and forgets the entries whose word moved; returns what to sleep
    /// on for the others.
    fn sweep(&self) -> Vec<(*const AtomicU32, u32)> {
        let mut entries = relock(self.entries.lock());
        entries.retain(|e| {
            if e.moved() {
                e.notify.notify_one();
                false
            } else {
                true
            }
        });
        entries.iter().map(|e| (e.word, e.seen)).collect()
    }

    fn run(&self) {
        let mut waitv = cfg!(target_os = "linux");
        loop {
            let ctl = self.control.load(Ordering::Acquire);
            let words = self.sweep();
            if !(waitv && sleep_on(&self.control, ctl, &words)) {
                waitv = false;
                std::thread::sleep(POLL);
            }
        }
    }
}

/// The waker threads of this process.
static THREADS: Mutex<Vec<Arc<Thread>>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A registered sleep: dropping it forgets the word (if the thread has not
/// fired it already).
pub(crate) struct WordWatch {
    thread: Arc<Thread>,
    id: u64,
}

impl std::fmt::Debug for WordWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordWatch").field("id", &self.id).finish()
    }
}

impl Drop for WordWatch {
    fn drop(&mut self) {
        let mut entries = relock(self.thread.entries.lock());
        let before = entries.len();
        entries.retain(|e| e.id != self.id);
        let removed = entries.len() != before;
        drop(entries);
        if removed {
            self.thread.changed();
        }
    }
}

/// Has a waker thread signal `notify` once `word` differs from `seen`.
fn watch_word(
    word: &AtomicU32,
    seen: u32,
    notify: &Arc<Notify>,
    keep: Keep,
) -> io::Result<WordWatch> {
    let thread = {
        let mut threads = relock(THREADS.lock());
        match threads
            .iter()
            .find(|t| relock(t.entries.lock()).len() < PER_THREAD)
        {
            Some(t) => Arc::clone(t),
            None => {
                let t = Arc::new(Thread {
                    entries: Mutex::new(Vec::new()),
                    control: AtomicU32::new(0),
                });
                let run = Arc::clone(&t);
                std::thread::Builder::new()
                    .name("ipckit-shm-waker".into())
                    .spawn(move || run.run())?;
                threads.push(Arc::clone(&t));
                t
            }
        }
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    relock(thread.entries.lock()).push(Entry {
        id,
        word: std::ptr::from_ref(word),
        seen,
        notify: Arc::clone(notify),
        _keep: keep,
    });
    thread.changed();
    Ok(WordWatch { thread, id })
}

/// Sleeps in `futex_waitv` on `control` (while it holds `ctl`) and on each
/// word (while it holds its value); false if the call cannot work here (the
/// kernel lacks it), and the thread must poll.
#[cfg(target_os = "linux")]
fn sleep_on(control: &AtomicU32, ctl: u32, words: &[(*const AtomicU32, u32)]) -> bool {
    use rustix::thread::futex::{ClockId, Wait, WaitFlags, WaitPtr, WaitvFlags, waitv};
    let mut waits = Vec::with_capacity(words.len() + 1);
    let mut own = Wait::new();
    own.val = u64::from(ctl);
    own.uaddr = WaitPtr::new(control.as_ptr().cast());
    own.flags = WaitFlags::SIZE_U32 | WaitFlags::PRIVATE;
    waits.push(own);
    for &(word, seen) in words {
        let mut w = Wait::new();
        w.val = u64::from(seen);
        w.uaddr = WaitPtr::new(word.cast_mut().cast());
        // Shared (not private): the notifier is another process.
        w.flags = WaitFlags::SIZE_U32;
        waits.push(w);
    }
    // Woken, EAGAIN (a word had moved), EINTR: sweep again. EFAULT cannot
    // last: a listed word is mapped (its entry keeps it), and a word dropped
    // since the sweep also bumped the control word. Anything else (ENOSYS
    // before Linux 5.16) would fail every time: poll instead of spinning.
    use rustix::io::Errno;
    match waitv(&waits, WaitvFlags::empty(), None, ClockId::Monotonic) {
        Ok(_) => true,
        Err(e) => matches!(e, Errno::AGAIN | Errno::INTR | Errno::FAULT),
    }
}

#[cfg(not(target_os = "linux"))]
fn sleep_on(_control: &AtomicU32, _ctl: u32, _words: &[(*const AtomicU32, u32)]) -> bool {
    false
}

#[cfg(target_os = "linux")]
fn wake_private(word: &AtomicU32) {
    use rustix::thread::futex;
    let _ = futex::wake(word, futex::Flags::PRIVATE, 1);
}

#[cfg(not(target_os = "linux"))]
fn wake_private(_word: &AtomicU32) {}

/// How one async end sleeps: a `Notify` the waker thread signals, and the
/// peer's pidfd in tokio's reactor (made at the first sleep, inside the
/// runtime).
#[derive(Debug, Default)]
pub(crate) struct Sleeper {
    notify: Arc<Notify>,
    exit: Option<Option<AsyncFd<OwnedFd>>>,
}

impl Sleeper {
    pub(crate) fn new() -> Sleeper {
        Sleeper::default()
    }

    /// Sleeps until word `index` (`word`, in memory `keep` holds) moves from
    /// `seen` (or may have), or `peer` exits (or may have). Callers recheck.
    pub(crate) async fn sleep(
        &mut self,
        _wakers: &Wakers,
        peer: Option<&Peer>,
        _index: usize,
        word: &AtomicU32,
        seen: u32,
        keep: Keep,
    ) -> io::Result<()> {
        let _watch = watch_word(word, seen, &self.notify, keep)?;
        let woken = self.notify.notified();
        let Some(peer) = peer else {
            woken.await;
            return Ok(());
        };
        let exit = self.exit.get_or_insert_with(|| {
            peer.pidfd()
                .and_then(|fd| fd.try_clone_to_owned().ok())
                .and_then(|fd| {
                    // SAFETY: `fd` is an `OwnedFd` the `AsyncFd` owns: it stays
                    // open, and `as_raw_fd` returns the same descriptor, until
                    // the registration is dropped.
                    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok()
                })
        });
        let exited = async {
            match exit {
                // Readable once the process has exited; the readiness stays.
                Some(fd) => drop(fd.readable().await),
                None => tokio::time::sleep(crate::sys::shm_channel::PEER_CHECK).await,
            }
        };
        crate::sys::shm_tokio::first(woken, exited).await;
        Ok(())
    }
}
