//! The write-ahead log (`-b DIR`): every change a client can observe, in
//! checksummed records, so a restart brings every job back in its state.
//!
//! A map of the module, one behaviour a file:
//! - [`record`]: the byte format (spec in protocol.md).
//! - `segment`: one preallocated file.
//! - `open`: locking the directory, reading it back, reopening its files.
//! - `commit`: group commit: writing a turn's records, the fsync policy, the
//!   hand-off to the sync thread (`syncer`).
//! - `room`: space reservation: promised bytes, allocating files, choosing
//!   the file a record goes to.
//! - `retire`: counting each file's live jobs, deleting the files no live
//!   job needs.
//! - `compaction`: moving the oldest file's jobs to the head of the log.
//! - `journal`: what the engine asks of the log ([`Journal`]).
//! - `convert`: engine jobs to records and back.
//! - `recovery`: reading the directory back, repairing a torn tail.
//! - `lock`: one server per directory.
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

mod commit;
mod compaction;
mod convert;
mod journal;
mod lock;
mod open;
pub mod record;
mod recovery;
mod retire;
mod room;
mod segment;
mod syncer;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;

use crate::settings::FsyncPolicy;
use compaction::Migration;
use lock::DirLock;
pub use open::Opened;
use room::Preparation;
use segment::Segment;
use syncer::Syncer;
pub use syncer::Wake;

/// Bytes of a delete record, set aside for every live job.
const DELETE_LEN: u64 = 17;

/// Bytes of a state record.
const UPDATE_LEN: u64 = 58;

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
    /// Spare files made ahead, between commands.
    preparation: Preparation,
}

#[cfg(test)]
mod tests;
