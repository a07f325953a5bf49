//! The binlog (`-b DIR`) against the real binary, one module per promise:
//!
//! - [`recovery`]: every job state comes back after `kill -9` and after
//!   SIGTERM, buried jobs in burial order, and ids are never reused.
//! - [`lock`]: one server per directory.
//! - [`torn_tail`]: a last record torn at every offset is cut, with a
//!   warning, and nothing before it is lost.
//! - [`flipped_bytes`]: a flipped byte is refused, or skipped when asked,
//!   never accepted silently.
//! - [`disk_use`]: disk use stays bounded by the live jobs over long runs.
//! - [`kill_under_load`]: what was acknowledged survives `kill -9` in the
//!   middle of a load.
//! - [`full_disk`]: a full disk (tmpfs, root only) refuses puts, keeps
//!   serving and restarts.
//! - [`takeover`]: a directory Debian's beanstalkd wrote, taken over in
//!   place, compared with beanstalkd's own restart; killed at every step of
//!   the import; torn; damaged; version 5; and the way back (`export`).
//! - [`files`]: reading and damaging the files themselves.
//! - [`inspect`]: `sprout binlog inspect` counts what the servers show,
//!   sets its exit status on damage, and only reads, a running server's
//!   directory too.
//!
//! Every test starts its own servers on free loopback ports with their own
//! temporary directories; a server is killed when dropped, so a failing
//! test leaves nothing running. One test binary for all of them: each file
//! at the top of `tests/` is a crate of its own that links on its own.

#[path = "../support/mod.rs"]
mod support;

mod disk_use;
mod files;
mod flipped_bytes;
mod full_disk;
mod inspect;
mod kill_under_load;
mod lock;
mod recovery;
mod takeover;
mod torn_tail;

use std::collections::BTreeMap;
use std::path::Path;

use support::{Client, Exited, Server, ServerBuilder, found};

/// Every change synced before its reply (`-f 0`), in 4 KiB files: how the
/// crash tests run, so that a file holds few records and every record they
/// look for is on disk.
const SYNCED_SMALL_FILES: [&str; 4] = ["-f", "0", "-s", "4096"];

/// sprout with `-b DIR` and `flags`, its stderr kept for the assertions
/// (with RUST_LOG unset, so it logs what it logs by default).
fn sprout_on(dir: &Path, flags: &[&str]) -> ServerBuilder<'static> {
    Server::sprout().binlog(dir).args(flags).env_remove("RUST_LOG")
}

/// Starts sprout and insists that it serves.
fn start(dir: &Path, flags: &[&str]) -> Server {
    sprout_on(dir, flags).start()
}

/// Starts sprout; `Err` carries the exit status and stderr of a server that
/// exited before it served.
fn launch(dir: &Path, flags: &[&str]) -> Result<Server, Exited> {
    sprout_on(dir, flags).try_start()
}

/// Checks many jobs at once: `Some(body)` must be FOUND with that body,
/// `None` must be NOT_FOUND. Returns one message per mismatch.
fn check_jobs(c: &mut Client, expected: &BTreeMap<u64, Option<Vec<u8>>>) -> Vec<String> {
    let mut failures = Vec::new();
    let ids: Vec<u64> = expected.keys().copied().collect();
    for chunk in ids.chunks(200) {
        let cmds: Vec<u8> = chunk.iter().flat_map(|id| format!("peek {id}\r\n").into_bytes()).collect();
        for (id, reply) in chunk.iter().zip(c.pipeline(cmds, chunk.len())) {
            let got = found(&reply).map(|(_, body)| body);
            let want = &expected[id];
            if got != *want {
                failures.push(format!(
                    "job {id}: expected {}, got {}",
                    want.as_ref().map_or("NOT_FOUND".to_string(), |b| format!("body {:?}", String::from_utf8_lossy(b))),
                    got.as_ref().map_or("NOT_FOUND".to_string(), |b| format!("body {:?}", String::from_utf8_lossy(b))),
                ));
            }
        }
    }
    failures
}

fn current_jobs(c: &mut Client) -> u64 {
    let s = c.stats();
    ["current-jobs-ready", "current-jobs-reserved", "current-jobs-delayed", "current-jobs-buried"]
        .iter()
        .map(|k| s.num(k))
        .sum()
}

/// Every job's `stats-job` `file` is one of the files in use, between
/// `binlog-oldest-index` and `binlog-current-index`.
fn files_in_use(c: &mut Client, jobs: &BTreeMap<u64, Option<Vec<u8>>>, when: &str) -> Vec<String> {
    let s = c.stats();
    let range = s.num("binlog-oldest-index")..=s.num("binlog-current-index");
    let mut failures = Vec::new();
    for &id in jobs.keys() {
        let file = c.stats_job(id).map(|j| j.num("file"));
        if !file.is_some_and(|f| range.contains(&f)) {
            failures.push(format!("{when}: job {id} stats-job file {file:?}, files in use {range:?}"));
        }
    }
    failures
}
