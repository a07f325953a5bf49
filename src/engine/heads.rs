//! The best ready job of every tube that may hand one out, in one ordered set.
//!
//! A reserve takes the best ready job, by (priority, id), among the unpaused
//! tubes its connection watches. Asking each watched tube for its best job
//! costs one step per watched tube: 10,000 steps for a worker that watches
//! 10,000 tubes. So every unpaused tube with ready jobs also has its best
//! job, its *head*, here, keyed (priority, id, tube). The best job a
//! connection may take is then the first head whose tube it watches; a
//! worker that watches every tube takes the very first one, in O(log n).
//!
//! [`Tubes`](super::tubes::Tubes) keeps this set: every change to a tube's
//! ready jobs or pause goes through it (`insert_ready`, `remove_ready`,
//! `set_pause`), which tells [`Heads::replace`] when the head moved, at
//! O(log n) a change.
//!
//! The best head is kept apart from the others. A reserve from the best
//! tube moves that tube's head to its next job, which is most often still
//! the best head (one tube, or one busy tube among quiet ones): that is a
//! write in place, where the set took a removal and an insertion (about 240
//! instructions, 7% of a reserve+delete's).

use std::collections::BTreeSet;

use super::ids::{JobId, TubeId};
use super::ready::ReadyKey;

/// A tube's head: its best job's (priority, id), and the tube.
type Head = (u32, JobId, TubeId);

/// Heads of the unpaused tubes that have ready jobs, best first.
#[derive(Debug, Default)]
pub struct Heads {
    /// The best head; `None` only when there is no head at all.
    best: Option<Head>,
    /// The other heads, every one after `best`.
    rest: BTreeSet<Head>,
}

impl Heads {
    /// The tube's head was `old` and is now `new` (`None`: the tube has no
    /// ready job, or is paused).
    pub fn replace(&mut self, tube: TubeId, old: Option<ReadyKey>, new: Option<ReadyKey>) {
        if old == new {
            return;
        }
        let old = old.map(|(pri, id)| (pri, id, tube));
        let new = new.map(|(pri, id)| (pri, id, tube));
        if let Some(new) = new
            && old.is_some()
            && old == self.best
            && self.rest.first().is_none_or(|&next| new < next)
        {
            // The best tube's head moved, and it is still the best.
            self.best = Some(new);
            return;
        }
        if let Some(old) = old {
            self.remove(old);
        }
        if let Some(new) = new {
            self.insert(new);
        }
    }

    fn remove(&mut self, head: Head) {
        if self.best == Some(head) {
            self.best = self.rest.pop_first();
        } else {
            let removed = self.rest.remove(&head);
            debug_assert!(removed, "no head {head:?}");
        }
    }

    fn insert(&mut self, head: Head) {
        match self.best {
            Some(best) if best < head => {
                self.rest.insert(head);
            }
            best => {
                self.rest.extend(best);
                self.best = Some(head);
            }
        }
    }

    /// Heads, best first: each is a tube's best job, with the tube.
    pub fn iter(&self) -> impl Iterator<Item = (ReadyKey, TubeId)> + '_ {
        self.best.iter().chain(&self.rest).map(|&(pri, id, tube)| ((pri, id), tube))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Random head moves of a few tubes, against a plain ordered set of
    /// every tube's head.
    #[test]
    fn heads_come_out_as_a_plain_ordered_set_has_them() {
        let mut heads = Heads::default();
        let mut model: BTreeMap<TubeId, ReadyKey> = BTreeMap::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        for step in 0..20_000 {
            let tube = TubeId::from_slot(next(4) as usize);
            let old = model.get(&tube).copied();
            // Mostly the next job of the same priority (a reserve), now and
            // then another priority, or no head (emptied, or paused).
            let new = match next(10) {
                0 => None,
                1 => Some((next(3) as u32, step)),
                _ => Some((old.map_or(1, |(pri, _)| pri), step)),
            };
            heads.replace(tube, old, new);
            match new {
                Some(key) => model.insert(tube, key),
                None => model.remove(&tube),
            };
            let mut expected: Vec<_> = model.iter().map(|(&tube, &key)| (key, tube)).collect();
            expected.sort();
            assert_eq!(heads.iter().collect::<Vec<_>>(), expected, "step {step}");
        }
    }
}
