//! The write-ahead log (`-b DIR`): every change a client can observe, in
//! checksummed records, so a restart brings every job back in its state.
//!
//! - [`record`]: the byte format (spec in protocol.md).
//! - [`segment`]: one preallocated file.
//! - [`recovery`]: reading the directory back, repairing a torn tail.
//! - [`lock`]: one server per directory.
//!
//! Writing is batched: the engine's changes during one turn of the event
//! loop are queued in memory and handed to the kernel in one write per file
//! by [`Binlog::commit`], which the server calls before it sends the turn's
//! replies. With `-f 0` the commit also fsyncs, so no reply acknowledges a
//! change that is not on disk, and one fsync serves every connection.
//!
//! Disk use stays near the size of the live jobs: each file counts the live
//! jobs whose full record it holds; the oldest file is deleted once it holds
//! none, and when the log grows past twice the live data, the jobs left in
//! the oldest file are rewritten at the head (migrated) so it can go.
//!
//! Room is promised before it is used: every live job has the bytes of its
//! future delete set aside, files are allocated whole when created, and a
//! put is refused (`OUT_OF_MEMORY`) when no file can be allocated, so a full
//! disk never leaves an acknowledged change unlogged.

mod lock;
pub mod record;
mod recovery;
mod segment;
mod syncer;

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::engine::{
    Bodies, BodyRef, Job, JobCounts, JobId, JobState, JobView, Journal, JournalStats, JournalTag, RestoredJob,
};
use crate::settings::FsyncPolicy;
use lock::DirLock;
use record::{FullJob, HEADER_LEN, Header, JobUpdate, LoggedState, Record};
use segment::Segment;
use syncer::Syncer;
pub use syncer::Wake;

/// Bytes of a delete record, set aside for every live job.
const DELETE_LEN: u64 = 17;

/// Bytes of a state record.
const UPDATE_LEN: u64 = 58;

/// Most jobs considered for migration per turn of the event loop, so
/// compaction never stalls the server for long.
const MIGRATION_BATCH_JOBS: usize = 4096;

/// Settings from the command line.
#[derive(Clone, Debug)]
pub struct BinlogConfig {
    pub dir: PathBuf,
    /// `-s`, rounded up to a multiple of 4096.
    pub file_size: u64,
    pub fsync: FsyncPolicy,
    /// Drop unreadable records instead of refusing to start.
    pub skip_damaged: bool,
}

