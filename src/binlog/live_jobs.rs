//! Where a replay keeps the live jobs it reads back ([`LiveJobs`]), and the
//! plain list of them ([`JobList`]) that the tools read a log into
//! (`sprout binlog export`, `sprout binlog inspect`). A server's start
//! replays into the engine's own tables instead (`restoring`).

use std::num::NonZeroU32;

use super::record::{FullJob, JobUpdate, LoggedState};
use crate::engine::{Bodies, BodyRef};
use crate::idindex::IdIndex;

/// What a replay does with each record about a job, in log order, the last
/// about a job winning.
pub trait LiveJobs {
    /// A job's full record, `record_len` bytes of file `seq`: the job as
    /// it is now. A job already live was written again further on by
    /// compaction; this record replaces the earlier one.
    fn job(&mut self, job: FullJob<&[u8]>, seq: u32, record_len: u32);
    /// A state record: false if no such job is live.
    fn update(&mut self, update: JobUpdate) -> bool;
    /// A delete record (of a job that may not be live).
    fn delete(&mut self, id: u64);
    /// Whether the job is live.
    fn contains(&self, id: u64) -> bool;
}

/// A live job and where its full record is. (Sizes in 32 bits: a million
/// of these are held at once, and the takeover builds them in place of its
/// own list, which is no larger.)
#[derive(Debug)]
pub struct LiveJob {
    pub job: FullJob<BodyRef>,
    /// The file: `binlog.N` names beyond 2^32 are not read.
    pub seq: u32,
    /// A record holds at most a 1 GiB body.
    pub record_len: u32,
}

/// The live jobs as a list, with their bodies.
#[derive(Debug, Default)]
pub struct JobList {
    /// Jobs in the order their ids first appeared (about id order), with
    /// holes where jobs were deleted; `slots` finds a job's place.
    jobs: Vec<Option<LiveJob>>,
    slots: IdIndex<Slot>,
    bodies: Bodies,
}

/// A job's place in [`JobList`]'s list, in four bytes: its index plus one,
/// so that the id index's empty slots cost no more than full ones.
#[derive(Clone, Copy, Debug)]
struct Slot(NonZeroU32);

impl Slot {
    fn of(index: usize) -> Slot {
        Slot(u32::try_from(index + 1).ok().and_then(NonZeroU32::new).expect("2^32 jobs in a log"))
    }

    fn index(self) -> usize {
        self.0.get() as usize - 1
    }
}

impl LiveJobs for JobList {
    fn job(&mut self, job: FullJob<&[u8]>, seq: u32, record_len: u32) {
        let id = job.update.id;
        let body = self.bodies.insert(job.body);
        let job = FullJob { update: job.update, tube: job.tube, ttr: job.ttr, created_at: job.created_at, body };
        let live = Some(LiveJob { job, seq, record_len });
        match self.slots.get(id) {
            Some(slot) => {
                let old = std::mem::replace(&mut self.jobs[slot.index()], live);
                if let Some(old) = old {
                    self.bodies.remove(old.job.body);
                }
            }
            None => {
                self.slots.insert(id, Slot::of(self.jobs.len()));
                self.jobs.push(live);
            }
        }
    }

    fn update(&mut self, update: JobUpdate) -> bool {
        match self.slots.get(update.id).and_then(|s| self.jobs[s.index()].as_mut()) {
            Some(live) => {
                live.job.update = update;
                true
            }
            None => false,
        }
    }

    fn delete(&mut self, id: u64) {
        if let Some(slot) = self.slots.remove(id)
            && let Some(gone) = self.jobs[slot.index()].take()
        {
            self.bodies.remove(gone.job.body);
        }
    }

    fn contains(&self, id: u64) -> bool {
        self.slots.get(id).is_some()
    }
}

impl JobList {
    /// The live jobs, buried ones last in burial order (their burial time,
    /// then id), the others in about id order; and their bodies.
    pub fn into_ordered(self) -> (Vec<LiveJob>, Bodies) {
        drop(self.slots);
        // Collected in place, in one pass that takes the buried jobs out
        // too: a second list of a million jobs would double the memory.
        let mut buried = Vec::new();
        let mut jobs: Vec<LiveJob> = (self.jobs.into_iter())
            .filter_map(|live| match live {
                Some(l) if l.job.update.state == LoggedState::Buried => {
                    buried.push(l);
                    None
                }
                live => live,
            })
            .collect();
        buried.sort_unstable_by_key(|l: &LiveJob| (l.job.update.ready_at, l.job.update.id));
        jobs.append(&mut buried);
        (jobs, self.bodies)
    }
}
