#![warn(missing_docs)]

//! The write-ahead log (`-b DIR`): every change a client can observe, in
//! checksummed records, so a restart brings every job back in its state.
//! The format and the behaviour are specified in docs/binlog-format.md.
//!
//! A map of the module, one behaviour a file:
//! - [`record`]: the bytes of records and file headers (format version 2
//!   written, 1 and 2 read).
//! - `segment`: one preallocated file: appending, sealing (the CRCs, once a turn) and writing, syncing.
//! - `open`: [`Binlog::open`]: locking the directory (`lock`), reading it
//!   back (`recovery`: torn tails repaired, damage refused), reopening its
//!   files, restoring the count of live jobs per file. `read_ahead`: each
//!   file read, and its checksums compared, on a thread of its own while
//!   the one before is replayed.
//! - `commit`: group commit: [`Binlog::commit`] writes a turn's records in
//!   one write per file and fsyncs as the policy says, in the loop (`-f 0`)
//!   or on the sync thread (`syncer`, `-f MS`).
//! - `room`: space reservation: the promised bytes, [`Binlog::prepare_ahead`]
//!   making spare files between turns, [`Binlog::room_is_low`], choosing
//!   the file a record goes to.
//!   `room_budget`: the bytes left before room runs low, so that asking
//!   costs a subtraction.
//! - `retire`: counting each file's live jobs, deleting the files no live
//!   job needs; `closer`: the thread that closes them, since freeing a
//!   file's cached pages takes milliseconds.
//! - `compaction`: moving the oldest file's jobs to the head of the log.
//! - `journal`: what the engine asks of the log ([`Journal`](crate::engine::Journal)), with or
//!   without a log (`Option<Binlog>`).
//! - `convert`: the engine's jobs as records, records as jobs to restore.
//! - `live_jobs`: where a replay keeps the jobs it reads back, and the
//!   plain list of them the tools use; `restoring`: a start's replay
//!   straight into the engine's restoration, each file's jobs counted.
//! - `tube_names`: one shared copy of each tube name a replay reads.
//! - `takeover`: a directory beanstalkd wrote, taken over at open: its jobs
//!   imported into sprout's log, crash-safely, its files moved aside.
//! - [`export`]: the way back: sprout's live jobs as beanstalkd's files.
//! - [`inspect`]: `sprout binlog inspect`: what a directory holds, either
//!   format, read without a server and without changing anything.
//! - [`beanstalkd`]: beanstalkd's own format (versions 7 and 5): reading
//!   its files, replaying them, writing version 7 (`sprout binlog export`).
//!
//! Writing is batched: the engine's changes during one turn of the event
//! loop are queued in memory and handed to the kernel in one write per file
//! by [`Binlog::commit`], which the server calls before it sends the turn's
//! replies. With `-f 0` the commit also fsyncs, so no reply acknowledges a
//! change that is not on disk, and one fsync serves every connection.
//!
//! Invariants:
//! - **Live jobs are counted per file**: each file knows how many live jobs
//!   have their full record in it (the engine keeps that file's number in
//!   the job, as its [`JournalTag`](crate::engine::JournalTag)), and `live_bytes` is about the size
//!   of those records (each counts for `record::accounted_job_len` of its
//!   body, the same going as coming). A delete or a migration moves the
//!   count.
//! - **Room is promised before it is used**: from the current file on, the
//!   unwritten room covers the 17-byte delete of every live job plus one
//!   delete's worth per file, at all times. A change is logged only if its
//!   record fits on top of that, so a delete always can be, and a full disk
//!   refuses a change rather than leave it unlogged. Room is allocated as
//!   whole files, made between turns (`room`).
//! - **Files go strictly in order**: only the oldest file is ever deleted,
//!   once it holds no live job and what released it is synced, because a
//!   newer file may hold the delete of a job whose full record is in an
//!   older one. The current file and the spares after it are never deleted.
//!
//! Disk use stays near the size of the live jobs: when the log grows past
//! twice the live data, the jobs left in the oldest file are rewritten at
//! the head (migrated) so it can go.

pub mod beanstalkd;
mod closer;
mod commit;
mod compaction;
mod convert;
pub mod export;
mod figures;
mod fsyncs;
pub mod inspect;
mod journal;
mod live_jobs;
mod lock;
mod open;
mod read_ahead;
pub mod record;
mod recovery;
mod restoring;
mod retire;
mod room;
mod room_budget;
mod segment;
mod syncer;
mod takeover;
mod tube_names;

