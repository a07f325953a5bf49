//! How a tube finds the connections blocked in a reserve that watch it:
//! narrow waiters registered in the tube by arrival, and broad watchers
//! known by the [`WaitMark`] they share with it. The engine keeps these in
//! step with the watch lists and the waits (waiting.rs says how, and what
//! each costs); they know nothing of the engine.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use super::ids::ConnId;

/// A broad connection's wait, shared by its watch list with every tube it
/// watches: the wait's arrival number while it waits, `None` otherwise.
#[derive(Clone, Debug, Default)]
pub struct WaitMark(Rc<Cell<Option<u64>>>);

impl WaitMark {
    /// The arrival number of the connection's wait, while it waits.
    pub fn get(&self) -> Option<u64> {
        self.0.get()
    }

    /// The connection starts (`Some`) or ends (`None`) a wait: every tube
    /// it watches sees it at once.
    pub fn set(&self, seq: Option<u64>) {
        self.0.set(seq);
    }

    /// Whether both are the one mark a connection shares with its tubes.
    pub fn is_shared_with(&self, other: &WaitMark) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

/// The connections blocked in a reserve that watch one tube. Its fields are
/// open to the engine, which changes them only where it changes the waits
/// (waiting.rs) and the watch lists (watching.rs) they mirror.
#[derive(Debug, Default)]
pub struct TubeWaiters {
    /// Narrow waiters by (arrival, connection).
    pub narrow: BTreeSet<(u64, ConnId)>,
    /// Every broad connection that watches the tube, waiting or not.
    pub broad: BTreeMap<ConnId, WaitMark>,
}

impl TubeWaiters {
    /// How many waiting connections watch the tube (`current-waiting` in
    /// `stats-tube`). O(b) for b broad connections watching the tube.
    pub fn len(&self) -> usize {
        self.narrow.len() + self.broad.values().filter(|mark| mark.get().is_some()).count()
    }

    /// A broad connection watches the tube.
    pub fn add_broad(&mut self, conn: ConnId, mark: WaitMark) {
        self.broad.insert(conn, mark);
    }

    /// The connection no longer watches the tube, or is no longer broad
    /// (nothing if it was not registered).
    pub fn remove_broad(&mut self, conn: ConnId) {
        self.broad.remove(&conn);
    }
}
