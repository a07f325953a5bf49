//! The do-nothing server's log (`-b DIR`): the least a binlog can do.
//!
//! Each put appends a record to one buffer: a head of constant bytes, as
//! long as a format-2 put record's frame and head (24 bytes), then the body.
//! Before the turn's replies go out, the buffer goes to a preallocated file
//! in one `pwrite`, as sprout's group commit does; a file that is full is
//! followed by a new one, allocated in the loop. There is no encoding, no
//! checksum, no room accounting, no compaction, and nothing is ever read
//! back: the race only puts. With `-f MS` (default 50, as sprout's) a thread
//! fdatasyncs the file being written every MS milliseconds; with `-f 0`
//! each turn's write is fdatasynced before its replies; with `-F`, nothing
//! is synced.
//!
//! So what this server gets with `-b` against itself without is the most
//! that any log which hands each record to the kernel before its reply can
//! get on this machine and kernel: the ceiling for sprout's own `-b` / no
//! `-b` ratios (issue 15, part 2), which the race prints beside them.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::do_nothing::flag_value;

/// A format-2 put record's frame and head, for a 3-byte id: what sprout
/// writes before a body.
const HEAD: [u8; 24] = [0x5a; 24];

/// `-s`'s default, as beanstalkd's and sprout's.
const DEFAULT_FILE_SIZE: u64 = 10_485_760;

/// `-f`'s default, as beanstalkd's and sprout's.
const DEFAULT_SYNC_MS: u64 = 50;

/// One do-nothing server's log: the file being written, and the turn's
/// records not yet in it.
pub struct Log {
    dir: PathBuf,
    file_size: u64,
    seq: u64,
    file: Arc<File>,
    /// Bytes of `file` written.
    written: u64,
    /// This turn's records.
    pending: Vec<u8>,
    /// The file the sync thread syncs, if there is one.
    syncing: Option<Arc<Mutex<Arc<File>>>>,
    /// `-f 0`: every write is synced before the turn's replies.
    sync_each_write: bool,
}

impl Log {
    /// The log that `-b DIR`, `-s BYTES`, `-f MS` and `-F` in `args` ask for;
    /// `None` without `-b`.
    pub fn open(args: &[String]) -> io::Result<Option<Log>> {
        let value = |flag: &str| flag_value(args, flag);
        let Some(dir) = value("-b") else { return Ok(None) };
        let number =
            |flag: &str, default: u64| value(flag).map_or(Ok(default), |v| v.parse().map_err(io::Error::other));
        let file_size = number("-s", DEFAULT_FILE_SIZE)?;
        let sync_ms = (!args.iter().any(|a| a == "-F")).then(|| number("-f", DEFAULT_SYNC_MS)).transpose()?;
        let dir = PathBuf::from(dir);
        let file = Arc::new(create(&dir, 1, file_size)?);
        let sync_each_write = sync_ms == Some(0);
        let syncing = match sync_ms {
            Some(ms) if ms > 0 => Some(start_syncing(Arc::clone(&file), Duration::from_millis(ms))?),
            _ => None,
        };
        Ok(Some(Log { dir, file_size, seq: 1, file, written: 0, pending: Vec::new(), syncing, sync_each_write }))
    }

    /// Queues a put's record.
    pub fn append(&mut self, body: &[u8]) {
        self.pending.extend_from_slice(&HEAD);
        self.pending.extend_from_slice(body);
    }

    /// Writes the turn's records, in one write (synced, with `-f 0`):
    /// called before the turn's replies are sent.
    pub fn commit(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let len = self.pending.len() as u64;
        if self.written + len > self.file_size.max(len) {
            self.seq += 1;
            self.file = Arc::new(create(&self.dir, self.seq, self.file_size.max(len))?);
            self.written = 0;
            if let Some(syncing) = &self.syncing {
                *syncing.lock().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&self.file);
            }
        }
        self.file.write_all_at(&self.pending, self.written)?;
        if self.sync_each_write {
            self.file.sync_data()?;
        }
        self.written += len;
        self.pending.clear();
        Ok(())
    }
}

/// `DIR/binlog.SEQ`, `size` bytes allocated, as sprout makes its files.
fn create(dir: &std::path::Path, seq: u64, size: u64) -> io::Result<File> {
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(dir.join(format!("binlog.{seq}")))?;
    // SAFETY: posix_fallocate only touches the file behind the descriptor.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size as libc::off_t) } {
        0 => Ok(file),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// The thread that syncs the file being written every `every`; it lives as
/// long as the process (the server is killed at the end of a run).
fn start_syncing(file: Arc<File>, every: Duration) -> io::Result<Arc<Mutex<Arc<File>>>> {
    let current = Arc::new(Mutex::new(file));
    let shared = Arc::clone(&current);
    std::thread::Builder::new().name("do-nothing-sync".into()).spawn(move || {
        loop {
            std::thread::sleep(every);
            let file = Arc::clone(&shared.lock().unwrap_or_else(|p| p.into_inner()));
            if let Err(e) = file.sync_data() {
                eprintln!("do-nothing: fdatasync: {e}");
                std::process::exit(1);
            }
        }
    })?;
    Ok(current)
}
