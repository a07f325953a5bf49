//! A job and its life cycle states.

use std::num::NonZeroU32;

use super::bodies::BodyRef;
use super::journal::JournalTag;
use super::tubes::TubeId;
use super::{ConnId, Nanos, secs};

pub type JobId = u64;

/// Where a job is. Every state has exactly one home: ready and delayed jobs
/// in their tube's ordered sets, buried jobs in the tube's FIFO, reserved jobs
/// in their connection's reservation set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    Ready,
    Reserved,
    Delayed,
    Buried,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::Reserved => "reserved",
            JobState::Delayed => "delayed",
            JobState::Buried => "buried",
        }
    }
}

/// The per-job counters `stats-job` reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub reserves: u32,
    pub timeouts: u32,
    pub releases: u32,
    pub buries: u32,
    pub kicks: u32,
}

/// A job's counters, kept apart until one of them moves: most jobs wait in
/// a queue and are deleted after one reserve, and a million waiting jobs
/// should not carry twenty bytes of zeros each.
#[derive(Clone, Debug, Default)]
pub struct JobHistory(Option<Box<JobCounts>>);

impl JobHistory {
    pub fn new(counts: JobCounts) -> JobHistory {
        JobHistory((counts != JobCounts::default()).then(|| Box::new(counts)))
    }

    pub fn counts(&self) -> JobCounts {
        self.0.as_deref().copied().unwrap_or_default()
    }

    pub fn counts_mut(&mut self) -> &mut JobCounts {
        self.0.get_or_insert_default()
    }
}

/// The connection holding a reservation, in four bytes (`Option<Holder>`
/// too): the server's connection ids are slab keys, far below 2^32 since
/// each is an open file descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder(NonZeroU32);

impl Holder {
    pub fn new(conn: ConnId) -> Holder {
        let id = u32::try_from(conn + 1).expect("connection ids fit in 32 bits");
        Holder(NonZeroU32::new(id).expect("id + 1 is not zero"))
    }

    pub fn conn(self) -> ConnId {
        self.0.get() as ConnId - 1
    }
}

/// The record of one live job. It is kept small (72 bytes, the body
/// apart) because a queue may hold millions: times that only ever hold
/// whole seconds are kept in seconds, counters live apart until used.
#[derive(Debug)]
pub struct Job {
    pub id: JobId,
    pub created_at: Nanos,
    /// Delayed: when the job becomes ready. Reserved: when its TTR runs out.
    /// Buried: when it was buried. Meaningless when ready.
    pub deadline: Nanos,
    /// Where [`Engine`](super::Engine)'s body store keeps the body.
    pub body: BodyRef,
    /// Where the journal keeps the job.
    pub journal_tag: JournalTag,
    pub tube: TubeId,
    pub pri: u32,
    /// The delay last given by put or release, in seconds (reported by
    /// stats-job).
    pub delay_secs: u32,
    /// Time to run in seconds, at least one.
    pub ttr_secs: u32,
    /// The connection holding the reservation, while reserved.
    pub reserver: Option<Holder>,
    pub state: JobState,
    pub history: JobHistory,
}

impl Job {
    pub fn ttr(&self) -> Nanos {
        secs(self.ttr_secs)
    }

    pub fn delay(&self) -> Nanos {
        secs(self.delay_secs)
    }

    pub fn is_reserved_by(&self, conn: ConnId) -> bool {
        self.state == JobState::Reserved && self.reserver == Some(Holder::new(conn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_stays_small() {
        assert!(std::mem::size_of::<Job>() <= 72, "{} bytes", std::mem::size_of::<Job>());
    }

    #[test]
    fn counters_cost_nothing_until_used() {
        let mut history = JobHistory::new(JobCounts::default());
        assert!(history.0.is_none());
        history.counts_mut().reserves += 1;
        assert_eq!(history.counts().reserves, 1);
        assert!(JobHistory::new(history.counts()).0.is_some());
    }
}
