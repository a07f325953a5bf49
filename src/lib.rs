//! sprout: a drop-in replacement for beanstalkd 1.12.
//!
//! A map of the crate:
//! - [`protocol`]: the wire protocol with no I/O: framing, the command
//!   grammar, replies and the stats YAML.
//! - [`engine`]: every queue, job and reservation, driven by commands and an
//!   injected clock; no sockets, no clock of its own.
//! - [`server`]: the single-threaded mio event loop that owns sockets and
//!   buffers and nothing else.
//! - [`binlog`]: the write-ahead log (`-b DIR`): record format, files,
//!   recovery, compaction, group commit.
//! - [`idindex`]: job id to slot in about four bytes a job (engine and
//!   recovery); [`idmap`]: the hash map keyed by job id it falls back on.
//! - [`settings`]: the settings the server runs with, as plain values;
//!   [`cli`]: the command line (beanstalkd's flags and defaults) that fills
//!   them in.
//! - [`host`]: facts about the process and machine for `stats`.
//! - [`timerfd`]: a timer on `CLOCK_MONOTONIC` that fires to the nanosecond
//!   (the server's deadline timer; the benchmarks use it too).

pub mod binlog;
pub mod cli;
pub mod engine;
pub mod host;
pub mod idindex;
pub mod idmap;
pub mod protocol;
pub mod server;
pub mod settings;
pub mod timerfd;
