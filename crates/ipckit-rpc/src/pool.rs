//! The blocking server's calls run on one bounded set of threads, shared by
//! every connection: however many clients send however many requests, the
//! server has at most `max` threads running calls. A call hands its response
//! to its connection's outbox and is done: no thread of the pool ever waits
//! for a client.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::options::lock;

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
    /// Threads in the pool: at most `max`.
    members: usize,
    /// Every thread started, to join at the end.
    threads: Vec<JoinHandle<()>>,
    closed: bool,
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
        if state.closed || state.members >= self.max {
            return false;
        }
        state.threads.retain(|t| !t.is_finished());
        let pool = Arc::clone(self);
        let started = thread::Builder::new()
            .name("ipckit-rpc-call".into())
            .spawn(move || pool.work());
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

    /// Runs the jobs queued, then ends every thread and waits for them.
    pub(crate) fn close(&self) {
        for t in self.end() {
            let _ = t.join();
        }
    }

    /// Tells every thread to end once the jobs queued have run, without
    /// waiting; their handles.
    pub(crate) fn end(&self) -> Vec<JoinHandle<()>> {
        let threads = {
            let mut state = lock(&self.state);
            state.closed = true;
            std::mem::take(&mut state.threads)
        };
        self.work.notify_all();
        threads
    }

    /// How many threads have been started.
    #[cfg(test)]
    fn threads(&self) -> usize {
        lock(&self.state).threads.len()
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
