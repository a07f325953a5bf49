//! Reading the log back at startup: every live job in its last logged state.
//! Each record is applied as it is read to wherever the live jobs are kept
//! ([`LiveJobs`]): for a server's start the engine's own tables
//! (`restoring`), for the tools a list (`live_jobs::JobList`).
//!
//! Damage is told apart by where it is. A record cut short or garbled at the
//! very end of the log, with nothing valid after it, is what a crash in the
//! middle of a write leaves: it is cut off with a warning naming file and
//! offset (it was never acknowledged under `-f 0`). Damage anywhere else
//! means the disk changed bytes under us: recovery stops with an error naming
//! file and offset, unless `--skip-damaged-records` asks to drop what cannot
//! be read, in which case every job that had to be dropped is logged.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::OpenError;
use super::live_jobs::{JobList, LiveJob, LiveJobs};
use super::read_ahead::{self, Content};
use super::record::{self, Decoded, FRAME_LEN, FileDecoder, FileEncoder, Format, HEADER_LEN, Header, Record};
use super::segment::sync_dir;
use super::tube_names::TubeNames;
use crate::engine::Bodies;

/// One binlog file found in the directory.
#[derive(Debug)]
pub struct FoundFile {
    pub seq: u64,
    pub path: PathBuf,
    /// Where valid records end (new records may be appended here).
    pub end: u64,
    /// How to append there: the file's format, and the tubes its records
    /// declared.
    pub encoder: FileEncoder,
}

/// The log read back as a list of its live jobs.
#[derive(Debug)]
pub struct Recovered {
    /// Live jobs; buried ones in the order they were buried.
    pub jobs: Vec<LiveJob>,
    /// Their bodies, copied once from the files.
    pub bodies: Bodies,
    /// No id below this may be handed out again.
    pub next_id: u64,
    pub files: Vec<FoundFile>,
}

/// The log read back into `J`.
pub struct Replayed<J> {
    /// The live jobs, as the replay left them.
    pub jobs: J,
    /// No id below this may be handed out again.
    pub next_id: u64,
    pub files: Vec<FoundFile>,
}

/// How reading back treats what it finds.
#[derive(Clone, Copy, Debug)]
pub struct Mode {
    /// Drop unreadable records instead of refusing.
    pub skip_damaged: bool,
    /// Repair the directory for the server that will append to it: zero a
    /// torn tail, pad over skipped damage, remove a file a crash left
    /// empty. Without it nothing is written: for reading a directory that
    /// is not ours to change (`sprout binlog export`).
    pub repair: bool,
}

/// Reads every `binlog.N` in `dir`, oldest first, into a list of its live
/// jobs.
pub fn recover_with(dir: &Path, mode: Mode) -> Result<Recovered, OpenError> {
    let Replayed { jobs, next_id, files } = replay(dir, mode, JobList::default())?;
    let (jobs, bodies) = jobs.into_ordered();
    Ok(Recovered { jobs, bodies, next_id, files })
}

