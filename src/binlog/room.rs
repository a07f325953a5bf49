//! Space reservation: a change is logged only where room was promised, and
//! room is allocated as whole files, so a full disk refuses a change instead
//! of failing in the middle of a write.

use std::io;

use super::record::{HEADER_LEN, Header, Record};
use super::segment::Segment;
use super::{Binlog, DELETE_LEN, FsyncPolicy};

impl Binlog {
    fn current(&mut self) -> &mut Segment {
        &mut self.segments[self.current]
    }

    /// Allocated, unwritten bytes from the current file on.
    fn room(&self) -> u64 {
        self.segments.iter().skip(self.current).map(Segment::remaining).sum()
    }

    /// Makes sure `need` more bytes fit on top of what is promised, counting
    /// the end of the current file that a record too big for it would skip.
    /// Allocates files as needed; `false` if the disk cannot give them.
    pub(super) fn ensure_room(&mut self, need: u64) -> bool {
        if self.failed {
            return false;
        }
        loop {
            let skipped = if self.segments[self.current].remaining() >= need {
                0
            } else {
                self.segments[self.current].remaining()
            };
            // One delete's worth per file for the ends of files that deletes
            // cannot fill.
            let slack = DELETE_LEN * (self.segments.len() - self.current) as u64;
            let largest_free = self.segments.iter().skip(self.current).map(Segment::remaining).max().unwrap_or(0);
            if self.room() >= self.reserved + need + skipped + slack && largest_free >= need {
                return true;
            }
            if let Err(e) = self.add_segment(need) {
                log::warn!("binlog: cannot allocate a new file in {}: {e}", self.dir.display());
                return false;
            }
        }
    }

    pub(super) fn add_segment(&mut self, min_record: u64) -> io::Result<()> {
        let seq = self.segments.back().map_or(1, |s| s.seq + 1);
        let capacity = self.file_size.max(HEADER_LEN as u64 + min_record).next_multiple_of(4096);
        let durable = self.fsync != FsyncPolicy::Never;
        let segment = Segment::create(&self.dir, Header { seq, next_id: self.next_id }, capacity, durable)?;
        self.segments.push_back(segment);
        Ok(())
    }

    /// Queues a record in the first file, from the current one on, that has
    /// room for it (room was ensured). Returns that file's seq.
    pub(super) fn append(&mut self, record: &Record<impl AsRef<[u8]>>) -> u64 {
        let len = record.encoded_len() as u64;
        while self.segments[self.current].remaining() < len {
            assert!(self.current + 1 < self.segments.len(), "binlog room was not ensured");
            self.current += 1;
        }
        self.current().append(record);
        self.records_written += 1;
        self.segments[self.current].seq
    }

    /// Total bytes the log occupies on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.capacity).sum()
    }
}
