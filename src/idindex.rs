//! Values by job id (a job's record, its extras, a replay's slot), in about
//! the value's own size per job.
//!
//! Ids are handed out one after another and most jobs leave in roughly the
//! order they came, so the live ids crowd into a window that slides forward.
//! The window is a ring of values indexed by `id - base`, `None` where no
//! job is; the few ids that sit far outside it (a job buried for days while
//! millions pass, an old job that compaction rewrote at the head of the
//! log) go to a hash map. A hash map of every id would cost the value and
//! 17 to 35 bytes more per job, and a hash per lookup.
//!
//! The values sit in the window itself rather than in a vector the window
//! points into: no slot number per job (4 bytes a job) and no second
//! memory access per lookup. The price is that a hole in the window costs a
//! whole value, so how sparse the window may get depends on the value's
//! size ([`IdIndex::MAX_SLOTS_PER_ID`]).
//!
//! Every operation is O(1) amortised: an id enters the window at most once
//! and leaves it at most once, by removal or by eviction to the map.

use std::collections::VecDeque;

use crate::idmap::IdMap;

/// A window this short is never worth thinning out.
const MIN_WINDOW: usize = 1024;

/// An id this far past the window's end (or past its length, if larger)
/// starts out in the map rather than stretching the window over the gap.
const MAX_GAP: usize = 4096;

/// What the window may spend per id it holds, holes included: about what
/// an entry of the map costs (the id, the value, and the room hashbrown
/// keeps free, for a value of 16 to 32 bytes).
const MAX_WINDOW_BYTES_PER_ID: usize = 64;

#[derive(Debug)]
pub struct IdIndex<V> {
    /// The values of ids `base`, `base + 1`, ...; `None` where no job is.
    window: VecDeque<Option<V>>,
    base: u64,
    /// Ids in the window that have a value.
    in_window: usize,
    /// Ids outside the window. An id may also fall inside the window's range
    /// if the window grew over it after it went here; lookups check both.
    outliers: IdMap<V>,
}

impl<V> Default for IdIndex<V> {
    fn default() -> IdIndex<V> {
        IdIndex { window: VecDeque::new(), base: 0, in_window: 0, outliers: IdMap::default() }
    }
}

impl<V> IdIndex<V> {
    /// The window holds at least one id per this many slots (once longer
    /// than `MIN_WINDOW`): when removals make it sparser its oldest ids
    /// move to the map, and an id that would stretch it sparser goes to the
    /// map. 8 for a 4-byte value, 2 for a job's record: a window at least
    /// half full, since a hole costs as much as a record.
    pub const MAX_SLOTS_PER_ID: usize = {
        let slots = MAX_WINDOW_BYTES_PER_ID / std::mem::size_of::<Option<V>>();
        if slots < 2 {
            2
        } else if slots > 8 {
            8
        } else {
            slots
        }
    };

