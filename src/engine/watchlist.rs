//! The tubes a connection watches: the list, and how it answers "watches T?".
//!
//! A [`WatchList`] is kept as beanstalkd keeps it: a list in the order
//! `list-tubes-watched` shows, where `ignore` moves the last tube into the
//! hole. A list longer than [`BROAD`] tubes is *broad*: it also has a hash
//! index from tube to position, so that "does this connection watch T?"
//! costs O(1) however many tubes it watches (a reserve asks that while it
//! walks the heads index, a put while it walks the broad waiters), and a
//! [`WaitMark`] that it shares with each tube it watches, so that a tube can
//! tell which of its broad watchers are waiting without a waiter having to
//! register with thousands of tubes (see waiting.rs).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::ids::TubeId;
use super::waiters::WaitMark;
use crate::idmap::IdHasher;

/// A connection watching more tubes than this is a broad watcher.
pub const BROAD: usize = 8;

/// The tubes one connection watches, never empty (`ignore` refuses to
/// remove the last).
#[derive(Debug)]
pub struct WatchList {
    /// beanstalkd's order.
    order: Vec<TubeId>,
    /// Only while the list is broad (boxed: most connections watch a tube
    /// or two, and pay a pointer for it).
    broad: Option<Box<Broad>>,
}

#[derive(Debug)]
struct Broad {
    /// Each tube's position in `order`.
    index: HashMap<TubeId, usize, BuildHasherDefault<IdHasher>>,
    mark: WaitMark,
}

impl WatchList {
    /// A list watching `tube` only.
    pub fn new(tube: TubeId) -> WatchList {
        WatchList { order: vec![tube], broad: None }
    }

    /// How many tubes it watches.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// The tubes in `list-tubes-watched` order.
    pub fn iter(&self) -> std::slice::Iter<'_, TubeId> {
        self.order.iter()
    }

    /// O(1): a scan of at most [`BROAD`] tubes, or the index.
    pub fn contains(&self, tube: TubeId) -> bool {
        match &self.broad {
            Some(broad) => broad.index.contains_key(&tube),
            None => self.order.contains(&tube),
        }
    }

    /// Whether the connection watches more than [`BROAD`] tubes.
    pub fn is_broad(&self) -> bool {
        self.broad.is_some()
    }

    /// The wait mark this connection shares with its tubes, if it is broad.
    pub fn mark(&self) -> Option<&WaitMark> {
        self.broad.as_ref().map(|broad| &broad.mark)
    }

    /// Adds a tube that is not in the list, at the end. Only for
    /// watching.rs, which registers a list that just became broad with its
    /// tubes.
    pub fn push(&mut self, tube: TubeId) {
        self.order.push(tube);
        match &mut self.broad {
            Some(broad) => {
                broad.index.insert(tube, self.order.len() - 1);
            }
            None if self.order.len() > BROAD => {
                let index = self.order.iter().enumerate().map(|(pos, &t)| (t, pos)).collect();
                self.broad = Some(Box::new(Broad { index, mark: WaitMark::default() }));
            }
            None => {}
        }
    }

    /// Removes a tube that is in the list; the last tube takes its place.
    /// Only for watching.rs, which unregisters a list that stopped being
    /// broad from its tubes.
    pub fn remove(&mut self, tube: TubeId) {
        let pos = match &self.broad {
            Some(broad) => broad.index[&tube],
            None => self.order.iter().position(|&t| t == tube).expect("removing a tube not watched"),
        };
        self.order.swap_remove(pos);
        if let Some(broad) = &mut self.broad {
            broad.index.remove(&tube);
            if let Some(&moved) = self.order.get(pos) {
                broad.index.insert(moved, pos);
            }
            if self.order.len() <= BROAD {
                self.broad = None;
            }
        }
    }
}

impl WatchList {
    /// Panics unless the index (if any) matches the list.
    pub fn check(&self) {
        assert_eq!(self.is_broad(), self.order.len() > BROAD);
        if let Some(broad) = &self.broad {
            assert_eq!(broad.index.len(), self.order.len());
            for (pos, tube) in self.order.iter().enumerate() {
                assert_eq!(broad.index[tube], pos);
            }
        }
    }
}

impl<'a> IntoIterator for &'a WatchList {
    type Item = &'a TubeId;
    type IntoIter = std::slice::Iter<'a, TubeId>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
