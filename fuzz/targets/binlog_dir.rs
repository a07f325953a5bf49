//! What the two binlog targets share: an input as a directory of 1 to 3
//! `binlog.N` files, and a server's start on it (`Binlog::open`, the jobs
//! restored into an engine as src/server/restore.rs does), checked.
//!
//! Input: `flags`, `first`, then the files' bytes, separated by
//! [`SEPARATOR`].
//! - `flags` bits 0-1: how many files (1, 1, 2, 3; fewer if fewer parts);
//!   bit 2: fix up sprout's checksums (the header's and each record's, for
//!   the frames that can be walked), so the fuzzer gets past them; bit 3:
//!   pad each file with zeros to a multiple of 4096 bytes, as files are
//!   preallocated; bits 4-5: the gap between file numbers.
//! - `first`: the number N of the first file.
//!
//! The allocation bound for a start on the directory is [`alloc_limit`].

use std::fs;
use std::path::Path;
use std::time::Instant;

use sprout::binlog::{Binlog, BinlogConfig, OpenError, Opened};
use sprout::engine::{Engine, EngineConfig, JobCounts, JobState, Nanos, SECOND};
use sprout::host::HostInfo;
use sprout::settings::FsyncPolicy;

/// Between two files of an input.
pub const SEPARATOR: &[u8] = b"%%binlog%%";

/// `-s` for the starts: the smallest, so that spare files are cheap.
pub const FILE_SIZE: u64 = 4096;

/// The engine's time at the starts (December 2025): delayed jobs in the
/// seeds come back delayed or ready around it.
pub const NOW: Nanos = 1_765_000_000 * SECOND;

/// The bound on any single allocation while a target works on an input of
/// `input_len` bytes: sixteen times the input, and 256 KiB besides.
///
/// Everything a start holds is derived from the files' bytes: a file read
/// whole; job bodies copied out of it; one entry per record or job (a live
/// job is 104 bytes, and takes a record of at least 16 bytes in sprout's
/// format 2, 80 in format 1, 87 in beanstalkd's; a beanstalkd record read
/// is about 120 bytes for a record of at least 84), in vectors that double
/// as they grow, so at most 6.5 bytes for a byte of input, and at most
/// twice what they hold (a doubled vector) for copies. The fixed-size
/// buffers on these paths are at most 64 KiB (the zeros written where
/// `fallocate` is missing, the buffer that tells a file of zeros) and 16
/// KiB pages of small bodies; the takeover flushes what it queued every 1
/// MiB, which only an input of more than that reaches. A length read from a
/// file (32 bits in every format) and used unchecked is up to 4 GiB: far
/// over this for any input afl makes (1 MiB at most).
pub fn alloc_limit(input_len: usize) -> usize {
    16 * input_len + (256 << 10)
}

/// The files an input describes.
pub struct Files {
    /// `(N, bytes)`, by N.
    pub files: Vec<(u64, Vec<u8>)>,
}

impl Files {
    /// Splits an input; `None` if it is too short to say anything.
    pub fn parse(data: &[u8]) -> Option<Files> {
        let (&flags, rest) = data.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let count = [1, 1, 2, 3][usize::from(flags & 3)];
        let gap = u64::from((flags >> 4) & 3);
        let mut files = Vec::new();
        let mut rest = rest;
        for i in 0..count {
            let seq = u64::from(first) + i * (1 + gap);
            let (bytes, next) = match find(rest, SEPARATOR) {
                Some(at) if i + 1 < count => (&rest[..at], Some(&rest[at + SEPARATOR.len()..])),
                _ => (rest, None),
            };
            let mut bytes = bytes.to_vec();
            if flags & 4 != 0 {
                fix_checksums(&mut bytes);
            }
            if flags & 8 != 0 {
                bytes.resize(bytes.len().next_multiple_of(4096), 0);
            }
            files.push((seq, bytes));
            match next {
                Some(next) => rest = next,
                None => break,
            }
        }
        Some(Files { files })
    }

    /// The bytes of all the files.
    pub fn total_len(&self) -> usize {
        self.files.iter().map(|(_, b)| b.len()).sum()
    }

