//! A histogram with fixed buckets over durations in nanoseconds: what the
//! engine keeps per tube (how long jobs waited ready, how long workers held
//! them) and the binlog keeps for its fsyncs. Plain counters, no atomics
//! and no allocation: observing is a search of a dozen bounds and two adds.

/// Upper bounds of the buckets of how long a job waited or was held, in
/// nanoseconds: 1 ms to 6 h, then everything above (`+Inf`).
pub const JOB_BOUNDS: [u64; 16] = [
    1_000_000,
    5_000_000,
    10_000_000,
    50_000_000,
    100_000_000,
    500_000_000,
    1_000_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
    60_000_000_000,
    300_000_000_000,
    900_000_000_000,
    3_600_000_000_000,
    21_600_000_000_000,
    u64::MAX,
];

/// Upper bounds of the buckets of how long an fsync took, in nanoseconds:
/// 100 µs to 2.5 s, then everything above.
pub const FSYNC_BOUNDS: [u64; 15] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    u64::MAX,
];

/// How long jobs waited or were held.
pub type JobHistogram = Histogram<16>;

/// How long fsyncs took.
pub type FsyncHistogram = Histogram<15>;

/// Counts of durations by bucket, and their sum. `N` bounds, the last of
/// which is `u64::MAX` (`+Inf`), so every duration has a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Histogram<const N: usize> {
    bounds: &'static [u64; N],
    /// Durations in each bucket (not cumulative).
    counts: [u64; N],
    /// Every duration observed, added up (u128: no overflow in practice).
    sum: u128,
}

impl Default for JobHistogram {
    fn default() -> Self {
        Histogram::new(&JOB_BOUNDS)
    }
}

impl Default for FsyncHistogram {
    fn default() -> Self {
        Histogram::new(&FSYNC_BOUNDS)
    }
}

impl<const N: usize> Histogram<N> {
    /// An empty histogram with these bounds (ascending, the last `u64::MAX`).
    pub fn new(bounds: &'static [u64; N]) -> Self {
        debug_assert!(bounds.is_sorted() && bounds.last() == Some(&u64::MAX));
        Histogram { bounds, counts: [0; N], sum: 0 }
    }

    /// Counts one duration.
    #[inline]
    pub fn observe(&mut self, nanos: u64) {
        let bucket = self.bounds.partition_point(|&bound| bound < nanos);
        self.counts[bucket] += 1;
        self.sum += u128::from(nanos);
    }

    /// Adds another histogram's counts (of the same bounds) to this one.
    pub fn merge(&mut self, other: &Self) {
        debug_assert!(std::ptr::eq(self.bounds, other.bounds));
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        self.sum += other.sum;
    }

    /// How many durations were counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Their sum, in seconds.
    pub fn sum_secs(&self) -> f64 {
        self.sum as f64 / 1e9
    }

    /// Each bucket's upper bound in seconds (`+Inf` last) and its count,
    /// not cumulative.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.bounds.iter().zip(self.counts).map(|(&bound, count)| {
            let upper = if bound == u64::MAX { f64::INFINITY } else { bound as f64 / 1e9 };
            (upper, count)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_counts_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        let mut h = JobHistogram::default();
        h.observe(0);
        h.observe(1_000_000);
        h.observe(1_000_001);
        h.observe(u64::MAX);
        let counts: Vec<u64> = h.buckets().map(|(_, c)| c).collect();
        assert_eq!(counts[0], 2, "0 and exactly 1 ms");
        assert_eq!(counts[1], 1, "just over 1 ms");
        assert_eq!(counts[15], 1, "+Inf");
        assert_eq!(h.count(), 4);
        assert_eq!(h.buckets().last().unwrap().0, f64::INFINITY);
        assert_eq!(h.buckets().next().unwrap().0, 0.001);
    }

    #[test]
    fn sums_and_merges() {
        let mut a = FsyncHistogram::default();
        a.observe(500_000_000);
        let mut b = FsyncHistogram::default();
        b.observe(1_500_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.sum_secs(), 2.0);
    }
}
