//! What the engine tells the write-ahead log, and asks of it.
//!
//! The engine decides what must be logged; the journal decides where and
//! when bytes reach the disk. Room is checked before a change is made, so a
//! full disk refuses the change (put answers `OUT_OF_MEMORY`) instead of
//! acknowledging something that was never logged.

use super::extras::JobExtras;
use super::ids::JobId;
use super::job::{Job, JournalTag};
use super::time::Nanos;
use crate::protocol::TubeName;

/// Everything the journal may write about a job: the record and what the
/// engine keeps apart from it.
#[derive(Clone, Copy, Debug)]
pub struct JobView<'a> {
    /// The job's id.
    pub id: JobId,
    /// Its record, in the state being logged.
    pub job: &'a Job,
    /// Its time to run (which the record may keep apart: ttr.rs).
    pub ttr: Nanos,
    /// Its counters, delay and deadline (all zero if it has none).
    pub extras: JobExtras,
    /// Its tube's name (the record holds only a handle).
    pub tube: &'a TubeName,
    /// Its body.
    pub body: &'a [u8],
}

/// Where the engine logs the changes a restart must see: the write-ahead
/// log (`binlog`), or nothing ([`NoJournal`]). The engine calls it as it
/// makes each change, in order, before acknowledging the change; the
/// journal decides when the bytes reach the disk.
pub trait Journal {
    /// Logs a new job, with room set aside for its delete, and returns the
    /// tag the engine keeps with the job for the journal's later calls.
    /// `None` means the disk is full: nothing was logged and the put must be
    /// refused.
    fn log_put(&mut self, job: JobView) -> Option<JournalTag>;

    /// Makes sure one job update can be logged; `false` if the disk is full.
    fn reserve_update(&mut self) -> bool;

    /// Logs a job's new state (after a successful `reserve_update`).
    fn log_update(&mut self, job: JobView);

    /// Logs the delete of job `id`, as `job` was. Always possible: room was
    /// set aside at put. Only the job's record is asked for, not a
    /// [`JobView`]: a delete's log needs the job's tag and its body's
    /// length, and gathering a view (its extras, its body) cost a quarter
    /// of what `-b` adds to a reserve and delete.
    fn log_delete(&mut self, id: JobId, job: &Job);

    /// The binlog file holding the job's full record (0 without a binlog).
    fn job_file(&self, job: &Job) -> u64;

    /// Jobs whose full records compaction may want rewritten at the head of
    /// the log, so that old files can be deleted (some may be gone, or
    /// moved already: `log_migration` decides).
    fn jobs_to_migrate(&mut self) -> Vec<JobId>;

    /// Rewrites a job's full current state at the head of the log if
    /// compaction wants it moved; returns the job's new tag if it did.
    fn log_migration(&mut self, job: JobView) -> Option<JournalTag>;

    /// `false` for a journal that forgets everything: the engine then does
    /// not gather what a [`JobView`] holds (a counter lookup on every
    /// delete) only for it to be dropped.
    fn keeps_anything(&self) -> bool {
        true
    }

    /// The `binlog-*` figures of `stats` (all zero without a binlog).
    fn stats(&self) -> JournalStats {
        JournalStats::default()
    }
}

/// What `stats` reports about the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// `binlog-oldest-index`: the oldest log file still kept.
    pub oldest_index: u64,
    /// `binlog-current-index`: the file being written.
    pub current_index: u64,
    /// `binlog-records-migrated`: records compaction rewrote.
    pub records_migrated: u64,
    /// `binlog-records-written`: records written since the start.
    pub records_written: u64,
}

/// No write-ahead log: every change is accepted and forgotten.
#[derive(Debug, Default)]
pub struct NoJournal;

impl Journal for NoJournal {
    fn keeps_anything(&self) -> bool {
        false
    }
    fn log_put(&mut self, _: JobView) -> Option<JournalTag> {
        Some(JournalTag::default())
    }
    fn reserve_update(&mut self) -> bool {
        true
    }
    fn log_update(&mut self, _: JobView) {}
    fn log_delete(&mut self, _: JobId, _: &Job) {}
    fn job_file(&self, _: &Job) -> u64 {
        0
    }
    fn jobs_to_migrate(&mut self) -> Vec<JobId> {
        Vec::new()
    }
    fn log_migration(&mut self, _: JobView) -> Option<JournalTag> {
        None
    }
}
