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

    /// Random inserts and removals, some in order and some not, against a
    /// `BTreeSet`; checks the order, the layout and the memory bounds.
    #[test]
    fn matches_an_ordered_set_under_random_changes() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut queue = ReadyQueue::default();
        let mut model = BTreeSet::new();
        let mut next_id = 1u64;
        for step in 0..200_000 {
            match rng.below(10) {
                // New jobs: mostly one priority, as in most queues.
                0..=3 => {
                    let pri = if rng.below(4) == 0 { rng.below(5) as u32 } else { 1024 };
                    queue.insert((pri, next_id));
                    model.insert((pri, next_id));
                    next_id += 1 + rng.below(3);
                }
                // A released or kicked job: an old id, any priority.
                4 => {
                    let key = (rng.below(2000) as u32, rng.below(next_id));
                    if model.insert(key) {
                        queue.insert(key);
                    }
                }
                // Reserve: the first job.
                5..=7 => {
                    let first = model.pop_first();
                    assert_eq!(queue.first(), first);
                    if let Some(key) = first {
                        assert!(queue.remove(key));
                    }
                }
                // Delete by id: any key, present or not.
                _ => {
                    let probe = (rng.below(1025) as u32, rng.below(next_id + 1));
                    let key = match model.range(probe..).next() {
                        Some(&key) if rng.below(4) > 0 => key,
                        _ => probe,
                    };
                    assert_eq!(queue.remove(key), model.remove(&key), "remove {key:?}");
                }
            }
            if step % 1000 == 0 {
                queue.check();
                assert!(queue.iter().eq(model.iter().copied()));
                assert_eq!(queue.first(), model.first().copied());
            }
        }
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
