//! The retry schedule of a connect while nobody listens yet, without I/O:
//! both faces, and `sys` where the OS makes it loop itself (busy pipes),
//! wait the pauses it yields.

use std::time::{Duration, Instant};

/// How long a client waits between tries while nobody listens yet.
const RETRY_PAUSE: Duration = Duration::from_millis(5);

/// The instant a connect with `timeout` must give up by.
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// The pause before the next connect attempt with `retry_not_found`: at most
/// 5 ms, never past `limit`; `None` once no time is left, so a timeout never
/// fires before its full duration.
pub(crate) fn retry_pause(limit: Option<Instant>) -> Option<Duration> {
    match limit {
        None => Some(RETRY_PAUSE),
        Some(limit) => {
            let left = limit.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| left.min(RETRY_PAUSE))
        }
    }
}

/// The pauses between connect attempts up to `limit` (endless without one):
/// an iterator, so that a blocking loop sleeps them and an async one awaits
/// them, and the schedule is written once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetrySchedule {
    limit: Option<Instant>,
}

impl RetrySchedule {
    /// The schedule of a connect that must finish by `limit`.
    pub(crate) fn until(limit: Option<Instant>) -> RetrySchedule {
        RetrySchedule { limit }
    }
}

impl Iterator for RetrySchedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        retry_pause(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_stop_at_the_limit_and_never_pass_it() {
        let limit = Instant::now() + Duration::from_millis(12);
        let mut schedule = RetrySchedule::until(Some(limit));
        let first = schedule.next().unwrap();
        assert!(first <= RETRY_PAUSE);
        std::thread::sleep(Duration::from_millis(13));
        assert_eq!(schedule.next(), None);
        assert_eq!(RetrySchedule::until(None).next(), Some(RETRY_PAUSE));
    }
}