    pub fn len(&self) -> usize {
        self.in_window + self.outliers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, id: u64) -> Option<&V> {
        match self.window.get(self.offset(id)) {
            Some(Some(value)) => Some(value),
            _ => self.outliers.get(&id),
        }
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut V> {
        let offset = self.offset(id);
        match self.window.get_mut(offset) {
            Some(Some(value)) => Some(value),
            _ => self.outliers.get_mut(&id),
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    /// The id's value, made with `make` if it has none.
    pub fn get_or_insert_with(&mut self, id: u64, make: impl FnOnce() -> V) -> &mut V {
        let offset = self.offset(id);
        if let Some(Some(_)) = self.window.get(offset) {
            return self.window[offset].as_mut().expect("checked");
        }
        if self.outliers.contains_key(&id) {
            return self.outliers.get_mut(&id).expect("checked");
        }
        self.insert(id, make())
    }

    /// Sets the value of an id that has none; returns it.
    pub fn insert(&mut self, id: u64, value: V) -> &mut V {
        debug_assert!(self.get(id).is_none(), "id {id} already indexed");
        if self.window.is_empty() {
            self.base = id;
        }
        // Offsets from the base, never `base + len`: ids come from files
        // too (beanstalkd's, which sprout imports), and one near u64::MAX
        // must not overflow.
        let len = self.window.len() as u64;
        let reach = len + MAX_GAP.max(self.window.len()) as u64;
        let Some(i) = id.checked_sub(self.base).filter(|&offset| offset < reach) else {
            return self.outliers.entry(id).or_insert(value);
        };
        let i = i as usize;
        if i >= self.window.len() {
            // Not over a gap that would leave the window mostly holes: ids
            // that are never removed would never thin it out again.
            let too_sparse = i + 1 > MIN_WINDOW && (self.in_window + 1) * Self::MAX_SLOTS_PER_ID < i + 1;
            if too_sparse {
                return self.outliers.entry(id).or_insert(value);
            }
            // The next id, the usual case, is one push (a resize by one is
            // a call and a fill loop).
            if i > self.window.len() {
                self.window.resize_with(i, || None);
            }
            self.window.push_back(None);
        }
        self.in_window += 1;
        self.window[i].insert(value)
    }

    pub fn remove(&mut self, id: u64) -> Option<V> {
        let offset = self.offset(id);
        if let Some(slot) = self.window.get_mut(offset)
            && let Some(value) = slot.take()
        {
            self.in_window -= 1;
            self.shrink();
            return Some(value);
        }
        self.outliers.remove(&id)
    }

    /// Every id with a value, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|(id, _)| id)
    }

    /// Every id with its value: those in the window in id order, then the
    /// others in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> + '_ {
        let base = self.base;
        let in_window = self.window.iter().enumerate();
        let in_window = in_window.filter_map(move |(i, value)| Some((base + i as u64, value.as_ref()?)));
        in_window.chain(self.outliers.iter().map(|(&id, value)| (id, value)))
    }

    /// Every id with its value, to change, in the order of [`IdIndex::iter`]:
    /// for values made in id order, also the order they sit in memory.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut V)> + '_ {
        let base = self.base;
        let in_window = self.window.iter_mut().enumerate();
        let in_window = in_window.filter_map(move |(i, value)| Some((base + i as u64, value.as_mut()?)));
        in_window.chain(self.outliers.iter_mut().map(|(&id, value)| (id, value)))
    }

    /// Where the id's slot is in the window, if the window is long enough:
    /// an id below the base wraps around to an offset past any window, so
    /// that one bounds check (the window's own) answers both questions.
    fn offset(&self, id: u64) -> usize {
        usize::try_from(id.wrapping_sub(self.base)).unwrap_or(usize::MAX)
    }

    /// Drops empty slots at both ends, and moves the oldest ids to the map
    /// while the window is mostly holes. An emptied window longer than
    /// [`MIN_WINDOW`] gives its memory back (a drained queue returns its
    /// memory); a shorter one keeps it, so that a queue that keeps emptying
    /// does not allocate again for every job.
    fn shrink(&mut self) {
        while matches!(self.window.back(), Some(None)) {
            self.window.pop_back();
        }
        let too_sparse =
            |w: &IdIndex<V>| w.window.len() > MIN_WINDOW && w.in_window * Self::MAX_SLOTS_PER_ID < w.window.len();
        while let Some(front) = self.window.front() {
            if front.is_some() {
                if !too_sparse(self) {
                    break;
                }
                let value = self.window.pop_front().flatten().expect("a value at the front");
                self.outliers.insert(self.base, value);
                self.in_window -= 1;
            } else {
                self.window.pop_front();
            }
            self.base += 1;
        }
        if self.window.is_empty() && self.window.capacity() > MIN_WINDOW {
            self.window = VecDeque::new();
        } else if self.window.capacity() > 4 * self.window.len().max(MIN_WINDOW) {
            self.window.shrink_to(2 * self.window.len());
        }
    }
}

