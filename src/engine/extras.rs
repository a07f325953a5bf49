//! What a job carries only once something has happened to it, kept apart
//! from the job record, and the table of the jobs that have any.

use super::ids::JobId;
use super::table::IdTable;
use super::time::{Nanos, secs};

/// The per-job counters `stats-job` reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Times the job was reserved.
    pub reserves: u32,
    /// Times its TTR ran out while reserved (a disconnect does not count).
    pub timeouts: u32,
    /// Times it was released.
    pub releases: u32,
    /// Times it was buried.
    pub buries: u32,
    /// Times it was kicked.
    pub kicks: u32,
}

/// What a job carries only once something has happened to it: its counters,
/// the delay it was last given, and the deadline of its state. A job put
/// ready without a delay has none of these (all zero), and it is the job a
/// queue holds millions of. Packed to 4-byte alignment, like [`Job`](super::job::Job): 32
/// bytes, and 36 in the table with its slot's tag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, packed(4))]
pub struct JobExtras {
    /// What `stats-job` counts for the job.
    pub counts: JobCounts,
    /// The delay last given by put or release, in seconds (reported by
    /// stats-job).
    pub delay_secs: u32,
    /// Delayed: when the job becomes ready. Reserved: when its TTR runs out.
    /// Buried: when it was buried. Meaningless when ready.
    pub deadline: Nanos,
}

impl JobExtras {
    /// The delay last given by put or release.
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
    /// The job's extras, all zero if it has none.
    pub fn get(&self, id: JobId) -> JobExtras {
        self.0.get(&id).copied().unwrap_or_default()
    }

    /// The job's extras, to change: kept from now on.
    pub fn get_mut(&mut self, id: JobId) -> &mut JobExtras {
        self.0.get_or_insert_with(id, JobExtras::default)
    }

    /// The job's extras, to change, if it has any (none are made).
    pub fn get_mut_if_kept(&mut self, id: JobId) -> Option<&mut JobExtras> {
        self.0.get_mut(&id)
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
    pub fn ids(&self) -> impl Iterator<Item = JobId> + '_ {
        self.0.ids()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_stays_small() {
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
}
