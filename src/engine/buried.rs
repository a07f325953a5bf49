//! A tube's buried jobs in burial order, packed.
//!
//! A queue may hold a million buried jobs, so what each costs here matters.
//! A `BTreeSet<(Nanos, JobId)>` ordered by burial time cost about 30 bytes a
//! job (16-byte keys, nodes that appends leave a third empty). Burial times
//! only grow (the engine keeps them strictly increasing), so a bury always
//! appends at the tail, a kick takes from the head, and only a delete, a
//! kick-job or a reserve-job of a buried job takes one out of the middle.
//! So the jobs sit in burial order in chunks of up to [`CHUNK`], each job
//! written down as its id's 4-byte offset from the chunk's first id (a job
//! buried far from the others' ids starts a chunk of its own): about 4.2
//! bytes a job.
//!
//! The burial time itself is not kept here: the engine keeps it with the
//! job (it is logged, so that a restart brings buried jobs back in this
//! order). Each chunk keeps only a lower bound of its jobs' burial times,
//! which is all that finding a job in the middle needs: a binary search over
//! the chunks by burial time, then a scan of one chunk for the id.
//!
//! Every operation is O(log n + CHUNK). Chunks that get too empty are merged
//! with a neighbour and give spare capacity back (as the ready queue's do),
//! so removals cannot leave memory behind.

use std::collections::VecDeque;

use super::chunked;
use super::ids::JobId;
use super::time::Nanos;

/// The most jobs a chunk holds: a scan or shift of 256 offsets takes about
/// as long as a cache miss or two. A power of two, like every capacity this
/// module picks, so a growing chunk's capacity lands on it exactly.
const CHUNK: usize = 256;

/// Jobs buried one after another, their ids as offsets from `base`.
#[derive(Debug)]
struct Chunk {
    /// No job here was buried before this time, and every job in the next
    /// chunk was buried at or after the next chunk's `since`.
    since: Nanos,
    /// The id the offsets are from: the first job buried into the chunk.
    base: JobId,
    offsets: VecDeque<i32>,
}

impl chunked::Chunk for Chunk {
    fn len(&self) -> usize {
        Chunk::len(self)
    }

    fn capacity(&self) -> usize {
        self.offsets.capacity()
    }

    fn shrink_to(&mut self, capacity: usize) {
        self.offsets.shrink_to(capacity);
    }
}

impl Chunk {
    fn new(since: Nanos, base: JobId) -> Chunk {
        Chunk { since, base, offsets: VecDeque::from([0]) }
    }

    /// `id` as an offset from the chunk's base, if it fits in 32 bits.
    fn offset(&self, id: JobId) -> Option<i32> {
        i32::try_from(i128::from(id) - i128::from(self.base)).ok()
    }

    fn id(&self, offset: i32) -> JobId {
        self.base.wrapping_add_signed(offset.into())
    }

    fn len(&self) -> usize {
        self.offsets.len()
    }

    fn ids(&self) -> impl Iterator<Item = JobId> + '_ {
        self.offsets.iter().map(|&offset| self.id(offset))
    }

    /// Appends `ids` (buried after this chunk's jobs), if every one fits
    /// the chunk's base.
    fn try_extend(&mut self, ids: &[JobId]) -> bool {
        let Some(offsets) = ids.iter().map(|&id| self.offset(id)).collect::<Option<Vec<i32>>>() else {
            return false;
        };
        self.offsets.extend(offsets);
        true
    }
}

/// A tube's buried jobs, oldest burial first (see the module docs).
#[derive(Debug, Default)]
pub struct BuriedJobs {
    chunks: VecDeque<Chunk>,
    len: usize,
}

impl BuriedJobs {
    /// How many jobs are buried.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no job is buried.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The job buried longest ago: the next to kick.
    pub fn first(&self) -> Option<JobId> {
        self.chunks.front().map(|chunk| chunk.id(chunk.offsets[0]))
    }

    /// Adds a job buried at `buried_at`, which must be later than the
    /// burial of every job already here.
    pub fn push(&mut self, buried_at: Nanos, id: JobId) {
        self.len += 1;
        if let Some(last) = self.chunks.back_mut() {
            debug_assert!(last.since < buried_at, "burial times must grow");
            if last.len() < CHUNK
                && let Some(offset) = last.offset(id)
            {
                last.offsets.push_back(offset);
                return;
            }
        }
        self.chunks.push_back(Chunk::new(buried_at, id));
    }

