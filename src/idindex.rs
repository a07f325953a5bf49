//! An index from job id to a 32-bit slot, in about four bytes per job.
//!
//! Ids are handed out one after another and most jobs leave in roughly the
//! order they came, so the live ids crowd into a window that slides forward.
//! The window is a ring of slots indexed by `id - base`; the few ids that sit
//! far outside it (a job buried for days while millions pass, an old job
//! that compaction rewrote at the head of the log) go to a hash map. A hash
//! map of every id would cost 17 to 35 bytes per job and a hash per lookup.
//!
//! Every operation is O(1) amortised: an id enters the window at most once
//! and leaves it at most once, by removal or by eviction to the map.

use std::collections::VecDeque;

use crate::idmap::IdMap;

const EMPTY: u32 = u32::MAX;

/// A window this short is never worth thinning out.
const MIN_WINDOW: usize = 1024;

/// An id this far past the window's end (or past its length, if larger)
/// starts out in the map rather than stretching the window over the gap.
const MAX_GAP: usize = 4096;

/// The window holds at least one live id per this many slots (once longer
/// than [`MIN_WINDOW`]): when removals make it sparser its oldest ids move
/// to the map, and an id that would stretch it sparser goes to the map (4
/// bytes per slot against about 24 per map entry).
const MAX_SLOTS_PER_ID: usize = 8;

#[derive(Debug, Default)]
pub struct IdIndex {
    /// The slots of ids `base`, `base + 1`, ...; `EMPTY` where no job is.
    window: VecDeque<u32>,
    base: u64,
    /// Ids in the window that have a slot.
    in_window: usize,
    /// Ids outside the window. An id may also fall inside the window's range
    /// if the window grew over it after it went here; lookups check both.
    outliers: IdMap<u32>,
}

impl IdIndex {
    pub fn len(&self) -> usize {
        self.in_window + self.outliers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, id: u64) -> Option<u32> {
        match self.window_index(id).map(|i| self.window[i]) {
            Some(slot) if slot != EMPTY => Some(slot),
            _ => self.outliers.get(&id).copied(),
        }
    }

    /// Sets the slot of an id that has none.
    pub fn insert(&mut self, id: u64, slot: u32) {
        debug_assert!(slot != EMPTY && self.get(id).is_none(), "id {id} already indexed");
        if self.window.is_empty() {
            self.base = id;
        }
        // Offsets from the base, never `base + len`: ids come from files
        // too (beanstalkd's, which sprout imports), and one near u64::MAX
        // must not overflow.
        let len = self.window.len() as u64;
        let reach = len + MAX_GAP.max(self.window.len()) as u64;
        let Some(i) = id.checked_sub(self.base).filter(|&offset| offset < reach) else {
            self.outliers.insert(id, slot);
            return;
        };
        let i = i as usize;
        if i >= self.window.len() {
            // Not over a gap that would leave the window mostly holes: ids
            // that are never removed would never thin it out again.
            let too_sparse = i + 1 > MIN_WINDOW && (self.in_window + 1) * MAX_SLOTS_PER_ID < i + 1;
            if too_sparse {
                self.outliers.insert(id, slot);
                return;
            }
            // The next id, the usual case, is one push (a resize by one is
            // a call and a fill loop).
            if i > self.window.len() {
                self.window.resize(i, EMPTY);
            }
            self.window.push_back(slot);
        } else {
            self.window[i] = slot;
        }
        self.in_window += 1;
    }

    pub fn remove(&mut self, id: u64) -> Option<u32> {
        if let Some(i) = self.window_index(id)
            && self.window[i] != EMPTY
        {
            let slot = std::mem::replace(&mut self.window[i], EMPTY);
            self.in_window -= 1;
            self.shrink();
            return Some(slot);
        }
        self.outliers.remove(&id)
    }

