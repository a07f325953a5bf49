//! Everything the engine must do at a given time, in one ordered set.
//!
//! Each timed obligation has exactly one entry, keyed by its due time and
//! what it is about, so it can be cancelled in O(log n) when the job or
//! connection it concerns changes state first.

use std::collections::BTreeSet;

use super::ids::{ConnId, JobId, TubeId};
use super::time::Nanos;

/// Something the engine must do at a given time, and what it is about.
///
/// Timers due at the same instant fire in the order of the variants, which
/// is beanstalkd's (prottick): delays end, then pauses, then what concerns
/// connections; and a waiter whose job enters its last second as its
/// timeout runs out is told `DEADLINE_SOON` (conn_timeout checks that
/// first). So a job whose TTR ends as its tube resumes comes back after
/// the resumed tube's waiters took its ready jobs, as in beanstalkd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// A delayed job becomes ready: the first of its tube's delayed jobs
    /// (placement.rs keeps one such timer per tube).
    DelayEnds(JobId),
    /// A paused tube resumes.
    Unpause(TubeId),
    /// The TTR of a job `conn` holds is over: the soonest of its jobs when
    /// the timer was set. Each connection holding jobs has one such timer,
    /// not one a job (placement.rs); one whose job went meanwhile fires
    /// early, and is set again for the connection's soonest job.
    TtrEnds(JobId, ConnId),
    /// A waiting reserve must be told that one of its jobs is due within a
    /// second (`DEADLINE_SOON`).
    DeadlineSoon(ConnId),
    /// A waiting `reserve-with-timeout` gives up.
    ReserveTimeout(ConnId),
}

/// Every timer, by (due time, timer): at most one entry per timer.
#[derive(Default, Debug)]
pub struct Timers {
    due: BTreeSet<(Nanos, Timer)>,
}

impl Timers {
    /// Schedules `timer` at `at`.
    pub fn insert(&mut self, at: Nanos, timer: Timer) {
        self.due.insert((at, timer));
    }

    /// Cancels `timer`, scheduled at `at`; nothing if it is not scheduled
    /// (it fired already).
    pub fn remove(&mut self, at: Nanos, timer: Timer) {
        self.due.remove(&(at, timer));
    }

    /// Whether `timer` is due at `at`.
    pub fn contains(&self, at: Nanos, timer: Timer) -> bool {
        self.due.contains(&(at, timer))
    }

    /// How many timers are of a kind.
    pub fn count(&self, kind: impl Fn(&Timer) -> bool) -> usize {
        self.due.iter().filter(|(_, timer)| kind(timer)).count()
    }

    /// The earliest due time, if anything is scheduled.
    pub fn next(&self) -> Option<Nanos> {
        self.due.first().map(|&(at, _)| at)
    }

    /// Removes and returns the tube of the earliest timer if that is a
    /// tube resuming at `at`: after one such timer fired, the others of
    /// the same instant, which come right after it.
    pub fn pop_unpause_at(&mut self, at: Nanos) -> Option<TubeId> {
        match self.due.first() {
            Some(&(when, Timer::Unpause(tube))) if when == at => {
                self.due.pop_first();
                Some(tube)
            }
            _ => None,
        }
    }

    /// Removes and returns the earliest timer due at or before `now`, with
    /// the time it was due.
    pub fn pop_due(&mut self, now: Nanos) -> Option<(Nanos, Timer)> {
        match self.due.first() {
            Some(&(at, _)) if at <= now => self.due.pop_first(),
            _ => None,
        }
    }

    /// The earliest timer and its due time, if anything is scheduled.
    pub fn first(&self) -> Option<(Nanos, Timer)> {
        self.due.first().copied()
    }
}