    /// Removes the job buried at `buried_at`; `false` if it is not here.
    /// The time must be the job's burial time: it says which chunk to look
    /// in, and only that chunk is searched for the id.
    pub fn remove(&mut self, buried_at: Nanos, id: JobId) -> bool {
        let Some(at) = self.chunks.partition_point(|chunk| chunk.since <= buried_at).checked_sub(1) else {
            return false;
        };
        let chunk = &mut self.chunks[at];
        let Some(pos) = chunk.offset(id).and_then(|offset| chunk.offsets.iter().position(|&o| o == offset)) else {
            return false;
        };
        chunk.offsets.remove(pos);
        self.len -= 1;
        self.tidy(at);
        true
    }

    /// Keeps chunk `at` from holding on to memory after a removal (the
    /// rules are [`chunked::tidy`]'s). A small chunk joins a neighbour only
    /// if its ids fit the neighbour's base.
    fn tidy(&mut self, at: usize) {
        chunked::tidy(&mut self.chunks, at, CHUNK / 4, |chunks, at| {
            let next: Vec<JobId> = chunks[at + 1].ids().collect();
            let chunk = &mut chunks[at];
            if !chunk.try_extend(&next) {
                return false;
            }
            // Merged chunks hold at most CHUNK / 4 jobs: room for twice that.
            chunk.offsets.shrink_to((2 * chunk.len()).next_power_of_two());
            chunks.remove(at + 1);
            true
        });
    }

