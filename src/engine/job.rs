//! A job and its life cycle states.

use std::rc::Rc;

use super::journal::JournalTag;
use super::tubes::TubeId;
use super::{ConnId, Nanos};

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

#[derive(Debug)]
pub struct Job {
    pub id: JobId,
    pub tube: TubeId,
    pub pri: u32,
    /// The delay last given by put or release (reported by stats-job).
    pub delay: Nanos,
    /// Time to run, at least one second.
    pub ttr: Nanos,
    pub body: Rc<[u8]>,
    pub created_at: Nanos,
    pub state: JobState,
    /// Delayed: when the job becomes ready. Reserved: when its TTR runs out.
    /// Buried: when it was buried. Meaningless when ready.
    pub deadline: Nanos,
    /// The connection holding the reservation, while reserved.
    pub reserver: Option<ConnId>,
    pub counts: JobCounts,
    /// Where the journal keeps the job.
    pub journal_tag: JournalTag,
}
