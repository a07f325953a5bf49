//! sprout: a drop-in replacement for beanstalkd 1.12.
//!
//! A map of the crate, from the wire inwards (each module opens with a map
//! of its own files):
//! - [`server`]: the single-threaded mio event loop, one behaviour a file:
//!   the turn (`event_loop`), accepting and closing connections, signals,
//!   driving a connection (read, decode, apply), the end of a turn (log,
//!   then reply), shutdown, the clock, the restore at start. It owns
//!   sockets and buffers and nothing else.
//! - [`protocol`]: the wire protocol with no I/O: the decoder turns bytes
//!   into [`protocol::Event`]s (framing: lines, put bodies, input thrown
//!   away), the parser reads a line, [`protocol::Command`] is the command
//!   set, [`protocol::Reply`] every answer, and the stats YAML.
//! - [`engine`]: every queue, job and reservation, driven by commands and an
//!   injected clock; no sockets, no clock, no files of its own. Its files
//!   are layered: leaves (ids, time), data structures, records and
//!   registries, then the `Engine`'s concerns.
//! - [`binlog`]: the write-ahead log (`-b DIR`): record format, files,
//!   group commit, room promised and prepared ahead, retiring files,
//!   compaction, recovery; taking over a directory beanstalkd wrote, and
//!   writing one back. Its format is specified in `docs/binlog-format.md`.
//! - [`metrics`]: what a scrape of `GET /metrics` reports (`--metrics`),
//!   as plain figures the engine, the binlog and the server fill in, and
//!   their encoding (Prometheus text or OpenMetrics, by `prometheus-client`);
//!   the HTTP side is the server's (`server/web.rs`, `server/http.rs`).
//! - [`status`]: the status page (`GET /` on the same listener), the JSON
//!   document it reads, and the fixed-size rings of each tube's put and
//!   reserve rates over the last minutes.
//! - [`idindex`]: values by job id (the engine's job records and extras, the
//!   replay's slots) in about the value's own size a job; [`idmap`]: the
//!   hash map keyed by job id it falls back on.
//! - [`settings`]: the settings the server runs with, as plain values;
//!   [`cli`]: the command line (beanstalkd's flags and defaults) that fills
//!   them in, and `sprout binlog ...`'s; the only module that knows `clap`.
//! - [`host`]: facts about the process and machine for `stats`
//!   ([`host::HostInfo`]), and the open-files limit.
//! - [`timerfd`]: a timer on `CLOCK_MONOTONIC` that fires to the nanosecond
//!   (the server's deadline timer; the benchmarks use it too).
//!
//! The binary (`main.rs`) is thin: flags to [`settings::Config`], logging,
//! listen, drop privileges, open the binlog, [`server::run`]; or, when its
//! first argument is `binlog`, the binlog tool ([`cli::binlog::run`]).

pub mod binlog;
pub mod cli;
pub mod engine;
pub mod host;
pub mod idindex;
pub mod idmap;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod settings;
pub mod status;
pub mod timerfd;
