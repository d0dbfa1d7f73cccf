//! The blocking server's calls run on one bounded set of threads, shared by
//! every connection: however many clients send however many requests, the
//! server has at most `max` threads running calls.
//!
//! A thread that sends a response says so ([`Pool::sending`]); once its send
//! has taken longer than [`STUCK`] (a client that does not read its
//! responses), it no longer counts against the pool when work waits: another
//! thread is started for that work, and the stuck one ends when its send is
//! done, if the pool is full by then. So such clients hold a thread each
//! (one per connection: its other responses queue behind that one) until
//! the reply timeout, but no place in the pool.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a send may take before its thread stops counting against the
/// pool.
const STUCK: Duration = Duration::from_millis(20);

use crate::server::lock;

/// A call to run.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// How long a thread of the pool waits for a job before it ends.
const IDLE_EXIT: Duration = Duration::from_secs(2);

/// Threads started as jobs come, up to `max`; one that has had no job for
/// [`IDLE_EXIT`] ends, and [`Pool::close`] ends the rest.
pub(crate) struct Pool {
    state: Mutex<State>,
    work: Condvar,
    max: usize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Threads waiting for a job.
    idle: usize,
    /// Threads in the pool: at most `max`, plus those stuck in a send.
    members: usize,
    /// The sends in progress on threads of the pool, and when they began.
    sending: HashMap<u64, Instant>,
    next_send: u64,
    /// Every thread started, to join at the end.
    threads: Vec<JoinHandle<()>>,
    closed: bool,
}

// The initializer is `const` already; clippy of the Windows cross build
// (1.96, build-std) says it is not.
#[allow(clippy::missing_const_for_thread_local)]
mod member {
    use std::cell::Cell;

    thread_local! {
        /// On a thread of a pool: whether it is in it (not leaving it).
        pub(super) static MEMBER: Cell<bool> = const { Cell::new(false) };
    }
}
use member::MEMBER;

impl State {
    /// The threads that count against the pool's size: not those stuck in a
    /// send.
    fn counted(&self) -> usize {
        let now = Instant::now();
        let stuck = self
            .sending
            .values()
            .filter(|since| now.duration_since(**since) >= STUCK)
            .count();
        self.members - stuck
    }
}

impl Pool {
    pub(crate) fn new(max: usize) -> Arc<Pool> {
        Arc::new(Pool {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            max,
        })
    }

    /// Queues `job` for a thread; gives it back if there is no thread to run
    /// it and none can be started (the caller runs it itself).
    pub(crate) fn submit(self: &Arc<Pool>, job: Job) -> Option<Job> {
        let mut state = lock(&self.state);
        state.queue.push_back(job);
        // A thread that was woken but has not yet taken its job still counts
        // as idle, so compare with the queue, not with zero.
        if state.queue.len() <= state.idle {
            self.work.notify_one();
            return None;
        }
        if !self.start(&mut state) && state.members == 0 {
            return state.queue.pop_back();
        }
        None
    }

    /// Starts a thread if the pool has room for one; whether it did.
    fn start(self: &Arc<Pool>, state: &mut State) -> bool {
        if state.closed || state.counted() >= self.max {
            return false;
        }
        state.threads.retain(|t| !t.is_finished());
        let pool = Arc::clone(self);
        let started = thread::Builder::new()
            .name("ipckit-rpc-call".into())
            .spawn(move || {
                MEMBER.set(true);
                pool.work();
            });
        match started {
            Ok(handle) => {
                state.members += 1;
                state.threads.push(handle);
                true
            }
            // The threads there are take the work in turn.
            Err(_) => false,
        }
    }

    fn work(&self) {
        let mut state = lock(&self.state);
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                job();
                state = lock(&self.state);
                if !MEMBER.get() {
                    // It was stuck in a send, and the pool is full without it.
                    return;
                }
                continue;
            }
            if state.closed {
                state.members -= 1;
                return;
            }
            state.idle += 1;
            let (next, waited) = self
                .work
                .wait_timeout(state, IDLE_EXIT)
                .unwrap_or_else(|p| p.into_inner());
            state = next;
            state.idle -= 1;
            if waited.timed_out() && state.queue.is_empty() && !state.closed {
                // No call for a while: give the thread back, so a server that
                // went quiet holds no more threads than its connections need.
                // Decided under the lock `submit` takes, so a job queued now
                // finds this thread no longer idle and starts another.
                state.members -= 1;
                return;
            }
        }
    }

    /// Marks the calling thread as sending until the guard is dropped
    /// (nothing if it is not a thread of this pool).
    pub(crate) fn sending(&self) -> Sending<'_> {
        let token = MEMBER.get().then(|| {
            let mut state = lock(&self.state);
            state.next_send += 1;
            let token = state.next_send;
            state.sending.insert(token, Instant::now());
            token
        });
        Sending { pool: self, token }
    }

    /// Runs the jobs queued, then ends every thread and waits for them.
    pub(crate) fn close(&self) {
        let threads = {
            let mut state = lock(&self.state);
            state.closed = true;
            std::mem::take(&mut state.threads)
        };
        self.work.notify_all();
        for t in threads {
            let _ = t.join();
        }
    }

    /// How many threads have been started.
    #[cfg(test)]
    fn threads(&self) -> usize {
        lock(&self.state).threads.len()
    }
}

/// A send in progress on a thread of the pool; see [`Pool::sending`].
pub(crate) struct Sending<'a> {
    pool: &'a Pool,
    token: Option<u64>,
}

impl Drop for Sending<'_> {
    /// A thread stuck in its send, replaced meanwhile, leaves the pool after
    /// its job.
    fn drop(&mut self) {
        let Some(token) = self.token else {
            return;
        };
        let mut state = lock(&self.pool.state);
        state.sending.remove(&token);
        if state.members > self.pool.max {
            state.members -= 1;
            MEMBER.set(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn jobs_beyond_the_threads_wait_their_turn_and_all_run() {
        let pool = Pool::new(2);
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate_rx));
        let (done_tx, done_rx) = mpsc::channel();
        for i in 0..6 {
            let (gate, done) = (Arc::clone(&gate), done_tx.clone());
            let job: Job = Box::new(move || {
                if i < 2 {
                    let _ = lock(&gate).recv();
                }
                done.send(i).unwrap();
            });
            assert!(pool.submit(job).is_none());
        }
        // Two jobs hold both threads; the rest wait, and no third thread starts.
        assert!(
            done_rx
                .recv_timeout(std::time::Duration::from_millis(100))
                .is_err()
        );
        assert_eq!(pool.threads(), 2);
        gate_tx.send(()).unwrap();
        gate_tx.send(()).unwrap();
        let mut got: Vec<i32> = (0..6).map(|_| done_rx.recv().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2, 3, 4, 5]);
        pool.close();
    }
}
