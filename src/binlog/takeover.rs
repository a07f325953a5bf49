//! Taking over beanstalkd's binlog in place: `sprout -b DIR` on a directory
//! that beanstalkd wrote imports every job it holds into sprout's own log,
//! then moves beanstalkd's files aside, untouched.
//!
//! The import is crash-safe, with one rename as its commit point:
//!
//! 1. beanstalkd's files are read (`beanstalkd/`: a reader of bytes that
//!    trusts nothing) and replayed into the jobs they leave alive. A record
//!    torn by a crash (only zeros after it) is cut with a warning, in any
//!    file, since beanstalkd restarted after a crash leaves the torn file
//!    and goes on in a new one; damage (more data after a bad record) is
//!    refused, or with `--skip-damaged-records` the rest of that file is
//!    dropped (beanstalkd's records have no checksum or marker to find the
//!    next one by);
//! 2. sprout's log of those jobs is written into `DIR/.sprout-import.tmp/`,
//!    with a plan (where beanstalkd's files go, and the line to log), and
//!    synced;
//! 3. that directory is renamed `DIR/.sprout-import/` (and `DIR` synced):
//!    from here on the import is done, whatever happens;
//! 4. beanstalkd's files move into `DIR/beanstalkd-imported-<time>/`, then
//!    sprout's files into `DIR`, each step synced; `DIR/.sprout-import/` is
//!    removed last.
//!
//! A start that finds `.sprout-import/` finishes step 4, however far it got
//! (every move is a rename, done or not); one that finds only
//! `.sprout-import.tmp/` throws it away and imports again from beanstalkd's
//! files, which are still all in place. So `kill -9` at any moment leaves a
//! directory that the next start turns into the same result, with no job
//! twice: sprout's files come only from a complete import, and beanstalkd's
//! files are gone from `DIR` before sprout's arrive.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::OpenError;
use super::beanstalkd::{self, End, ImportedState, Replay};
use super::live_jobs::LiveJob;
use super::record::{self, FullJob, HEADER_LEN, Header, JobUpdate, LoggedState, MAGIC, Record};
use super::recovery::{FoundFile, Recovered};
use super::segment::{Segment, file_name, numbered_files, sync_dir};

/// Where the import writes sprout's log until it is complete.
const STAGING: &str = ".sprout-import.tmp";

/// The staging directory once its log is complete and synced.
const COMPLETE: &str = ".sprout-import";

/// In the staging directory: the subdirectory beanstalkd's files go to, on
/// the first line, and the line to log once the takeover is done.
const PLAN: &str = "plan";

// The imported jobs become recovery's live jobs in place, in their own
// list's memory, only if a live job is no larger than an imported one.
const _: () = assert!(
    std::mem::size_of::<LiveJob>() == std::mem::size_of::<beanstalkd::ImportedJob>()
        && std::mem::align_of::<LiveJob>() == std::mem::align_of::<beanstalkd::ImportedJob>()
);

/// Flush a staging file's queued records every this many bytes, so the
/// import holds no more than this of them in memory.
const WRITE_EVERY: usize = 1 << 20;

/// What a `binlog.N` file in the directory is, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sprout,
    Beanstalkd,
    /// Zeros, or nothing: a file whose making was cut short by a crash.
    Empty,
    Unknown,
}

/// A `binlog.N` of the directory.
struct Found {
    seq: u64,
    path: PathBuf,
    kind: Kind,
}

/// What a takeover did.
pub struct TakenOver {
    /// The line to log.
    pub report: String,
    /// The log just written, as reading it back would find it, when this
    /// process imported it (so it need not be read again); `None` when it
    /// only finished an import a crash interrupted.
    pub recovered: Option<Recovered>,
}

