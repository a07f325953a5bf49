//! A job's record and its life cycle states.

use std::num::NonZeroU32;

use super::bodies::BodyRef;
use super::ids::{ConnId, TubeId};
use super::time::{Nanos, secs};

/// Where a job is. Every state has exactly one home: ready and delayed jobs
/// in their tube's ordered sets, buried jobs in the tube's FIFO, reserved jobs
/// in their connection's reservation set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting in its tube to be reserved.
    Ready,
    /// Held by one connection until it deletes, releases or buries the job,
    /// hangs up, or lets the job's TTR run out.
    Reserved,
    /// Waiting in its tube for its delay to end.
    Delayed,
    /// Set aside in its tube until kicked.
    Buried,
}

impl JobState {
    /// The state as `stats-job` names it.
    pub fn name(self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::Reserved => "reserved",
            JobState::Delayed => "delayed",
            JobState::Buried => "buried",
        }
    }
}

/// A job's state and, while it is reserved, the connection holding it, in
/// four bytes: the connection's id plus one (ids are slab keys, far below
/// 2^32 since each is an open file descriptor), or one of three values above
/// any such id. Zero is never used, so that the job table can tell an empty
/// slot from a job without a tag of its own (four bytes a job).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place(NonZeroU32);

impl Place {
    const READY: u32 = u32::MAX;
    const DELAYED: u32 = u32::MAX - 1;
    const BURIED: u32 = u32::MAX - 2;

    fn new(value: u32) -> Place {
        Place(NonZeroU32::new(value).expect("places are never zero"))
    }

    /// A job that is not reserved.
    pub fn unheld(state: JobState) -> Place {
        Place::new(match state {
            JobState::Ready => Place::READY,
            JobState::Delayed => Place::DELAYED,
            JobState::Buried => Place::BURIED,
            JobState::Reserved => panic!("a reserved job has a holder"),
        })
    }

    /// A job reserved by `conn`.
    pub fn reserved_by(conn: ConnId) -> Place {
        match u32::try_from(conn + 1) {
            Ok(value) if value < Place::BURIED => Place::new(value),
            _ => panic!("connection id {conn} out of range"),
        }
    }

    /// The state of a job in this place.
    pub fn state(self) -> JobState {
        match self.0.get() {
            Place::READY => JobState::Ready,
            Place::DELAYED => JobState::Delayed,
            Place::BURIED => JobState::Buried,
            _ => JobState::Reserved,
        }
    }

    /// The connection holding the job, while reserved.
    pub fn holder(self) -> Option<ConnId> {
        let value = self.0.get();
        (value < Place::BURIED).then(|| value as ConnId - 1)
    }
}

/// What the journal needs to remember about a job, kept in the job itself
/// (a map from a million ids to it would cost more than the tag): the file
/// holding the job's full record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalTag {
    /// The binlog file's number (0 without a binlog).
    pub file: u32,
}

/// The record of one live job, 36 bytes (the body apart), because a queue
/// may hold millions: its id is the key it is found by, times that only
/// ever hold whole seconds are kept in seconds, the state and the holder
/// share four bytes, and whatever a waiting job does not need yet lives in
/// its [`JobExtras`](super::extras::JobExtras). Packed to 4-byte alignment: `created_at` is its only
/// 8-byte field, and would otherwise cost every job 4 bytes of padding.
#[derive(Debug)]
#[repr(C, packed(4))]
pub struct Job {
    /// When the job was put (`age` in `stats-job`).
    pub created_at: Nanos,
    /// Where [`Engine`](super::Engine)'s body store keeps the body.
    pub body: BodyRef,
    /// Where the journal keeps the job.
    pub journal_tag: JournalTag,
    /// The tube the job was put in; a job never changes tubes.
    pub tube: TubeId,
    /// Lower is more urgent; equal priorities go out in id order.
    pub pri: u32,
    /// Time to run in seconds, at least one.
    pub ttr_secs: u32,
    /// The job's state, and its holder while reserved.
    pub place: Place,
}

impl Job {
    /// The time to run: how long a reservation lasts without a touch.
    pub fn ttr(&self) -> Nanos {
        secs(self.ttr_secs)
    }

    /// Where the job is.
    pub fn state(&self) -> JobState {
        self.place.state()
    }

    /// Whether `conn` holds the job.
    pub fn is_reserved_by(&self, conn: ConnId) -> bool {
        self.place.holder() == Some(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_stays_small() {
        assert_eq!(std::mem::size_of::<Job>(), 36);
    }

    #[test]
    fn a_slot_of_the_job_table_costs_what_a_job_costs() {
        assert_eq!(std::mem::size_of::<Option<Job>>(), std::mem::size_of::<Job>());
    }

    #[test]
    fn a_place_holds_the_state_and_the_holder() {
        for state in [JobState::Ready, JobState::Delayed, JobState::Buried] {
            assert_eq!(Place::unheld(state).state(), state);
            assert_eq!(Place::unheld(state).holder(), None);
        }
        for conn in [0, 1, 70_000, u32::MAX as usize - 4] {
            assert_eq!(Place::reserved_by(conn).state(), JobState::Reserved);
            assert_eq!(Place::reserved_by(conn).holder(), Some(conn));
        }
    }
}
