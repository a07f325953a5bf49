//! A job's record and its life cycle states.

use std::num::NonZeroU32;

use super::bodies::BodyRef;
use super::ids::TubeId;
use super::time::Nanos;
use super::ttr::RecordTtr;

/// Where a job is. Every state has exactly one home: ready and delayed jobs
/// in their tube's ordered sets, buried jobs in the tube's FIFO, reserved jobs
/// in their connection's reservation set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum JobState {
    /// Waiting in its tube to be reserved.
    Ready = 0,
    /// Held by one connection until it deletes, releases or buries the job,
    /// hangs up, or lets the job's TTR run out.
    Reserved = 1,
    /// Waiting in its tube for its delay to end.
    Delayed = 2,
    /// Set aside in its tube until kicked.
    Buried = 3,
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

/// Where a job is: its tube, and its state there, in four bytes: the tube's
/// slot plus one in the top 30 bits (the registry hands out slots from 0,
/// and cannot reach 2^30 tubes: each costs far more than the 4 GiB that
/// would take), the state in the low two. Never zero, so that the job table
/// can tell an empty slot from a job without a tag of its own.
///
/// The connection holding a reserved job is not here but in the job's
/// extras (extras.rs), beside the reservation's deadline: a reserved job
/// has extras anyway, and the million jobs a queue holds are not reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place(NonZeroU32);

impl Place {
    /// Tubes whose slots a place can hold: 2^30 - 1.
    const MAX_TUBES: usize = (1 << 30) - 1;

    /// A job of `tube` in `state`.
    pub fn new(tube: TubeId, state: JobState) -> Place {
        assert!(tube.slot() < Place::MAX_TUBES, "tube slot {} out of range", tube.slot());
        let word = ((tube.slot() as u32 + 1) << 2) | state as u32;
        Place(NonZeroU32::new(word).expect("the tube's part is never zero"))
    }

    /// The job's tube.
    pub fn tube(self) -> TubeId {
        TubeId::from_slot((self.0.get() >> 2) as usize - 1)
    }

    /// The job's state.
    pub fn state(self) -> JobState {
        match self.0.get() & 3 {
            0 => JobState::Ready,
            1 => JobState::Reserved,
            2 => JobState::Delayed,
            _ => JobState::Buried,
        }
    }

    /// The same tube, in `state`.
    pub fn with_state(self, state: JobState) -> Place {
        Place(NonZeroU32::new((self.0.get() & !3) | state as u32).expect("the tube's part is never zero"))
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

/// The record of one live job, 30 bytes (the body apart), because a queue
/// may hold millions: its id is the key it is found by, the tube and the
/// state share four bytes, the TTR takes two (a longer one than they hold
/// is kept apart: ttr.rs), and whatever a waiting job does not need yet
/// (the holder of a reserved one among it) lives in its
/// [`JobExtras`](super::extras::JobExtras). Packed to 2-byte alignment:
/// `created_at` is its only 8-byte field and the TTR a 2-byte one, and the
/// record would otherwise cost 32 bytes. (A record may then straddle two
/// cache lines; lookups go mostly in id order, one record after the next.)
#[derive(Debug)]
#[repr(C, packed(2))]
pub struct Job {
    /// When the job was put (`age` in `stats-job`).
    pub created_at: Nanos,
    /// Where [`Engine`](super::Engine)'s body store keeps the body.
    pub body: BodyRef,
    /// Where the journal keeps the job.
    pub journal_tag: JournalTag,
    /// Its tube (a job never changes tubes) and its state.
    pub place: Place,
    /// Lower is more urgent; equal priorities go out in id order.
    pub pri: u32,
    /// Time to run, as the record keeps it: the engine's
    /// `LongTtrs` (ttr.rs) gives the seconds.
    pub ttr: RecordTtr,
}

impl Job {
    /// The tube the job was put in.
    pub fn tube(&self) -> TubeId {
        self.place.tube()
    }

    /// Where the job is.
    pub fn state(&self) -> JobState {
        self.place.state()
    }

    /// Moves the job to `state` in its tube.
    pub fn set_state(&mut self, state: JobState) {
        self.place = self.place.with_state(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_stays_small() {
        assert_eq!(std::mem::size_of::<Job>(), 30);
    }

    #[test]
    fn a_slot_of_the_job_table_costs_what_a_job_costs() {
        assert_eq!(std::mem::size_of::<Option<Job>>(), std::mem::size_of::<Job>());
    }

    #[test]
    fn a_place_holds_the_tube_and_the_state() {
        let states = [JobState::Ready, JobState::Reserved, JobState::Delayed, JobState::Buried];
        for slot in [0, 1, 70_000, Place::MAX_TUBES - 1] {
            let tube = TubeId::from_slot(slot);
            for state in states {
                let place = Place::new(tube, state);
                assert_eq!((place.tube(), place.state()), (tube, state));
                for other in states {
                    assert_eq!((place.with_state(other).tube(), place.with_state(other).state()), (tube, other));
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn a_place_refuses_a_tube_it_cannot_hold() {
        Place::new(TubeId::from_slot(Place::MAX_TUBES), JobState::Ready);
    }
}