/// Imports beanstalkd's files in `dir`, if it holds any, into sprout's log
/// (files of `file_size` bytes), and moves them aside; or finishes an import
/// that a crash interrupted. Says what it did, if anything. Must run under
/// the directory's lock, before sprout's log is read.
pub fn take_over(dir: &Path, file_size: u64, skip_damaged: bool) -> Result<Option<TakenOver>, OpenError> {
    let complete = dir.join(COMPLETE);
    if complete.is_dir() {
        if !complete.join(PLAN).exists() {
            // Cut off between the plan's removal and the directory's: all
            // but that was done.
            fs::remove_dir(&complete)
                .map_err(|e| OpenError::Io(format!("cannot remove {}: {e}", complete.display())))?;
            sync(dir)?;
            return Ok(None);
        }
        let report = finish(dir, &complete)?;
        return Ok(Some(TakenOver { report, recovered: None }));
    }
    let staging = dir.join(STAGING);
    let found = binlog_files(dir)?;
    if !found.iter().any(|f| f.kind == Kind::Beanstalkd) {
        if staging.exists() {
            // Only an import makes it, and only a finished one moves
            // beanstalkd's files: someone took them away since.
            log::warn!("{}: an unfinished import, whose beanstalkd files are gone; removed", staging.display());
            remove_dir_all(&staging)?;
        }
        return Ok(None);
    }
    if found.iter().any(|f| f.kind == Kind::Sprout) {
        return Err(OpenError::Damaged(format!(
            "{} holds both beanstalkd's binlog files and sprout's: refusing to guess which jobs are current \
             (move one kind elsewhere)",
            dir.display()
        )));
    }
    if let Some(unknown) = found.iter().find(|f| f.kind == Kind::Unknown)
        && !skip_damaged
    {
        return Err(OpenError::Damaged(format!(
            "{}: neither beanstalkd's format 5 or 7 nor sprout's; refusing to take over the directory \
             (start with --skip-damaged-records to leave it out of the import)",
            unknown.path.display()
        )));
    }
    if staging.exists() {
        log::warn!("{}: an import cut short by a crash; starting it again", staging.display());
        remove_dir_all(&staging)?;
    }
    let import = read_and_replay(&found, skip_damaged)?;
    let recovered = write_staging(dir, &staging, import, file_size)?;
    rename(&staging, &complete)?;
    sync(dir)?;
    let report = finish(dir, &complete)?;
    Ok(Some(TakenOver { report, recovered: Some(recovered) }))
}

/// True if `dir` holds a takeover a crash cut short (the next start of a
/// server on it finishes or redoes it).
pub fn is_unfinished(dir: &Path) -> bool {
    dir.join(COMPLETE).exists() || dir.join(STAGING).exists()
}

/// What the import read, and what it will write.
struct Import {
    replayed: beanstalkd::Imported,
    files: usize,
    bytes: u64,
    versions: Vec<&'static str>,
}

/// Reads beanstalkd's files oldest first, each one whole (a file is `-s`
/// bytes, 10 MB by default), and replays their records.
fn read_and_replay(found: &[Found], skip_damaged: bool) -> Result<Import, OpenError> {
    let theirs: Vec<&Found> = found.iter().filter(|f| f.kind == Kind::Beanstalkd).collect();
    let mut replay = Replay::new();
    let (mut bytes_read, mut versions) = (0, Vec::new());
    let mut buffer = Vec::new();
    for file in &theirs {
        buffer.clear();
        fs::File::open(&file.path)
            .and_then(|mut f| f.read_to_end(&mut buffer))
            .map_err(|e| OpenError::Io(format!("cannot read {}: {e}", file.path.display())))?;
        bytes_read += buffer.len() as u64;
        let read = beanstalkd::read_file(&buffer);
        let version = match read.version {
            Some(beanstalkd::Version::V5) => "5",
            Some(beanstalkd::Version::V7) => "7",
            None => "?",
        };
        if !versions.contains(&version) {
            versions.push(version);
        }
        match &read.end {
            End::Clean { .. } => {}
            // Not only in the newest file: beanstalkd, restarted after a
            // crash, leaves the torn file as it is and goes on in a new one.
            End::Torn { at, why } => log::warn!(
                "{}: cut off a torn record at offset {at} ({why}): beanstalkd was stopped in the middle of \
                 writing it, so it was never acknowledged",
                file.path.display()
            ),
            End::Damaged { at, why } => {
                let rest = buffer.len() - at;
                if !skip_damaged {
                    return Err(OpenError::Damaged(format!(
                        "{}: damaged record at offset {at} ({why}); refusing to take over rather than lose jobs \
                         silently (start with --skip-damaged-records to import everything before it and drop \
                         the {rest} bytes from there to the end of the file)",
                        file.path.display()
                    )));
                }
                log::warn!(
                    "{}: damaged record at offset {at} ({why}); dropped the {rest} bytes from there to the end \
                     of the file (records cannot be found again after damage: beanstalkd's have no checksum \
                     or marker)",
                    file.path.display()
                );
            }
        }
        replay.apply(file.seq, &read);
    }
    Ok(Import { replayed: replay.finish(), files: theirs.len(), bytes: bytes_read, versions })
}