    /// A fresh directory holding the files (in /dev/shm where there is
    /// one: no disk, and fsync costs nothing).
    pub fn write(&self) -> tempfile::TempDir {
        let shm = Path::new("/dev/shm");
        let builder = tempfile::Builder::new().prefix("sprout-fuzz-").to_owned();
        let dir =
            if shm.is_dir() { builder.tempdir_in(shm) } else { builder.tempdir() }.expect("a temporary directory");
        for (seq, bytes) in &self.files {
            fs::write(dir.path().join(format!("binlog.{seq}")), bytes).expect("a file written");
        }
        dir
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// sprout's checksums made right: the header's, if the file starts with
/// the magic, and every record's that a walk over the frames reaches (to a
/// length past the end; over zeros, to the next non-zero byte, so that
/// records behind zeros are valid too).
fn fix_checksums(bytes: &mut [u8]) {
    if bytes.len() < 32 || !bytes.starts_with(b"SPROUTWL") {
        return;
    }
    let crc = crc32(&bytes[..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    let mut at = 32;
    while let Some(frame) = bytes.get(at..at + 8) {
        if frame == [0; 8] {
            match bytes[at..].iter().position(|&b| b != 0) {
                Some(next) => {
                    at += next;
                    continue;
                }
                None => break,
            }
        }
        let len = u32::from_le_bytes(frame[4..8].try_into().unwrap()) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|&end| end <= bytes.len()) else { break };
        let crc = crc32(&bytes[at + 4..end]);
        bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
}

/// CRC-32 (IEEE), as the binlog's (crc32fast is not among the crates the
/// root test may use).
fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |c, &b| TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8))
}

/// A job as a start brings it back: everything a client can see of it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct JobSeen {
    pub id: u64,
    pub tube: String,
    pub pri: u32,
    pub delay: Nanos,
    pub ttr: Nanos,
    pub created_at: Nanos,
    pub state: String,
    pub ready_at: Nanos,
    pub counts: (u32, u32, u32, u32, u32),
    pub body: Vec<u8>,
}

/// What a start found: its jobs by id, and the next id.
#[derive(Debug, PartialEq, Eq)]
pub struct Started {
    pub jobs: Vec<JobSeen>,
    pub buried_in_order: Vec<u64>,
    pub next_id: u64,
}

/// `Binlog::open` on `dir`.
pub fn open(dir: &Path, skip_damaged: bool) -> Result<Opened, OpenError> {
    Binlog::open(&BinlogConfig {
        dir: dir.to_path_buf(),
        file_size: FILE_SIZE,
        fsync: FsyncPolicy::Never,
        skip_damaged,
    })
}

/// The jobs an opened log hands the engine.
pub fn seen(opened: &Opened) -> Started {
    let restored = opened.restoration.jobs();
    let mut jobs: Vec<JobSeen> = restored
        .iter()
        .map(|j| {
            let c = j.change;
            let JobCounts { reserves, timeouts, releases, buries, kicks } = c.counts;
            JobSeen {
                id: j.id,
                tube: j.tube.as_str().to_string(),
                pri: c.pri,
                delay: c.delay,
                ttr: j.ttr,
                created_at: j.created_at,
                state: format!("{:?}", c.state),
                ready_at: c.ready_at,
                counts: (reserves, timeouts, releases, buries, kicks),
                body: opened.restoration.body(j.body).to_vec(),
            }
        })
        .collect();
    // The engine places buried jobs in burial order: their burial time,
    // then id.
    let mut buried: Vec<_> = restored.iter().filter(|j| j.change.state == JobState::Buried).collect();
    buried.sort_by_key(|j| (j.change.ready_at, j.id));
    let buried_in_order = buried.into_iter().map(|j| j.id).collect();
    jobs.sort();
    let ids: Vec<u64> = jobs.iter().map(|j| j.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "a job restored twice: {ids:?}");
    assert!(ids.last().is_none_or(|&id| id < opened.next_id), "next id {} not past the jobs", opened.next_id);
    Started { jobs, buried_in_order, next_id: opened.next_id }
}

