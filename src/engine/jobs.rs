//! Every live job, found by id.
//!
//! Records sit in a vector whose free slots are chained into a list, and an
//! id index holds each job's slot, in about four bytes a job (see
//! [`IdIndex`]). A slot costs what a record costs, 36 bytes: a free slot's
//! link is a 32-bit slot number, which fits beside the record's niche (the
//! `slab` crate's link is a `usize`, which would align every slot to 8 and
//! pad it to 40).

use super::job::{Job, JobId};
use crate::idindex::IdIndex;

/// No free slot.
const NO_SLOT: u32 = u32::MAX;

#[derive(Debug)]
enum Slot {
    /// Free; holds the next free slot.
    Free(u32),
    Taken(Job),
}

#[derive(Debug)]
pub struct JobTable {
    slots: IdIndex,
    records: Vec<Slot>,
    /// The free slot to reuse first.
    free: u32,
}

impl Default for JobTable {
    fn default() -> JobTable {
        JobTable { slots: IdIndex::default(), records: Vec::new(), free: NO_SLOT }
    }
}

impl JobTable {
    pub fn reserve(&mut self, additional: usize) {
        self.slots.reserve(additional);
        self.records.reserve(additional);
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn get(&self, id: &JobId) -> Option<&Job> {
        self.slots.get(*id).map(|slot| match &self.records[slot as usize] {
            Slot::Taken(job) => job,
            Slot::Free(_) => unreachable!("job {id} indexed at a free slot"),
        })
    }

    pub fn contains(&self, id: JobId) -> bool {
        self.slots.get(id).is_some()
    }

    pub fn get_mut(&mut self, id: &JobId) -> Option<&mut Job> {
        self.slots.get(*id).map(|slot| match &mut self.records[slot as usize] {
            Slot::Taken(job) => job,
            Slot::Free(_) => unreachable!("job {id} indexed at a free slot"),
        })
    }

    /// Adds a job whose id is not in the table yet.
    pub fn insert(&mut self, id: JobId, job: Job) {
        let slot = if self.free == NO_SLOT {
            let slot = u32::try_from(self.records.len()).ok().filter(|&s| s != NO_SLOT).expect("2^32 live jobs");
            self.records.push(Slot::Taken(job));
            slot
        } else {
            let slot = self.free;
            match std::mem::replace(&mut self.records[slot as usize], Slot::Taken(job)) {
                Slot::Free(next) => self.free = next,
                Slot::Taken(_) => unreachable!("slot {slot} on the free list is taken"),
            }
            slot
        };
        self.slots.insert(id, slot);
    }

    pub fn remove(&mut self, id: &JobId) -> Option<Job> {
        let slot = self.slots.remove(*id)?;
        let job = match std::mem::replace(&mut self.records[slot as usize], Slot::Free(self.free)) {
            Slot::Taken(job) => job,
            Slot::Free(_) => unreachable!("job {id} indexed at a free slot"),
        };
        self.free = slot;
        Some(job)
    }
}

impl std::ops::Index<&JobId> for JobTable {
    type Output = Job;
    fn index(&self, id: &JobId) -> &Job {
        self.get(id).unwrap_or_else(|| panic!("no job {id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{JobState, Place};

    fn job(pri: u32) -> Job {
        let tube = crate::engine::tubes::Tubes::new().default_tube();
        Job {
            created_at: 0,
            body: Default::default(),
            journal_tag: Default::default(),
            tube,
            pri,
            ttr_secs: 1,
            place: Place::unheld(JobState::Ready),
        }
    }

    #[test]
    fn a_slot_costs_what_a_record_costs() {
        assert_eq!(std::mem::size_of::<Slot>(), std::mem::size_of::<Job>());
    }

    #[test]
    fn freed_slots_are_reused_and_jobs_stay_found() {
        let mut table = JobTable::default();
        for id in 1..=100 {
            table.insert(id, job(id as u32));
        }
        for id in (1..=100).step_by(3) {
            assert_eq!(table.remove(&id).map(|j| j.pri), Some(id as u32));
        }
        assert!(table.remove(&1).is_none());
        for id in 101..=134 {
            table.insert(id, job(id as u32));
        }
        assert_eq!(table.records.len(), 100, "every freed slot was taken again");
        for id in 1..=134 {
            let expected = (id > 100 || id % 3 != 1).then_some(id as u32);
            assert_eq!(table.get(&id).map(|j| j.pri), expected, "job {id}");
        }
    }
}
