//! How a connect reaches `service:NAME`, the same for every face: each live
//! instance in turn, oldest registration first, until one answers (a stale
//! instance, one that refuses or whose server fails a check, is passed over).
//! With `retry_not_found` it goes on until the connect timeout (for ever
//! without one): while no instance is registered it waits for a registration,
//! woken by the registry's change notification; while instances are
//! registered but none answers, it tries them again after the pauses a
//! socket connect makes. Each attempt is made once, without retries of its
//! own.

use std::time::{Duration, Instant};

use crate::address::Address;
use crate::error::{Error, ErrorKind, Result};
use crate::options::ConnectOptions;
use crate::plain::{RetrySchedule, deadline};

/// The pause between rounds while instances are registered but none answers.
const ROUND_PAUSE: Duration = Duration::from_millis(50);

/// No timeout: wait as long as anyone would (a century).
const FOR_EVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// What to do after a round in which no instance answered.
pub(crate) enum Wait {
    /// Nothing is registered: wait for a registration until this instant.
    Registration(Instant),
    /// Instances are registered but did not answer: try again after this.
    Pause(Duration),
}

/// The state of a connect to `service:NAME`.
pub(crate) struct Plan<'a> {
    name: &'a str,
    retry: bool,
    limit: Instant,
    pauses: RetrySchedule,
    /// Each instance that failed in the last round, and how.
    failures: Vec<(Address, Error)>,
    /// The options of each attempt: those given, without retries.
    pub(crate) single: ConnectOptions,
}

impl<'a> Plan<'a> {
    pub(crate) fn new(name: &'a str, opts: &ConnectOptions) -> Plan<'a> {
        let limit = deadline(opts.sys.timeout);
        let mut single = opts.clone();
        single.retry_not_found(false);
        Plan {
            name,
            retry: opts.sys.retry_not_found,
            limit: limit.unwrap_or_else(|| Instant::now() + FOR_EVER),
            pauses: RetrySchedule::until(limit),
            failures: Vec::new(),
            single,
        }
    }

    /// The addresses of the live instances now, oldest registration first.
    pub(crate) fn instances(&mut self) -> Result<Vec<Address>> {
        self.failures.clear();
        Ok(super::lookup(self.name)?
            .into_iter()
            .map(|s| s.record.address)
            .collect())
    }

    /// Notes that the instance at `at` did not answer.
    pub(crate) fn failed(&mut self, at: Address, e: Error) {
        self.failures.push((at, e));
    }

    /// After a round in which no instance answered: how to wait for the next,
    /// or the error that ends the connect.
    pub(crate) fn wait(&mut self) -> Result<Wait> {
        if self.failures.is_empty() {
            return if self.retry {
                Ok(Wait::Registration(self.limit))
            } else {
                Err(super::not_registered(self.name))
            };
        }
        let pause = if self.retry { self.pauses.next() } else { None };
        match pause {
            // Each round reads the registry: a longer pause than a socket's.
            Some(pause) => Ok(Wait::Pause(pause.max(
                ROUND_PAUSE.min(self.limit.saturating_duration_since(Instant::now())),
            ))),
            None => Err(self.none_answered()),
        }
    }

    fn none_answered(&self) -> Error {
        let kind = match self.failures.last() {
            Some(_) if self.retry => ErrorKind::TimedOut,
            Some((_, e)) => e.kind(),
            None => ErrorKind::NotFound,
        };
        let each: Vec<String> = self
            .failures
            .iter()
            .map(|(at, e)| format!("{at}: {e}"))
            .collect();
        let when = if self.retry {
            " before the timeout"
        } else {
            ""
        };
        Error::new(
            kind,
            format!(
                "connect to service:{}: none of its {} live instances answered{when} ({})",
                self.name,
                self.failures.len(),
                each.join("; ")
            ),
        )
    }
}

/// Connects to `addr` with `attempt`; for `service:NAME`, to each live
/// instance in turn (see the module docs).
pub(crate) fn connect_each<C>(
    addr: Address,
    opts: &ConnectOptions,
    mut attempt: impl FnMut(Address, &ConnectOptions) -> Result<C>,
) -> Result<C> {
    let Address::Service(name) = &addr else {
        return attempt(addr, opts);
    };
    let mut plan = Plan::new(name, opts);
    loop {
        for at in plan.instances()? {
            match attempt(at.clone(), &plan.single) {
                Ok(conn) => return Ok(conn),
                Err(e) => plan.failed(at, e),
            }
        }
        match plan.wait()? {
            Wait::Registration(limit) => drop(super::watch::wait_until(name, limit, None)?),
            Wait::Pause(pause) => std::thread::sleep(pause),
        }
    }
}
