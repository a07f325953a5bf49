//! `beanstalkd_binlog`: beanstalkd's binlog files (version 7 or 5, or
//! whatever bytes), read by `binlog::beanstalkd::read_file`, replayed by
//! `Replay`, and taken over by a start on their directory (see
//! `binlog_dir` for the input's layout; the checksum bit does nothing to
//! files without sprout's magic).
//!
//! Checks:
//! - no panic, and no single allocation over [`binlog_dir::alloc_limit`];
//! - `read_file`'s records lie inside the file, back to back from the
//!   version on, each of a version's least length, ids never 0, a body
//!   exactly for the full records (the CRLF checked); the end is where
//!   they stop, and a clean end has only zeros after it;
//! - the replay's jobs have distinct ids below its next id, ready and
//!   delayed ones in id order before buried ones in burial order, and
//!   counts that add up;
//! - a start (the takeover, both strict and skipping damage) either
//!   refuses, naming the directory or the file (and the offset of a
//!   damaged record), or brings back exactly the replay's jobs, which pass
//!   the engine's invariants; a restart on the log it wrote brings back
//!   the same jobs, and after deleting half of them, the other half. A
//!   strict takeover refuses exactly when a file is damaged, or is of
//!   neither format, or sprout's files are there too.

use sprout::binlog::beanstalkd::{self, End, ImportedState, Replay, Version};
use sprout::engine::{secs, whole_secs};

use super::alloc_guard;
use super::binlog_dir::{self, Files, JobSeen, Started};

/// Runs the target on one input.
pub fn run(data: &[u8]) {
    let Some(files) = Files::parse(data) else { return };
    let limit = binlog_dir::alloc_limit(data.len().max(files.total_len()));
    alloc_guard::within(limit, "beanstalkd_binlog", || check(&files));
}

fn check(files: &Files) {
    let mut replay = Replay::new();
    let mut refusable = false;
    let mut sprout_files = false;
    for (seq, bytes) in &files.files {
        let read = beanstalkd::read_file(bytes);
        check_read(bytes, &read);
        let theirs = read.version.is_some();
        sprout_files |= bytes.starts_with(b"SPROUTWL");
        let zeros = bytes.iter().all(|&b| b == 0);
        refusable |= matches!(read.end, End::Damaged { .. }) && theirs || !theirs && !zeros;
        if theirs {
            replay.apply(*seq, &read);
        }
    }
    let any_theirs = files.files.iter().any(|(_, b)| beanstalkd::version_of(b).is_some());
    let imported = replay.finish();
    let ids: Vec<u64> = imported.jobs.iter().map(|j| j.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "a job imported twice");
    assert!(ids.iter().all(|&id| id != 0 && id < imported.next_id), "ids against next id {}", imported.next_id);
    let order: Vec<(u8, u64)> = (imported.jobs.iter())
        .map(|j| match j.state {
            ImportedState::Buried { rank } => (1, rank),
            _ => (0, j.id),
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "the import's order: {order:?}");
    let c = imported.counts;
    assert_eq!(c.ready + c.delayed + c.buried, imported.jobs.len() as u64, "counts by state");

    for skip in [false, true] {
        let started = binlog_dir::start_and_restart(files, skip);
        if !any_theirs {
            // Not a takeover: the `binlog` target's business.
            continue;
        }
        match started {
            Ok(started) => {
                assert!(!sprout_files, "a takeover of a directory that holds sprout's files too");
                assert!(skip || !refusable, "a strict takeover of damaged files");
                same_jobs(&imported, &started);
            }
            Err(refusal) => {
                assert!(sprout_files || !skip && refusable, "a takeover refused: {refusal}");
            }
        }
    }
}

/// A takeover brings back the replay's jobs (one that skips damage, those
/// before the damage, as the replay above).
fn same_jobs(imported: &beanstalkd::Imported, started: &Started) {
    let mut expected: Vec<JobSeen> = (imported.jobs.iter())
        .map(|j| {
            let (state, ready_at) = match j.state {
                ImportedState::Ready => ("Ready", 0),
                ImportedState::Delayed { ready_at_ns } => ("Delayed", ready_at_ns.max(0) as u64),
                // The takeover gives buried jobs burial times of its own.
                ImportedState::Buried { .. } => ("Buried", 0),
            };
            let c = j.counts;
            JobSeen {
                id: j.id,
                tube: j.tube.as_str().to_string(),
                pri: j.pri,
                // What a restart keeps: whole seconds, a TTR of at least one.
                delay: secs(whole_secs(j.delay_ns)),
                ttr: secs(whole_secs(j.ttr_ns).max(1)),
                created_at: j.created_at_ns.max(0) as u64,
                state: state.to_string(),
                ready_at,
                counts: (c.reserves, c.timeouts, c.releases, c.buries, c.kicks),
                body: imported.bodies.get(j.body).to_vec(),
            }
        })
        .collect();
    expected.sort();
    let mut got = started.jobs.clone();
    got.iter_mut().filter(|j| j.state == "Buried").for_each(|j| j.ready_at = 0);
    assert_eq!(got, expected, "the takeover's jobs against the replay's");
    let buried: Vec<u64> =
        (imported.jobs.iter()).filter(|j| matches!(j.state, ImportedState::Buried { .. })).map(|j| j.id).collect();
    assert_eq!(started.buried_in_order, buried, "burial order");
    assert!(started.next_id >= imported.next_id, "next id {} below the replay's {}", started.next_id, imported.next_id);
}

/// `read_file`'s promises about one file.
fn check_read(bytes: &[u8], read: &beanstalkd::FileRead<'_>) {
    let Some(version) = read.version else {
        assert!(read.records.is_empty(), "records in a file of no version");
        assert_eq!(read.end.at(), 0, "the end of a file of no version");
        return;
    };
    let least = match version {
        Version::V7 => 4 + 80,
        Version::V5 => 8 + 77,
    };
    let mut at = beanstalkd::FILE_VERSION_LEN;
    for record in &read.records {
        assert_eq!(record.offset, at, "records back to back");
        assert!(record.len >= least, "a record of {} bytes", record.len);
        assert!(record.offset + record.len <= bytes.len(), "a record past the end");
        assert_ne!(record.id, 0, "a record of job 0");
        match (&record.tube, record.body) {
            (Some(_), Some(body)) => {
                assert_eq!(body.len() + 2, record.body_size as usize, "a body and its size");
                let start = body.as_ptr() as usize - bytes.as_ptr() as usize;
                assert_eq!(start + body.len() + 2, record.offset + record.len, "the body ends the record");
                assert_eq!(&bytes[start + body.len()..start + body.len() + 2], b"\r\n", "the body's CRLF");
            }
            (None, None) => {}
            _ => panic!("a body without a tube, or a tube without a body"),
        }
        at += record.len;
    }
    assert_eq!(read.end.at(), at, "the end is where the records stop");
    if let End::Clean { at } = read.end {
        assert!(bytes[at..].iter().all(|&b| b == 0), "a clean end with bytes after it");
    }
}