/// Reads every `binlog.N` in `dir`, oldest first, each record applied to
/// `jobs` as it is read.
pub fn replay<J: LiveJobs>(dir: &Path, mode: Mode, jobs: J) -> Result<Replayed<J>, OpenError> {
    let skip_damaged = mode.skip_damaged;
    let mut seqs = list_files(dir)?;
    seqs.sort_unstable();
    let mut state = State::new(jobs);
    let files = read_ahead::with_files(dir, &seqs, |read| {
        let mut files = Vec::new();
        for (i, &seq) in seqs.iter().enumerate() {
            let (path, content) = read.next();
            let (bytes, checked_until) = match content {
                Ok(Content::Spare(header)) => {
                    state.saw_header(header);
                    let encoder = FileEncoder::new(header.format);
                    files.push(FoundFile { seq, path, end: HEADER_LEN as u64, encoder });
                    continue;
                }
                Ok(Content::Bytes { bytes, checked_until }) => (&bytes[..], *checked_until),
                Err(e) => return Err(OpenError::Io(format!("cannot read {}: {e}", path.display()))),
            };
            let later_have_data =
                || seqs[i + 1..].iter().any(|&s| file_has_records(&dir.join(super::segment::file_name(s))));
            let header = match Header::decode(bytes) {
                Ok(header) if header.seq == seq => header,
                Ok(header) => {
                    return Err(OpenError::Damaged(format!(
                        "{}: header says it is file {}",
                        path.display(),
                        header.seq
                    )));
                }
                Err(_) if all_zeros(bytes) && !later_have_data() => {
                    // A crash while the file was being created: it holds nothing.
                    if mode.repair {
                        log::warn!("{}: empty file left by a crash, removed", path.display());
                        fs::remove_file(&path)
                            .map_err(|e| OpenError::Io(format!("cannot remove {}: {e}", path.display())))?;
                    } else {
                        log::warn!("{}: empty file left by a crash, skipped", path.display());
                    }
                    continue;
                }
                Err(e) if skip_damaged => {
                    log::warn!("{}: {e}; skipping the whole file", path.display());
                    continue;
                }
                // Skipping a newer sprout's file would lose its jobs.
                Err(e @ (record::HeaderError::Beanstalkd | record::HeaderError::NewerFormat(_))) => {
                    return Err(OpenError::Damaged(format!("{}: {e}", path.display())));
                }
                Err(e) => {
                    return Err(OpenError::Damaged(format!(
                        "{}: {e} (start with --skip-damaged-records to skip it)",
                        path.display()
                    )));
                }
            };
            state.saw_header(&header);
            let end = state.read_records(&path, seq, (bytes, checked_until), mode, later_have_data)?;
            files.push(FoundFile { seq, path, end, encoder: state.end_of_file() });
        }
        Ok(files)
    })?;
    let (jobs, next_id) = state.finish();
    Ok(Replayed { jobs, next_id, files })
}

/// The replay: records applied in log order, the last about a job winning.
/// `sprout binlog inspect` drives it too (`inspect/sprout.rs`), record by
/// record, so both read a log by the same rules.
pub(super) struct State<J> {
    /// The live jobs so far.
    jobs: J,
    /// One shared copy of each tube name.
    tube_names: TubeNames,
    /// The file being read: its format, and the tubes its records declared
    /// so far (format 2). Set by its header.
    file: Option<FileDecoder>,
    next_id: u64,
    /// Ids whose records were lost to damage we skipped.
    lost_in_damage: bool,
    dropped: Vec<u64>,
}

impl<J: LiveJobs + Default> Default for State<J> {
    fn default() -> State<J> {
        State::new(J::default())
    }
}

impl<J: LiveJobs> State<J> {
    /// A replay that keeps its live jobs in `jobs`.
    pub(super) fn new(jobs: J) -> State<J> {
        State {
            jobs,
            tube_names: TubeNames::default(),
            file: None,
            next_id: 0,
            lost_in_damage: false,
            dropped: Vec::new(),
        }
    }

