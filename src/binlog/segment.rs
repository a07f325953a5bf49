//! One binlog file: preallocated, appended to, synced, deleted.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::fsyncs::FsyncTimes;
use super::record::{self, DELETE_RECORD_LEN, FileEncoder, HEADER_LEN, Header, JobToWrite, Record};

/// A binlog file. Its whole capacity is allocated when it is created, so a
/// full disk is noticed when a file is made, never in the middle of a write.
#[derive(Debug)]
pub struct Segment {
    pub seq: u64,
    file: File,
    path: PathBuf,
    /// Bytes allocated on disk.
    pub capacity: u64,
    /// End of the records, those still in `pending` included.
    pub end: u64,
    /// Bytes already handed to the kernel.
    written: u64,
    pending: Vec<u8>,
    /// Written since the last fsync.
    unsynced: bool,
    /// Live jobs whose full record is in this file; it can go at zero.
    pub live_jobs: u64,
    /// The file's format, and for format 2 the tubes its records declared.
    encoder: FileEncoder,
}

/// The name of file `seq`, as beanstalkd names its files too.
pub fn file_name(seq: u64) -> String {
    format!("binlog.{seq}")
}

/// The `binlog.N` files of `dir`, by N; and the names that start like one
/// but are not (`binlog.x`, or digits too many for a number), for a caller
/// to warn about.
pub fn numbered_files(dir: &Path) -> io::Result<(Vec<u64>, Vec<String>)> {
    let (mut seqs, mut ignored) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        match seq_of_file_name(&name) {
            Some(seq) => seqs.push(seq),
            None if name.starts_with("binlog.") => ignored.push(name.into_owned()),
            None => {}
        }
    }
    seqs.sort_unstable();
    Ok((seqs, ignored))
}