/// The engine the server would start with: the jobs restored, as
/// src/server/restore.rs does, its invariants checked, and its `stats`
/// counting the jobs restored in their states (a delayed job whose time
/// came while no server ran comes back ready).
pub fn restore(opened: Opened) -> Engine<Binlog> {
    let expected = {
        let jobs = opened.restoration.jobs();
        let count = |f: &dyn Fn(&sprout::engine::RestoredChange) -> bool| jobs.iter().filter(|j| f(&j.change)).count();
        let delayed = count(&|j| j.state == JobState::Delayed && j.ready_at > NOW);
        let buried = count(&|j| j.state == JobState::Buried);
        [("current-jobs-ready", jobs.len() - delayed - buried), ("current-jobs-delayed", delayed)]
            .into_iter()
            .chain([("current-jobs-buried", buried), ("current-jobs-reserved", 0)])
            .map(|(key, n)| format!("{key}: {n}"))
            .collect::<Vec<_>>()
    };
    let Opened { binlog, restoration, next_id, .. } = opened;
    let config = EngineConfig { max_job_size: 65_535, binlog_max_size: FILE_SIZE, host: HostInfo::fake() };
    let mut engine = Engine::with_journal(config, NOW, binlog);
    engine.restore_all(NOW, restoration);
    engine.raise_next_job_id(next_id);
    engine.take_replies().for_each(drop);
    engine.check_invariants();
    assert!(engine.next_job_id() >= next_id, "the engine's next id");
    engine.connect(0);
    engine.apply(NOW, 0, sprout::protocol::Command::Stats);
    let replies: Vec<_> = engine.take_replies().collect();
    engine.disconnect(NOW, 0);
    let [(0, sprout::protocol::Reply::Ok(yaml))] = &replies[..] else { panic!("stats: {replies:?}") };
    let stats = String::from_utf8_lossy(yaml);
    for line in expected {
        assert!(stats.lines().any(|l| l == line), "stats after a restore: want {line} in\n{stats}");
    }
    engine
}

/// Deletes the jobs of `ids` through the engine (the log records each), and
/// commits: what a client's deletes right after the start would leave.
pub fn delete(engine: &mut Engine<Binlog>, ids: &[u64]) {
    use sprout::protocol::{Command, Reply};
    engine.connect(0);
    for &id in ids {
        engine.apply(NOW, 0, Command::Delete(id));
        let replies: Vec<_> = engine.take_replies().collect();
        assert_eq!(replies, [(0, Reply::Deleted)], "deleting restored job {id}");
    }
    engine.disconnect(NOW, 0);
    engine.check_invariants();
    engine.journal_mut().commit(Instant::now()).expect("the deletes written");
}

/// A refusal to start must say where: the directory, or the file (whose
/// path is in the directory), and for a damaged record, its offset.
pub fn check_refusal(error: &OpenError, dir: &Path) {
    let message = error.to_string();
    let dir = dir.display().to_string();
    assert!(message.contains(&dir), "a refusal that names neither the directory nor a file in it: {message}");
    if message.contains("damaged record") {
        assert!(message.contains("offset"), "a damaged record without its offset: {message}");
    }
}

/// A start, checked; then a restart on what it left, which must find the
/// same jobs; then deletes of half of them, and a restart that must find
/// the other half. Returns what the first start found, or its refusal.
pub fn start_and_restart(files: &Files, skip_damaged: bool) -> Result<Started, String> {
    let dir = files.write();
    let opened = match open(dir.path(), skip_damaged) {
        Ok(opened) => opened,
        Err(error) => {
            check_refusal(&error, dir.path());
            return Err(error.to_string());
        }
    };
    let first = seen(&opened);
    let engine = restore(opened);
    drop(engine);

    let again = open(dir.path(), skip_damaged).unwrap_or_else(|e| panic!("a log that opened does not open again: {e}"));
    let second = seen(&again);
    assert_eq!(second.jobs, first.jobs, "the jobs of a restart on what the start left");
    assert_eq!(second.buried_in_order, first.buried_in_order, "burial order after a restart");
    assert!(second.next_id >= first.next_id, "next id went back from {} to {}", first.next_id, second.next_id);

    let mut engine = restore(again);
    let (gone, kept): (Vec<JobSeen>, Vec<JobSeen>) = first.jobs.iter().cloned().partition(|j| j.id % 2 == 0);
    delete(&mut engine, &gone.iter().map(|j| j.id).collect::<Vec<_>>());
    drop(engine);
    let third = open(dir.path(), skip_damaged).unwrap_or_else(|e| panic!("no restart after deletes: {e}"));
    let third_seen = seen(&third);
    assert_eq!(third_seen.jobs, kept, "the jobs left after deleting {} of them", gone.len());
    restore(third);
    Ok(first)
}
