//! Recovery's index from job id to the job's place in its list.
//!
//! Ids in a log are nearly consecutive, so most of them index a plain vector
//! starting at the first id seen; a hash map takes the few that fall far
//! outside it (old jobs moved forward by compaction, or ids so sparse that a
//! vector would waste memory). Filling a vector in order is several times
//! faster than a million hash inserts.

use crate::idmap::IdMap;

const EMPTY: u32 = u32::MAX;

/// The vector may grow to this many slots beyond the ids it holds.
const SLACK: usize = 1 << 20;

#[derive(Default)]
pub struct Slots {
    base: Option<u64>,
    dense: Vec<u32>,
    /// Ids in `dense` that have a slot.
    dense_used: usize,
    sparse: IdMap<u32>,
}

impl Slots {
    pub fn get(&self, id: u64) -> Option<u32> {
        // An id may sit in the map and inside the vector's range, if the
        // vector grew past it after it was inserted.
        match self.dense_index(id).map(|i| self.dense[i]) {
            Some(slot) if slot != EMPTY => Some(slot),
            _ => self.sparse.get(&id).copied(),
        }
    }

    /// Sets the slot of an id that has none.
    pub fn insert(&mut self, id: u64, slot: u32) {
        let base = *self.base.get_or_insert(id);
        let fits = id >= base && ((id - base) as usize) < (self.dense_used + 1) * 4 + SLACK;
        if fits && !self.sparse.contains_key(&id) {
            let i = (id - base) as usize;
            if i >= self.dense.len() {
                self.dense.resize(i + 1, EMPTY);
            }
            self.dense[i] = slot;
            self.dense_used += 1;
        } else {
            self.sparse.insert(id, slot);
        }
    }

    pub fn remove(&mut self, id: u64) -> Option<u32> {
        if let Some(i) = self.dense_index(id)
            && let Some(slot) = self.dense.get_mut(i)
            && *slot != EMPTY
        {
            self.dense_used -= 1;
            return Some(std::mem::replace(slot, EMPTY));
        }
        self.sparse.remove(&id)
    }

    fn dense_index(&self, id: u64) -> Option<usize> {
        let base = self.base?;
        (id >= base && ((id - base) as usize) < self.dense.len()).then(|| (id - base) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_sparse_ids_behave_like_a_map() {
        let mut slots = Slots::default();
        let ids = [100u64, 101, 105, 3, 100 + (1 << 40), 102];
        for (slot, &id) in ids.iter().enumerate() {
            assert_eq!(slots.get(id), None);
            slots.insert(id, slot as u32);
        }
        for (slot, &id) in ids.iter().enumerate() {
            assert_eq!(slots.get(id), Some(slot as u32));
        }
        assert_eq!(slots.remove(105), Some(2));
        assert_eq!(slots.get(105), None);
        assert_eq!(slots.remove(3), Some(3));
        assert_eq!(slots.get(104), None);
        assert!(slots.dense.len() < 100, "far ids went to the map");
        slots.insert(105, 9);
        assert_eq!(slots.get(105), Some(9));
    }

    #[test]
    fn an_id_in_the_map_stays_found_when_the_vector_grows_past_it() {
        let mut slots = Slots::default();
        slots.insert(1, 0);
        let far = 1 + (SLACK as u64) + 10;
        slots.insert(far, 1);
        for id in (2..far + 5).filter(|&id| id != far) {
            slots.insert(id, 2);
        }
        assert!(slots.dense.len() as u64 > far, "the vector grew past the far id");
        assert_eq!(slots.get(far), Some(1));
        assert_eq!(slots.remove(far), Some(1));
        assert_eq!(slots.get(far), None);
    }
}