    /// Applies the file's records; returns where they end. The checksums
    /// of the records before `checked_until` were compared already (the
    /// frames `record::checked_frames_end` walked from the header on).
    fn read_records(
        &mut self,
        path: &Path,
        seq: u64,
        (bytes, checked_until): (&[u8], usize),
        mode: Mode,
        later_have_data: impl Fn() -> bool,
    ) -> Result<u64, OpenError> {
        let mut at = HEADER_LEN;
        // Reading resumes after damage where the walk may have had no frame.
        let mut on_checked_frames = true;
        loop {
            let decoded = if on_checked_frames && at < checked_until {
                self.decode_checked(&bytes[at..])
            } else {
                self.decode(&bytes[at..])
            };
            match decoded {
                Decoded::Record(record, len) => {
                    self.apply(record, seq, len as u64);
                    at += len;
                }
                Decoded::End if records_end_at(bytes, at) => return Ok(at as u64),
                Decoded::End | Decoded::Damaged => {
                    on_checked_frames = false;
                    let format = self.format();
                    let resume = next_valid_record(format, bytes, at + 1);
                    // A record whose checksum holds was written whole: not
                    // torn, even if it cannot be read (format 2: its tube's
                    // declaration was skipped as damage).
                    if resume.is_none() && !record::is_record(format, &bytes[at..]) && !later_have_data() {
                        log::warn!(
                            "{}: cut off a torn record at offset {at} (a crash during a write; \
                             it was never acknowledged with -f 0)",
                            path.display()
                        );
                        if mode.repair {
                            zero_tail(path, bytes, at)?;
                        }
                        return Ok(at as u64);
                    }
                    let what = describe_damage(format, bytes, at);
                    if !mode.skip_damaged {
                        return Err(OpenError::Damaged(format!(
                            "{}: damaged record at offset {at} ({what}); refusing to start rather than \
                             lose or change jobs silently (start with --skip-damaged-records to drop it)",
                            path.display()
                        )));
                    }
                    let until = resume.unwrap_or_else(|| garbage_end(bytes, at));
                    log::warn!("{}: skipping damaged bytes from offset {at} to {until} ({what})", path.display());
                    if mode.repair {
                        pad_over(path, at, until)?;
                    }
                    self.skipped_damage();
                    at = until;
                }
            }
        }
    }

    /// Decodes the record at `bytes[0]`, the next of the file whose header
    /// was seen last, its tube name shared with every job of that tube read
    /// so far.
    pub(super) fn decode<'a>(&mut self, bytes: &'a [u8]) -> Decoded<'a> {
        let file = self.file.as_mut().expect("a file's header is read before its records");
        let tube_names = &mut self.tube_names;
        let mut tube_name = |name: &[u8]| tube_names.share(name);
        file.decode_with(bytes, &mut tube_name)
    }

    /// [`State::decode`] for a record whose checksum was compared already.
    // Always inlined into the replay's loop: see v2::decode_payload.
    #[inline(always)]
    fn decode_checked<'a>(&mut self, bytes: &'a [u8]) -> Decoded<'a> {
        let file = self.file.as_mut().expect("a file's header is read before its records");
        let tube_names = &mut self.tube_names;
        let mut tube_name = |name: &[u8]| tube_names.share(name);
        file.decode_checked(bytes, &mut tube_name)
    }

    /// A file header: the records that follow are in its format, and no id
    /// below its next id is handed out again.
    pub(super) fn saw_header(&mut self, header: &Header) {
        self.next_id = self.next_id.max(header.next_id);
        self.file = Some(FileDecoder::new(header.format));
    }

    /// The format of the file being read.
    pub(super) fn format(&self) -> Format {
        self.file.as_ref().expect("a file's header is read before its records").format()
    }

    /// The file read to its end: how a writer appends to it (its format,
    /// and the tubes it declared).
    fn end_of_file(&mut self) -> FileEncoder {
        let file = self.file.take().expect("a file's header is read before its records");
        let format = file.format();
        FileEncoder::resume(format, &file.into_declared())
    }

    /// Records were skipped as damaged: a state record about a job not seen
    /// may have lost its job record there.
    pub(super) fn skipped_damage(&mut self) {
        self.lost_in_damage = true;
    }

    /// Applies one record of file `seq`, `record_len` bytes long.
    // Always inlined into the replay's loop: out of line, the record was
    // copied through the stack on its way in, and the copies' loads
    // stalled on the stores just made.
    #[inline(always)]
    pub(super) fn apply(&mut self, record: Record<&[u8]>, seq: u64, record_len: u64) {
        self.next_id = self.next_id.max(record.job_id().saturating_add(1));
        match record {
            // A second full record of a job is compaction's rewrite of it
            // further on: it replaces the first.
            Record::Job(job) => self.jobs.job(job, narrow(seq), narrow(record_len)),
            Record::State(update) => {
                // The full record was in a file since deleted (the job was
                // migrated or deleted later), unless it was lost to damage.
                if !self.jobs.update(update) && self.lost_in_damage {
                    self.dropped.push(update.id);
                }
            }
            Record::Delete(id) => self.jobs.delete(id),
            Record::Padding(_) => {}
        }
    }

    /// The live jobs and the next id; logs the jobs lost to skipped damage.
    pub(super) fn finish(self) -> (J, u64) {
        let mut dropped = self.dropped;
        dropped.sort_unstable();
        dropped.dedup();
        for id in dropped.iter().filter(|&&id| !self.jobs.contains(id)) {
            log::warn!("job {id} dropped: its full record was in a damaged, skipped region");
        }
        (self.jobs, self.next_id.max(1))
    }
}