impl<V> std::ops::Index<u64> for IdIndex<V> {
    type Output = V;
    fn index(&self, id: u64) -> &V {
        self.get(id).unwrap_or_else(|| panic!("no value for id {id}"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    #[test]
    fn ids_near_the_top_of_u64_do_not_overflow() {
        let mut index = IdIndex::<u32>::default();
        let ids = [u64::MAX - 1, u64::MAX, u64::MAX - 5000, 1, u64::MAX - 2];
        for (slot, &id) in ids.iter().enumerate() {
            index.insert(id, slot as u32);
        }
        for (slot, &id) in ids.iter().enumerate() {
            assert_eq!(index.get(id), Some(&(slot as u32)), "id {id}");
        }
        for &id in &ids {
            assert!(index.remove(id).is_some(), "id {id}");
        }
        assert!(index.is_empty());
    }

    use super::*;

    /// Runs `ops` (positive: insert that id, negative: remove it) against
    /// the index and a plain map, checking every id after each step.
    fn check_against_a_map(ops: impl IntoIterator<Item = i64>) -> IdIndex<u32> {
        check_values_against_a_map(ops, |n| n as u32)
    }

    /// [`check_against_a_map`] with the values `value` makes of each
    /// operation's number.
    fn check_values_against_a_map<V: Clone + PartialEq + std::fmt::Debug>(
        ops: impl IntoIterator<Item = i64>,
        value: impl Fn(usize) -> V,
    ) -> IdIndex<V> {
        let mut index = IdIndex::default();
        let mut model: HashMap<u64, V> = HashMap::new();
        let mut touched = Vec::new();
        for (n, op) in ops.into_iter().enumerate() {
            let id = op.unsigned_abs();
            if op > 0 {
                index.insert(id, value(n));
                model.insert(id, value(n));
                touched.push(id);
            } else {
                assert_eq!(index.remove(id), model.remove(&id), "remove {id}");
            }
            assert_eq!(index.len(), model.len());
        }
        for id in touched {
            assert_eq!(index.get(id), model.get(&id), "id {id}");
        }
        let in_window = index.window.iter().filter(|v| v.is_some()).count();
        assert_eq!(index.in_window, in_window);
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
        assert_eq!(index.get(1), Some(&0), "the old job moved to the map");
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
        let ops = random_mix();
        check_against_a_map(ops.clone());
        check_values_against_a_map(ops, |n| [n as u64; 4]);
    }

    /// A job's record costs as much as a hole: the window stays at least
    /// half full, where one of 4-byte slots may be an eighth full.
    #[test]
    fn a_window_of_records_stays_at_least_half_full() {
        assert_eq!(IdIndex::<u32>::MAX_SLOTS_PER_ID, 8);
        assert_eq!(IdIndex::<[u64; 4]>::MAX_SLOTS_PER_ID, 2);
        // Two tubes' puts interleaved, one of them drained as it goes: one
        // id in two stays, and the window holds them.
        let ops: Vec<i64> = (1..=20_000i64).flat_map(|id| if id % 2 == 0 { vec![id, -id] } else { vec![id] }).collect();
        let index = check_values_against_a_map(ops, |n| [n as u64; 4]);
        assert!(index.outliers.is_empty());
        // One in three stays: the oldest go to the map as the window thins.
        let ops: Vec<i64> = (1..=30_000i64).flat_map(|id| if id % 3 != 0 { vec![id, -id] } else { vec![id] }).collect();
        let index = check_values_against_a_map(ops, |n| [n as u64; 4]);
        assert!(index.window.len() <= 2 * index.in_window.max(MIN_WINDOW), "window of {} slots", index.window.len());
        assert!(index.outliers.len() > 8_000, "{} in the map", index.outliers.len());
    }

    #[test]
    fn a_drained_window_gives_its_memory_back() {
        let n = 4 * MIN_WINDOW as i64 + 1;
        let index = check_values_against_a_map((1..=n).chain((1..=n).map(|id| -id)), |n| [n as u64; 4]);
        assert_eq!(index.window.capacity(), 0);
    }

    fn random_mix() -> Vec<i64> {
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
        ops
    }
}
