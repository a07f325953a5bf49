//! Compaction: when the log grows past twice the live data, the jobs left
//! in the oldest file are rewritten at the head, a batch a turn, so that
//! file can go.

use super::Binlog;
use super::convert::full_job;
use super::record;
use crate::engine::{JobId, JobView, JournalTag};

/// Most jobs considered for migration per turn of the event loop, so
/// compaction never stalls the server for long.
const MIGRATION_BATCH_JOBS: usize = 4096;

/// The jobs whose full records are in the file being emptied, read back
/// from it when compaction starts on it (so no per-job list is kept for
/// every file), and how far compaction got.
#[derive(Debug)]
pub(super) struct Migration {
    seq: u64,
    ids: Vec<JobId>,
    next: usize,
}

impl Binlog {
    /// True when the log is more than twice the live data (plus two files,
    /// and the file of room prepared ahead) and the oldest file, not the
    /// one being written, still holds live jobs to move forward. While it
    /// is, the server keeps turning (every few milliseconds when idle), and
    /// each turn's `Engine::maintain_journal` moves a batch of jobs.
    pub fn wants_compaction(&self) -> bool {
        if self.current == 0 || self.failed {
            return false;
        }
        let wanted = 2 * (self.live_bytes + self.reserved) + 3 * self.file_size;
        self.disk_bytes() > wanted && self.segments[0].live_jobs > 0
    }

    /// The next batch of jobs whose full records are in the oldest file.
    pub(super) fn next_migration_batch(&mut self) -> Vec<JobId> {
        if !self.wants_compaction() {
            return Vec::new();
        }
        let oldest = &self.segments[0];
        let migration = match self.migration.take() {
            Some(m) if m.seq == oldest.seq => m,
            _ => match oldest.full_record_ids() {
                Ok(ids) => Migration { seq: oldest.seq, ids, next: 0 },
                Err(e) => {
                    log::warn!("binlog: cannot read back file {} to compact it: {e}", oldest.seq);
                    return Vec::new();
                }
            },
        };
        let m = self.migration.insert(migration);
        if m.next == m.ids.len() {
            // Jobs remain that could not be moved (no room then): try again.
            m.next = 0;
        }
        let from = m.next;
        m.next = m.ids.len().min(from + MIGRATION_BATCH_JOBS);
        m.ids[from..m.next].to_vec()
    }

    /// Rewrites the job at the head if its full record is still in the
    /// oldest file; returns its new tag if it did.
    pub(super) fn migrate(&mut self, job: JobView) -> Option<JournalTag> {
        // Only jobs whose full record is still in the oldest file move; the
        // others were moved already.
        if u64::from(job.job.journal_tag.file) != self.segments[0].seq || self.current == 0 {
            return None;
        }
        let record = full_job(job);
        // Only into room prepared ahead: a job that does not fit waits for
        // the next turn, after the end of this one has made a file.
        if !self.has_room_now(record::max_job_len(&record) as u64) {
            return None;
        }
        let tag = self.append_live_job(&record);
        self.untrack(job.job.journal_tag, job.body.len());
        self.records_migrated += 1;
        Some(tag)
    }
}
