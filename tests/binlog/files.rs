//! The binlog's files as the tests see them: read by the byte layout in
//! docs/binlog-format.md (not by sprout's own reader, so a test checks the format the
//! spec promises), copied, damaged, measured; and what sprout says about
//! them on stderr.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// Bytes of a file header.
pub(crate) const HEADER_LEN: usize = 32;
/// Bytes of a record's frame: CRC (4) and payload length (4).
pub(crate) const FRAME_LEN: usize = 8;

/// `(seq, path)` of every `binlog.N` in `dir`, oldest first.
pub(crate) fn binlog_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut files: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .expect("read binlog dir")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let seq = name.strip_prefix("binlog.")?.parse().ok()?;
            Some((seq, e.path()))
        })
        .collect();
    files.sort();
    files
}

/// One record of a binlog file, parsed by its frame only.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordPos {
    pub offset: usize,
    pub len: usize,
    pub kind: u8,
    pub id: u64,
    /// Where in the record its id starts, and how many bytes it takes (8 in
    /// format 1 and in deletes, a varint in format 2's job and state
    /// records, after the type and flags bytes); the priority follows it.
    pub id_at: usize,
    pub id_len: usize,
    /// Format 2: a job record that declares its tube's index (flags bit 6).
    pub declares_tube: bool,
}

/// The records of a file (frame: crc u32, len u32), walked by their `len`
/// fields up to the first zero, their ids read as the header's format
/// version lays them out.
pub(crate) fn records(bytes: &[u8]) -> Vec<RecordPos> {
    assert_eq!(&bytes[..8], b"SPROUTWL", "binlog magic");
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    assert!(version == 1 || version == 2, "format version {version}");
    let mut out = Vec::new();
    let mut at = HEADER_LEN;
    while at + FRAME_LEN <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if len == 0 || at + FRAME_LEN + len > bytes.len() {
            break;
        }
        let kind = bytes[at + FRAME_LEN];
        let (id, id_at, id_len) = match (version, kind) {
            (2, KIND_JOB | KIND_STATE) => {
                let (id, id_len) = varint(&bytes[at + FRAME_LEN + 2..]);
                (id, FRAME_LEN + 2, id_len)
            }
            _ => {
                let id = bytes
                    .get(at + FRAME_LEN + 1..at + FRAME_LEN + 9)
                    .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()));
                (id, FRAME_LEN + 1, 8)
            }
        };
        let declares_tube = version == 2 && kind == KIND_JOB && bytes[at + FRAME_LEN + 1] & 0x40 != 0;
        out.push(RecordPos { offset: at, len: FRAME_LEN + len, kind, id, id_at, id_len, declares_tube });
        at += FRAME_LEN + len;
    }
    out
}

/// An LEB128 varint at the start of `bytes`, and its length.
fn varint(bytes: &[u8]) -> (u64, usize) {
    let mut value = 0;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    (value, 10)
}

/// The jobs `--skip-damaged-records` drops when it skips the full record of
/// `victim` in a file with these records: that job, and in format 2, when
/// its record declared its tube, the job records after it that name the
/// tube by index, up to the tube's next declaration (the tests put every
/// job in one tube).
pub(crate) fn dropped_with(records: &[RecordPos], victim: u64) -> Vec<u64> {
    let jobs: Vec<&RecordPos> = records.iter().filter(|r| r.kind == KIND_JOB).collect();
    let at = jobs.iter().position(|r| r.id == victim).expect("the victim's full record");
    let mut dropped = vec![victim];
    if jobs[at].declares_tube {
        dropped.extend(jobs[at + 1..].iter().take_while(|r| !r.declares_tube).map(|r| r.id));
    }
    dropped
}

/// Bytes of a job's state as format-1 records hold it (id, priority,
/// state, delay, ready-at, five counters). The lengths here are format 1's:
/// bounds on what format 2, which sprout writes now, takes for the jobs
/// the tests put (small ids, few counters, times near the file's base).
const JOB_STATE_LEN: u64 = 8 + 4 + 1 + 8 + 8 + 5 * 4;

/// Bytes a state record takes: frame, type, job state.
pub(crate) const STATE_RECORD_LEN: u64 = FRAME_LEN as u64 + 1 + JOB_STATE_LEN;

/// Bytes a delete record takes: frame, type, id.
pub(crate) const DELETE_RECORD_LEN: u64 = FRAME_LEN as u64 + 1 + 8;

/// Bytes a job's full record takes: frame, type, job state, TTR, creation
/// time, the tube name with its length, the body with its length.
pub(crate) fn job_record_len(tube: &str, body_len: usize) -> u64 {
    FRAME_LEN as u64 + 1 + JOB_STATE_LEN + 8 + 8 + 1 + tube.len() as u64 + 4 + body_len as u64
}

/// A record's type byte: a job's full record (put, or moved by compaction).
pub(crate) const KIND_JOB: u8 = 1;
/// A job's new state.
pub(crate) const KIND_STATE: u8 = 2;
/// A delete.
pub(crate) const KIND_DELETE: u8 = 3;

/// The newest file holding records, and its records.
pub(crate) fn newest_records(dir: &Path) -> (String, Vec<RecordPos>) {
    binlog_files(dir)
        .into_iter()
        .rev()
        .map(|(seq, path)| (format!("binlog.{seq}"), records(&fs::read(path).unwrap())))
        .find(|(_, r)| !r.is_empty())
        .expect("a binlog file with records")
}

/// Copies the `binlog.N` files of `src` into a new directory.
pub(crate) fn copy_binlog(src: &Path) -> TempDir {
    let dst = TempDir::new().unwrap();
    for (seq, path) in binlog_files(src) {
        fs::copy(&path, dst.path().join(format!("binlog.{seq}"))).unwrap();
    }
    dst
}

pub(crate) fn patch(path: &Path, offset: usize, f: impl FnOnce(&mut [u8])) {
    let mut bytes = fs::read(path).unwrap();
    f(&mut bytes[offset..]);
    fs::write(path, bytes).unwrap();
}

/// Apparent and allocated bytes of the binlog files, and their number.
pub(crate) fn binlog_disk_use(dir: &Path) -> (u64, u64, usize) {
    use std::os::unix::fs::MetadataExt;
    let files = binlog_files(dir);
    let (mut apparent, mut allocated) = (0, 0);
    for (_, path) in &files {
        if let Ok(m) = fs::metadata(path) {
            apparent += m.len();
            allocated += m.blocks() * 512;
        }
    }
    (apparent, allocated, files.len())
}

/// True if a line of `stderr` names `path` and the number `offset`.
pub(crate) fn names_file_and_offset(stderr: &str, path: &Path, offset: usize) -> bool {
    let path = path.display().to_string();
    let offset = offset.to_string();
    stderr.lines().any(|l| l.contains(&path) && l.split(|c: char| !c.is_ascii_digit()).any(|w| w == offset))
}

/// True if a line of `stderr` says `job <id>`.
pub(crate) fn names_job(stderr: &str, id: u64) -> bool {
    let word = format!("job {id}");
    stderr
        .lines()
        .any(|l| l.match_indices(&word).any(|(i, _)| !l[i + word.len()..].starts_with(|c: char| c.is_ascii_digit())))
}
