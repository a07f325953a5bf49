//! The settings the server runs with: plain values, with no knowledge of how
//! they were given (flags today, perhaps a file tomorrow). The binlog and the
//! server read these; [`crate::cli`] fills them in from the command line.

use std::path::PathBuf;

/// Default `-s`: the size of each binlog file.
pub const DEFAULT_BINLOG_SIZE: u64 = 10_485_760;

/// Default `-f`: fsync at most every 50 ms.
pub const DEFAULT_FSYNC_MS: u64 = 50;

/// Default `-p`: beanstalkd's port.
pub const DEFAULT_PORT: u16 = 11300;

/// Where to listen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// A host name or address, resolved with the port.
    Tcp { host: String, port: u16 },
    /// `-l unix:PATH`.
    Unix(PathBuf),
}

/// How the binlog syncs to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `-F`.
    Never,
    /// `-f MS`: at most once every MS milliseconds; 0 syncs every change.
    Every { ms: u64 },
}

/// The settings the server runs with, after defaults and clamping.
#[derive(Clone, Debug)]
pub struct Config {
    /// `-l` and `-p` (ignored under socket activation).
    pub listen: ListenAddr,
    /// `-z`, at most [`crate::protocol::MAX_JOB_SIZE_LIMIT`].
    pub max_job_size: u32,
    /// `-b`: no binlog without it.
    pub binlog_dir: Option<PathBuf>,
    /// `-s`, as given (the binlog rounds it up to a multiple of 4096).
    pub binlog_size: u64,
    /// `-f` and `-F`.
    pub fsync: FsyncPolicy,
    /// `--skip-damaged-records`.
    pub skip_damaged_records: bool,
    /// `-u`.
    pub user: Option<String>,
    /// `-V`, counted.
    pub verbose: u8,
    /// `--metrics ADDR:PORT`: where to answer `GET /metrics` (metrics are
    /// off without it, unless systemd passes a socket named `metrics`).
    pub metrics: Option<ListenAddr>,
    /// `--metrics-tubes`: the most tubes with series of their own.
    pub metrics_tubes: usize,
}
