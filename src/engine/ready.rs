//! A tube's ready jobs in (priority, id) order, packed.
//!
//! A queue may hold millions of ready jobs, so the bytes each one costs here
//! matter as much as the speed. A `BTreeSet<(u32, u64)>` costs about 30
//! bytes a job when jobs arrive in id order, the usual case: its nodes split
//! in the middle and so stay two-thirds empty, and its keys are padded to 16
//! bytes. This queue keeps 12-byte keys in sorted chunks of up to
//! [`CHUNK`] keys. A key larger than every other one (a new job, in the usual
//! case) goes at the end of the last chunk, so chunks fill up completely:
//! about 12.2 bytes a job.
//!
//! Every operation is O(log n + CHUNK): a binary search for the chunk, one for
//! the key, and a shift of at most one chunk's keys. Taking the first job
//! (what reserve does) shifts nothing. Chunks that get too empty are merged
//! with a neighbour and give spare capacity back, so removals cannot leave
//! memory behind (see [`ReadyQueue::tidy`]).

use std::collections::VecDeque;

use super::job::JobId;

/// A ready job by its ordering key: (priority, id).
pub type ReadyKey = (u32, JobId);

/// The most keys a chunk holds: a power of two, so that a growing chunk's
/// capacity (doubled each time) lands on it exactly. 256 keys shift in
/// about as long as a cache miss or two takes.
const CHUNK: usize = 256;

/// (priority, id) in 12 bytes instead of 16: the fields compare in order,
/// so the derived order is (priority, id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PackedKey {
    pri: u32,
    id_high: u32,
    id_low: u32,
}

impl PackedKey {
    fn pack((pri, id): ReadyKey) -> PackedKey {
        PackedKey { pri, id_high: (id >> 32) as u32, id_low: id as u32 }
    }

    fn unpack(self) -> ReadyKey {
        (self.pri, u64::from(self.id_high) << 32 | u64::from(self.id_low))
    }
}

/// Sorted keys; never empty while it is in the queue.
type Chunk = VecDeque<PackedKey>;

#[derive(Debug, Default)]
pub struct ReadyQueue {
    chunks: VecDeque<Chunk>,
    len: usize,
}

impl ReadyQueue {
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The job to reserve next.
    pub fn first(&self) -> Option<ReadyKey> {
        self.chunks.front().map(|chunk| chunk[0].unpack())
    }

    /// Adds a key that is not in the queue yet.
    pub fn insert(&mut self, key: ReadyKey) {
        let key = PackedKey::pack(key);
        self.len += 1;
        let Some(last) = self.chunks.back_mut() else {
            self.chunks.push_back(Chunk::from([key]));
            return;
        };
        if *last.back().expect("chunks are never empty") < key {
            if last.len() < CHUNK {
                last.push_back(key);
            } else {
                self.chunks.push_back(Chunk::from([key]));
            }
            return;
        }
        // Some chunk's last key is larger: the first such chunk takes it.
        let at = self.chunks.partition_point(|chunk| *chunk.back().expect("chunks are never empty") < key);
        let chunk = &mut self.chunks[at];
        let mut pos = chunk.partition_point(|k| *k < key);
        debug_assert!(chunk.get(pos) != Some(&key), "{:?} is ready already", key.unpack());
        if chunk.len() < CHUNK {
            chunk.insert(pos, key);
            return;
        }
        let upper = chunk.split_off(CHUNK / 2);
        let mut target = at;
        if pos > CHUNK / 2 {
            target = at + 1;
            pos -= CHUNK / 2;
        }
        self.chunks.insert(at + 1, upper);
        self.chunks[target].insert(pos, key);
    }

    /// Removes the key; `false` if it was not in the queue.
    pub fn remove(&mut self, key: ReadyKey) -> bool {
        let key = PackedKey::pack(key);
        let (at, pos) = if self.chunks.front().is_some_and(|chunk| chunk[0] == key) {
            // A reserve takes the first job: no search.
            (0, 0)
        } else {
            let at = self.chunks.partition_point(|chunk| *chunk.back().expect("chunks are never empty") < key);
            let Some(Ok(pos)) = self.chunks.get(at).map(|chunk| chunk.binary_search(&key)) else {
                return false;
            };
            (at, pos)
        };
        self.chunks[at].remove(pos);
        self.len -= 1;
        self.tidy(at);
        true
    }

    /// Keeps chunk `at` from holding on to memory after a removal. Two
    /// rules, which every change keeps: any two neighbouring chunks hold
    /// more than `CHUNK / 4` keys between them, and a chunk's capacity is
    /// less than four times its keys (or at most 4). An empty chunk goes;
    /// a small one joins a neighbour it fits with; then spare capacity goes
    /// back.
    fn tidy(&mut self, at: usize) {
        let len = self.chunks[at].len();
        if len == 0 {
            // Its neighbours held more than CHUNK / 4 keys with one key
            // here, so each alone held at least that many.
            self.chunks.remove(at);
            return;
        }
        let fits = |chunk: Option<&Chunk>| chunk.is_some_and(|c| c.len() + len <= CHUNK / 4);
        let mut merged = at;
        if at > 0 && fits(self.chunks.get(at - 1)) {
            let mut chunk = self.chunks.remove(at).expect("chunk exists");
            self.chunks[at - 1].append(&mut chunk);
            merged = at - 1;
        } else if fits(self.chunks.get(at + 1)) {
            let mut next = self.chunks.remove(at + 1).expect("chunk exists");
            self.chunks[at].append(&mut next);
        }
        // One merge is enough: if both neighbours were small, each still had
        // more than CHUNK / 4 - len keys, so the merged chunk and the other
        // neighbour hold more than CHUNK / 4 together.
        let chunk = &mut self.chunks[merged];
        if chunk.capacity() >= 4 * chunk.len() && chunk.capacity() > 4 {
            chunk.shrink_to(2 * chunk.len());
        }
    }

    /// Every key, in order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = ReadyKey> + '_ {
        self.chunks.iter().flatten().map(|k| k.unpack())
    }

    /// Checks the layout that the operations rely on (tests only).
    #[cfg(test)]
    fn check(&self) {
        let keys: Vec<PackedKey> = self.chunks.iter().flatten().copied().collect();
        assert_eq!(keys.len(), self.len);
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys out of order");
        for chunk in &self.chunks {
            assert!(!chunk.is_empty() && chunk.len() <= CHUNK);
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

    /// A small deterministic generator (xorshift), so failures replay.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn keys_pack_into_twelve_bytes_in_order() {
        assert_eq!(std::mem::size_of::<PackedKey>(), 12);
        let keys = [(0, 0), (0, 1), (0, u64::from(u32::MAX)), (0, 1 << 32), (1, 0), (u32::MAX, u64::MAX)];
        for pair in keys.windows(2) {
            assert!(PackedKey::pack(pair[0]) < PackedKey::pack(pair[1]), "{pair:?}");
            assert_eq!(PackedKey::pack(pair[1]).unpack(), pair[1]);
        }
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
        assert_eq!(queue.first(), Some((1024, 1)));
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
