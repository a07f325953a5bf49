//! Compaction: when the log grows past twice the live data, the jobs left
//! in the oldest file are rewritten at the head, a batch a turn, so that
//! file can go. The server has the file read back on a thread of its own
//! (`read_back_in_background`), so the loop does not stall on it.

use std::io;
use std::sync::mpsc::{Receiver, TryRecvError, channel};

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

/// The oldest file's job ids, being read on a thread of its own.
#[derive(Debug)]
pub(super) struct ReadingBack {
    seq: u64,
    ids: Receiver<io::Result<Vec<JobId>>>,
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
        let seq = self.segments[0].seq;
        let migration = match self.migration.take() {
            Some(m) if m.seq == seq => m,
            _ => match self.oldest_full_record_ids() {
                Some(Ok(ids)) => Migration { seq, ids, next: 0 },
                Some(Err(e)) => {
                    log::warn!("binlog: cannot read back file {seq} to compact it: {e}");
                    return Vec::new();
                }
                // Still being read: a later turn takes it up.
                None => return Vec::new(),
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

    /// Reads the oldest file back on a thread of its own from now on, for
    /// compaction: reading a whole file (10 MiB by default) and walking
    /// its records stalled every client for milliseconds.
    pub fn read_back_in_background(&mut self) {
        self.read_back_in_background = true;
    }

    /// The ids of the full records in the oldest file: read now, or on a
    /// thread (`None` while it reads).
    fn oldest_full_record_ids(&mut self) -> Option<io::Result<Vec<JobId>>> {
        let oldest = &self.segments[0];
        if !self.read_back_in_background {
            return Some(oldest.full_record_ids());
        }
        if let Some(reading) = &self.reading_back
            && reading.seq == oldest.seq
        {
            let read = match reading.ids.try_recv() {
                Ok(read) => read,
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => Err(io::Error::other("the thread reading it ended")),
            };
            self.reading_back = None;
            return Some(read);
        }
        let read = match oldest.full_record_ids_reader() {
            Ok(read) => read,
            Err(e) => return Some(Err(e)),
        };
        let (sender, ids) = channel();
        let spawned = std::thread::Builder::new().name("binlog-read".into()).spawn(move || {
            let _ = sender.send(read());
        });
        match spawned {
            Ok(_) => {
                self.reading_back = Some(ReadingBack { seq: oldest.seq, ids });
                None
            }
            // No thread: read it here.
            Err(_) => Some(oldest.full_record_ids()),
        }
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