    /// Every buried job, oldest burial first.
    pub fn iter(&self) -> impl Iterator<Item = JobId> + '_ {
        self.chunks.iter().flat_map(Chunk::ids)
    }

    /// Every job with the range of burial times it is filed under (its
    /// chunk's: from the chunk's `since` up to, not including, the next
    /// chunk's), in burial order: for the engine's invariant check, which
    /// knows the jobs' burial times. A removal finds a job only if its
    /// burial time is in that range.
    pub fn filed(&self) -> impl Iterator<Item = (std::ops::Range<Nanos>, JobId)> + '_ {
        self.chunks.iter().enumerate().flat_map(|(i, chunk)| {
            let until = self.chunks.get(i + 1).map_or(Nanos::MAX, |next| next.since);
            chunk.ids().map(move |id| (chunk.since..until, id))
        })
    }

    /// Checks the layout the operations rely on: chunks neither empty nor
    /// over-full, their lower bounds increasing, and the tidy rules.
    pub fn check(&self) {
        assert_eq!(self.iter().count(), self.len, "buried count");
        for chunk in &self.chunks {
            assert!(chunk.len() > 0 && chunk.len() <= CHUNK, "a chunk of {} jobs", chunk.len());
            let capacity = chunk.offsets.capacity();
            assert!(capacity < 4 * chunk.len() || capacity <= 4, "{} jobs in room for {capacity}", chunk.len());
        }
        let chunks: Vec<&Chunk> = self.chunks.iter().collect();
        for pair in chunks.windows(2) {
            assert!(pair[0].since < pair[1].since, "chunks out of burial order");
        }
    }

    /// Bytes on the heap, spare room included (tests only).
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Chunk>()
            + self.chunks.iter().map(|c| c.offsets.capacity() * 4).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::engine::tests::rng::Rng;

    /// The model: burial time to id.
    type Model = BTreeMap<Nanos, JobId>;

    fn check_against(buried: &BuriedJobs, model: &Model) {
        buried.check();
        assert_eq!(buried.iter().collect::<Vec<_>>(), model.values().copied().collect::<Vec<_>>());
        assert_eq!(buried.len(), model.len());
        assert_eq!(buried.first(), model.values().next().copied());
        // Every job is filed under a range that holds its burial time.
        for ((range, id), (&at, &model_id)) in buried.filed().zip(model) {
            assert_eq!(id, model_id);
            assert!(range.contains(&at), "job {id} buried at {at} filed under {range:?}");
        }
    }

    #[test]
    fn kicks_come_out_in_burial_order_not_id_order() {
        let mut buried = BuriedJobs::default();
        let mut model = Model::new();
        // Batches of ids buried in reverse, as a worker burying what it
        // reserved last first would.
        for (t, id) in (0..10u64).flat_map(|b| (b * 100..b * 100 + 100).rev()).enumerate() {
            buried.push(t as Nanos + 1, id + 1);
            model.insert(t as Nanos + 1, id + 1);
        }
        check_against(&buried, &model);
        while let Some(id) = buried.first() {
            let (&at, &expected) = model.iter().next().unwrap();
            assert_eq!(id, expected);
            assert!(buried.remove(at, id));
            model.remove(&at);
            check_against(&buried, &model);
        }
        assert!(buried.is_empty());
    }

    #[test]
    fn removal_from_the_middle_keeps_the_order_of_the_rest() {
        let mut buried = BuriedJobs::default();
        let mut model = Model::new();
        for id in 1..=1000u64 {
            buried.push(id * 10, id);
            model.insert(id * 10, id);
        }
        for id in (3..=1000u64).step_by(7) {
            assert!(buried.remove(id * 10, id), "job {id}");
            model.remove(&(id * 10));
            check_against(&buried, &model);
        }
        assert!(!buried.remove(30, 3), "removed already");
        assert!(!buried.remove(5, 1), "before every chunk");
        check_against(&buried, &model);
    }

    #[test]
    fn a_kicked_job_buried_again_goes_to_the_tail() {
        let mut buried = BuriedJobs::default();
        for id in 1..=600u64 {
            buried.push(id, id);
        }
        // kick-job of job 300, then its burial again, later than all.
        assert!(buried.remove(300, 300));
        buried.push(601, 300);
        assert!(!buried.remove(300, 300), "its old burial is gone");
        let order: Vec<JobId> = buried.iter().collect();
        assert_eq!(order.len(), 600);
        assert_eq!(order.last(), Some(&300));
        assert_eq!(order.iter().filter(|&&id| id == 300).count(), 1);
        assert!(buried.remove(601, 300));
        buried.check();
    }

    #[test]
    fn ids_far_apart_start_chunks_of_their_own() {
        let mut buried = BuriedJobs::default();
        let mut model = Model::new();
        let ids = [5u64, 1 << 40, 6, u64::MAX >> 1, 7, 1 << 40 | 1, 8];
        for (t, &id) in ids.iter().enumerate() {
            buried.push(t as Nanos + 1, id);
            model.insert(t as Nanos + 1, id);
        }
        check_against(&buried, &model);
        for (t, &id) in ids.iter().enumerate().rev().step_by(2) {
            assert!(buried.remove(t as Nanos + 1, id));
            model.remove(&(t as Nanos + 1));
            check_against(&buried, &model);
        }
    }

    #[test]
    fn a_million_buried_jobs_keep_their_order_in_about_4_bytes_each() {
        let n = 1_000_000u64;
        let mut buried = BuriedJobs::default();
        let order: Vec<JobId> = (0..n / 1000).flat_map(|b| (b * 1000 + 1..=b * 1000 + 1000).rev()).collect();
        for (t, &id) in order.iter().enumerate() {
            buried.push(t as Nanos + 1, id);
        }
        let bytes = buried.heap_bytes() as f64 / n as f64;
        assert!(bytes < 4.5, "{bytes:.2} bytes a job");
        assert!(buried.iter().eq(order.iter().copied()));
        // Take one job in three from the middle, then kick the rest.
        for (t, &id) in order.iter().enumerate().step_by(3) {
            assert!(buried.remove(t as Nanos + 1, id));
        }
        buried.check();
        let left: Vec<JobId> = order.iter().enumerate().filter(|(t, _)| t % 3 != 0).map(|(_, &id)| id).collect();
        assert!(buried.iter().eq(left.iter().copied()));
        assert!(buried.heap_bytes() < 5 * 4 * left.len(), "memory given back as jobs leave");
    }

    #[test]
    fn random_buries_and_removals_behave_like_a_sorted_map() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut buried = BuriedJobs::default();
        let mut model = Model::new();
        let (mut now, mut next_id) = (0, 1u64);
        for step in 0..20_000 {
            now += 1 + rng.below(3);
            if model.is_empty() || rng.below(5) < 3 {
                // Mostly new ids, now and then one far away or an old one.
                let id = match rng.below(20) {
                    0 => next_id + (1 << 33),
                    1 => 1 + rng.below(next_id),
                    _ => next_id,
                };
                next_id += 1;
                if model.values().any(|&other| other == id) {
                    continue;
                }
                buried.push(now, id);
                model.insert(now, id);
            } else {
                let at = *model.keys().nth(rng.index(model.len())).unwrap();
                let id = model.remove(&at).unwrap();
                assert!(buried.remove(at, id), "step {step}: job {id}");
            }
            if step % 97 == 0 {
                check_against(&buried, &model);
            }
        }
        check_against(&buried, &model);
    }
}
