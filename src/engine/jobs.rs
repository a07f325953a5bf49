//! Every live job, found by id.
//!
//! Jobs sit in a slab (a vector with a free list), and an id index holds
//! each job's slot, in about four bytes a job (see [`IdIndex`]).

use slab::Slab;

use super::job::{Job, JobId};
use crate::idindex::IdIndex;

#[derive(Debug, Default)]
pub struct JobTable {
    slots: IdIndex,
    jobs: Slab<Job>,
}

impl JobTable {
    pub fn reserve(&mut self, additional: usize) {
        self.slots.reserve(additional);
        self.jobs.reserve(additional);
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    pub fn get(&self, id: &JobId) -> Option<&Job> {
        self.slots.get(*id).map(|slot| &self.jobs[slot as usize])
    }

    pub fn contains(&self, id: JobId) -> bool {
        self.slots.get(id).is_some()
    }

    pub fn get_mut(&mut self, id: &JobId) -> Option<&mut Job> {
        self.slots.get(*id).map(|slot| &mut self.jobs[slot as usize])
    }

    /// Adds a job whose id is not in the table yet.
    pub fn insert(&mut self, id: JobId, job: Job) {
        let slot = u32::try_from(self.jobs.insert(job)).expect("more than 2^32 live jobs");
        self.slots.insert(id, slot);
    }

    pub fn remove(&mut self, id: &JobId) -> Option<Job> {
        self.slots.remove(*id).map(|slot| self.jobs.remove(slot as usize))
    }
}

impl std::ops::Index<&JobId> for JobTable {
    type Output = Job;
    fn index(&self, id: &JobId) -> &Job {
        self.get(id).unwrap_or_else(|| panic!("no job {id}"))
    }
}
