//! Opening the log: lock the directory, read it back, reopen its files.

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::lock::DirLock;
use super::record::HEADER_LEN;
use super::recovery::{Mode, Replayed};
use super::restoring::Restoring;
use super::room::Preparation;
use super::segment::{Segment, numbered_files};
use super::{Binlog, BinlogConfig, DELETE_LEN, OpenError, recovery, takeover};
use crate::engine::{JobId, Restoration};

/// The log opened and read back: the jobs for the engine to restore before
/// it serves anyone, and the log to hand it as its journal.
pub struct Opened {
    /// Ready to append, with room for the restored jobs' deletes (unless the
    /// disk is full).
    pub binlog: Binlog,
    /// The live jobs, for the engine to restore ([`Engine::restore_all`](crate::engine::Engine::restore_all)).
    pub restoration: Restoration,
    /// No id below this may be handed out.
    pub next_id: JobId,
    /// How long reading the log took.
    pub read_in: Duration,
}

impl Binlog {
    /// Locks the directory, reads the log back and gets ready to append, with
    /// a file of room prepared if the disk has it (a full disk is logged, not
    /// an error: puts are refused until deletes free room). Fails if another
    /// process holds the directory, if a record is damaged anywhere but at
    /// the torn tail of a crash (unless `skip_damaged`), or on I/O errors;
    /// the error names the file and offset.
    pub fn open(config: &BinlogConfig) -> Result<Opened, OpenError> {
        let started = Instant::now();
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| OpenError::Io(format!("cannot create binlog directory {}: {e}", config.dir.display())))?;
        let lock = DirLock::acquire(&config.dir)?;
        let taken = takeover::take_over(&config.dir, config.file_size.max(4096), config.skip_damaged)?;
        let replay = || {
            let mode = Mode { skip_damaged: config.skip_damaged, repair: true };
            recovery::replay(&config.dir, mode, Restoring::default())
        };
        let mut recovered = match taken {
            Some(taken) => {
                // Once, and it moved files: said even at the default level.
                log::warn!("{}", taken.report);
                match taken.recovered {
                    // Just written: no need to read it back.
                    Some(recovered) => Restoring::from_recovered(recovered),
                    None => replay()?,
                }
            }
            None => replay()?,
        };
        let mut binlog = Binlog {
            dir: config.dir.clone(),
            _lock: lock,
            file_size: config.file_size.max(4096),
            fsync: config.fsync,
            segments: Vec::new(),
            current: 0,
            last_seq: highest_seq(&config.dir),
            live_bytes: 0,
            reserved: 0,
            next_id: recovered.next_id,
            records_written: 0,
            records_migrated: 0,
            written_bytes: 0,
            refused: 0,
            fsync_times: Default::default(),
            last_sync: Instant::now(),
            failed: false,
            syncer: None,
            deletable_after_sync: None,
            closer: None,
            migration: None,
            read_back_in_background: false,
            reading_back: None,
            room_budget: Cell::new(None),
            preparation: Preparation::default(),
        };
        for file in std::mem::take(&mut recovered.files) {
            let segment = Segment::reopen(file.path.clone(), file.seq, file.end, file.encoder)
                .map_err(|e| OpenError::Io(format!("cannot open {}: {e}", file.path.display())))?;
            binlog.last_seq = binlog.last_seq.max(file.seq);
            binlog.segments.push(segment);
        }
        // Append to the newest file that holds records (or the first empty
        // one after it); files after it stay as spares. Reusing it, rather
        // than always starting a new file, lets the server restart on a full
        // disk.
        binlog.current = binlog.segments.iter().rposition(|s| s.end > HEADER_LEN as u64).unwrap_or(0);
        let Replayed { jobs: restoring, .. } = recovered;
        let (restoration, files) = restoring.into_parts();
        for file in files {
            binlog.track_restored(u64::from(file.seq), file.jobs, file.bytes);
        }
        binlog.reserved += DELETE_LEN * restoration.len() as u64;
        if binlog.segments.is_empty() {
            binlog
                .add_segment(0)
                .map_err(|e| OpenError::Io(format!("cannot create a binlog file in {}: {e}", binlog.dir.display())))?;
        }
        // Room for the deletes of every recovered job and a file ahead, if
        // the disk has it; if not, serve anyway: puts will be refused until
        // deletes free room.
        let need = binlog.reserved;
        binlog.prepare_ahead(Instant::now());
        if !binlog.has_room_now(0) {
            log::warn!(
                "binlog: the disk is full; new jobs will be refused until room is freed ({need} bytes promised)"
            );
        }
        binlog.collect_garbage(u64::MAX);
        let next_id = binlog.next_id;
        Ok(Opened { binlog, restoration, next_id, read_in: started.elapsed() })
    }
}

/// The highest N of the directory's `binlog.N` files that a start reads
/// (N below 2^32), skipped ones included; 0 if there is none.
fn highest_seq(dir: &std::path::Path) -> u64 {
    let (seqs, _) = numbered_files(dir).unwrap_or_default();
    seqs.into_iter().filter(|&seq| seq <= u64::from(u32::MAX)).max().unwrap_or(0)
}
