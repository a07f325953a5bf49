//! `GET /status.json`: what the status page shows, as one JSON document
//! made from a scrape's [`Figures`] (one instant) and the [`RateHistory`].
//! The field names are a public interface (README's "Metrics" section
//! lists them): add fields, never rename or drop one.

use serde::Serialize;

use super::rates::{Counters, RateHistory, SAMPLE_INTERVAL, SAMPLES};
use crate::engine::SECOND;
use crate::metrics::{Figures, OTHER_TUBES, TubeFigures};

/// The whole document.
#[derive(Debug, Serialize)]
pub struct StatusDocument {
    /// sprout's own version (`stats` says the protocol's, `version`).
    pub sprout_version: &'static str,
    /// The beanstalkd version whose protocol sprout speaks (`stats`'s `version`).
    pub version: String,
    pub pid: u32,
    pub hostname: String,
    /// `stats`'s `id`: random per process start.
    pub id: String,
    pub uptime_secs: u64,
    /// In drain mode (SIGUSR1): puts are refused.
    pub draining: bool,
    pub connections: Connections,
    pub jobs: Jobs,
    /// Live tubes (`current-tubes`).
    pub tube_count: usize,
    /// How many tubes get rows of their own (`--metrics-tubes`).
    pub tube_cap: u64,
    /// The rates' sampling: one growth per `sample_interval_secs`, up to
    /// `samples_kept` of them.
    pub sample_interval_secs: u64,
    pub samples_kept: usize,
    /// Each interval's real length in milliseconds, oldest first; the
    /// rows' `puts` and `reserves` are the growths over the last of these.
    pub interval_ms: Vec<u32>,
    /// The tubes with figures of their own, in `list-tubes` order: at most
    /// [`MAX_ROWS`] of them, those with the most ready jobs.
    pub tubes: Vec<TubeRow>,
    /// Tubes with figures of their own left out of `tubes` (beyond
    /// [`MAX_ROWS`], those with the fewest ready jobs).
    pub tubes_not_shown: usize,
    /// Every other tube, added up (named `[other]`), if there are any.
    pub other: Option<TubeRow>,
}

/// The most tubes listed in `tubes`, whatever `--metrics-tubes` says: a
/// document (about 0.7 KiB a row with full rings) is made in the loop, so
/// its size is bounded (under 200 KiB, 0.3 ms with 10,000 tubes).
pub const MAX_ROWS: usize = 200;

/// `stats`'s connection counts.
#[derive(Debug, Serialize)]
pub struct Connections {
    pub current: u64,
    pub producers: u64,
    pub workers: u64,
    pub waiting: u64,
    pub total: u64,
}

/// `stats`'s job counts.
#[derive(Debug, Serialize)]
pub struct Jobs {
    pub urgent: u64,
    pub ready: u64,
    pub reserved: u64,
    pub delayed: u64,
    pub buried: u64,
    /// Jobs ever put (`total-jobs`).
    pub total: u64,
    /// Reservations whose TTR ran out (`job-timeouts`).
    pub timeouts: u64,
}

/// One tube's row (or the other tubes', added up).
#[derive(Debug, Serialize)]
pub struct TubeRow {
    pub name: String,
    /// For `[other]`: how many tubes it stands for; 1 otherwise.
    pub tubes: u64,
    pub ready: u64,
    pub urgent: u64,
    pub reserved: u64,
    pub delayed: u64,
    pub buried: u64,
    /// Connections waiting in a reserve that watch it.
    pub waiting: u64,
    /// Paused tubes (0 or 1 for a tube of its own).
    pub paused: u64,
    /// Seconds left of its pause (0 for `[other]`).
    pub pause_time_left: u64,
    pub total_jobs: u64,
    /// How long the job ready the longest has waited, in milliseconds
    /// (0 with no ready job).
    pub oldest_ready_age_ms: u64,
    /// Jobs put, and ready jobs reserved, in each of the last intervals
    /// (oldest first; fewer than `interval_ms` has for a tube sampled
    /// fewer times).
    pub puts: Vec<u32>,
    pub reserves: Vec<u32>,
}

/// The counters the rates are sampled from: a tube's, or the other
/// tubes' together (dropped tubes' included, so they never go down).
pub fn counters(tube: &TubeFigures) -> Counters {
    Counters { puts: tube.stats.total_jobs, reserves: tube.ready_wait.count() }
}

