//! The time limits of one direction of an async stream, enforced inside
//! `poll_read` / `poll_write` with one tokio [`Sleep`].
//!
//! An operation — the polls from the first one of a read (or write) to the one
//! that returns `Ready` — is armed on its first poll: it must finish by the
//! earlier of *now + timeout* and the deadline. Each poll first refuses at once
//! when that time has passed (Go's semantics: a passed deadline fails the call
//! before it touches the stream), then tries the I/O, and only when the I/O is
//! pending polls the sleep. The I/O consumes bytes only in a poll that returns
//! them, so a timed-out operation loses nothing.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

pub(super) use crate::plain::timed_out;
use ::tokio::time::{Instant, Sleep, sleep_until};

/// Where the operation in progress stands.
#[derive(Debug, Clone, Copy)]
enum State {
    /// No operation in progress: the next poll starts one and arms the limit.
    Idle,
    /// An operation is in progress and nothing limits it.
    Unbounded,
    /// An operation is in progress and must finish by this instant.
    Until(Instant),
}

/// A per-operation timeout and an absolute deadline, and the timer for both.
pub(super) struct Limit {
    timeout: Option<Duration>,
    deadline: Option<std::time::Instant>,
    state: State,
    /// Created on the first limited operation and reset for later ones.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl fmt::Debug for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limit")
            .field("timeout", &self.timeout)
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Default for Limit {
    fn default() -> Self {
        Limit {
            timeout: None,
            deadline: None,
            state: State::Idle,
            sleep: None,
        }
    }
}

impl Limit {
    pub(super) fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Sets the timeout; an operation in progress is re-armed on its next poll.
    pub(super) fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
        self.state = State::Idle;
    }

    /// Sets the deadline; an operation in progress is re-armed on its next poll.
    pub(super) fn set_deadline(&mut self, deadline: Option<std::time::Instant>) {
        self.deadline = deadline;
        self.state = State::Idle;
    }

    /// Starts an operation: works out when it must finish and sets the timer.
    fn arm(&mut self) {
        let by_timeout = self.timeout.and_then(|t| Instant::now().checked_add(t));
        let by_deadline = self.deadline.map(Instant::from_std);
        let until = match (by_timeout, by_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.state = match until {
            None => State::Unbounded,
            Some(until) => {
                match &mut self.sleep {
                    Some(sleep) => sleep.as_mut().reset(until),
                    None => self.sleep = Some(Box::pin(sleep_until(until))),
                }
                State::Until(until)
            }
        };
    }

    /// Polls `io` within the limit: `TimedOut` once the limit has passed, else
    /// whatever `io` gives. `what` names the operation in the error.
    pub(super) fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        what: &str,
        io: impl FnOnce(&mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if let State::Idle = self.state {
            self.arm();
        }
        if let State::Until(until) = self.state
            && until <= Instant::now()
        {
            self.state = State::Idle;
            return Poll::Ready(Err(timed_out(what)));
        }
        if let Poll::Ready(done) = io(cx) {
            self.state = State::Idle;
            return Poll::Ready(done);
        }
        if let (State::Until(_), Some(sleep)) = (self.state, &mut self.sleep)
            && sleep.as_mut().poll(cx).is_ready()
        {
            self.state = State::Idle;
            return Poll::Ready(Err(timed_out(what)));
        }
        Poll::Pending
    }
}