/// Writes sprout's log of the imported jobs into `staging`, with the plan,
/// and syncs it all. Returns that log as reading it back from `dir` (where
/// its files will be) would find it: the jobs, with the bodies the replay
/// already holds.
fn write_staging(dir: &Path, staging: &Path, import: Import, file_size: u64) -> Result<Recovered, OpenError> {
    let fail = |e: io::Error| OpenError::Io(format!("cannot write the import into {}: {e}", staging.display()));
    fs::create_dir(staging).map_err(fail)?;
    crash_point();
    let target = format!("beanstalkd-imported-{}", utc_stamp());
    let report = report(dir, &import, &target);
    let beanstalkd::Imported { jobs, bodies, next_id, .. } = import.replayed;
    let make = |seq: u64, record_len: u64| {
        let capacity = file_size.max(HEADER_LEN as u64 + record_len).next_multiple_of(4096);
        let made = Segment::create(staging, Header::new(seq, next_id), capacity, false);
        crash_point();
        made
    };
    // Buried jobs come in burial order; beanstalkd kept no burial time, so
    // they get times just before now, in that order (before any burial
    // sprout will make).
    let buried = jobs.iter().filter(|j| matches!(j.state, ImportedState::Buried { .. })).count() as i64;
    let mut burial_time = now_ns() - buried - 1;
    let mut files: Vec<Segment> = Vec::new();
    // Each imported job becomes, in place, the live job recovery would
    // read back (a job of each at once would be the takeover's peak).
    let live: Vec<LiveJob> = jobs
        .into_iter()
        .map(|job| {
            let (state, ready_at) = match job.state {
                ImportedState::Ready => (LoggedState::Ready, 0),
                ImportedState::Delayed { ready_at_ns } => (LoggedState::Delayed, ready_at_ns),
                ImportedState::Buried { .. } => {
                    burial_time += 1;
                    (LoggedState::Buried, burial_time)
                }
            };
            let c = job.counts;
            let update = JobUpdate {
                id: job.id,
                pri: job.pri,
                state,
                delay: job.delay_ns,
                ready_at,
                reserves: c.reserves,
                timeouts: c.timeouts,
                releases: c.releases,
                buries: c.buries,
                kicks: c.kicks,
            };
            let full =
                FullJob { update, tube: job.tube, ttr: job.ttr_ns, created_at: job.created_at_ns, body: job.body };
            let record = Record::Job(FullJob {
                update,
                tube: full.tube.clone(),
                ttr: full.ttr,
                created_at: full.created_at,
                body: bodies.get(full.body),
            });
            let len = match files.last_mut().and_then(|file| file.append(&record)) {
                Some(len) => len,
                None => {
                    if let Some(full) = files.last_mut() {
                        full.write_pending().map_err(fail)?;
                        crash_point();
                    }
                    let seq = files.len() as u64 + 1;
                    files.push(make(seq, record::max_len(&record) as u64).map_err(fail)?);
                    let file = files.last_mut().expect("made above");
                    file.append(&record).expect("a new file is made with room for its first record")
                }
            };
            let file = files.last_mut().expect("made above");
            if file.pending_len() >= WRITE_EVERY {
                file.write_pending().map_err(fail)?;
                crash_point();
            }
            let seq = u32::try_from(file.seq).expect("fewer than 2^32 files");
            Ok(LiveJob { job: full, seq, record_len: u32::try_from(len).unwrap_or(u32::MAX) })
        })
        .collect::<Result<_, OpenError>>()?;
    if files.is_empty() {
        // No live job: the log still needs a file, whose header keeps the
        // ids growing.
        files.push(make(1, 0).map_err(fail)?);
    }
    for file in &mut files {
        file.write_pending().map_err(fail)?;
        crash_point();
        file.sync(&Default::default()).map_err(fail)?;
        crash_point();
    }
    let plan = staging.join(PLAN);
    fs::write(&plan, format!("{target}\n{report}\n")).map_err(fail)?;
    crash_point();
    fs::File::open(&plan).and_then(|f| f.sync_all()).map_err(fail)?;
    crash_point();
    sync(staging)?;
    let found = files
        .into_iter()
        .map(|f| FoundFile { seq: f.seq, path: dir.join(file_name(f.seq)), end: f.end, encoder: f.into_encoder() })
        .collect();
    Ok(Recovered { jobs: live, bodies, next_id, files: found })
}

