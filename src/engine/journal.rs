//! What the engine tells the write-ahead log, and asks of it.
//!
//! The engine decides what must be logged; the journal decides where and
//! when bytes reach the disk. Room is checked before a change is made, so a
//! full disk refuses the change (put answers `OUT_OF_MEMORY`) instead of
//! acknowledging something that was never logged.

use super::job::{Job, JobId};
use crate::protocol::TubeName;

pub trait Journal {
    /// Logs a new job, with room set aside for its delete. `false` means the
    /// disk is full: nothing was logged and the put must be refused.
    fn log_put(&mut self, job: &Job, tube: &TubeName) -> bool;

    /// Makes sure one job update can be logged; `false` if the disk is full.
    fn reserve_update(&mut self) -> bool;

    /// Logs a job's new state (after a successful `reserve_update`).
    fn log_update(&mut self, job: &Job);

    /// Logs a delete. Always possible: room was set aside at put.
    fn log_delete(&mut self, id: JobId);

    /// The binlog file holding the job's full record (0 without a binlog).
    fn job_file(&self, id: JobId) -> u64;

    /// Jobs whose full records compaction wants rewritten at the head of the
    /// log, so that old files can be deleted.
    fn jobs_to_migrate(&mut self) -> Vec<JobId>;

    /// Rewrites a job's full current state at the head of the log.
    fn log_migration(&mut self, job: &Job, tube: &TubeName);

    /// The `binlog-*` figures of `stats` (all zero without a binlog).
    fn stats(&self) -> JournalStats {
        JournalStats::default()
    }
}

/// What `stats` reports about the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalStats {
    pub oldest_index: u64,
    pub current_index: u64,
    pub records_migrated: u64,
    pub records_written: u64,
}

/// No write-ahead log: every change is accepted and forgotten.
#[derive(Debug, Default)]
pub struct NoJournal;

impl Journal for NoJournal {
    fn log_put(&mut self, _: &Job, _: &TubeName) -> bool {
        true
    }
    fn reserve_update(&mut self) -> bool {
        true
    }
    fn log_update(&mut self, _: &Job) {}
    fn log_delete(&mut self, _: JobId) {}
    fn job_file(&self, _: JobId) -> u64 {
        0
    }
    fn jobs_to_migrate(&mut self) -> Vec<JobId> {
        Vec::new()
    }
    fn log_migration(&mut self, _: &Job, _: &TubeName) {}
}