/// Why the log could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Another process holds the directory.
    Locked(String),
    /// A record or header failed its checksum or layout, somewhere other
    /// than a torn tail.
    Damaged(String),
    /// The directory or a file could not be read, written or created.
    Io(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Locked(m) | OpenError::Damaged(m) | OpenError::Io(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for OpenError {}

#[derive(Debug)]
pub struct Binlog {
    dir: PathBuf,
    _lock: DirLock,
    file_size: u64,
    fsync: FsyncPolicy,
    /// Oldest first. `segments[current]` is being written; later ones are
    /// allocated and empty.
    segments: VecDeque<Segment>,
    current: usize,
    /// Bytes of the live jobs' full records.
    live_bytes: u64,
    /// Bytes promised to the deletes of live jobs.
    reserved: u64,
    /// Highest job id logged, plus one: written into new file headers.
    next_id: u64,
    records_written: u64,
    records_migrated: u64,
    last_sync: Instant,
    /// Set when a write failed: the log can no longer promise anything.
    failed: bool,
    /// Runs the interval policy's fsyncs off the event loop, once started.
    syncer: Option<Syncer>,
    /// Files up to this seq may be deleted once that sync request is done:
    /// they held no live job when it was made, so what released them was
    /// written before it.
    deletable_after_sync: Option<(u64, u64)>,
    /// Compaction's walk over the oldest file's jobs.
    migration: Option<Migration>,
}

/// The jobs whose full records are in the file being emptied, read back
/// from it when compaction starts on it (so no per-job list is kept for
/// every file), and how far compaction got.
#[derive(Debug)]
struct Migration {
    seq: u64,
    ids: Vec<JobId>,
    next: usize,
}

/// The log opened and read back.
pub struct Opened {
    pub binlog: Binlog,
    /// Live jobs to restore into the engine, buried ones in burial order.
    pub jobs: Vec<RestoredJob>,
    /// The jobs' bodies, for the engine to keep.
    pub bodies: Bodies,
    /// No id below this may be handed out.
    pub next_id: JobId,
    /// How long reading the log took.
    pub read_in: Duration,
}

impl Binlog {
    /// Locks the directory, reads the log back and gets ready to append.
    pub fn open(config: &BinlogConfig) -> Result<Opened, OpenError> {
        let started = Instant::now();
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| OpenError::Io(format!("cannot create binlog directory {}: {e}", config.dir.display())))?;
        let lock = DirLock::acquire(&config.dir)?;
        let recovered = recovery::recover(&config.dir, config.skip_damaged)?;
        let mut binlog = Binlog {
            dir: config.dir.clone(),
            _lock: lock,
            file_size: config.file_size.max(4096),
            fsync: config.fsync,
            segments: VecDeque::new(),
            current: 0,
            live_bytes: 0,
            reserved: 0,
            next_id: recovered.next_id,
            records_written: 0,
            records_migrated: 0,
            last_sync: Instant::now(),
            failed: false,
            syncer: None,
            deletable_after_sync: None,
            migration: None,
        };
        for file in recovered.files {
            let segment = Segment::reopen(file.path.clone(), file.seq, file.end)
                .map_err(|e| OpenError::Io(format!("cannot open {}: {e}", file.path.display())))?;
            binlog.segments.push_back(segment);
        }
        // Append to the newest file that holds records (or the first empty
        // one after it); files after it stay as spares. Reusing it, rather
        // than always starting a new file, lets the server restart on a full
        // disk.
        binlog.current = binlog.segments.iter().rposition(|s| s.end > HEADER_LEN as u64).unwrap_or(0);
        // Collected in place, into the memory of the recovered list.
        let jobs: Vec<RestoredJob> = (recovered.jobs.into_iter())
            .map(|live| {
                let tag = binlog.track(live.seq, live.record_len);
                binlog.reserved += DELETE_LEN;
                restored_job(live.job, tag)
            })
            .collect();
        if binlog.segments.is_empty() {
            binlog
                .add_segment(0)
                .map_err(|e| OpenError::Io(format!("cannot create a binlog file in {}: {e}", binlog.dir.display())))?;
        }
        // Room for the deletes of every recovered job, if the disk has it;
        // if not, serve anyway: puts will be refused until deletes free room.
        let need = binlog.reserved;
        if !binlog.ensure_room(0) {
            log::warn!(
                "binlog: the disk is full; new jobs will be refused until room is freed ({need} bytes promised)"
            );
        }
        binlog.collect_garbage(u64::MAX);
        let next_id = binlog.next_id;
        Ok(Opened { binlog, jobs, bodies: recovered.bodies, next_id, read_in: started.elapsed() })
    }

    /// Writes every queued record, and fsyncs if the policy says so now.
    /// Called once per turn of the event loop, before replies are sent.
    pub fn commit(&mut self, now: Instant) -> io::Result<()> {
        if self.failed {
            return Ok(());
        }
        let result = self.write_and_sync(now);
        if let Err(e) = &result {
            log::error!("binlog write failed: {e}; refusing changes from now on");
            self.failed = true;
        }
        result
    }

    /// Moves the interval policy's fsyncs to a thread of their own; `wake`
    /// is called after each, so the event loop can delete freed files.
    /// Without it, they run in the loop.
    pub fn sync_in_background(&mut self, wake: Wake) -> io::Result<()> {
        if matches!(self.fsync, FsyncPolicy::Every { ms } if ms > 0) {
            self.syncer = Some(Syncer::start(wake)?);
        }
        Ok(())
    }

    fn write_and_sync(&mut self, now: Instant) -> io::Result<()> {
        for (i, segment) in self.segments.iter_mut().enumerate() {
            segment.write_pending()?;
            if i < self.current {
                // Nothing is appended to a file before the current one
                // again: its buffer (as large as a busy turn's records)
                // would only sit there until the file is deleted.
                segment.drop_buffer();
            }
        }
        if self.syncer.as_ref().is_some_and(Syncer::failed) {
            return Err(io::Error::other("fsync failed"));
        }
        let sync_due = match self.fsync {
            FsyncPolicy::Never => false,
            FsyncPolicy::Every { ms } => now.duration_since(self.last_sync) >= Duration::from_millis(ms),
        };
        if let (Some(syncer), Some((request, up_to))) = (&self.syncer, self.deletable_after_sync)
            && syncer.done() >= request
        {
            self.deletable_after_sync = None;
            self.collect_garbage(up_to);
        }
        let syncer_idle = !self.syncer.as_ref().is_some_and(Syncer::busy);
        if sync_due && syncer_idle && self.segments.iter().any(Segment::is_unsynced) {
            match &mut self.syncer {
                Some(syncer) => {
                    let mut files = Vec::new();
                    for segment in self.segments.iter_mut().filter(|s| s.is_unsynced()) {
                        files.push(segment.handle_to_sync()?);
                    }
                    let request = syncer.request(files);
                    self.deletable_after_sync = Some((request, self.deletable_prefix()));
                }
                None => {
                    for segment in self.segments.iter_mut() {
                        segment.sync()?;
                    }
                }
            }
            self.last_sync = now;
        }
        // Without the sync thread, files may go once what released them (a
        // migrated job's new record, the deletes of its old jobs) is synced.
        if self.syncer.is_none()
            && (self.fsync == FsyncPolicy::Never || !self.segments.iter().any(Segment::is_unsynced))
        {
            self.collect_garbage(u64::MAX);
        }
        Ok(())
    }

    /// The seq of the newest file in the run of old files holding no live
    /// job (0 if the oldest holds one).
    fn deletable_prefix(&self) -> u64 {
        self.segments.iter().take(self.current).take_while(|s| s.live_jobs == 0).last().map_or(0, |s| s.seq)
    }

    /// When the interval policy next wants an fsync of written records.
    pub fn next_sync_at(&self) -> Option<Instant> {
        match self.fsync {
            FsyncPolicy::Every { ms } if self.segments.iter().any(|s| s.is_unsynced() || s.has_unwritten()) => {
                Some(self.last_sync + Duration::from_millis(ms))
            }
            _ => None,
        }
    }

    /// Writes and fsyncs everything (clean shutdown).
    pub fn close(&mut self) -> io::Result<()> {
        if let Some(mut syncer) = self.syncer.take() {
            syncer.finish();
        }
        for segment in self.segments.iter_mut() {
            segment.write_pending()?;
            segment.sync()?;
        }
        Ok(())
    }

    // ----- space --------------------------------------------------------------

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
    fn ensure_room(&mut self, need: u64) -> bool {
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

    fn add_segment(&mut self, min_record: u64) -> io::Result<()> {
        let seq = self.segments.back().map_or(1, |s| s.seq + 1);
        let capacity = self.file_size.max(HEADER_LEN as u64 + min_record).next_multiple_of(4096);
        let durable = self.fsync != FsyncPolicy::Never;
        let segment = Segment::create(&self.dir, Header { seq, next_id: self.next_id }, capacity, durable)?;
        self.segments.push_back(segment);
        Ok(())
    }

    /// Queues a record in the first file, from the current one on, that has
    /// room for it (room was ensured). Returns that file's seq.
    fn append(&mut self, record: &Record<impl AsRef<[u8]>>) -> u64 {
        let len = record.encoded_len() as u64;
        while self.segments[self.current].remaining() < len {
            assert!(self.current + 1 < self.segments.len(), "binlog room was not ensured");
            self.current += 1;
        }
        self.current().append(record);
        self.records_written += 1;
        self.segments[self.current].seq
    }

    // ----- bookkeeping --------------------------------------------------------

    fn segment_mut(&mut self, seq: u64) -> &mut Segment {
        let first = self.segments[0].seq;
        &mut self.segments[(seq - first) as usize]
    }

    /// Counts a job's full record, just written to file `seq`.
    fn track(&mut self, seq: u64, len: u64) -> JournalTag {
        let segment = self.segment_mut(seq);
        segment.live_jobs += 1;
        self.live_bytes += len;
        JournalTag { file: u32::try_from(seq).expect("2^32 binlog files") }
    }

    /// Forgets a job's full record (deleted, or rewritten elsewhere). Its
    /// length follows from the tube name's and the body's.
    fn untrack(&mut self, job: JobView) {
        self.segment_mut(u64::from(job.job.journal_tag.file)).live_jobs -= 1;
        self.live_bytes -= Record::<&[u8]>::full_job_len(job.tube.as_str().len(), job.body.len()) as u64;
    }

    /// Deletes old files that no live job needs, oldest first (a newer file
    /// may hold the delete of a job whose record is in an older one, so
    /// files go strictly in order).
    fn collect_garbage(&mut self, up_to: u64) {
        while self.current > 0 {
            let oldest = self.segments[0].seq;
            if self.segments[0].live_jobs > 0 || oldest > up_to {
                break;
            }
            let segment = self.segments.pop_front().expect("oldest file");
            self.current -= 1;
            if let Err(e) = segment.remove() {
                log::warn!("binlog: cannot delete file {oldest}: {e}");
            }
        }
    }

    /// True when the log is more than twice the live data (plus two files)
    /// and the oldest file, not the one being written, still holds live
    /// jobs to move forward. The server keeps turning while it is.
    pub fn wants_compaction(&self) -> bool {
        if self.current == 0 || self.failed {
            return false;
        }
        let wanted = 2 * (self.live_bytes + self.reserved) + 2 * self.file_size;
        self.disk_bytes() > wanted && self.segments[0].live_jobs > 0
    }

    /// Total bytes the log occupies on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.capacity).sum()
    }
}

impl Journal for Binlog {
    fn log_put(&mut self, job: JobView) -> Option<JournalTag> {
        let record = Record::Job(full_job(job));
        let len = record.encoded_len() as u64;
        if !self.ensure_room(len + DELETE_LEN) {
            return None;
        }
        self.next_id = self.next_id.max(job.id + 1);
        let seq = self.append(&record);
        self.reserved += DELETE_LEN;
        Some(self.track(seq, len))
    }

    fn reserve_update(&mut self) -> bool {
        self.ensure_room(UPDATE_LEN)
    }

    fn log_update(&mut self, job: JobView) {
        self.append(&Record::<&[u8]>::State(job_update(job)));
    }

    fn log_delete(&mut self, job: JobView) {
        if self.failed {
            return;
        }
        // The room was promised when the job was put.
        self.reserved -= DELETE_LEN;
        self.append(&Record::<&[u8]>::Delete(job.id));
        self.untrack(job);
    }

    fn job_file(&self, job: &Job) -> u64 {
        u64::from(job.journal_tag.file)
    }

    fn jobs_to_migrate(&mut self) -> Vec<JobId> {
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

    fn log_migration(&mut self, job: JobView) -> Option<JournalTag> {
        // Only jobs whose full record is still in the oldest file move; the
        // others were moved already.
        if u64::from(job.job.journal_tag.file) != self.segments[0].seq || self.current == 0 {
            return None;
        }
        let record = Record::Job(full_job(job));
        let len = record.encoded_len() as u64;
        if !self.ensure_room(len) {
            return None;
        }
        let seq = self.append(&record);
        self.untrack(job);
        self.records_migrated += 1;
        Some(self.track(seq, len))
    }

    fn stats(&self) -> JournalStats {
        JournalStats {
            oldest_index: self.segments.front().map_or(0, |s| s.seq),
            current_index: self.segments.get(self.current).map_or(0, |s| s.seq),
            records_migrated: self.records_migrated,
            records_written: self.records_written,
        }
    }
}

fn logged_state(state: JobState) -> LoggedState {
    match state {
        JobState::Ready => LoggedState::Ready,
        JobState::Reserved => LoggedState::Reserved,
        JobState::Delayed => LoggedState::Delayed,
        JobState::Buried => LoggedState::Buried,
    }
}

fn job_update(view: JobView) -> JobUpdate {
    let (job, extras, c) = (view.job, view.extras, view.extras.counts);
    JobUpdate {
        id: view.id,
        pri: job.pri,
        state: logged_state(job.state()),
        delay: extras.delay(),
        // For delayed jobs when they become ready; for buried ones when they
        // were buried (so they come back in that order).
        ready_at: match job.state() {
            JobState::Delayed | JobState::Buried => extras.deadline as i64,
            _ => 0,
        },
        reserves: c.reserves,
        timeouts: c.timeouts,
        releases: c.releases,
        buries: c.buries,
        kicks: c.kicks,
    }
}

fn full_job(view: JobView<'_>) -> FullJob<&[u8]> {
    FullJob {
        update: job_update(view),
        tube: view.tube.clone(),
        ttr: view.job.ttr(),
        created_at: view.job.created_at as i64,
        body: view.body,
    }
}

fn restored_job(job: FullJob<BodyRef>, journal_tag: JournalTag) -> RestoredJob {
    let u = job.update;
    RestoredJob {
        id: u.id,
        tube: job.tube,
        pri: u.pri,
        delay: u.delay,
        ttr: job.ttr,
        created_at: job.created_at.max(0) as u64,
        state: match u.state {
            LoggedState::Delayed => JobState::Delayed,
            LoggedState::Buried => JobState::Buried,
            // A reserved job's worker is gone: it is ready again.
            LoggedState::Ready | LoggedState::Reserved => JobState::Ready,
        },
        ready_at: u.ready_at.max(0) as u64,
        counts: JobCounts {
            reserves: u.reserves,
            timeouts: u.timeouts,
            releases: u.releases,
            buries: u.buries,
            kicks: u.kicks,
        },
        body: job.body,
        journal_tag,
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
    fn log_delete(&mut self, job: JobView) {
        if let Some(b) = self {
            b.log_delete(job);
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

#[cfg(test)]
mod tests;
