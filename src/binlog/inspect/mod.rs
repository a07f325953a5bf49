//! `sprout binlog inspect DIR`: what a binlog directory holds, read without
//! a server and without changing anything, for an operator or a monitoring
//! check (as `redis-check-aof` and `kafka-dump-log` are).
//!
//! Every `binlog.N` is read by N, whichever format it is (sprout's, or
//! beanstalkd's version 7 or 5), and the [`Report`] says what each file
//! holds and how its records end, the live jobs a server would bring back
//! (by the replays a start and a takeover use: recovery's, and
//! [`Replay`](super::beanstalkd::Replay)), the bytes compaction could give
//! back, the next job id, and any damage with file and offset.
//!
//! A running server may hold the directory. Files are opened read-only, no
//! lock is taken, nothing is written, and the directory may change while it
//! is read:
//! - a file gone between listing and reading (the oldest, retired) is
//!   skipped with a note;
//! - a torn tail of the newest file with records is a write in progress
//!   (or a crash), not damage;
//! - a file that looks damaged is read again: if its bytes changed
//!   meanwhile, a server was writing them, and the new bytes are judged. (A
//!   server writes its files in order, so once a later file holds records,
//!   an earlier one reads complete.)
//!   If it is gone by then, a server retired it (its jobs live on in later
//!   files, so it was no longer being written): not damage either.
//!
//! A map, one concept a file:
//! - `report`: the [`Report`] and its parts, which the text and the JSON
//!   document both show.
//! - `sprout`: sprout's files, through recovery's replay.
//! - `beanstalkd`: beanstalkd's files, through beanstalkd's replay.
//! - `text`: the report as an operator reads it.
//! - here: listing the directory, telling the files' formats apart,
//!   reading files that a server may be writing, and the report put
//!   together.

mod beanstalkd;
mod report;
mod sprout;
mod text;

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use report::{
    Damage, DirFormat, FileFormat, FileReport, JobState, Live, RecordCounts, Report, SCHEMA, Space, Spot, StateCounts,
};

use super::beanstalkd::version_of;
use super::record::MAGIC;
use super::recovery::file_has_records;
use super::segment::seq_of_file_name;
use beanstalkd::BeanstalkdFiles;
use sprout::SproutFiles;

/// Exit status of a directory found clean (a torn tail of the newest file
/// included).
pub const EXIT_CLEAN: u8 = 0;

/// Exit status of a directory with damage: a bad record with valid data
/// after it, a bad header, an unknown file, both formats at once.
pub const EXIT_DAMAGED: u8 = 1;

/// Exit status of a directory (or a file in it) that could not be read, and
/// of bad usage.
pub const EXIT_UNREADABLE: u8 = 2;

/// How many times a file that looks damaged is read: again only while its
/// bytes keep changing.
const MAX_READS: u32 = 5;

/// Why what looked damaged in a file a server retired meanwhile is not.
const RETIRED: &str = "the file was retired by a server while it was read: what looked damaged was being written";

/// Why a directory could not be inspected.
#[derive(Debug)]
pub struct InspectError(pub String);

impl fmt::Display for InspectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InspectError {}

/// A `binlog.N` of the directory.
struct Listed {
    seq: u64,
    name: String,
    path: PathBuf,
}

/// What a file is, from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sprout,
    Beanstalkd,
    /// Zeros, or no bytes.
    Zeros,
    Unknown,
}

impl Kind {
    /// Of a file's bytes, or of its first ones (then [`Kind::Zeros`] means
    /// only that they are zeros).
    fn of(bytes: &[u8]) -> Kind {
        if bytes.starts_with(&MAGIC) {
            Kind::Sprout
        } else if version_of(bytes).is_some() {
            Kind::Beanstalkd
        } else if bytes.iter().all(|&b| b == 0) {
            Kind::Zeros
        } else {
            Kind::Unknown
        }
    }
}

/// Reads every `binlog.N` in `dir` (changing nothing) and reports what
/// they hold. `Err` if the directory, or a file in it, cannot be read.
pub fn inspect(dir: &Path) -> Result<Report, InspectError> {
    inspect_with(dir, &mut read)
}

/// Reads a whole file: `None` if it is gone. The tests swap in one that
/// answers as a file a server is writing would.
type ReadWhole<'r> = dyn FnMut(&Path) -> Result<Option<Vec<u8>>, InspectError> + 'r;

