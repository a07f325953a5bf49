//! Put and reserve rates over the last minutes, for the status page's
//! charts: every [`SAMPLE_INTERVAL`] the server samples each tube's put
//! and reserve counters, and [`RateHistory`] keeps, per tube, how much each
//! counter grew in each of the last [`SAMPLES`] intervals, in fixed-size
//! rings (nothing is allocated per sample).
//!
//! Bounded with many tubes: only the series the server samples exist,
//! which are the tubes with figures of their own (`--metrics-tubes`) and
//! `[other]`; a series missing from a sample is dropped at once. Each
//! costs [`BYTES_PER_SERIES`] plus its name.

use std::collections::HashMap;

use crate::engine::{Nanos, SECOND};

/// How often the counters are sampled.
pub const SAMPLE_INTERVAL: Nanos = 5 * SECOND;

/// How many intervals are kept: with [`SAMPLE_INTERVAL`], ten minutes.
pub const SAMPLES: usize = 120;

/// What one series costs in memory, its name and the map's entry aside:
/// two rings of `u32` growths and the counters at the last sample.
pub const BYTES_PER_SERIES: usize = std::mem::size_of::<Series>();

/// A tube's counters at a sample, as `stats-tube` and the meter count
/// them: both only grow while the tube lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Jobs put into it (`total-jobs`).
    pub puts: u64,
    /// Ready jobs reserved from it.
    pub reserves: u64,
}

/// One series: how much each counter grew per interval, in rings indexed
/// like [`RateHistory::interval_ms`].
#[derive(Debug)]
struct Series {
    /// The counters at the last sample.
    last: Counters,
    puts: [u32; SAMPLES],
    reserves: [u32; SAMPLES],
    /// How many of the latest intervals it was sampled for (a new series
    /// has none until its second sample).
    len: usize,
    /// The sample that last saw it.
    seen: u64,
}

/// One series' growths, oldest first, for the last `len` intervals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Growth {
    pub puts: Vec<u32>,
    pub reserves: Vec<u32>,
}

/// The rings of every series (see the module docs).
#[derive(Debug, Default)]
pub struct RateHistory {
    series: HashMap<String, Box<Series>>,
    /// Each interval's length in milliseconds (the loop may sample late).
    interval_ms: Vec<u32>,
    /// Where the next interval goes in every ring.
    head: usize,
    /// How many intervals the rings hold (up to [`SAMPLES`]).
    len: usize,
    /// When the last sample was taken, and its number.
    last_at: Option<Nanos>,
    samples: u64,
}

impl RateHistory {
    /// Empty: the first sample only notes the counters.
    pub fn new() -> RateHistory {
        RateHistory { interval_ms: vec![0; SAMPLES], ..RateHistory::default() }
    }

