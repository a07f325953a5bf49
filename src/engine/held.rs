//! The jobs one connection holds, soonest TTR deadline first.
//!
//! A worker reserves and deletes jobs as fast as it can, and an ordered set
//! of (deadline, id) cost it two B-tree updates a job: about a tenth of the
//! server's CPU for a pipelined reserve + delete. But the question the order
//! answers, which held job's TTR ends first, is asked only when a reserve
//! finds no job to hand out (`DEADLINE_SOON`) or must wait, and the answers
//! mostly come in order anyway: each command's time is later than the one
//! before, and a connection's jobs mostly share a TTR. So the jobs go on a
//! binary heap, which takes a later deadline in O(1), and a job that is no
//! longer held is forgotten lazily: its entry stays until it comes to the
//! top or forgotten entries outnumber held ones, when the heap is rebuilt
//! from the held ones (amortized O(1) a job).
//!
//! Whether an entry is still held is the engine's to say (the job is
//! reserved by this connection, with this deadline; a later reservation of
//! the same job always has a later deadline), so the calls that look at
//! entries take that test as `is_held`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::ids::JobId;
use super::time::Nanos;

/// A connection's reserved jobs by (TTR deadline, id), forgotten lazily.
#[derive(Debug, Default)]
pub struct HeldJobs {
    /// Every job held, and some no longer held; the soonest on top.
    entries: BinaryHeap<Reverse<(Nanos, JobId)>>,
    /// How many jobs are held.
    held: usize,
}

impl HeldJobs {
    /// How many jobs the connection holds.
    pub fn len(&self) -> usize {
        self.held
    }

    /// The connection now holds `id` until `deadline`. When forgotten
    /// entries outnumber the held ones, only those `is_held` says are held
    /// (this one included) are kept.
    pub fn insert(&mut self, deadline: Nanos, id: JobId, is_held: impl Fn(Nanos, JobId) -> bool) {
        self.entries.push(Reverse((deadline, id)));
        self.held += 1;
        if self.entries.len() > 2 * self.held + 16 {
            let mut kept: Vec<_> = std::mem::take(&mut self.entries).into_vec();
            kept.retain(|&Reverse((deadline, id))| is_held(deadline, id));
            // Engine tests can reserve a job again at the same instant: the
            // same entry twice, for one reservation.
            kept.sort_unstable();
            kept.dedup();
            self.entries = BinaryHeap::from(kept);
        }
    }

    /// The connection no longer holds one of its jobs (its entry is
    /// forgotten lazily).
    pub fn remove(&mut self) {
        self.held -= 1;
    }

    /// The held job whose TTR ends first, with its deadline; forgotten
    /// entries above it are dropped on the way.
    pub fn first(&mut self, is_held: impl Fn(Nanos, JobId) -> bool) -> Option<(Nanos, JobId)> {
        if self.held == 0 {
            self.entries.clear();
            return None;
        }
        while let Some(&Reverse((deadline, id))) = self.entries.peek() {
            if is_held(deadline, id) {
                return Some((deadline, id));
            }
            self.entries.pop();
        }
        None
    }

    /// Every entry, held or not, in no order (invariant checks).
    pub fn entries(&self) -> impl Iterator<Item = (Nanos, JobId)> + '_ {
        self.entries.iter().map(|&Reverse(entry)| entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soonest_held_job_comes_first_and_forgotten_ones_go() {
        let held = std::cell::RefCell::new(std::collections::BTreeSet::new());
        let is_held = |d: Nanos, id: JobId| held.borrow().contains(&(d, id));
        let mut jobs = HeldJobs::default();
        for (d, id) in [(30, 3), (10, 1), (20, 2)] {
            held.borrow_mut().insert((d, id));
            jobs.insert(d, id, is_held);
        }
        assert_eq!(jobs.first(is_held), Some((10, 1)));
        held.borrow_mut().remove(&(10, 1));
        jobs.remove();
        assert_eq!((jobs.first(is_held), jobs.len()), (Some((20, 2)), 2));
        // Many reserved and let go: the forgotten entries do not pile up.
        for id in 100..10_000 {
            held.borrow_mut().insert((id, id));
            jobs.insert(id, id, is_held);
            held.borrow_mut().remove(&(id, id));
            jobs.remove();
        }
        // (At most twice the held ones and 16, counting the one let go.)
        assert!(jobs.entries().count() <= 2 * (jobs.len() + 1) + 16, "{} entries", jobs.entries().count());
        assert_eq!(jobs.first(is_held), Some((20, 2)));
        for (d, id) in [(20, 2), (30, 3)] {
            held.borrow_mut().remove(&(d, id));
            jobs.remove();
        }
        assert_eq!(jobs.first(is_held), None);
        assert_eq!(jobs.entries().count(), 0);
    }
}
