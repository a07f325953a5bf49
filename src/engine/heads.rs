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

use std::collections::BTreeSet;

use super::ids::{JobId, TubeId};
use super::ready::ReadyKey;

/// Heads of the unpaused tubes that have ready jobs, best first.
#[derive(Debug, Default)]
pub struct Heads {
    set: BTreeSet<(u32, JobId, TubeId)>,
}

impl Heads {
    /// The tube's head was `old` and is now `new` (`None`: the tube has no
    /// ready job, or is paused).
    pub fn replace(&mut self, tube: TubeId, old: Option<ReadyKey>, new: Option<ReadyKey>) {
        if old == new {
            return;
        }
        if let Some((pri, id)) = old {
            let removed = self.set.remove(&(pri, id, tube));
            debug_assert!(removed, "tube {tube:?} had no head {old:?}");
        }
        if let Some((pri, id)) = new {
            self.set.insert((pri, id, tube));
        }
    }

    /// Heads, best first: each is a tube's best job, with the tube.
    pub fn iter(&self) -> impl Iterator<Item = (ReadyKey, TubeId)> + '_ {
        self.set.iter().map(|&(pri, id, tube)| ((pri, id), tube))
    }
}
