//! Metrics (`--metrics ADDR:PORT`): what a scrape of `GET /metrics`
//! reports, and its encoding. Nothing here touches a socket or a clock:
//! the engine, the binlog and the server fill in [`Figures`] for one
//! instant, and [`encode`] writes them in the Prometheus text format or
//! OpenMetrics. The HTTP side is the server's (`server/http.rs`).
//!
//! A map of the module, one concept a file:
//! - `histogram.rs`: [`Histogram`], fixed buckets over durations in
//!   nanoseconds, the bounds of job times and of fsyncs.
//! - `figures.rs`: [`Figures`], the plain values of one scrape, and
//!   [`OTHER_TUBES`], the label of the tubes beyond the cap.
//! - `encode.rs`: every metric's name, type, help and labels, written with
//!   the `prometheus-client` crate; [`Format`], chosen from `Accept`.
//!
//! The cardinality of the tube label is bounded: the first
//! `--metrics-tubes` tubes (default [`DEFAULT_TUBE_CAP`]) to be created get
//! series of their own and keep them for their life; every other tube is
//! counted in the series labelled `tube="[other]"` (gauges added up, the
//! oldest ready job the oldest of them all, counters and histograms
//! together, dropped tubes' counts kept). A tube dropped frees its place
//! for the next tube created. See the engine's `meter.rs`.

mod encode;
mod figures;
mod histogram;

pub use encode::{Format, encode};
pub use figures::{BinlogFigures, Figures, OTHER_TUBES, TubeFigures};
pub use histogram::{FSYNC_BOUNDS, FsyncHistogram, Histogram, JOB_BOUNDS, JobHistogram};

/// Default `--metrics-tubes`: tubes with series of their own. About 50
/// series a tube (histograms included), so 5,000 series at most from
/// tubes, a modest target for a Prometheus server.
pub const DEFAULT_TUBE_CAP: usize = 100;
