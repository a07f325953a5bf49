//! The way back to beanstalkd: sprout's live jobs written as beanstalkd
//! version-7 binlog files (`sprout binlog export --beanstalkd SRC DEST`),
//! which beanstalkd replays when started with `-b DEST`.
//!
//! Each job is written as it is now, as one full record: release
//! priorities, which beanstalkd never logs, are kept; ready and reserved
//! jobs come back ready, delayed jobs with their deadline, buried jobs in
//! burial order (beanstalkd restores buried jobs in the order their records
//! come). beanstalkd refuses at replay a job whose body and CRLF exceed its
//! `-z`, and with it every later record of that file: such jobs are each
//! written to a file of their own, after the others, and named, so that a
//! beanstalkd with too small a `-z` loses only them.
//!
//! DEST is filled whole or not at all: the files are written into a
//! directory beside it and renamed into place in one step.

use std::fmt;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::beanstalkd::{ExportJob, State, V7Writer, full_record_len};
use super::lock::DirLock;
use super::record::LoggedState;
use super::recovery::{self, Mode};
use super::segment::{file_name, sync_dir};

/// What to export, and how.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// sprout's binlog directory; no server may hold it.
    pub src: PathBuf,
    /// Where beanstalkd's files go: a new or empty directory.
    pub dest: PathBuf,
    /// The `-z` beanstalkd will run with.
    pub max_job_size: u32,
    /// The size beanstalkd's files are cut at (as its `-s`).
    pub file_size: u64,
    /// Export what can be read of a damaged log.
    pub skip_damaged: bool,
}

/// What an export wrote.
#[derive(Debug)]
pub struct ExportSummary {
    /// Where.
    pub dest: PathBuf,
    /// Ready jobs (reserved ones included: beanstalkd brings them back
    /// ready).
    pub ready: u64,
    /// Delayed jobs.
    pub delayed: u64,
    /// Buried jobs.
    pub buried: u64,
    /// Files written.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Jobs larger than `-z` allows at beanstalkd's replay, by id, with
    /// their body sizes; and the `-z` they need.
    pub oversized: Vec<(u64, usize)>,
    /// The `-z` given.
    pub max_job_size: u32,
}