/// A file number or record length in 32 bits (see [`LiveJob`]).
fn narrow(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The first offset after `from` where a valid record starts, in a file
/// of this format. (A format-2 record that refers to a tube whose
/// declaration was lost counts: it is where reading resumes, and it reads
/// as damage in turn, so it is dropped and logged.)
pub(super) fn next_valid_record(format: Format, bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(FRAME_LEN))
        .filter(|&at| bytes[at + 4..at + FRAME_LEN] != [0; 4])
        .find(|&at| record::is_record(format, &bytes[at..]))
}

/// True if the records end at `at`: zeros from there to the end of the
/// file. Eight zero bytes where a record would start end the records, but
/// only if nothing but zeros follows them, as the writer leaves a file:
/// non-zero bytes after them are read as a bad record at `at` (a torn
/// tail, or damage if valid records follow), since they are what a write
/// that reached the disk out of order and was cut short by a power cut
/// leaves, or records behind zeros where the disk lost a block. Were they
/// passed over, the records appended at `at` would be read on into them at
/// the next start: back to life, or refused as damage.
pub(super) fn records_end_at(bytes: &[u8], at: usize) -> bool {
    all_zeros(&bytes[at..])
}

/// True if every byte is zero. Or-ing them all together, which the
/// compiler does 16 bytes an instruction, is about ten times cheaper than
/// stopping at the first non-zero byte one byte at a time: every start
/// reads the spare file's 10 MB of zeros, and the zeros after the last
/// record.
fn all_zeros(bytes: &[u8]) -> bool {
    bytes.iter().fold(0, |acc, &b| acc | b) == 0
}

/// Names the job a damaged record probably belonged to, if its id is
/// legible.
pub(super) fn describe_damage(format: Format, bytes: &[u8], at: usize) -> String {
    if bytes.get(at..at + FRAME_LEN).is_some_and(|frame| frame == [0; FRAME_LEN]) {
        return "eight zero bytes, which end the records, with data after them".into();
    }
    let id = record::legible_id(format, &bytes[at..]);
    if record::is_record(format, &bytes[at..]) {
        // Valid but unreadable: a format-2 job record naming a tube index
        // that nothing before it declared, or declaring one as another
        // tube.
        return format!(
            "a job record about job {} naming a tube index that no earlier record of the file declared as that \
             tube",
            id.unwrap_or(0)
        );
    }
    match id {
        Some(id) => format!("checksum or layout mismatch; the record may be about job {id}"),
        None => "checksum or layout mismatch".into(),
    }
}

/// The header of a spare file: a valid header, then zeros to the end of
/// the file. That is all reading the whole file would find, without reading
/// a file's worth of zeros where the filesystem keeps the room allocated
/// and never written as a hole: a server keeps a spare file ahead, and
/// restarts find it. (A file whose first record is zeros but which holds
/// data further on is read whole: see [`records_end_at`].)
pub(super) fn spare_header(path: &Path, seq: u64) -> Option<Header> {
    let mut start = [0; HEADER_LEN + FRAME_LEN];
    let file = fs::File::open(path).ok()?;
    file.read_exact_at(&mut start, 0).ok()?;
    let header = Header::decode(&start).ok().filter(|h| h.seq == seq)?;
    let zeros = start[HEADER_LEN..] == [0; FRAME_LEN] && zeros_from(&file, (HEADER_LEN + FRAME_LEN) as u64).ok()?;
    zeros.then_some(header)
}