/// The line logged once the takeover is done.
fn report(dir: &Path, import: &Import, target: &str) -> String {
    let c = &import.replayed.counts;
    format!(
        "binlog: took over beanstalkd's log in {}: {} jobs ({} ready, {} of them reserved before; {} delayed; {} \
         buried) from {} files of format {} ({} bytes); next job id {}; paused tubes are not in beanstalkd's \
         log and start unpaused; beanstalkd's files are in {}",
        dir.display(),
        import.replayed.jobs.len(),
        c.ready,
        c.reserved_made_ready,
        c.delayed,
        c.buried,
        import.files,
        import.versions.join(" and "),
        import.bytes,
        import.replayed.next_id,
        dir.join(target).display()
    )
}

/// Step 4: beanstalkd's files aside, sprout's in, the staging directory
/// gone. Each move is a rename, done or not done, so this picks up where a
/// crash left it.
fn finish(dir: &Path, complete: &Path) -> Result<String, OpenError> {
    let plan_path = complete.join(PLAN);
    let plan = fs::read_to_string(&plan_path)
        .map_err(|e| OpenError::Io(format!("cannot read {}: {e}", plan_path.display())))?;
    let mut lines = plan.lines();
    let (Some(target), Some(report)) = (lines.next(), lines.next()) else {
        return Err(OpenError::Damaged(format!("{}: not a plan this version of sprout wrote", plan_path.display())));
    };
    if target.contains('/') || !target.starts_with("beanstalkd-imported-") {
        return Err(OpenError::Damaged(format!("{}: names no directory of beanstalkd's files", plan_path.display())));
    }
    let target = dir.join(target);
    if !target.is_dir() {
        fs::create_dir(&target).map_err(|e| OpenError::Io(format!("cannot make {}: {e}", target.display())))?;
        crash_point();
        sync(dir)?;
    }
    // Whatever `binlog.N` is not sprout's is beanstalkd's (or a file its
    // crash left empty): none of sprout's is here yet but those this step
    // already moved.
    for file in binlog_files(dir)?.iter().filter(|f| f.kind != Kind::Sprout) {
        move_into(&file.path, &target)?;
    }
    sync(&target)?;
    sync(dir)?;
    for file in binlog_files(complete)? {
        move_into(&file.path, dir)?;
    }
    sync(dir)?;
    fs::remove_file(&plan_path).map_err(|e| OpenError::Io(format!("cannot remove {}: {e}", plan_path.display())))?;
    crash_point();
    fs::remove_dir(complete).map_err(|e| OpenError::Io(format!("cannot remove {}: {e}", complete.display())))?;
    crash_point();
    sync(dir)?;
    log::debug!("binlog: the takeover took {} steps that change the disk", STEPS.load(Ordering::Relaxed));
    Ok(report.to_string())
}

