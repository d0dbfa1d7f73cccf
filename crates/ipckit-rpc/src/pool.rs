//! The blocking server's calls run on one bounded set of threads, shared by
//! every connection: however many clients send however many requests, the
//! server has at most `max` threads running calls.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};

use crate::server::lock;

/// A call to run.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// Threads started as jobs come, up to `max`, kept until [`Pool::close`].
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
        if state.threads.len() < self.max {
            let pool = Arc::clone(self);
            let started = thread::Builder::new()
                .name("ipckit-rpc-call".into())
                .spawn(move || pool.work());
            match started {
                Ok(handle) => state.threads.push(handle),
                Err(_) if state.threads.is_empty() => return state.queue.pop_back(),
                // The threads there are take it in turn.
                Err(_) => {}
            }
        }
        None
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
                return;
            }
            state.idle += 1;
            state = self.work.wait(state).unwrap_or_else(|p| p.into_inner());
            state.idle -= 1;
        }
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
