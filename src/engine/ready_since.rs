//! When the longest-waiting ready job of a tube became ready, without
//! ordering ready jobs by age: the ready queue is ordered by (priority,
//! id), and a job released or kicked is ready anew under its old id.
//!
//! Jobs become ready in time order (the engine's time never goes back), so
//! appending `(ready since, id)` to a queue as each becomes ready keeps the
//! queue sorted by age. A job that leaves the ready state is not looked
//! for: its entry stays, and is dropped when it reaches the front or at
//! the next compaction (lazy deletion). An entry is current while its job
//! is ready with that very time; the caller tells which are. Compaction
//! runs when stale entries outnumber the ready jobs (plus some slack), so
//! the queue holds at most about twice the ready jobs, and each entry is
//! visited a constant number of times on average: O(1) a job.

use std::collections::VecDeque;

use super::ids::JobId;
use super::time::Nanos;

/// Entries kept before a compaction is considered, however few jobs are
/// ready: a tube that hands out jobs as fast as they come does not compact
/// at every put.
const SLACK: usize = 64;

/// A tube's ready jobs by when they became ready, oldest first, with stale
/// entries among them (see the module docs).
#[derive(Debug, Default)]
pub struct ReadySince {
    entries: VecDeque<(Nanos, JobId)>,
}

impl ReadySince {
    /// Job `id` became ready at `since`, no earlier than any job before.
    /// If stale entries now outnumber `ready` (the jobs that can be
    /// current), keeps only the entries `is_current` accepts.
    pub fn push(&mut self, since: Nanos, id: JobId, ready: usize, is_current: impl FnMut(Nanos, JobId) -> bool) {
        debug_assert!(self.entries.back().is_none_or(|&(last, _)| last <= since), "ready times go forward");
        self.entries.push_back((since, id));
        if self.entries.len() > 2 * ready + SLACK {
            let mut is_current = is_current;
            self.entries.retain(|&(since, id)| is_current(since, id));
            if self.entries.capacity() > 4 * self.entries.len() + SLACK {
                self.entries.shrink_to(2 * self.entries.len() + SLACK);
            }
        }
    }

    /// When the longest-waiting ready job became ready, dropping the stale
    /// entries ahead of it; `None` if no job is ready.
    pub fn oldest(&mut self, mut is_current: impl FnMut(Nanos, JobId) -> bool) -> Option<Nanos> {
        while let Some(&(since, id)) = self.entries.front() {
            if is_current(since, id) {
                return Some(since);
            }
            self.entries.pop_front();
        }
        None
    }

    /// Every entry, current and stale, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = (Nanos, JobId)> + '_ {
        self.entries.iter().copied()
    }

    /// Entries held, current and stale.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_oldest_current_entry_wins_and_stale_ones_go() {
        let mut q = ReadySince::default();
        // job -> the time it is ready since, if ready
        let mut ready: HashMap<JobId, Nanos> = HashMap::new();
        for (t, id) in [(10, 1), (20, 2), (30, 3)] {
            ready.insert(id, t);
            q.push(t, id, ready.len(), |_, _| unreachable!("no compaction yet"));
        }
        fn current(r: &HashMap<JobId, Nanos>) -> impl FnMut(Nanos, JobId) -> bool + '_ {
            move |since, id| r.get(&id) == Some(&since)
        }
        assert_eq!(q.oldest(current(&ready)), Some(10));
        ready.remove(&1); // reserved
        assert_eq!(q.oldest(current(&ready)), Some(20));
        assert_eq!(q.len(), 2, "job 1's entry dropped");
        // Job 2 released: ready again, later; job 3 is now the oldest.
        ready.insert(2, 40);
        q.push(40, 2, ready.len(), current(&ready));
        assert_eq!(q.oldest(current(&ready)), Some(30));
        ready.clear();
        assert_eq!(q.oldest(current(&ready)), None);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn stale_entries_stay_bounded_while_an_old_job_stays_ready() {
        let mut q = ReadySince::default();
        let mut ready: HashMap<JobId, Nanos> = HashMap::from([(1, 0)]);
        q.push(0, 1, 1, |_, _| true);
        // A million jobs pass through while job 1 (low priority) waits.
        for id in 2..1_000_000u64 {
            ready.insert(id, id);
            let r = &ready;
            q.push(id, id, r.len(), |since, id| r.get(&id) == Some(&since));
            ready.remove(&id);
            assert!(q.len() <= 2 * 2 + SLACK + 1, "{} entries for 2 ready jobs", q.len());
        }
        let r = &ready;
        assert_eq!(q.oldest(|since, id| r.get(&id) == Some(&since)), Some(0));
    }
}
