//! Which files live jobs still need, and deleting the others.

use super::Binlog;
use super::closer::Closer;
use super::record::{self, JobToWrite};
use super::segment::Segment;
use crate::engine::JournalTag;

impl Binlog {
    /// File `seq`. Seqs count up by one from the oldest file, except where
    /// recovery skipped a file (`--skip-damaged-records` on a damaged
    /// header): the common case is one index, a gap costs a search.
    // Inlined into a delete's logging, which asks it once a delete.
    #[inline]
    fn segment_mut(&mut self, seq: u64) -> &mut Segment {
        let guess = (seq - self.segments[0].seq) as usize;
        let at = match self.segments.get(guess) {
            Some(s) if s.seq == seq => guess,
            _ => self.segments.binary_search_by_key(&seq, |s| s.seq).expect("a job's file is in the log"),
        };
        &mut self.segments[at]
    }

    /// Appends a job's full record (as [`Binlog::append`]) and counts it
    /// as a live job of the file it went to: the tag the engine keeps with
    /// the job.
    #[inline(always)]
    pub(super) fn append_live_job(&mut self, job: &JobToWrite<'_>) -> JournalTag {
        // The job moved into the closure: borrowed, it would be stored in
        // memory on every put, for the rare call that moves on to the next
        // file.
        let job = *job;
        let seq = self.append_then(
            // Inlined, and the encoder with it: the record is encoded from
            // the job's fields where they are, in registers.
            #[inline(always)]
            move |segment| segment.append_job(&job),
            |segment| {
                segment.live_jobs += 1;
                segment.seq
            },
        );
        self.live_bytes += record::accounted_job_len(job.body.len()) as u64;
        JournalTag { file: u32::try_from(seq).expect("2^32 binlog files") }
    }

    /// Counts `jobs` restored jobs whose full records, `bytes` long in all
    /// as [`record::accounted_job_len`] counts them,
    /// are in file `seq`.
    pub(super) fn track_restored(&mut self, seq: u64, jobs: u64, bytes: u64) {
        self.segment_mut(seq).live_jobs += jobs;
        self.live_bytes += bytes;
    }

    /// Forgets a job's full record, in the file `tag` names (deleted, or
    /// rewritten elsewhere): it counted for what its body's length,
    /// `body_len`, says, as when it was tracked.
    pub(super) fn untrack(&mut self, tag: JournalTag, body_len: usize) {
        self.segment_mut(u64::from(tag.file)).live_jobs -= 1;
        self.live_bytes -= record::accounted_job_len(body_len) as u64;
    }

    /// The seq of the newest file in the run of old files holding no live
    /// job (0 if the oldest holds one).
    pub(super) fn deletable_prefix(&self) -> u64 {
        self.segments.iter().take(self.current).take_while(|s| s.live_jobs == 0).last().map_or(0, |s| s.seq)
    }

    /// Deletes old files that no live job needs, oldest first (a newer file
    /// may hold the delete of a job whose record is in an older one, so
    /// files go strictly in order).
    pub(super) fn collect_garbage(&mut self, up_to: u64) {
        let deletable = self.segments[..self.current].iter().take_while(|s| s.live_jobs == 0 && s.seq <= up_to).count();
        self.current -= deletable;
        for segment in self.segments.drain(..deletable) {
            let seq = segment.seq;
            match segment.remove() {
                Ok(file) => {
                    match self.closer.get_or_insert_with(Closer::start) {
                        Ok(closer) => closer.close(file),
                        Err(_) => drop(file),
                    }
                    self.preparation.file_deleted();
                }
                Err(e) => log::warn!("binlog: cannot delete file {seq}: {e}"),
            }
        }
    }
}
