//! `binlog`: a start on a directory of sprout's own binlog files, whatever
//! they hold (see `binlog_dir` for the input's layout).
//!
//! Checks, for `Binlog::open` both strict and with
//! `--skip-damaged-records`, each on a fresh copy of the files:
//! - no panic, and no single allocation over [`binlog_dir::alloc_limit`];
//! - either a refusal that names the directory or the file (and for a
//!   damaged record, its offset), or jobs that, restored into an engine as
//!   the server restores them, pass `Engine::check_invariants` and that
//!   `stats` counts in their states;
//! - a restart on what the start left (its repairs, its spare file) brings
//!   back the same jobs, in the same burial order, and no lower next id;
//!   deleting half of them through the engine, and restarting again,
//!   leaves exactly the other half;
//! - a start that skips damage finds every job a strict start finds, when
//!   both start;
//! - `sprout binlog inspect`, which reads the files without changing them,
//!   calls the directory clean exactly when a strict start succeeds, and
//!   counts the same live jobs and next id.

use sprout::binlog::inspect;

use super::alloc_guard;
use super::binlog_dir::{self, Files, Started};

/// Runs the target on one input.
pub fn run(data: &[u8]) {
    let Some(files) = Files::parse(data) else { return };
    let limit = binlog_dir::alloc_limit(data.len().max(files.total_len()));
    alloc_guard::within(limit, "binlog", || check(&files));
}

fn check(files: &Files) {
    let report = {
        let dir = files.write();
        inspect::inspect(dir.path()).expect("inspect reads a directory of files")
    };
    let strict = binlog_dir::start_and_restart(files, false);
    let skipping = binlog_dir::start_and_restart(files, true);
    if let (Ok(strict), Ok(skipping)) = (&strict, &skipping) {
        assert_eq!(strict.jobs, skipping.jobs, "a start that skips damage, on a log with none to skip");
    }
    match &strict {
        Ok(started) => {
            assert!(report.clean, "inspect finds damage a start does not: {:?}", report.damage);
            agrees_with(&report, started);
        }
        Err(refusal) => assert!(!report.clean, "a start refuses ({refusal}) what inspect calls clean"),
    }
}

/// inspect's counts of the live jobs and its next id, against a start's.
fn agrees_with(report: &inspect::Report, started: &Started) {
    let mut live = inspect::Live::default();
    for job in &started.jobs {
        let state = match job.state.as_str() {
            "Delayed" => inspect::JobState::Delayed,
            "Buried" => inspect::JobState::Buried,
            _ => inspect::JobState::Ready { reserved: false },
        };
        live.add(&job.tube, state);
    }
    let mut reported = report.live.clone();
    // A start brings a job logged reserved back ready, and does not say so.
    reported.all.reserved = 0;
    reported.tubes.values_mut().for_each(|t| t.reserved = 0);
    assert_eq!(reported, live, "inspect's live jobs against a start's");
    assert_eq!(report.next_id, started.next_id, "inspect's next id against a start's");
}
