//! A job and its life cycle states.

use std::num::NonZeroU32;

use super::bodies::BodyRef;
use super::ids::{ConnId, JobId, TubeId};
use super::table::IdTable;
use super::time::{Nanos, secs};

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

/// What a job carries only once something has happened to it: its counters,
/// the delay it was last given, and the deadline of its state. A job put
/// ready without a delay has none of these (all zero), and it is the job a
/// queue holds millions of. Packed to 4-byte alignment, like [`Job`]: 32
/// bytes, and 36 in the table with its slot's tag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, packed(4))]
pub struct JobExtras {
    pub counts: JobCounts,
    /// The delay last given by put or release, in seconds (reported by
    /// stats-job).
    pub delay_secs: u32,
    /// Delayed: when the job becomes ready. Reserved: when its TTR runs out.
    /// Buried: when it was buried. Meaningless when ready.
    pub deadline: Nanos,
}

impl JobExtras {
    pub fn delay(&self) -> Nanos {
        secs(self.delay_secs)
    }
}

/// The extras of the jobs that have any, by job id: a table like the job
/// table, since a million delayed or buried jobs all have extras (a hash
/// map of them took 86 bytes a job, twice that while it grew).
#[derive(Debug, Default)]
pub struct Extras(IdTable<JobExtras>);

impl Extras {
    pub fn get(&self, id: JobId) -> JobExtras {
        self.0.get(&id).copied().unwrap_or_default()
    }

    pub fn get_mut(&mut self, id: JobId) -> &mut JobExtras {
        self.0.get_or_insert_with(id, JobExtras::default)
    }

    /// Sets the extras of a job that has none yet (all-zero ones are not
    /// kept).
    pub fn set(&mut self, id: JobId, extras: JobExtras) {
        if extras != JobExtras::default() {
            self.0.insert(id, extras);
        }
    }

    /// Forgets a deleted job.
    pub fn forget(&mut self, id: JobId) {
        self.0.remove(&id);
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The jobs with extras.
    #[cfg(test)]
    pub fn ids(&self) -> impl Iterator<Item = JobId> + '_ {
        self.0.ids()
    }
}

/// A job's state and, while it is reserved, the connection holding it, in
/// four bytes: the connection's id plus one (ids are slab keys, far below
/// 2^32 since each is an open file descriptor), or one of three values above
/// any such id. Zero is never used, so that the job table can tell a free
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

    pub fn reserved_by(conn: ConnId) -> Place {
        match u32::try_from(conn + 1) {
            Ok(value) if value < Place::BURIED => Place::new(value),
            _ => panic!("connection id {conn} out of range"),
        }
    }

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
    pub file: u32,
}

/// The record of one live job, 36 bytes (the body apart), because a queue
/// may hold millions: its id is the key it is found by, times that only
/// ever hold whole seconds are kept in seconds, the state and the holder
/// share four bytes, and whatever a waiting job does not need yet lives in
/// its [`JobExtras`]. Packed to 4-byte alignment: `created_at` is its only
/// 8-byte field, and would otherwise cost every job 4 bytes of padding.
#[derive(Debug)]
#[repr(C, packed(4))]
pub struct Job {
    pub created_at: Nanos,
    /// Where [`Engine`](super::Engine)'s body store keeps the body.
    pub body: BodyRef,
    /// Where the journal keeps the job.
    pub journal_tag: JournalTag,
    pub tube: TubeId,
    pub pri: u32,
    /// Time to run in seconds, at least one.
    pub ttr_secs: u32,
    pub place: Place,
}

impl Job {
    pub fn ttr(&self) -> Nanos {
        secs(self.ttr_secs)
    }

    pub fn state(&self) -> JobState {
        self.place.state()
    }

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
        assert_eq!(IdTable::<JobExtras>::slot_bytes(), 36);
    }

    #[test]
    fn extras_cost_nothing_until_used() {
        let mut extras = Extras::default();
        extras.set(7, JobExtras::default());
        assert!(extras.is_empty());
        extras.get_mut(7).counts.reserves += 1;
        assert_eq!(extras.get(7).counts.reserves, 1);
        assert_eq!(extras.get(8), JobExtras::default());
        extras.forget(7);
        assert!(extras.is_empty());
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