use std::cell::Cell;
use std::path::PathBuf;
use std::time::Instant;

use crate::settings::FsyncPolicy;
use closer::Closer;
use compaction::{Migration, ReadingBack};
use fsyncs::FsyncTimes;
use lock::DirLock;
pub use open::Opened;
use room::Preparation;
use room_budget::RoomBudget;
use segment::Segment;
use syncer::Syncer;
pub use syncer::Wake;

/// Bytes of a delete record, set aside for every live job.
const DELETE_LEN: u64 = record::DELETE_RECORD_LEN as u64;

/// Settings from the command line.
#[derive(Clone, Debug)]
pub struct BinlogConfig {
    /// `-b`: the directory, made if missing.
    pub dir: PathBuf,
    /// `-s`, rounded up to a multiple of 4096 (at least 4096).
    pub file_size: u64,
    /// `-f` / `-F`: when written records are fsynced.
    pub fsync: FsyncPolicy,
    /// `--skip-damaged-records`: drop unreadable records instead of
    /// refusing to start.
    pub skip_damaged: bool,
}

/// Why the log could not be opened; the message names the directory, file
/// or offset concerned.
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

/// The write-ahead log of one directory, locked for as long as this value
/// lives.
///
/// The engine tells it what changed through [`Journal`](crate::engine::Journal), in memory and
/// without waiting for a disk: "is there room for this", "append this
/// record". The server drives the rest, once a turn of its event loop:
/// `Engine::maintain_journal` (compaction's rewrites, while
/// [`Binlog::wants_compaction`]), then [`Binlog::commit`] before the turn's
/// replies are sent, then [`Binlog::prepare_ahead`] after they were
/// written; between commands it asks [`Binlog::room_is_low`] whether to end
/// the turn early.
///
/// What it promises: every change the engine was told it could make was
/// queued into room already allocated on disk, so a commit never runs out of
/// space, and a delete can always be logged; a reply sent after `commit`
/// acknowledges only written changes (with `-f 0`, synced ones); no command
/// waits for a file to be made unless it alone needs more than half a file.
#[derive(Debug)]
pub struct Binlog {
    dir: PathBuf,
    _lock: DirLock,
    file_size: u64,
    fsync: FsyncPolicy,
    /// Oldest first. `segments[current]` is being written; later ones are
    /// allocated and empty.
    segments: Vec<Segment>,
    current: usize,
    /// The highest N of a `binlog.N` made, or found in the directory at
    /// open: the next file made is N + 1. A file that
    /// `--skip-damaged-records` skipped (its header damaged) stays in the
    /// directory under its number, after the last file read.
    last_seq: u64,
    /// Bytes of the live jobs' full records, as `record::accounted_job_len`
    /// counts them (compaction's measure of the live data).
    live_bytes: u64,
    /// Bytes promised to the deletes of live jobs.
    reserved: u64,
    /// Highest job id logged, plus one: written into new file headers.
    next_id: u64,
    records_written: u64,
    records_migrated: u64,
    /// Bytes of the records written (`records_written` of them).
    written_bytes: u64,
    /// Changes refused for want of room (`OUT_OF_MEMORY`).
    refused: u64,
    /// How long each fsync took.
    fsync_times: FsyncTimes,
    last_sync: Instant,
    /// Set when a write failed: the log can no longer promise anything.
    failed: bool,
    /// Runs the interval policy's fsyncs off the event loop, once started.
    syncer: Option<Syncer>,
    /// Files up to this seq may be deleted once that sync request is done:
    /// they held no live job when it was made, so what released them was
    /// written before it.
    deletable_after_sync: Option<(u64, u64)>,
    /// Closes retired files off the loop, once one retired (`None`
    /// before; an error if its thread could not start: then they close
    /// in the loop).
    closer: Option<std::io::Result<Closer>>,
    /// Compaction's walk over the oldest file's jobs.
    migration: Option<Migration>,
    /// Whether compaction reads the oldest file back on a thread of its
    /// own; and that read, while it runs.
    read_back_in_background: bool,
    reading_back: Option<ReadingBack>,
    /// Spare files made ahead, between commands.
    preparation: Preparation,
    /// Bytes the log can take before room runs low, worked out when it was
    /// last asked (`room_budget`).
    room_budget: Cell<Option<RoomBudget>>,
}

#[cfg(test)]
mod tests;