    /// Takes a sample at `now` of every series' counters. Series not in
    /// `counters` are dropped; new ones start with no interval.
    pub fn sample<'a>(&mut self, now: Nanos, counters: impl IntoIterator<Item = (&'a str, Counters)>) {
        self.samples += 1;
        let (head, seen) = (self.head, self.samples);
        let interval = self.last_at.map(|at| now.saturating_sub(at));
        for (name, c) in counters {
            let series = match self.series.get_mut(name) {
                Some(series) => series,
                None => {
                    let new = Box::new(Series { last: c, puts: [0; SAMPLES], reserves: [0; SAMPLES], len: 0, seen });
                    self.series.insert(name.to_string(), new);
                    continue;
                }
            };
            if interval.is_some() {
                // A tube dropped and made again between two samples starts
                // its counters over: that interval counts as no growth.
                let grown = |now: u64, then: u64| u32::try_from(now.saturating_sub(then)).unwrap_or(u32::MAX);
                series.puts[head] = grown(c.puts, series.last.puts);
                series.reserves[head] = grown(c.reserves, series.last.reserves);
                series.len = (series.len + 1).min(SAMPLES);
            }
            series.last = c;
            series.seen = seen;
        }
        self.series.retain(|_, series| series.seen == seen);
        if let Some(interval) = interval {
            self.interval_ms[head] = u32::try_from(interval / 1_000_000).unwrap_or(u32::MAX);
            self.head = (head + 1) % SAMPLES;
            self.len = (self.len + 1).min(SAMPLES);
        }
        self.last_at = Some(now);
    }

    /// When the next sample is due.
    pub fn next_sample_at(&self, start: Nanos) -> Nanos {
        self.last_at.map_or(start, |at| at + SAMPLE_INTERVAL)
    }

    /// The intervals' lengths in milliseconds, oldest first: the last one
    /// ended at the last sample.
    pub fn interval_ms(&self) -> Vec<u32> {
        self.latest(&self.interval_ms, self.len)
    }

    /// A series' growths for the intervals it was sampled over (its last
    /// `len`), oldest first; empty for an unknown name.
    pub fn growth(&self, name: &str) -> Growth {
        match self.series.get(name) {
            Some(s) => Growth { puts: self.latest(&s.puts, s.len), reserves: self.latest(&s.reserves, s.len) },
            None => Growth::default(),
        }
    }

    /// How many series there are.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// The last `n` entries of `ring`, oldest first.
    fn latest(&self, ring: &[u32], n: usize) -> Vec<u32> {
        (0..n).map(|i| ring[(self.head + SAMPLES - n + i) % SAMPLES]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(puts: u64, reserves: u64) -> Counters {
        Counters { puts, reserves }
    }

    #[test]
    fn growth_per_interval_oldest_first_and_a_new_series_joins_late() {
        let mut h = RateHistory::new();
        h.sample(0, [("a", c(10, 0))]);
        assert_eq!(h.interval_ms(), Vec::<u32>::new());
        assert_eq!(h.growth("a"), Growth::default(), "one sample, no interval yet");
        h.sample(5 * SECOND, [("a", c(15, 2))]);
        h.sample(10 * SECOND + 250_000_000, [("a", c(15, 9)), ("b", c(7, 7))]);
        assert_eq!(h.interval_ms(), vec![5000, 5250]);
        assert_eq!(h.growth("a"), Growth { puts: vec![5, 0], reserves: vec![2, 7] });
        assert_eq!(h.growth("b"), Growth::default());
        h.sample(15 * SECOND, [("a", c(16, 9)), ("b", c(8, 10))]);
        assert_eq!(h.growth("b"), Growth { puts: vec![1], reserves: vec![3] });
        assert_eq!(h.growth("a").puts, vec![5, 0, 1]);
    }

    #[test]
    fn the_rings_keep_the_last_samples_and_drop_unsampled_series() {
        let mut h = RateHistory::new();
        for i in 0..=(SAMPLES as u64 + 30) {
            h.sample(i * SAMPLE_INTERVAL, [("a", c(i * i, i)), ("gone", c(0, 0))]);
        }
        let puts = h.growth("a").puts;
        assert_eq!(puts.len(), SAMPLES);
        // Interval i ends at sample i, growth i^2 - (i-1)^2 = 2i - 1.
        let first = 31u32;
        assert_eq!(puts.first(), Some(&(2 * first - 1)));
        assert_eq!(puts.last(), Some(&(2 * (SAMPLES as u32 + 30) - 1)));
        assert_eq!(h.interval_ms(), vec![5000; SAMPLES]);
        h.sample(1000 * SECOND, [("a", c(0, 0))]);
        assert_eq!(h.series_count(), 1, "a series missing from a sample is dropped");
        assert_eq!(h.growth("a").puts.last(), Some(&0), "counters that went back count as no growth");
    }

    #[test]
    fn a_series_takes_about_a_kibibyte() {
        // Two rings of 120 u32s, the last counters, the length and mark.
        assert_eq!(BYTES_PER_SERIES, 2 * SAMPLES * 4 + 16 + 8 + 8);
    }
}