/// Every series to sample in `figures`: the tubes with figures of their
/// own, and `[other]` while some tube is counted there.
pub fn sampled(figures: &Figures) -> impl Iterator<Item = (&str, Counters)> {
    let other = (figures.other_tubes > 0).then_some(&figures.other);
    figures.tubes.iter().chain(other).map(|t| (t.stats.name.as_str(), counters(t)))
}

/// The `n` tubes with the most ready jobs (ties: the first listed), in
/// their order. O(tubes).
fn most_ready(tubes: &[TubeFigures], n: usize) -> impl Iterator<Item = &TubeFigures> {
    let mut keep: Vec<usize> = (0..tubes.len()).collect();
    if keep.len() > n {
        keep.select_nth_unstable_by_key(n, |&i| (std::cmp::Reverse(tubes[i].stats.ready), i));
        keep.truncate(n);
        keep.sort_unstable();
    }
    keep.into_iter().map(|i| &tubes[i])
}

impl StatusDocument {
    /// The document for `figures`, with the rates in `history`.
    pub fn new(figures: &Figures, history: &RateHistory) -> StatusDocument {
        let s = &figures.server;
        let row = |t: &TubeFigures, tubes: u64| {
            let growth = history.growth(&t.stats.name);
            TubeRow {
                name: t.stats.name.clone(),
                tubes,
                ready: t.stats.ready,
                urgent: t.stats.urgent,
                reserved: t.stats.reserved,
                delayed: t.stats.delayed,
                buried: t.stats.buried,
                waiting: t.stats.waiting,
                paused: t.paused,
                pause_time_left: t.stats.pause_time_left,
                total_jobs: t.stats.total_jobs,
                oldest_ready_age_ms: t.oldest_ready_age / 1_000_000,
                puts: growth.puts,
                reserves: growth.reserves,
            }
        };
        StatusDocument {
            sprout_version: env!("CARGO_PKG_VERSION"),
            version: s.version.clone(),
            pid: s.pid,
            hostname: s.hostname.clone(),
            id: s.instance_id.clone(),
            uptime_secs: s.uptime_secs,
            draining: s.draining,
            connections: Connections {
                current: s.connections,
                producers: s.producers,
                workers: s.workers,
                waiting: s.waiting,
                total: s.total_connections,
            },
            jobs: Jobs {
                urgent: s.urgent,
                ready: s.ready,
                reserved: s.reserved,
                delayed: s.delayed,
                buried: s.buried,
                total: s.total_jobs,
                timeouts: s.job_timeouts,
            },
            tube_count: s.tubes,
            tube_cap: figures.tube_cap,
            sample_interval_secs: SAMPLE_INTERVAL / SECOND,
            samples_kept: SAMPLES,
            interval_ms: history.interval_ms(),
            tubes: most_ready(&figures.tubes, MAX_ROWS).map(|t| row(t, 1)).collect(),
            tubes_not_shown: figures.tubes.len().saturating_sub(MAX_ROWS),
            other: (figures.other_tubes > 0).then(|| {
                debug_assert_eq!(figures.other.stats.name, OTHER_TUBES);
                row(&figures.other, figures.other_tubes)
            }),
        }
    }

    /// The document as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Plain structs of numbers and strings: serializing cannot fail.
        serde_json::to_vec(self).expect("a status document serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_tubes_with_the_most_ready_jobs_are_listed_in_their_order() {
        let tube = |name: &str, ready| {
            let mut t = TubeFigures::default();
            t.stats.name = name.to_string();
            t.stats.ready = ready;
            t
        };
        let tubes = [tube("a", 1), tube("b", 9), tube("c", 0), tube("d", 9), tube("e", 5)];
        let names = |n| most_ready(&tubes, n).map(|t| t.stats.name.as_str()).collect::<Vec<_>>();
        assert_eq!(names(3), ["b", "d", "e"]);
        assert_eq!(names(1), ["b"], "ties: the first listed");
        assert_eq!(names(9), ["a", "b", "c", "d", "e"]);
        let figures = Figures { tubes: tubes.to_vec(), ..Figures::default() };
        let doc = StatusDocument::new(&figures, &RateHistory::new());
        assert_eq!((doc.tubes.len(), doc.tubes_not_shown), (5, 0));
    }
}
