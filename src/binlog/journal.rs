//! What the engine asks of the log: the [`Journal`] trait, for the log and
//! for no log at all (`Option<Binlog>`).

use super::convert::{full_job, job_update};
use super::record::{self, Record};
use super::{Binlog, DELETE_LEN};
use crate::engine::{Job, JobId, JobView, Journal, JournalStats, JournalTag};

impl Journal for Binlog {
    fn log_put(&mut self, job: JobView) -> Option<JournalTag> {
        // Encoded from the engine's job as it is read: no record is built.
        let job = full_job(job);
        if !self.ensure_room(record::max_job_len(&job) as u64 + DELETE_LEN) {
            self.refused += 1;
            return None;
        }
        self.next_id = self.next_id.max(job.update.id + 1);
        self.reserved += DELETE_LEN;
        Some(self.append_live_job(&job))
    }

    fn reserve_update(&mut self) -> bool {
        let room = self.ensure_room(record::MAX_STATE_LEN as u64);
        self.refused += u64::from(!room);
        room
    }

    fn log_update(&mut self, job: JobView) {
        self.append(&Record::<&[u8]>::State(job_update(job)));
    }

    fn log_delete(&mut self, id: JobId, job: &Job) {
        if self.failed || !self.append_delete(id) {
            return;
        }
        // The room was promised when the job was put.
        self.reserved -= DELETE_LEN;
        self.untrack(job.journal_tag, job.body.len());
    }

    fn job_file(&self, job: &Job) -> u64 {
        u64::from(job.journal_tag.file)
    }

    fn jobs_to_migrate(&mut self) -> Vec<JobId> {
        self.next_migration_batch()
    }

    fn log_migration(&mut self, job: JobView) -> Option<JournalTag> {
        self.migrate(job)
    }

    fn stats(&self) -> JournalStats {
        JournalStats {
            oldest_index: self.segments.first().map_or(0, |s| s.seq),
            current_index: self.segments.get(self.current).map_or(0, |s| s.seq),
            records_migrated: self.records_migrated,
            records_written: self.records_written,
        }
    }
}

/// The server runs with a binlog or without one.
impl Journal for Option<Binlog> {
    fn log_put(&mut self, job: JobView) -> Option<JournalTag> {
        match self {
            Some(b) => b.log_put(job),
            None => Some(JournalTag::default()),
        }
    }
    fn reserve_update(&mut self) -> bool {
        self.as_mut().is_none_or(Binlog::reserve_update)
    }
    fn log_update(&mut self, job: JobView) {
        if let Some(b) = self {
            b.log_update(job);
        }
    }
    fn log_delete(&mut self, id: JobId, job: &Job) {
        if let Some(b) = self {
            b.log_delete(id, job);
        }
    }
    fn job_file(&self, job: &Job) -> u64 {
        self.as_ref().map_or(0, |b| b.job_file(job))
    }
    fn jobs_to_migrate(&mut self) -> Vec<JobId> {
        self.as_mut().map_or_else(Vec::new, Binlog::jobs_to_migrate)
    }
    fn log_migration(&mut self, job: JobView) -> Option<JournalTag> {
        self.as_mut().and_then(|b| b.log_migration(job))
    }
    fn keeps_anything(&self) -> bool {
        self.is_some()
    }
    fn stats(&self) -> JournalStats {
        self.as_ref().map_or_else(JournalStats::default, Binlog::stats)
    }
}
