//! A tube's ready jobs in (priority, id) order, packed.
//!
//! A queue may hold millions of ready jobs, so the bytes each one costs here
//! matter as much as the speed. A `BTreeSet<(u32, u64)>` costs about 30
//! bytes a job when jobs arrive in id order, the usual case: its nodes split
//! in the middle and so stay two-thirds empty, and its keys are padded to 16
//! bytes. This queue keeps keys in sorted chunks of up to [`CHUNK`] keys,
//! and each chunk writes its keys down as narrowly as they allow (see
//! [`Chunk`]): ids as 4-byte offsets from the chunk's base id, and the
//! priority once for the chunk when all its keys share it. A key larger than
//! every other one (a new job, in the usual case) goes at the end of the last
//! chunk, so chunks fill up completely; so do new jobs at a priority that is
//! not the largest, which go at the end of a chunk in the middle (see
//! [`ReadyQueue::insert`]). A run of keys of one priority whose ids leave
//! no gap (the jobs of a tube that no other tube's puts came between, the
//! usual queue) is kept as its first id and its length, with no key written
//! down: about 0.2 bytes a job. A tube whose jobs have one priority, or a
//! few, costs about 4.2 bytes a job otherwise; a priority for every job (a
//! timestamp, say) 8.2; a key never takes more than 12 bytes.
//!
//! Every operation is O(log n + CHUNK): a binary search for the chunk, one for
//! the key, and a shift of at most one chunk's keys, or a rewrite of them in
//! a wider coding when the key does not fit the chunk's. Taking the first
//! job (what reserve does) shifts nothing. Chunks that get too empty are
//! merged with a neighbour and give spare capacity back, so removals cannot
//! leave memory behind (see [`ReadyQueue::tidy`]).

use std::collections::VecDeque;

use super::chunked;
use super::ids::JobId;

mod chunk;

use chunk::{CHUNK, Chunk};

/// A ready job by its ordering key: (priority, id).
pub type ReadyKey = (u32, JobId);

/// Ready jobs in (priority, id) order, a few bytes each (see the module
/// docs).
#[derive(Debug, Default)]
pub struct ReadyQueue {
    chunks: VecDeque<Chunk>,
    len: usize,
}

impl ReadyQueue {
    /// How many jobs are ready.
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The job to reserve next.
    #[inline]
    pub fn first(&self) -> Option<ReadyKey> {
        self.chunks.front().map(Chunk::first)
    }

    /// Adds keys that are not in the queue yet. Keys that come sorted and
    /// after every key in the queue (a recovered tube's) are laid out as
    /// [`ReadyQueue::insert`] one at a time would leave them (the last chunk
    /// filled up, then full chunks), but each chunk is written once, in its
    /// narrowest coding, instead of grown key by key; any other key is
    /// inserted.
    pub fn append(&mut self, keys: impl IntoIterator<Item = ReadyKey>) {
        let mut run: Vec<ReadyKey> = Vec::new();
        for key in keys {
            let extends_run = match run.last() {
                Some(&last) => last < key,
                None => self.chunks.back().is_none_or(|chunk| chunk.len() == CHUNK && chunk.last() < key),
            };
            if extends_run {
                run.push(key);
                if run.len() == CHUNK {
                    self.push_chunk(&mut run);
                }
            } else {
                self.push_chunk(&mut run);
                self.insert(key);
            }
        }
        self.push_chunk(&mut run);
    }

    /// Adds sorted keys after every key in the queue as a chunk of their
    /// own, if there are any, and empties `keys`.
    fn push_chunk(&mut self, keys: &mut Vec<ReadyKey>) {
        if keys.is_empty() {
            return;
        }
        // Capacities are powers of two (see CHUNK).
        self.chunks.push_back(Chunk::narrowest(keys, keys.len().next_power_of_two()));
        self.len += keys.len();
        keys.clear();
    }

    /// Adds a key that is not in the queue yet.
    pub fn insert(&mut self, key: ReadyKey) {
        self.len += 1;
        let Some(last) = self.chunks.back_mut() else {
            self.chunks.push_back(Chunk::single(key));
            return;
        };
        if last.last() < key {
            if last.len() < CHUNK {
                last.insert(last.len(), key);
            } else {
                self.chunks.push_back(Chunk::single(key));
            }
            return;
        }
        // Some chunk's last key is larger: the first such chunk takes it.
        let at = self.chunks.partition_point(|chunk| chunk.last() < key);
        let found = self.chunks[at].search(key);
        debug_assert!(found.is_err(), "{key:?} is ready already");
        let pos = found.unwrap_or_else(|pos| pos);
        // Unless the key goes between two chunks and the one before has
        // room: there it is an append. So keys that come in order in the
        // middle of the queue (new jobs of one priority, while a lower one
        // has ready jobs) fill chunks up as the last chunk's do, rather than
        // half of each (what splits leave).
        if pos == 0 && at > 0 && self.chunks[at - 1].len() < CHUNK {
            let before = &mut self.chunks[at - 1];
            before.insert(before.len(), key);
            return;
        }
        let chunk = &mut self.chunks[at];
        if chunk.len() < CHUNK {
            chunk.insert(pos, key);
            return;
        }
        let (lower, upper) = chunk.split_with(pos, key);
        *chunk = lower;
        self.chunks.insert(at + 1, upper);
    }

