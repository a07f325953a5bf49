//! A server's start: the log replayed straight into the engine's
//! [`Restoration`], each record applied to the jobs restored so far as it
//! is read, with each file's live jobs counted as they come and go (what
//! the log needs to know which files it may delete).

use super::convert::{restored_change, restored_job};
use super::live_jobs::LiveJobs;
use super::record::{self, FullJob, JobUpdate};
use super::recovery::{Recovered, Replayed};
use crate::engine::{Gone, JournalTag, Restoration};

/// While restoring the takeover's list of jobs, the list gives memory back
/// each time this many were taken from it.
const SHRINK_EVERY: usize = 1 << 16;

/// The jobs a start restores, and what each file holds of them.
#[derive(Debug, Default)]
pub struct Restoring {
    restoration: Restoration,
    /// Oldest file first: files are read, and so first counted, in order.
    files: Vec<FileCount>,
}

/// The live jobs whose full record is in one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileCount {
    pub seq: u32,
    pub jobs: u64,
    /// As `record::accounted_job_len` counts them.
    pub bytes: u64,
}

impl Restoring {
    /// The takeover's jobs, just written to sprout's log (their bodies
    /// already in the list's store), restored without reading the log
    /// back.
    pub fn from_recovered(recovered: Recovered) -> Replayed<Restoring> {
        let mut restoring = Restoring { restoration: Restoration::with_bodies(recovered.bodies), files: Vec::new() };
        // Taken from the back, the list shrinking as the job table grows,
        // so that the import needs little more memory than the jobs.
        let mut jobs = recovered.jobs;
        jobs.reverse();
        while let Some(live) = jobs.pop() {
            if jobs.len().is_multiple_of(SHRINK_EVERY) {
                jobs.shrink_to_fit();
            }
            let body_len = live.job.body.len();
            let gone = restoring.restoration.restore(restored_job(live.job, JournalTag { file: live.seq }));
            debug_assert!(gone.is_none(), "an imported job twice");
            restoring.count(live.seq, body_len);
        }
        Replayed { jobs: restoring, next_id: recovered.next_id, files: recovered.files }
    }

    /// The jobs to restore, and each file's count of them (files that
    /// hold none left out).
    pub fn into_parts(self) -> (Restoration, Vec<FileCount>) {
        let files = self.files.into_iter().filter(|f| f.jobs > 0).collect();
        (self.restoration, files)
    }

    /// Counts a job restored from file `seq`.
    fn count(&mut self, seq: u32, body_len: usize) {
        // Searched from the newest file: jobs come in long runs of one.
        let at = match self.files.iter().rposition(|f| f.seq == seq) {
            Some(at) => at,
            None => {
                self.files.push(FileCount { seq, jobs: 0, bytes: 0 });
                self.files.len() - 1
            }
        };
        let file = &mut self.files[at];
        file.jobs += 1;
        file.bytes += record::accounted_job_len(body_len) as u64;
    }

    /// Uncounts a job replaced or deleted.
    fn uncount(&mut self, gone: Gone) {
        let file = self.file_mut(gone.journal_tag.file).expect("a restored job was counted in its file");
        file.jobs -= 1;
        file.bytes -= record::accounted_job_len(gone.body_len) as u64;
    }

    fn file_mut(&mut self, seq: u32) -> Option<&mut FileCount> {
        self.files.iter_mut().rev().find(|f| f.seq == seq)
    }
}

impl LiveJobs for Restoring {
    #[inline(always)]
    fn job(&mut self, job: FullJob<&[u8]>, seq: u32, _record_len: u32) {
        let body_len = job.body.len();
        let body = self.restoration.store_body(job.body);
        let job = FullJob { update: job.update, tube: job.tube, ttr: job.ttr, created_at: job.created_at, body };
        if let Some(gone) = self.restoration.restore(restored_job(job, JournalTag { file: seq })) {
            self.uncount(gone);
        }
        self.count(seq, body_len);
    }

    fn update(&mut self, update: JobUpdate) -> bool {
        self.restoration.change(update.id, restored_change(update))
    }

    fn delete(&mut self, id: u64) {
        if let Some(gone) = self.restoration.delete(id) {
            self.uncount(gone);
        }
    }

    fn contains(&self, id: u64) -> bool {
        self.restoration.contains(id)
    }
}
