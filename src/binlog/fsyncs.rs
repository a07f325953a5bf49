//! How long fsyncs take: every fsync of a binlog file, in the loop (`-f 0`,
//! shutdown) or on the sync thread (`-f MS`), is timed into one histogram
//! both share, for the metrics (`sprout_binlog_fsync_seconds`). A lock
//! taken once per fsync, which itself takes far longer.

use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::metrics::FsyncHistogram;

/// The fsync times of one log, shared with its sync thread.
#[derive(Clone, Debug, Default)]
pub struct FsyncTimes(Arc<Mutex<FsyncHistogram>>);

impl FsyncTimes {
    /// `fsync`s (data only, as every binlog sync) `file`, timing it.
    pub fn sync(&self, file: &File) -> io::Result<()> {
        let started = Instant::now();
        let result = file.sync_data();
        let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).observe(took);
        result
    }

    /// The times so far.
    pub fn histogram(&self) -> FsyncHistogram {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