/// N of a `binlog.N` name: digits only after the dot, as both servers
/// read them; `None` for any other name.
pub fn seq_of_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("binlog.")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Segment {
    /// Creates `DIR/binlog.SEQ` with `capacity` bytes allocated and its
    /// header written, and with `durable`, synced along with its directory
    /// entry. On failure (a full disk) nothing is left behind.
    pub fn create(dir: &Path, header: Header, capacity: u64, durable: bool) -> io::Result<Segment> {
        let path = dir.join(file_name(header.seq));
        let file = OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&path)?;
        let made = (|| {
            allocate(&file, capacity)?;
            file.write_all_at(&header.encode(), 0)?;
            if durable {
                file.sync_all()?;
                sync_dir(dir)?;
            }
            Ok(())
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(Segment {
            seq: header.seq,
            file,
            path,
            capacity,
            end: HEADER_LEN as u64,
            written: HEADER_LEN as u64,
            pending: Vec::new(),
            unsynced: false,
            live_jobs: 0,
            encoder: FileEncoder::new(header.format),
        })
    }

    /// Reopens an existing file whose records end at `end`, to append to it
    /// with `encoder` (its format, and the tubes its records declared).
    pub fn reopen(path: PathBuf, seq: u64, end: u64, encoder: FileEncoder) -> io::Result<Segment> {
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let capacity = file.metadata()?.len().max(end);
        Ok(Segment {
            seq,
            file,
            path,
            capacity,
            end,
            written: end,
            pending: Vec::new(),
            unsynced: false,
            live_jobs: 0,
            encoder,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn remaining(&self) -> u64 {
        self.capacity - self.end
    }

    /// Queues a record if it fits in the remaining capacity; returns its
    /// length. `None` if it does not fit (nothing is queued). Its CRC is
    /// put in when it is written.
    #[inline]
    pub fn append(&mut self, record: &Record<impl AsRef<[u8]>>) -> Option<u64> {
        let len = match *record {
            Record::Delete(id) => return self.append_delete(id).then_some(DELETE_RECORD_LEN as u64),
            _ => self.encoder.append_unsealed(record, self.remaining(), &mut self.pending)?,
        } as u64;
        self.end += len;
        Some(len)
    }

    /// Queues the delete of job `id` if it fits, as [`Segment::append`]: the
    /// same bytes in every format, so no encoder is needed.
    #[inline]
    pub fn append_delete(&mut self, id: u64) -> bool {
        if self.remaining() < DELETE_RECORD_LEN as u64 {
            return false;
        }
        self.pending.extend_from_slice(&record::unsealed_delete_record(id));
        self.end += DELETE_RECORD_LEN as u64;
        true
    }

    /// [`Segment::append`] for a job's record (a put's, a migration's).
    // Inlined, with the encoder, into a put's logging: the record is
    // encoded from the fields where they are, with no record built.
    #[inline(always)]
    pub fn append_job(&mut self, job: &JobToWrite<'_>) -> Option<u64> {
        let len = self.encoder.append_job_unsealed(job, self.remaining(), &mut self.pending)? as u64;
        self.end += len;
        Some(len)
    }

    /// How to go on appending to this file where another owner of it
    /// takes over (the takeover's files, opened by the log).
    pub fn into_encoder(self) -> FileEncoder {
        self.encoder
    }

    /// The ids of the jobs whose full records this file holds (some since
    /// deleted or rewritten further on), read back from the file.
    pub fn full_record_ids(&self) -> io::Result<Vec<u64>> {
        read_full_record_ids(&self.file, self.written, self.encoder.format(), &self.pending)
    }

    /// [`Segment::full_record_ids`], to run on another thread: a second
    /// handle on the file, what was written of it, and the records still
    /// queued go with it.
    pub fn full_record_ids_reader(&self) -> io::Result<impl FnOnce() -> io::Result<Vec<u64>> + Send + 'static> {
        let file = self.file.try_clone()?;
        let (written, format, queued) = (self.written, self.encoder.format(), self.pending.clone());
        Ok(move || read_full_record_ids(&file, written, format, &queued))
    }

    /// Seals the queued records (their CRCs) and hands them to the kernel
    /// in one write.
    pub fn write_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        record::seal_records(&mut self.pending);
        self.file.write_all_at(&self.pending, self.written)?;
        self.written += self.pending.len() as u64;
        self.pending.clear();
        if self.pending.capacity() > 1 << 20 {
            self.pending = Vec::new();
        }
        self.unsynced = true;
        Ok(())
    }

    /// Frees the buffer of queued records, all written (a file that takes
    /// no more records).
    pub fn drop_buffer(&mut self) {
        debug_assert!(self.pending.is_empty(), "records still queued");
        self.pending = Vec::new();
    }

    #[cfg(test)]
    pub fn buffer_capacity(&self) -> usize {
        self.pending.capacity()
    }

    /// A second handle on the file, for syncing it on another thread; the
    /// file counts as synced from now on (the caller makes it so).
    pub fn handle_to_sync(&mut self) -> io::Result<File> {
        let handle = self.file.try_clone()?;
        self.unsynced = false;
        Ok(handle)
    }

    pub fn sync(&mut self, times: &FsyncTimes) -> io::Result<()> {
        if self.unsynced {
            times.sync(&self.file)?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Bytes of records queued and not yet written.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn has_unwritten(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn is_unsynced(&self) -> bool {
        self.unsynced
    }

    /// Unlinks the file; returns it, still open, for the caller to close
    /// where closing it costs nothing (freeing its cached pages takes
    /// milliseconds: see `closer`).
    pub fn remove(self) -> io::Result<File> {
        std::fs::remove_file(&self.path)?;
        Ok(self.file)
    }
}

/// The ids of the full records in `file`'s first `written` bytes and in
/// the records `queued` after them.
fn read_full_record_ids(file: &File, written: u64, format: record::Format, queued: &[u8]) -> io::Result<Vec<u64>> {
    let mut bytes = vec![0; (written - HEADER_LEN as u64) as usize];
    file.read_exact_at(&mut bytes, HEADER_LEN as u64)?;
    bytes.extend_from_slice(queued);
    Ok(record::full_record_ids(format, &bytes))
}

/// Allocates the whole file up front (ENOSPC now, not mid-write).
fn allocate(file: &File, capacity: u64) -> io::Result<()> {
    // SAFETY: posix_fallocate only touches the file behind the descriptor.
    let r = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, capacity as libc::off_t) };
    match r {
        0 => Ok(()),
        // Filesystems without fallocate: write zeros instead.
        libc::EOPNOTSUPP | libc::EINVAL => {
            let zeros = vec![0u8; 64 * 1024];
            let mut at = 0;
            while at < capacity {
                let n = zeros.len().min((capacity - at) as usize);
                file.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
            Ok(())
        }
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Makes a created or removed file name durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_binlog_and_digits() {
        assert_eq!(file_name(12), "binlog.12");
        assert_eq!(seq_of_file_name("binlog.12"), Some(12));
        for name in ["binlog.", "binlog.1a", "binlog.-1", "xbinlog.1", "binlog.1 ", "binlog.99999999999999999999"] {
            assert_eq!(seq_of_file_name(name), None, "{name}");
        }
    }
}