    /// Every id with a slot, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|(id, _)| id)
    }

    /// Every id with its slot: those in the window in id order, then the
    /// others in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        let in_window = self.window.iter().enumerate().filter(|&(_, &slot)| slot != EMPTY);
        let in_window = in_window.map(|(i, &slot)| (self.base + i as u64, slot));
        in_window.chain(self.outliers.iter().map(|(&id, &slot)| (id, slot)))
    }

    fn window_index(&self, id: u64) -> Option<usize> {
        let i = usize::try_from(id.checked_sub(self.base)?).ok()?;
        (i < self.window.len()).then_some(i)
    }

    /// Drops empty slots at both ends, and moves the oldest ids to the map
    /// while the window is mostly holes.
    fn shrink(&mut self) {
        while self.window.back() == Some(&EMPTY) {
            self.window.pop_back();
        }
        let too_sparse = |w: &IdIndex| w.window.len() > MIN_WINDOW && w.in_window * MAX_SLOTS_PER_ID < w.window.len();
        while let Some(&slot) = self.window.front() {
            if slot != EMPTY {
                if !too_sparse(self) {
                    break;
                }
                self.outliers.insert(self.base, slot);
                self.in_window -= 1;
            }
            self.window.pop_front();
            self.base += 1;
        }
        if self.window.capacity() > 4 * self.window.len().max(MIN_WINDOW) {
            self.window.shrink_to(2 * self.window.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    #[test]
    fn ids_near_the_top_of_u64_do_not_overflow() {
        let mut index = IdIndex::default();
        let ids = [u64::MAX - 1, u64::MAX, u64::MAX - 5000, 1, u64::MAX - 2];
        for (slot, &id) in ids.iter().enumerate() {
            index.insert(id, slot as u32);
        }
        for (slot, &id) in ids.iter().enumerate() {
            assert_eq!(index.get(id), Some(slot as u32), "id {id}");
        }
        for &id in &ids {
            assert!(index.remove(id).is_some(), "id {id}");
        }
        assert!(index.is_empty());
    }

    use super::*;

    /// Runs `ops` (positive: insert that id, negative: remove it) against
    /// the index and a plain map, checking every id after each step.
    fn check_against_a_map(ops: impl IntoIterator<Item = i64>) -> IdIndex {
        let mut index = IdIndex::default();
        let mut model: HashMap<u64, u32> = HashMap::new();
        let mut touched = Vec::new();
        for (n, op) in ops.into_iter().enumerate() {
            let id = op.unsigned_abs();
            if op > 0 {
                index.insert(id, n as u32);
                model.insert(id, n as u32);
                touched.push(id);
            } else {
                assert_eq!(index.remove(id), model.remove(&id), "remove {id}");
            }
            assert_eq!(index.len(), model.len());
        }
        for id in touched {
            assert_eq!(index.get(id), model.get(&id).copied(), "id {id}");
        }
        index
    }

    #[test]
    fn a_queue_slides_the_window_forward() {
        let ops = (1..=100_000i64).flat_map(|id| if id > 10 { vec![id, -(id - 10)] } else { vec![id] });
        let index = check_against_a_map(ops);
        assert_eq!(index.window.len(), 10);
        assert!(index.outliers.is_empty());
    }

    #[test]
    fn one_old_job_does_not_pin_the_window() {
        let mut ops = vec![1i64];
        ops.extend((2..=200_000i64).flat_map(|id| if id > 2 { vec![id, -(id - 1)] } else { vec![id] }));
        let index = check_against_a_map(ops);
        assert!(index.window.len() < 2 * MIN_WINDOW, "window of {} slots", index.window.len());
        assert_eq!(index.get(1), Some(0), "the old job moved to the map");
        assert_eq!(index.outliers.len(), 1);
    }

    /// The extras table indexes only the jobs something happened to: a few
    /// ids far apart, which may never be removed (jobs delayed once and
    /// then left ready). The window must not stretch over the gaps.
    #[test]
    fn sparse_ids_that_stay_do_not_stretch_the_window() {
        let index = check_against_a_map((1..=1000i64).map(|n| n * 1000));
        assert!(index.window.len() <= MIN_WINDOW, "window of {} slots for 1000 ids", index.window.len());
        assert_eq!(index.len(), 1000);
    }

    #[test]
    fn far_and_earlier_ids_go_to_the_map_and_stay_found() {
        let far = 10 + MAX_GAP as i64 + 1;
        let mut ops = vec![10i64, far, 3, 11];
        // Fill the gap until the window's range covers `far`.
        ops.extend(12..far);
        ops.extend([far + 1, -far, -3, 3, -10]);
        check_against_a_map(ops);
    }

    #[test]
    fn every_id_removed_leaves_nothing() {
        let index = check_against_a_map((1..5000i64).chain((1..5000i64).rev().map(|id| -id)));
        assert!(index.window.is_empty() && index.outliers.is_empty());
    }

    #[test]
    fn a_random_mix_behaves_like_a_map() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut live: Vec<i64> = Vec::new();
        let mut ops = Vec::new();
        let mut next_id = 1i64;
        for _ in 0..50_000 {
            let r = next();
            if live.is_empty() || r % 3 != 0 {
                // Mostly consecutive ids, now and then a far jump.
                next_id += if r % 97 == 0 { (r % 20_000) as i64 } else { 1 };
                live.push(next_id);
                ops.push(next_id);
            } else {
                // Mostly the oldest job leaves, sometimes any job.
                let i = if r % 5 == 0 { (r as usize / 7) % live.len() } else { 0 };
                ops.push(-live.swap_remove(i));
            }
        }
        check_against_a_map(ops);
    }
}
