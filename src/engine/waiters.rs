//! How a tube finds the connections blocked in a reserve that watch it:
//! narrow waiters registered in the tube ([`NarrowWaiters`], served in
//! beanstalkd's order), and broad watchers known by the [`WaitMark`] they
//! share with it. The engine keeps these in step with the watch lists and
//! the waits (waiting.rs says how, and what each costs); they know nothing
//! of the engine.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
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

/// A tube's narrow waiters, served in the order beanstalkd 1.12 serves a
/// tube's waiting connections (its `ms.c`), which clients can see when
/// several workers wait on one tube: not first come, first served, but a
/// cursor that goes round a list.
///
/// - A connection that starts waiting is appended to the list.
/// - One that stops waiting for another reason (a job from another tube, a
///   timeout, a hang-up) is removed by moving the last entry into its slot.
/// - A job for the tube goes to the entry under the cursor (modulo the
///   list's length); that entry is removed the same way, and the cursor
///   moves one past its slot. The cursor outlives the waits: it is the
///   tube's, as long as the tube exists.
///
/// So the oldest waiter usually comes first, but not always: b waits, c
/// waits, b gets a job (the cursor moves to 1, where c now sits at 0), b
/// waits again (appended at 1): the next job goes to b, not c.
///
/// Every operation is O(1): each entry's slot is kept in a map.
#[derive(Debug, Default)]
pub struct NarrowWaiters {
    /// (arrival number, connection), in beanstalkd's list order.
    list: Vec<(u64, ConnId)>,
    /// Each listed connection's index in `list`.
    slots: HashMap<ConnId, usize>,
    /// Where the next job's waiter is looked for (modulo the length).
    cursor: usize,
}

impl NarrowWaiters {
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn contains(&self, seq: u64, conn: ConnId) -> bool {
        self.slots.get(&conn).is_some_and(|&slot| self.list[slot] == (seq, conn))
    }

    /// `conn` starts waiting, with arrival number `seq`.
    pub fn push(&mut self, seq: u64, conn: ConnId) {
        let previous = self.slots.insert(conn, self.list.len());
        debug_assert!(previous.is_none(), "connection {conn} waits twice");
        self.list.push((seq, conn));
    }

    /// `conn` stops waiting (nothing if it was not listed).
    pub fn remove(&mut self, conn: ConnId) {
        if let Some(slot) = self.slots.remove(&conn) {
            self.list.swap_remove(slot);
            if let Some(&(_, moved)) = self.list.get(slot) {
                self.slots.insert(moved, slot);
            }
        }
    }

    /// The waiter the next job goes to: (arrival number, connection).
    pub fn next(&self) -> Option<(u64, ConnId)> {
        (!self.list.is_empty()).then(|| self.list[self.cursor % self.list.len()])
    }

    /// A reserve got a job of this tube at once. beanstalkd queues even
    /// that reserve as a waiter and takes it straight back from the job's
    /// tube, where it waits alone (no waiter watches a tube with a ready
    /// job): the cursor moves to 1.
    pub fn served_at_once(&mut self) {
        debug_assert!(self.list.is_empty(), "a tube with a ready job has waiters");
        self.cursor = 1;
    }

    /// Takes the waiter [`NarrowWaiters::next`] names, and moves the cursor
    /// past its slot.
    pub fn take_next(&mut self) -> Option<ConnId> {
        let (_, conn) = self.next()?;
        let slot = self.cursor % self.list.len();
        self.remove(conn);
        self.cursor = slot + 1;
        Some(conn)
    }
}

/// The connections blocked in a reserve that watch one tube. Its fields are
/// open to the engine, which changes them only where it changes the waits
/// (waiting.rs) and the watch lists (watching.rs) they mirror.
#[derive(Debug, Default)]
pub struct TubeWaiters {
    /// Narrow waiters, in beanstalkd's order.
    pub narrow: NarrowWaiters,
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

#[cfg(test)]
mod tests {
    use super::NarrowWaiters;

    fn waiting(conns: &[usize]) -> NarrowWaiters {
        let mut waiters = NarrowWaiters::default();
        for (seq, &conn) in conns.iter().enumerate() {
            waiters.push(seq as u64, conn);
        }
        waiters
    }

    #[test]
    fn a_waiter_served_and_back_again_goes_before_the_one_that_waited() {
        // b (1) and c (2) wait; b gets a job, waits again: the next job is
        // b's, as on beanstalkd 1.12 (the differential scenario
        // waiter_order shows it on both servers).
        let mut waiters = waiting(&[1, 2]);
        assert_eq!(waiters.take_next(), Some(1));
        waiters.push(2, 1);
        assert_eq!(waiters.take_next(), Some(1));
        assert_eq!(waiters.take_next(), Some(2));
        assert_eq!(waiters.take_next(), None);
    }

    #[test]
    fn takes_in_a_row_go_round_the_list_as_beanstalkd_does() {
        // beanstalkd's ms_take on [1, 2, 3, 4] without inserts: 1, then the
        // cursor at 1 finds 2 (4 moved into slot 0), then at 2 finds nothing
        // (length 2) and wraps to 4, then 3.
        let mut waiters = waiting(&[1, 2, 3, 4]);
        let order: Vec<_> = std::iter::from_fn(|| waiters.take_next()).collect();
        assert_eq!(order, [1, 2, 4, 3]);
        // An odd length takes oldest first (beanstalkd's comment in ms.c).
        let mut waiters = waiting(&[1, 2, 3]);
        let order: Vec<_> = std::iter::from_fn(|| waiters.take_next()).collect();
        assert_eq!(order, [1, 2, 3]);
    }

    #[test]
    fn removing_a_waiter_moves_the_last_into_its_slot_and_keeps_the_cursor() {
        let mut waiters = waiting(&[1, 2, 3, 4]);
        assert_eq!(waiters.take_next(), Some(1)); // [4, 2, 3], cursor 1
        waiters.remove(2); // [4, 3], cursor 1
        assert!(!waiters.contains(1, 2));
        assert!(waiters.contains(3, 4) && waiters.contains(2, 3));
        assert_eq!(waiters.next(), Some((2, 3)));
        waiters.remove(7); // not listed: nothing
        assert_eq!(waiters.len(), 2);
        assert_eq!(waiters.take_next(), Some(3));
        assert_eq!(waiters.take_next(), Some(4));
    }
}
