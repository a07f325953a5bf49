//! Records found by job id: the job table, and the extras of the jobs that
//! have any.
//!
//! Records sit in a vector whose free slots are chained into a list, and an
//! id index holds each record's slot, in about four bytes a record (see
//! [`IdIndex`]); a hash map would cost about as much again as a small
//! record, and twice that while it grows. A free slot's link is a 32-bit
//! slot number, which fits beside a record's niche where it has one (the
//! `slab` crate's link is a `usize`, which would align every slot to 8).

use super::ids::JobId;
use crate::idindex::IdIndex;

/// No free slot.
const NO_SLOT: u32 = u32::MAX;

/// A table emptied with more slots than this gives them back (a drained
/// queue returns its memory); a smaller one keeps them, so that a queue
/// that keeps emptying does not allocate again for every job.
const KEPT_WHEN_EMPTY: usize = 1024;

#[derive(Debug)]
enum Slot<T> {
    /// Free; holds the next free slot.
    Free(u32),
    Taken(T),
}

/// A record per job id, found in O(1); see the module docs for the cost.
#[derive(Debug)]
pub struct IdTable<T> {
    slots: IdIndex,
    records: Vec<Slot<T>>,
    /// The free slot to reuse first.
    free: u32,
}

impl<T> Default for IdTable<T> {
    fn default() -> IdTable<T> {
        IdTable { slots: IdIndex::default(), records: Vec::new(), free: NO_SLOT }
    }
}

impl<T> IdTable<T> {
    /// How many ids have a record.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no id has a record.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The id's record, if it has one.
    pub fn get(&self, id: &JobId) -> Option<&T> {
        self.slots.get(*id).map(|slot| match &self.records[slot as usize] {
            Slot::Taken(record) => record,
            Slot::Free(_) => unreachable!("id {id} indexed at a free slot"),
        })
    }

    /// Whether the id has a record.
    pub fn contains(&self, id: JobId) -> bool {
        self.slots.get(id).is_some()
    }

    /// The id's record, to change, if it has one.
    pub fn get_mut(&mut self, id: &JobId) -> Option<&mut T> {
        self.slots.get(*id).map(|slot| match &mut self.records[slot as usize] {
            Slot::Taken(record) => record,
            Slot::Free(_) => unreachable!("id {id} indexed at a free slot"),
        })
    }

    /// The id's record, made with `make` if it has none.
    pub fn get_or_insert_with(&mut self, id: JobId, make: impl FnOnce() -> T) -> &mut T {
        let slot = match self.slots.get(id) {
            Some(slot) => slot,
            None => self.insert(id, make()),
        };
        match &mut self.records[slot as usize] {
            Slot::Taken(record) => record,
            Slot::Free(_) => unreachable!("id {id} indexed at a free slot"),
        }
    }

    /// Adds a record for an id that has none yet; returns its slot.
    pub fn insert(&mut self, id: JobId, record: T) -> u32 {
        let slot = if self.free == NO_SLOT {
            let slot = u32::try_from(self.records.len()).ok().filter(|&s| s != NO_SLOT).expect("2^32 records");
            self.records.push(Slot::Taken(record));
            slot
        } else {
            let slot = self.free;
            match std::mem::replace(&mut self.records[slot as usize], Slot::Taken(record)) {
                Slot::Free(next) => self.free = next,
                Slot::Taken(_) => unreachable!("slot {slot} on the free list is taken"),
            }
            slot
        };
        self.slots.insert(id, slot);
        slot
    }

    /// Takes the id's record out; its slot is reused first.
    pub fn remove(&mut self, id: &JobId) -> Option<T> {
        let slot = self.slots.remove(*id)?;
        let record = match std::mem::replace(&mut self.records[slot as usize], Slot::Free(self.free)) {
            Slot::Taken(record) => record,
            Slot::Free(_) => unreachable!("id {id} indexed at a free slot"),
        };
        self.free = slot;
        if self.slots.is_empty() && self.records.len() > KEPT_WHEN_EMPTY {
            *self = IdTable::default();
        }
        Some(record)
    }

    /// The ids that have a record.
    pub fn ids(&self) -> impl Iterator<Item = JobId> + '_ {
        self.slots.ids()
    }

    /// Calls `f` with every id and its record, to change: about in id
    /// order, which for records made in id order is also the order they
    /// sit in memory.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(JobId, &mut T)) {
        for (id, slot) in self.slots.iter() {
            match &mut self.records[slot as usize] {
                Slot::Taken(record) => f(id, record),
                Slot::Free(_) => unreachable!("id {id} indexed at a free slot"),
            }
        }
    }

    /// Bytes a slot takes.
    #[cfg(test)]
    pub const fn slot_bytes() -> usize {
        std::mem::size_of::<Slot<T>>()
    }
}

impl<T> std::ops::Index<&JobId> for IdTable<T> {
    type Output = T;
    fn index(&self, id: &JobId) -> &T {
        self.get(id).unwrap_or_else(|| panic!("no record for id {id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_slots_are_reused_and_records_stay_found() {
        let mut table = IdTable::default();
        for id in 1..=100 {
            table.insert(id, id as u32);
        }
        for id in (1..=100).step_by(3) {
            assert_eq!(table.remove(&id), Some(id as u32));
        }
        assert!(table.remove(&1).is_none());
        for id in 101..=134 {
            table.insert(id, id as u32);
        }
        assert_eq!(table.records.len(), 100, "every freed slot was taken again");
        for id in 1..=134 {
            let expected = (id > 100 || id % 3 != 1).then_some(id as u32);
            assert_eq!(table.get(&id).copied(), expected, "record {id}");
        }
    }

    #[test]
    fn a_drained_table_gives_its_memory_back_and_a_small_one_keeps_it() {
        let mut table = IdTable::default();
        for id in 1..=10 {
            table.insert(id, 0u32);
        }
        (1..=10).for_each(|id| assert!(table.remove(&id).is_some()));
        assert_eq!(table.records.len(), 10, "kept");
        let n = KEPT_WHEN_EMPTY as u64 + 1;
        for id in 11..11 + n {
            table.insert(id, 0u32);
        }
        (11..11 + n).for_each(|id| assert!(table.remove(&id).is_some()));
        assert!(table.is_empty());
        assert_eq!(table.records.capacity(), 0, "given back");
        table.insert(5, 7u32);
        assert_eq!(table.get(&5), Some(&7));
    }
}