impl fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exported {} jobs ({} ready, {} delayed, {} buried) as {} beanstalkd binlog files ({} bytes) in {}; \
             start beanstalkd with -b {}",
            self.ready + self.delayed + self.buried,
            self.ready,
            self.delayed,
            self.buried,
            self.files,
            self.bytes,
            self.dest.display(),
            self.dest.display()
        )?;
        if let Some(largest) = self.oversized.iter().map(|&(_, len)| len).max() {
            let ids: Vec<String> = self.oversized.iter().map(|(id, _)| id.to_string()).collect();
            write!(
                f,
                "\nwarning: {} jobs are larger than beanstalkd -z {} keeps at its replay (body and CRLF within \
                 -z): start it with -z {} or more, or it drops them (each is in a file of its own, the last \
                 ones): jobs {}",
                self.oversized.len(),
                self.max_job_size,
                largest + 2,
                ids.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Why an export did not happen; nothing was written.
#[derive(Debug)]
pub struct ExportFailure(pub String);

impl fmt::Display for ExportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads sprout's log in `config.src` (without changing it) and writes its
/// live jobs as beanstalkd files in `config.dest`.
pub fn to_beanstalkd(config: &ExportConfig) -> Result<ExportSummary, ExportFailure> {
    let fail = |m: String| ExportFailure(m);
    if !config.src.is_dir() {
        return Err(fail(format!("{} is not a directory", config.src.display())));
    }
    // No server may be writing it meanwhile (a running sprout, or a
    // beanstalkd already started on it).
    let _lock = DirLock::acquire(&config.src).map_err(|e| fail(e.to_string()))?;
    if super::takeover::is_unfinished(&config.src) {
        return Err(fail(format!(
            "{} holds a takeover of beanstalkd's log that has not finished: start sprout on it once first",
            config.src.display()
        )));
    }
    let recovered = recovery::recover_with(&config.src, Mode { skip_damaged: config.skip_damaged, repair: false })
        .map_err(|e| fail(e.to_string()))?;
    check_dest(&config.dest)?;

    let limit = config.max_job_size as usize;
    let mut summary = ExportSummary {
        dest: config.dest.clone(),
        ready: 0,
        delayed: 0,
        buried: 0,
        files: 0,
        bytes: 0,
        oversized: Vec::new(),
        max_job_size: config.max_job_size,
    };
    let mut files: Vec<Vec<u8>> = Vec::new();
    let mut current = V7Writer::new();
    let mut alone = Vec::new();
    // Ready and delayed jobs in about id order, then buried ones in burial
    // order (recovery's order), so beanstalkd restores burial order too.
    for live in &recovered.jobs {
        let job = &live.job;
        let u = job.update;
        let (state, deadline) = match u.state {
            LoggedState::Ready | LoggedState::Reserved => (State::Ready, 0),
            LoggedState::Delayed => (State::Delayed, u.ready_at),
            LoggedState::Buried => (State::Buried, 0),
        };
        match state {
            State::Delayed => summary.delayed += 1,
            State::Buried => summary.buried += 1,
            _ => summary.ready += 1,
        }
        let body = recovered.bodies.get(job.body);
        let record = ExportJob {
            id: u.id,
            tube: job.tube.as_str(),
            pri: u.pri,
            delay_ns: i64::try_from(u.delay).unwrap_or(i64::MAX),
            ttr_ns: i64::try_from(job.ttr).unwrap_or(i64::MAX),
            created_at_ns: job.created_at,
            deadline_at_ns: deadline,
            counts: crate::engine::JobCounts {
                reserves: u.reserves,
                timeouts: u.timeouts,
                releases: u.releases,
                buries: u.buries,
                kicks: u.kicks,
            },
            state,
            body,
        };
        if body.len() + 2 > limit {
            summary.oversized.push((u.id, body.len()));
            let mut own = V7Writer::new();
            own.push_full(&record).map_err(|e| fail(format!("job {}: {e:?}", u.id)))?;
            alone.push(own.into_bytes());
            continue;
        }
        let len = full_record_len(record.tube.len(), body.len()) as u64;
        if !current.is_empty() && current.len() as u64 + len > config.file_size {
            files.push(std::mem::take(&mut current).into_bytes());
        }
        current.push_full(&record).map_err(|e| fail(format!("job {}: {e:?}", u.id)))?;
    }
    if !current.is_empty() || files.is_empty() {
        files.push(current.into_bytes());
    }
    files.extend(alone);
    write_dest(&config.dest, &files)?;
    summary.files = files.len() as u64;
    summary.bytes = files.iter().map(|f| f.len() as u64).sum();
    Ok(summary)
}

/// DEST must be new, or an empty directory.
fn check_dest(dest: &Path) -> Result<(), ExportFailure> {
    match fs::read_dir(dest).map(|mut entries| entries.next().is_none()) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ExportFailure(format!("cannot read {}: {e}", dest.display()))),
        Ok(true) => Ok(()),
        Ok(false) => Err(ExportFailure(format!(
            "{} is not empty: export into a new or empty directory (beanstalkd would read any binlog files in it)",
            dest.display()
        ))),
    }
}

/// Writes the files into a directory beside DEST, synced, and renames it
/// DEST (replacing an empty DEST): DEST holds all of them or none.
fn write_dest(dest: &Path, files: &[Vec<u8>]) -> Result<(), ExportFailure> {
    let fail =
        |what: &str, path: &Path, e: std::io::Error| ExportFailure(format!("cannot {what} {}: {e}", path.display()));
    let name = dest.file_name().ok_or_else(|| ExportFailure(format!("{} names no directory", dest.display())))?;
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let staging = parent.join(format!(".{}.sprout-export.tmp", name.to_string_lossy()));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| fail("remove", &staging, e))?;
    }
    fs::create_dir(&staging).map_err(|e| fail("make", &staging, e))?;
    for (i, bytes) in files.iter().enumerate() {
        let path = staging.join(file_name(i as u64 + 1));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| fail("create", &path, e))?;
        std::io::Write::write_all(&mut &file, bytes).map_err(|e| fail("write", &path, e))?;
        file.sync_all().map_err(|e| fail("sync", &path, e))?;
    }
    sync_dir(&staging).map_err(|e| fail("sync", &staging, e))?;
    fs::rename(&staging, dest).map_err(|e| fail("rename into place", dest, e))?;
    sync_dir(&parent).map_err(|e| fail("sync", &parent, e))?;
    Ok(())
}