/// True if the file holds only zeros from `from` on. Holes are zeros and
/// are not read (`SEEK_DATA` skips them); what the filesystem calls data
/// is read and looked at.
fn zeros_from(file: &fs::File, from: u64) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let len = file.metadata()?.len();
    let mut buf = vec![0; 64 * 1024];
    let mut at = from;
    while at < len {
        // SAFETY: lseek takes no pointers; the descriptor is open for as
        // long as `file` lives.
        let data = unsafe { libc::lseek(file.as_raw_fd(), at as libc::off_t, libc::SEEK_DATA) };
        let data = match u64::try_from(data) {
            Ok(data) => data,
            Err(_) if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) => return Ok(true),
            // No SEEK_DATA here: read everything.
            Err(_) => at,
        };
        let n = buf.len().min(len.saturating_sub(data) as usize);
        file.read_exact_at(&mut buf[..n], data)?;
        if !all_zeros(&buf[..n]) {
            return Ok(false);
        }
        at = data + n as u64;
    }
    Ok(true)
}

/// True if the file has anything but zeros after its header.
pub(super) fn file_has_records(path: &Path) -> bool {
    fs::read(path).map(|b| !all_zeros(b.get(HEADER_LEN..).unwrap_or_default())).unwrap_or(false)
}

/// Where the non-zero bytes of a file end (at least `from`).
pub(super) fn garbage_end(bytes: &[u8], from: usize) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(from, |i| i + 1).max(from)
}

/// Replaces a skipped damaged region with a padding record, so the next
/// start reads past it without needing `--skip-damaged-records` again. A
/// region too short for a record header stays as it is (and is skipped
/// again next time).
fn pad_over(path: &Path, from: usize, until: usize) -> Result<(), OpenError> {
    let len = until - from;
    if len < FRAME_LEN + 1 {
        log::warn!("{}: {len} damaged bytes at offset {from} are too few to pad over", path.display());
        return Ok(());
    }
    let padding = record::padding(len);
    let fail = |e: std::io::Error| OpenError::Io(format!("cannot repair {}: {e}", path.display()));
    let file = fs::OpenOptions::new().write(true).open(path).map_err(fail)?;
    file.write_all_at(&padding, from as u64).map_err(fail)?;
    file.sync_data().map_err(fail)?;
    Ok(())
}

/// Overwrites a torn tail with zeros, so that what is appended later can
/// never be mistaken for a continuation of the garbage.
fn zero_tail(path: &Path, bytes: &[u8], from: usize) -> Result<(), OpenError> {
    let garbage_end = garbage_end(bytes, from);
    if garbage_end <= from {
        return Ok(());
    }
    let fail = |e: std::io::Error| OpenError::Io(format!("cannot repair {}: {e}", path.display()));
    let file = fs::OpenOptions::new().write(true).open(path).map_err(fail)?;
    file.write_all_at(&vec![0; garbage_end - from], from as u64).map_err(fail)?;
    file.sync_data().map_err(fail)?;
    Ok(())
}

fn list_files(dir: &Path) -> Result<Vec<u64>, OpenError> {
    let (mut seqs, ignored) = super::segment::numbered_files(dir)
        .map_err(|e| OpenError::Io(format!("cannot read binlog directory {}: {e}", dir.display())))?;
    // All digits, but too many for a number.
    for name in ignored.iter().filter(|n| n["binlog.".len()..].bytes().all(|b| b.is_ascii_digit())) {
        if name.len() > "binlog.".len() {
            log::warn!("ignoring {name}");
        }
    }
    seqs.retain(|&seq| {
        let fits = seq <= u64::from(u32::MAX);
        if !fits {
            log::warn!("ignoring binlog.{seq}: sprout numbers its files in 32 bits");
        }
        fits
    });
    let _ = sync_dir(dir);
    Ok(seqs)
}