/// [`inspect`], reading files with `read`.
fn inspect_with(dir: &Path, read: &mut ReadWhole<'_>) -> Result<Report, InspectError> {
    let mut notes = Vec::new();
    let listed = list(dir, &mut notes)?;
    // Whether sprout's files are here, before any file is judged: a file
    // of zeros before sprout's files with records is refused by a start,
    // and moved aside by a takeover of beanstalkd's.
    let mut sprout_dir = false;
    for file in &listed {
        sprout_dir |= first_bytes(&file.path)?.is_some_and(|start| Kind::of(&start) == Kind::Sprout);
    }
    let mut sprout = SproutFiles::default();
    let mut theirs = BeanstalkdFiles::default();
    let mut files = Vec::new();
    for (i, file) in listed.iter().enumerate() {
        let Some(bytes) = read(&file.path)? else {
            notes.push(format!("{}: gone between listing and reading (a server retired it); skipped", file.name));
            continue;
        };
        let mut reading = Reading { file, later: &listed[i + 1..], read: &mut *read };
        files.push(match Kind::of(&bytes) {
            Kind::Sprout => sprout.read(&mut reading, bytes),
            Kind::Beanstalkd => theirs.read(&mut reading, bytes),
            Kind::Zeros => zeros(file, bytes.len(), sprout_dir && reading.later_have_data(), &mut notes),
            Kind::Unknown => unknown(file, &bytes),
        });
    }

    let mut live = Live::default();
    let mut damage = Vec::new();
    let mut live_records_bytes = 0;
    let mut next_id = 1;
    let ours = sprout.finish(&mut live);
    let beanstalkd = theirs.finish(&mut live);
    for (bytes, next) in ours.into_iter().chain(beanstalkd) {
        live_records_bytes += bytes;
        next_id = next_id.max(next);
    }
    let format = match (ours.is_some(), beanstalkd.is_some()) {
        (true, false) => DirFormat::Sprout,
        (false, true) => DirFormat::Beanstalkd,
        (false, false) => DirFormat::None,
        (true, true) => {
            damage.push(Damage {
                file: None,
                offset: None,
                reason: "the directory holds both sprout's files and beanstalkd's: sprout refuses to start on it \
                         (move one kind elsewhere); the live jobs counted are both kinds'"
                    .into(),
            });
            DirFormat::Mixed
        }
    };
    for file in &files {
        for spot in &file.damage {
            damage.push(Damage {
                file: Some(file.name.clone()),
                offset: Some(spot.offset),
                reason: spot.reason.clone(),
            });
        }
    }
    let files_bytes = files.iter().map(|f| f.size).sum();
    // The newest file of either format: a server's `-s`, or near it.
    let newest = files.iter().rev().find(|f| !matches!(f.format, FileFormat::Empty | FileFormat::Unknown));
    let headroom = newest.map_or(0, |f| f.size);
    Ok(Report {
        schema: SCHEMA,
        dir: dir.display().to_string(),
        format,
        clean: damage.is_empty(),
        files,
        live,
        next_id,
        space: Space::new(files_bytes, live_records_bytes, headroom),
        damage,
        notes,
    })
}

impl Report {
    /// [`EXIT_CLEAN`], or [`EXIT_DAMAGED`] if any damage was found.
    pub fn exit_status(&self) -> u8 {
        if self.clean { EXIT_CLEAN } else { EXIT_DAMAGED }
    }
}

/// The `binlog.N` files of `dir`, by N; notes what else is worth knowing
/// (a takeover's directories, names that look like files but are not).
fn list(dir: &Path, notes: &mut Vec<String>) -> Result<Vec<Listed>, InspectError> {
    let entries =
        fs::read_dir(dir).map_err(|e| InspectError(format!("cannot read directory {}: {e}", dir.display())))?;
    let mut listed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| InspectError(format!("cannot read directory {}: {e}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(seq) = seq_of_file_name(&name) {
            listed.push(Listed { seq, path: entry.path(), name });
        } else if name.starts_with("binlog.") {
            notes.push(format!("{name}: not a file a server reads (N must be a number below 2^64); ignored"));
        } else if name == ".sprout-import" {
            notes.push(format!(
                "{name}/: a takeover of beanstalkd's files, complete and not yet moved into place (a crash cut it \
                 short); the next start finishes it; its files are not read here"
            ));
        } else if name.starts_with(".sprout-import") {
            notes.push(format!(
                "{name}/: a takeover of beanstalkd's files that a crash cut short; the next start does it again \
                 from beanstalkd's files; its files are not read here"
            ));
        } else if name.starts_with("beanstalkd-imported-") {
            notes.push(format!(
                "{name}/: beanstalkd's files, moved aside by a takeover; no server reads them (remove them when \
                 no longer needed)"
            ));
        }
    }
    listed.sort_unstable_by_key(|f| f.seq);
    Ok(listed)
}

