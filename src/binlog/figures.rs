//! What the log reports for the metrics (`--metrics` with `-b`).

use super::Binlog;
use super::inspect::Space;
use super::record::HEADER_LEN;
use crate::metrics::BinlogFigures;

impl Binlog {
    /// The log's figures now: what it wrote and synced, its files, what
    /// compaction could give back (counted as `sprout binlog inspect`
    /// counts it: the files, less one header and the live records, less
    /// one file of room kept ahead), and whether the disk refused.
    pub fn figures(&self) -> BinlogFigures {
        let disk_bytes = self.disk_bytes();
        let space = Space::new(disk_bytes, HEADER_LEN as u64 + self.live_bytes, self.file_size);
        BinlogFigures {
            written_bytes: self.written_bytes,
            fsync: self.fsync_times.histogram(),
            files: self.segments.len() as u64,
            disk_bytes,
            live_bytes: self.live_bytes,
            reclaimable_bytes: space.reclaimable_bytes,
            write_failed: self.failed || self.syncer.as_ref().is_some_and(|s| s.failed()),
            allocation_failed: self.preparation.has_failed(),
            refused: self.refused,
        }
    }
}