    /// Removes the key; `false` if it was not in the queue.
    pub fn remove(&mut self, key: ReadyKey) -> bool {
        let (at, pos) = if self.first() == Some(key) {
            // A reserve takes the first job: no search.
            (0, 0)
        } else {
            let at = self.chunks.partition_point(|chunk| chunk.last() < key);
            let Some(Ok(pos)) = self.chunks.get(at).map(|chunk| chunk.search(key)) else {
                return false;
            };
            (at, pos)
        };
        self.chunks[at].remove(pos);
        self.len -= 1;
        self.tidy(at);
        true
    }

    /// Keeps chunk `at` from holding on to memory after a removal (the
    /// rules are [`chunked::tidy`]'s). A small chunk joins its neighbour in
    /// the narrowest coding for both, so a key that made a chunk wider does
    /// not keep it wide for good once it has gone.
    fn tidy(&mut self, at: usize) {
        chunked::tidy(&mut self.chunks, at, CHUNK / 4, |chunks, at| {
            let next = chunks.remove(at + 1).expect("chunk exists");
            let chunk = &mut chunks[at];
            let len = chunk.len() + next.len();
            *chunk = Chunk::narrowest(&[chunk.keys(), next.keys()].concat(), len.next_power_of_two());
            true
        });
    }

    /// Every key, in order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = ReadyKey> + '_ {
        self.chunks.iter().flat_map(Chunk::keys)
    }

    /// Bytes the queue takes on the heap: a header for every chunk there is
    /// room for, and every chunk's codes, spare room included (tests only).
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Chunk>() + self.chunks.iter().map(Chunk::heap_bytes).sum::<usize>()
    }

    /// Checks the layout that the operations rely on (tests only).
    #[cfg(test)]
    fn check(&self) {
        let keys: Vec<ReadyKey> = self.iter().collect();
        assert_eq!(keys.len(), self.len);
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys out of order");
        for chunk in &self.chunks {
            assert!(chunk.len() > 0 && chunk.len() <= CHUNK);
            assert!(chunk.capacity().is_power_of_two() && chunk.capacity() <= CHUNK, "capacity {}", chunk.capacity());
            assert!(
                chunk.capacity() < 4 * chunk.len() || chunk.capacity() <= 4,
                "{} of {}",
                chunk.len(),
                chunk.capacity()
            );
        }
        for pair in self.chunks.iter().collect::<Vec<_>>().windows(2) {
            assert!(pair[0].len() + pair[1].len() > CHUNK / 4, "{} + {} keys", pair[0].len(), pair[1].len());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::engine::tests::rng::Rng;

    /// Inserts the keys into a new queue, checks it and its codings (one
    /// letter a chunk: Run, One, Near, Far).
    fn queue_of(keys: impl IntoIterator<Item = ReadyKey>, codings: &str) -> ReadyQueue {
        let mut queue = ReadyQueue::default();
        keys.into_iter().for_each(|key| queue.insert(key));
        queue.check();
        assert_eq!(queue.codings(), codings);
        queue
    }

    impl ReadyQueue {
        fn codings(&self) -> String {
            self.chunks.iter().map(Chunk::coding).collect()
        }
    }

    #[test]
    fn a_run_takes_the_next_id_and_gives_up_its_middle() {
        let mut queue = queue_of((10..20).map(|id| (7, id)), "R");
        assert!(matches!(queue.chunks[0], Chunk::Run { pri: 7, first: 10, len: 10 }));
        assert_eq!(queue.heap_bytes(), queue.chunks.capacity() * std::mem::size_of::<Chunk>(), "no codes");
        // Taken from either end, it stays a run.
        assert!(queue.remove((7, 10)) && queue.remove((7, 19)));
        assert_eq!(queue.codings(), "R");
        assert_eq!(queue.chunks[0].search((7, 15)), Ok(4));
        assert_eq!(queue.chunks[0].search((7, 9)), Err(0));
        assert_eq!(queue.chunks[0].search((6, 50)), Err(0));
        assert_eq!(queue.chunks[0].search((7, 19)), Err(8));
        assert_eq!(queue.chunks[0].search((8, 0)), Err(8));
        // A gap, another priority, or an id below: codes.
        assert!(queue.remove((7, 14)));
        queue.check();
        assert_eq!(queue.codings(), "O");
        assert!(queue.iter().eq([11, 12, 13, 15, 16, 17, 18].map(|id| (7, id))));
        for (key, codings) in [((7, 21), "O"), ((8, 2), "N"), ((7, 8), "O")] {
            let mut queue = queue_of((10..20).map(|id| (7, id)), "R");
            queue.insert(key);
            queue.check();
            assert_eq!(queue.codings(), codings, "after {key:?}");
        }
        // The largest id there is, reserved.
        let mut queue = queue_of([(0, u64::MAX - 1), (0, u64::MAX)], "R");
        assert!(queue.remove((0, u64::MAX - 1)) && queue.remove((0, u64::MAX)));
        assert!(queue.is_empty());
    }

    #[test]
    fn a_chunk_widens_its_coding_only_for_a_key_that_does_not_fit() {
        let far = 1 << 40;
        // An id below the base: the base moves down, the coding stays.
        let mut queue = queue_of([(5, 100), (5, 101), (5, 3)], "O");
        assert!(matches!(queue.chunks[0], Chunk::OnePriority { pri: 5, base: 3, .. }));
        queue.insert((5, 3 + u64::from(u32::MAX)));
        assert_eq!(queue.codings(), "O");
        // Another priority; then an id 2^32 above the base.
        queue.insert((4, 200));
        assert_eq!(queue.codings(), "N");
        queue.insert((5, far));
        assert_eq!(queue.codings(), "F");
        assert!(queue.iter().eq([(4, 200), (5, 3), (5, 100), (5, 101), (5, 3 + u64::from(u32::MAX)), (5, far)]));
        // A far id below the base, at one priority.
        queue_of([(5, far), (5, 1)], "F");
        queue_of([(5, far), (5, far - u64::from(u32::MAX))], "O");
    }

    #[test]
    fn splits_and_merges_write_chunks_in_their_narrowest_coding() {
        // A full chunk at one priority but for its last key: splitting it
        // leaves the lower half at one priority, a run of ids.
        let keys = (1..CHUNK as u64).map(|id| (9, id)).chain([(10, 0)]);
        let mut queue = queue_of(keys, "N");
        queue.insert((9, 0));
        queue.check();
        assert_eq!(queue.codings(), "RN");
        // A far key inserted into a full chunk lands in one half only.
        let mut queue = queue_of((1..=CHUNK as u64).map(|id| (9, id)), "R");
        queue.insert((0, 1 << 40));
        queue.check();
        assert_eq!(queue.codings(), "FR");
        // The far key's chunk stays wide when the key goes, and shrinking
        // keeps the coding; merging with its neighbour narrows it.
        assert!(queue.remove((0, 1 << 40)));
        for id in 2..=100 {
            assert!(queue.remove((9, id)));
        }
        queue.check();
        assert_eq!(queue.codings(), "FR");
        for id in 129..=240 {
            assert!(queue.remove((9, id)));
        }
        queue.check();
        assert_eq!(queue.codings(), "O");
        assert!(queue.iter().eq([1].into_iter().chain(101..=128).chain(241..=256).map(|id| (9, id))));
    }

    #[test]
    fn jobs_in_id_order_fill_whole_chunks() {
        let mut queue = ReadyQueue::default();
        for id in 1..=10 * CHUNK as u64 {
            queue.insert((1024, id));
        }
        queue.check();
        assert_eq!(queue.chunks.len(), 10);
        assert!(queue.chunks.iter().all(|c| c.len() == CHUNK && c.capacity() == CHUNK));
        assert_eq!(queue.codings(), "R".repeat(10), "runs: no codes at all");
        assert_eq!(queue.first(), Some((1024, 1)));
    }

    /// Appends `appended` to a queue holding `already`, and checks it
    /// against inserting them one at a time: the same keys, and for sorted
    /// keys after the queue's, the same chunks.
    fn append_as_inserts(already: &[ReadyKey], appended: &[ReadyKey]) {
        let (mut one_at_a_time, mut at_once) = (ReadyQueue::default(), ReadyQueue::default());
        for &key in already {
            one_at_a_time.insert(key);
            at_once.insert(key);
        }
        appended.iter().for_each(|&key| one_at_a_time.insert(key));
        at_once.append(appended.iter().copied());
        at_once.check();
        assert!(at_once.iter().eq(one_at_a_time.iter()));
        if appended.is_sorted() && already.iter().all(|&key| appended.first().is_none_or(|&first| key < first)) {
            assert_eq!(at_once.codings(), one_at_a_time.codings());
            let chunks = |q: &ReadyQueue| q.chunks.iter().map(|c| (c.len(), c.capacity())).collect::<Vec<_>>();
            assert_eq!(chunks(&at_once), chunks(&one_at_a_time));
        }
    }

    #[test]
    fn appending_keys_lays_them_out_as_inserting_them_one_at_a_time() {
        let far = 1 << 40;
        let in_id_order: Vec<ReadyKey> = (1..=10 * CHUNK as u64 + 7).map(|id| (1024, id)).collect();
        let mut by_priority: Vec<ReadyKey> = (1..=3 * CHUNK as u64).map(|id| ((id % 3) as u32, id)).collect();
        by_priority.sort_unstable();
        let far_apart = [(1, 1), (1, far), (2, 5), (2, far + 1)];
        append_as_inserts(&[], &in_id_order);
        append_as_inserts(&[], &by_priority);
        append_as_inserts(&[], &far_apart);
        append_as_inserts(&in_id_order[..CHUNK + 3], &in_id_order[CHUNK + 3..]);
        append_as_inserts(&in_id_order, &[]);
        // Keys that are not sorted, or not after the queue's, are inserted.
        append_as_inserts(&far_apart, &in_id_order);
        let mut rng = Rng(7);
        let shuffled: BTreeSet<ReadyKey> = (0..2_000).map(|_| (rng.below(4) as u32, rng.below(1_000))).collect();
        let mut shuffled: Vec<ReadyKey> = shuffled.into_iter().collect();
        shuffled.sort_by_key(|&(pri, id)| (id.wrapping_mul(7919) % 2003, pri));
        append_as_inserts(&[], &shuffled);
        append_as_inserts(&in_id_order[..300], &shuffled);
    }

    /// What a queue of `n` keys costs a key, all chunk headers and spare
    /// room counted.
    fn bytes_a_key(keys: impl Iterator<Item = ReadyKey>) -> f64 {
        let mut queue = ReadyQueue::default();
        keys.for_each(|key| queue.insert(key));
        queue.check();
        let cost = queue.heap_bytes() as f64 / queue.len() as f64;
        eprintln!("{cost:.3} bytes a key");
        cost
    }

    #[test]
    fn jobs_at_one_priority_in_id_order_cost_about_four_bytes() {
        // One after another: runs, a chunk header for 256 keys.
        let cost = bytes_a_key((1..=1_000_000).map(|id| (1024, id)));
        assert!(cost <= 0.25, "{cost:.3} bytes a key");
        // Ids with gaps (jobs of other tubes between them) cost the same.
        let cost = bytes_a_key((1..=1_000_000).map(|n| (1024, n * 1000)));
        assert!(cost <= 4.2, "{cost:.3} bytes a key");
    }

    #[test]
    fn jobs_at_a_few_priorities_in_id_order_cost_about_four_bytes() {
        // Each priority's keys come in order, and all but the largest
        // priority's go in the middle of the queue.
        let cost = bytes_a_key((1..=1_000_000).map(|id| ([0, 1024, 2048][id as usize % 3], id)));
        assert!(cost <= 4.25, "{cost:.3} bytes a key");
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let cost = bytes_a_key((1..=1_000_000).map(|id| ([0, 1024, 2048][rng.below(3) as usize], id)));
        assert!(cost <= 4.25, "{cost:.3} bytes a key");
    }

    #[test]
    fn jobs_at_a_priority_each_cost_at_most_twelve_and_a_half_bytes() {
        // In order (the priority is a timestamp): 8 bytes a key.
        let cost = bytes_a_key((1..=1_000_000).map(|id| (id as u32, id)));
        assert!(cost <= 8.2, "{cost:.3} bytes a key");
        // In random order, chunks split and are three-quarters full or so.
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let cost = bytes_a_key((1..=1_000_000).map(|id| (rng.below(1 << 32) as u32, id)));
        assert!(cost <= 12.5, "{cost:.3} bytes a key");
    }

    #[test]
    fn takes_jobs_by_priority_then_id() {
        let mut queue = ReadyQueue::default();
        for key in [(5, 3), (1, 9), (5, 1), (0, 20), (1, 2)] {
            queue.insert(key);
        }
        let mut taken = Vec::new();
        while let Some(key) = queue.first() {
            assert!(queue.remove(key));
            taken.push(key);
        }
        assert_eq!(taken, [(0, 20), (1, 2), (1, 9), (5, 1), (5, 3)]);
        assert!(queue.is_empty() && queue.chunks.is_empty());
        assert!(!queue.remove((0, 20)), "gone already");
    }

    /// Random inserts and removals against a `BTreeSet`, in phases that grow
    /// and then drain the queue, so that chunks split, merge and shrink.
    /// Keys come as a tube sees them: new jobs in id order, mostly at one
    /// priority that changes now and then, some at a priority of their own
    /// (a timestamp, or anything); old ids released or kicked, some just
    /// below the newest (below the smallest id of the chunk they land in),
    /// some from long ago; and now and then a jump of 2^32 or more in the ids,
    /// so that keys that far apart meet in one chunk. Checks the first key
    /// after every step, and the order and the layout every 256 steps.
    #[test]
    fn matches_an_ordered_set_under_random_changes() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut queue = ReadyQueue::default();
        let mut model = BTreeSet::new();
        let mut next_id = 1u64;
        let mut stream_pri = 1024;
        let mut clock = 0u32;
        let mut largest = 0;
        for step in 0..200_000 {
            // 20k steps of growing (7 in 10 steps add), then 20k of draining.
            let adding = if step / 20_000 % 2 == 0 { 7 } else { 2 };
            if rng.below(10) < adding {
                let key = match rng.below(20) {
                    // A new job: mostly the stream's priority.
                    0..=14 => {
                        let pri = match rng.below(10) {
                            0 => {
                                clock += 1 + rng.below(3) as u32;
                                clock
                            }
                            1 => rng.below(1 << 32) as u32,
                            _ => stream_pri,
                        };
                        next_id += 1 + rng.below(3);
                        (pri, next_id)
                    }
                    // Released: a recent id, often at the stream's priority.
                    15..=17 => {
                        let pri = if rng.below(2) == 0 { stream_pri } else { rng.below(2000) as u32 };
                        (pri, next_id.saturating_sub(rng.below(3000)))
                    }
                    // Kicked: any old id, or one near the largest id there is.
                    18 => (rng.below(2000) as u32, rng.below(next_id)),
                    _ => (stream_pri, u64::MAX - rng.below(100)),
                };
                if model.insert(key) {
                    queue.insert(key);
                }
            } else if rng.below(5) < 3 {
                // Reserve: the first job.
                let first = model.pop_first();
                assert_eq!(queue.first(), first);
                if let Some(key) = first {
                    assert!(queue.remove(key));
                }
            } else {
                // Delete by id: any key, present or not.
                let pri = match rng.below(3) {
                    0 => stream_pri,
                    1 => rng.below(2000) as u32,
                    _ => rng.below(1 << 32) as u32,
                };
                let probe = (pri, rng.below(next_id + 1));
                let key = match model.range(probe..).next() {
                    Some(&key) if rng.below(4) > 0 => key,
                    _ => probe,
                };
                assert_eq!(queue.remove(key), model.remove(&key), "remove {key:?}");
            }
            // Now and then the stream's priority changes, or the ids jump.
            match rng.below(2000) {
                0 => stream_pri = [0, 1023, 1024, u32::MAX, rng.below(1 << 32) as u32][rng.below(5) as usize],
                1 => next_id += (1 << 32) + rng.below(1 << 34),
                _ => {}
            }
            assert_eq!(queue.first(), model.first().copied());
            largest = largest.max(model.len());
            if step % 256 == 0 {
                queue.check();
                assert!(queue.iter().eq(model.iter().copied()));
            }
        }
        assert!(largest > 20 * CHUNK, "the queue grew to only {largest} keys");
        while let Some(key) = model.pop_first() {
            assert_eq!(queue.first(), Some(key));
            assert!(queue.remove(key));
        }
        assert!(queue.is_empty() && queue.chunks.is_empty());
    }

    #[test]
    fn removals_give_memory_back() {
        let mut queue = ReadyQueue::default();
        let n = 100 * CHUNK as u64;
        for id in 0..n {
            queue.insert((0, id));
        }
        // Delete all but every 100th job, from the middle of each chunk.
        for id in (0..n).filter(|id| id % 100 != 0) {
            assert!(queue.remove((0, id)));
        }
        queue.check();
        let capacity: usize = queue.chunks.iter().map(|c| c.capacity()).sum();
        assert!(capacity < 4 * queue.len(), "{capacity} slots for {} keys", queue.len());
        assert!(queue.chunks.len() <= 2 * queue.len() / (CHUNK / 4) + 1, "{} chunks", queue.chunks.len());
    }
}