/// The first bytes of a file, enough to tell its format; `None` if it is
/// gone.
fn first_bytes(path: &Path) -> Result<Option<Vec<u8>>, InspectError> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(InspectError(format!("cannot read {}: {e}", path.display()))),
    };
    let mut start = Vec::with_capacity(MAGIC.len());
    file.take(MAGIC.len() as u64)
        .read_to_end(&mut start)
        .map_err(|e| InspectError(format!("cannot read {}: {e}", path.display())))?;
    Ok(Some(start))
}

/// A whole file, opened read-only; `None` if it is gone.
fn read(path: &Path) -> Result<Option<Vec<u8>>, InspectError> {
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(InspectError(format!("cannot read {}: {e}", path.display()))),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| InspectError(format!("cannot read {}: {e}", path.display())))?;
    Ok(Some(bytes))
}

/// A file being judged: which, the files after it, and how to read it
/// again.
struct Reading<'a, 'r> {
    file: &'a Listed,
    later: &'a [Listed],
    read: &'a mut ReadWhole<'r>,
}

impl Reading<'_, '_> {
    /// True if a later file holds anything past its header. A server
    /// writes its files in order: this one was complete before.
    fn later_have_data(&self) -> bool {
        self.later.iter().any(|f| file_has_records(&f.path))
    }

    /// The file read again, after `bytes` looked damaged.
    fn again(&mut self, bytes: &[u8]) -> Reread {
        match (self.read)(&self.file.path) {
            Ok(Some(again)) if again[..] != *bytes => Reread::Changed(again),
            Ok(None) => Reread::Gone,
            _ => Reread::Same,
        }
    }
}

/// A file read again after it looked damaged.
enum Reread {
    /// Its bytes changed: a server was writing them.
    Changed(Vec<u8>),
    /// The same bytes (or they cannot be read now).
    Same,
    /// Gone: a server retired it, so it was no longer being written, and
    /// holds nothing a server needs.
    Gone,
}

/// A file of zeros: being made, or whose making a crash cut short. Damage
/// only before sprout's files with records, where a start refuses it.
fn zeros(file: &Listed, len: usize, before_records: bool, notes: &mut Vec<String>) -> FileReport {
    let mut damage = Vec::new();
    if before_records {
        damage.push(Spot {
            offset: 0,
            reason: format!("{len} zero bytes and no header, before files with records: a start refuses it"),
        });
    } else {
        notes.push(format!(
            "{}: {len} zero bytes: a file being made, or whose making a crash cut short (a start removes it, a \
             takeover moves it aside)",
            file.name
        ));
    }
    FileReport {
        name: file.name.clone(),
        seq: file.seq,
        format: FileFormat::Empty,
        size: len as u64,
        records: RecordCounts::None {},
        records_end: 0,
        torn_tail: None,
        damage,
    }
}

/// A file of neither format: damage.
fn unknown(file: &Listed, bytes: &[u8]) -> FileReport {
    let start = &bytes[..bytes.len().min(MAGIC.len())];
    let hex: Vec<String> = start.iter().map(|b| format!("{b:02x}")).collect();
    let reason = format!(
        "neither sprout's format (magic SPROUTWL) nor beanstalkd's (version 7 or 5): it starts with {}",
        hex.join(" ")
    );
    FileReport {
        name: file.name.clone(),
        seq: file.seq,
        format: FileFormat::Unknown,
        size: bytes.len() as u64,
        records: RecordCounts::None {},
        records_end: 0,
        torn_tail: None,
        damage: vec![Spot { offset: 0, reason }],
    }
}

#[cfg(test)]
mod tests;