/// Moves a file into `into` under its own name, never over a file there.
fn move_into(path: &Path, into: &Path) -> Result<(), OpenError> {
    let name = path.file_name().expect("a file name");
    let to = into.join(name);
    if to.exists() {
        return Err(OpenError::Io(format!(
            "cannot move {} to {}: a file of that name is there already",
            path.display(),
            to.display()
        )));
    }
    rename(path, &to)
}

/// The `binlog.N` files of `dir`, by N, each with its kind.
fn binlog_files(dir: &Path) -> Result<Vec<Found>, OpenError> {
    let (seqs, _) =
        numbered_files(dir).map_err(|e| OpenError::Io(format!("cannot read directory {}: {e}", dir.display())))?;
    seqs.into_iter()
        .map(|seq| {
            let path = dir.join(file_name(seq));
            let kind = kind_of(&path).map_err(|e| OpenError::Io(format!("cannot read {}: {e}", path.display())))?;
            Ok(Found { seq, path, kind })
        })
        .collect()
}

/// What a file is, from its first bytes (and for zeros, from all of them).
fn kind_of(path: &Path) -> io::Result<Kind> {
    let mut file = fs::File::open(path)?;
    let mut start = [0u8; 8];
    let mut got = 0;
    while got < start.len() {
        match file.read(&mut start[got..])? {
            0 => break,
            n => got += n,
        }
    }
    let start = &start[..got];
    if start.starts_with(&MAGIC) {
        return Ok(Kind::Sprout);
    }
    if beanstalkd::version_of(start).is_some() {
        return Ok(Kind::Beanstalkd);
    }
    if start.iter().all(|&b| b == 0) && is_all_zeros(file)? {
        return Ok(Kind::Empty);
    }
    Ok(Kind::Unknown)
}

fn is_all_zeros(mut file: fs::File) -> io::Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(true),
            n if buf[..n].iter().any(|&b| b != 0) => return Ok(false),
            _ => {}
        }
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), OpenError> {
    fs::rename(from, to)
        .map_err(|e| OpenError::Io(format!("cannot move {} to {}: {e}", from.display(), to.display())))?;
    crash_point();
    Ok(())
}

fn sync(dir: &Path) -> Result<(), OpenError> {
    sync_dir(dir).map_err(|e| OpenError::Io(format!("cannot sync {}: {e}", dir.display())))?;
    crash_point();
    Ok(())
}

fn remove_dir_all(dir: &Path) -> Result<(), OpenError> {
    fs::remove_dir_all(dir).map_err(|e| OpenError::Io(format!("cannot remove {}: {e}", dir.display())))?;
    crash_point();
    Ok(())
}

/// Counts the takeover's steps that change the disk (a file made, written
/// or synced, a rename, a removal), for [`crash_point`].
static STEPS: AtomicU64 = AtomicU64::new(0);

/// A crash point, for tests: with `SPROUT_TEST_TAKEOVER_CRASH_AT=N` in its
/// environment the process kills itself with SIGKILL right after the
/// takeover's Nth step that changes the disk, leaving the directory exactly
/// as `kill -9` there would; so a test can stop an import at every one of
/// its steps and check that the next start finishes it. Without the
/// variable (always, outside tests) this is a count and a comparison.
fn crash_point() {
    static CRASH_AT: OnceLock<Option<u64>> = OnceLock::new();
    let step = STEPS.fetch_add(1, Ordering::Relaxed) + 1;
    let crash_at = CRASH_AT.get_or_init(|| std::env::var("SPROUT_TEST_TAKEOVER_CRASH_AT").ok()?.parse().ok());
    if *crash_at == Some(step) {
        // SAFETY: kill takes no pointers; it sends SIGKILL to this process,
        // which ends it at once, as an outside kill -9 would.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// Now, in UTC, as `20261206T061500Z`.
fn utc_stamp() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let (h, m, s) = (day_secs / 3600, day_secs / 60 % 60, day_secs % 60);
    format!("{year:04}{month:02}{day:02}T{h:02}{m:02}{s:02}Z")
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_428), (2025, 12, 6));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
