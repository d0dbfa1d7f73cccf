//! How long a waiting shared-memory end spins before it sleeps, learnt from
//! what its last waits found.
//!
//! Spinning pays when the peer runs on a CPU of its own and answers within
//! the spin: the message is taken without a system call on either side. On a
//! machine whose CPUs are busy it costs: the peer may be waiting for the very
//! CPU the spinner holds, so every wait spins its whole budget for nothing
//! and the peer runs only once it sleeps (measured: 50 µs spins made JSON-RPC
//! over `shm:` 0.2× a Unix socket beside one busy compiler, a 2 µs spin
//! 1.05–1.33×).
//!
//! So the budget follows the outcomes: a wait that ends while spinning
//! doubles it (up to [`SPIN`]); one that has to yield or sleep halves it
//! (down to [`MIN_SPIN`]). The yielding phase after the spin stays whatever
//! the budget: a peer woken onto this CPU runs at once, without a sleep and
//! a wake-up (measured, 16 connections on 2 CPUs: 1.92× a Unix socket with
//! it, 0.69× without; beside a busy loop 1.47× with it, 1.10× without). A
//! budget at the bottom stays there while the machine is busy, so now and
//! then one wait probes with a long spin ([`PROBE_SPIN`], long enough for a
//! sleeping peer to wake and answer); a probe that ends while spinning
//! restores the full budget, one that fails doubles the interval to the next
//! probe (from [`PROBE_EVERY`] up to [`PROBE_EVERY_MAX`] waits).
//!
//! Two threads of one end (its sending and its receiving half) may share a
//! budget; relaxed atomics, and a lost update only moves a budget one step
//! less.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The longest spin, and the one a quiet machine keeps.
pub(crate) const SPIN: Duration = Duration::from_micros(50);
/// The shortest spin.
pub(crate) const MIN_SPIN: Duration = Duration::from_micros(2);
/// How long a waiting side then yields its CPU
/// (`sched_yield`, checking between yields) before it sleeps. A peer that
/// lost its CPU to another process for longer than the spin is often back
/// within this, and a sleep costs both sides system calls.
pub(crate) const YIELD: Duration = Duration::from_micros(500);
/// The spin of a probe.
pub(crate) const PROBE_SPIN: Duration = Duration::from_micros(200);
/// Waits between two probes, at first.
pub(crate) const PROBE_EVERY: u32 = 16;
/// At most.
pub(crate) const PROBE_EVERY_MAX: u32 = 1024;

const SPIN_NS: u32 = SPIN.as_nanos() as u32;
const MIN_SPIN_NS: u32 = MIN_SPIN.as_nanos() as u32;

/// One wait's plan: how long to spin (then it yields for [`YIELD`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) spin: Duration,
    probe: bool,
}

/// The spin budget of one end.
#[derive(Debug)]
pub(crate) struct Spin {
    budget_ns: AtomicU32,
    /// Waits left before the next probe (while the budget is below the top).
    countdown: AtomicU32,
    /// Waits between probes now.
    every: AtomicU32,
}

impl Default for Spin {
    fn default() -> Spin {
        Spin {
            budget_ns: AtomicU32::new(SPIN_NS),
            countdown: AtomicU32::new(PROBE_EVERY),
            every: AtomicU32::new(PROBE_EVERY),
        }
    }
}

impl Spin {
    /// The plan of the next wait.
    pub(crate) fn plan(&self) -> Plan {
        let budget = self.budget_ns.load(Ordering::Relaxed);
        if budget >= SPIN_NS {
            return Plan {
                spin: SPIN,
                probe: false,
            };
        }
        let left = self.countdown.load(Ordering::Relaxed);
        if left == 0 {
            self.countdown
                .store(self.every.load(Ordering::Relaxed), Ordering::Relaxed);
            return Plan {
                spin: PROBE_SPIN,
                probe: true,
            };
        }
        self.countdown.store(left - 1, Ordering::Relaxed);
        Plan {
            spin: Duration::from_nanos(u64::from(budget)),
            probe: false,
        }
    }

    /// The wait of `plan` ended while it spun (`true`) or had to yield or
    /// sleep (`false`).
    pub(crate) fn record(&self, plan: Plan, while_spinning: bool) {
        let budget = self.budget_ns.load(Ordering::Relaxed);
        let next = match (plan.probe, while_spinning) {
            (true, true) => {
                self.every.store(PROBE_EVERY, Ordering::Relaxed);
                SPIN_NS
            }
            (true, false) => {
                let every = (self.every.load(Ordering::Relaxed) * 2).min(PROBE_EVERY_MAX);
                self.every.store(every, Ordering::Relaxed);
                self.countdown.store(every, Ordering::Relaxed);
                return;
            }
            (false, true) => budget.saturating_mul(2).min(SPIN_NS),
            (false, false) => (budget / 2).max(MIN_SPIN_NS),
        };
        if next != budget {
            self.budget_ns.store(next, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_that_sleep_shrink_the_spin_and_a_probe_that_spins_restores_it() {
        let s = Spin::default();
        let full = s.plan();
        assert_eq!(full.spin, SPIN);
        // Every wait sleeps: the budget halves down to the floor.
        for _ in 0..10 {
            let p = s.plan();
            s.record(p, false);
        }
        let p = s.plan();
        assert_eq!(p.spin, MIN_SPIN);
        s.record(p, false);
        // Within the next PROBE_EVERY + 1 waits comes one probe.
        let probes: Vec<Plan> = (0..=PROBE_EVERY)
            .map(|_| {
                let p = s.plan();
                s.record(p, false);
                p
            })
            .filter(|p| p.probe)
            .collect();
        assert_eq!(probes.len(), 1);
        assert_eq!(probes[0].spin, PROBE_SPIN);
        // A failed probe spaces the next one out: none in the next
        // PROBE_EVERY waits.
        assert!((0..PROBE_EVERY).all(|_| {
            let p = s.plan();
            s.record(p, false);
            !p.probe
        }));
        // A probe that ends while spinning restores the full budget.
        let probe = loop {
            let p = s.plan();
            if p.probe {
                break p;
            }
            s.record(p, false);
        };
        s.record(probe, true);
        assert_eq!(s.plan().spin, SPIN);
    }

    #[test]
    fn waits_that_end_while_spinning_grow_the_spin_back() {
        let s = Spin::default();
        for _ in 0..3 {
            let p = s.plan();
            s.record(p, false);
        }
        let low = s.plan();
        assert!(low.spin < SPIN && !low.probe);
        s.record(low, true);
        assert_eq!(s.plan().spin, low.spin * 2);
        for _ in 0..10 {
            let p = s.plan();
            s.record(p, true);
        }
        assert_eq!(
            s.plan(),
            Plan {
                spin: SPIN,
                probe: false
            }
        );
    }
}
