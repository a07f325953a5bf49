//! What one scrape reports, as plain values: filled in by the engine (its
//! `stats` figures, and per tube what it measured), the binlog and the
//! server, then encoded (encode.rs). Taken at one instant, in one turn of
//! the event loop, so the figures agree with each other and with a `stats`
//! answered in that turn.

use super::histogram::{FsyncHistogram, JobHistogram};
use crate::protocol::yaml::{ServerStats, TubeStats};

/// The `tube` label of the series that stand for every tube without series
/// of its own. Brackets cannot occur in a tube name, so it names no tube.
pub const OTHER_TUBES: &str = "[other]";

/// Everything one scrape reports.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Every figure `stats` reports, for the same instant.
    pub server: ServerStats,
    /// The tubes with series of their own, in `list-tubes` order.
    pub tubes: Vec<TubeFigures>,
    /// The other tubes, added up (named [`OTHER_TUBES`]); all zero when
    /// every tube has series of its own.
    pub other: TubeFigures,
    /// How many live tubes are in `other`.
    pub other_tubes: u64,
    /// The most tubes that get series of their own (`--metrics-tubes`).
    pub tube_cap: u64,
    /// The binlog's figures, with `-b`.
    pub binlog: Option<BinlogFigures>,
}

/// One tube's figures (or the other tubes', added up).
#[derive(Clone, Debug, Default)]
pub struct TubeFigures {
    /// What `stats-tube` reports (for the other tubes: gauges and counters
    /// added up, counters including those of other tubes since dropped).
    pub stats: TubeStats,
    /// Whether it is paused (for the other tubes: how many are).
    pub paused: u64,
    /// How long the job that has been ready the longest has been waiting,
    /// in nanoseconds (0 with no ready job; for the other tubes, the
    /// oldest of them all).
    pub oldest_ready_age: u64,
    /// How long jobs were ready before a reserve took them.
    pub ready_wait: JobHistogram,
    /// How long workers held jobs before deleting, releasing or burying
    /// them (from the reserve, touches notwithstanding).
    pub hold: JobHistogram,
    /// Reservations that ran out of time (TTR) in this tube.
    pub ttr_expiries: u64,
    /// `DEADLINE_SOON` answers about a job of this tube (the holder's job
    /// whose TTR ends first).
    pub deadline_soon: u64,
}

/// The write-ahead log's figures (`-b`).
#[derive(Clone, Debug, Default)]
pub struct BinlogFigures {
    /// Bytes of records written since the start.
    pub written_bytes: u64,
    /// fsyncs of a binlog file since the start, and how long each took.
    pub fsync: FsyncHistogram,
    /// `binlog.N` files, spare ones included.
    pub files: u64,
    /// Bytes those files take (allocated whole).
    pub disk_bytes: u64,
    /// Bytes of the live jobs' full records.
    pub live_bytes: u64,
    /// What compaction could give back, about: the files' bytes less one
    /// header and the live records, and one file of room kept ahead (as
    /// `sprout binlog inspect` counts it).
    pub reclaimable_bytes: u64,
    /// Whether a write or an fsync failed: the log then refuses every
    /// change until a restart.
    pub write_failed: bool,
    /// Whether the last attempt to allocate a file failed (a full disk):
    /// changes are refused once the allocated room is used.
    pub allocation_failed: bool,
    /// Changes refused for want of room on disk (`OUT_OF_MEMORY` to a put).
    pub refused: u64,
}
