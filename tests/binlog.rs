//! The binlog (`-b DIR`) against the real binary: every job state comes back
//! after `kill -9` and after SIGTERM, one server per directory, a torn tail
//! is cut at every offset, a flipped byte is never accepted silently, disk use
//! stays bounded by the live jobs, acknowledged changes survive a kill loop
//! under load, and a full disk (tmpfs, root only) is survived.
//!
//! Every test starts its own servers on free loopback ports with their own
//! temporary directories; a [`Sprout`] is killed when dropped, so a failing
//! test leaves nothing running.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::{Addr, Client, Exited, Rng, Server, ServerBuilder, Stats, found, inserted_id, put_command, wait_until};
use tempfile::TempDir;

// ----- servers ------------------------------------------------------------------

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

// ----- protocol helpers -----------------------------------------------------------

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

// ----- binlog files ---------------------------------------------------------------

const HEADER_LEN: usize = 32;
const FRAME_LEN: usize = 8;

/// `(seq, path)` of every `binlog.N` in `dir`, oldest first.
fn binlog_files(dir: &Path) -> Vec<(u64, PathBuf)> {
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
struct RecordPos {
    offset: usize,
    len: usize,
    kind: u8,
    id: u64,
}

/// The records of a file (frame: crc u32, len u32), walked by their `len`
/// fields up to the first zero.
fn records(bytes: &[u8]) -> Vec<RecordPos> {
    assert_eq!(&bytes[..8], b"SPROUTWL", "binlog magic");
    let mut out = Vec::new();
    let mut at = HEADER_LEN;
    while at + FRAME_LEN <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if len == 0 || at + FRAME_LEN + len > bytes.len() {
            break;
        }
        let kind = bytes[at + FRAME_LEN];
        let id = u64::from_le_bytes(bytes[at + FRAME_LEN + 1..at + FRAME_LEN + 9].try_into().unwrap());
        out.push(RecordPos { offset: at, len: FRAME_LEN + len, kind, id });
        at += FRAME_LEN + len;
    }
    out
}

const KIND_JOB: u8 = 1;
const KIND_STATE: u8 = 2;
const KIND_DELETE: u8 = 3;

/// The newest file holding records, and its records.
fn newest_records(dir: &Path) -> (String, Vec<RecordPos>) {
    binlog_files(dir)
        .into_iter()
        .rev()
        .map(|(seq, path)| (format!("binlog.{seq}"), records(&fs::read(path).unwrap())))
        .find(|(_, r)| !r.is_empty())
        .expect("a binlog file with records")
}

/// Copies the `binlog.N` files of `src` into a new directory.
fn copy_binlog(src: &Path) -> TempDir {
    let dst = TempDir::new().unwrap();
    for (seq, path) in binlog_files(src) {
        fs::copy(&path, dst.path().join(format!("binlog.{seq}"))).unwrap();
    }
    dst
}

fn patch(path: &Path, offset: usize, f: impl FnOnce(&mut [u8])) {
    let mut bytes = fs::read(path).unwrap();
    f(&mut bytes[offset..]);
    fs::write(path, bytes).unwrap();
}

/// Apparent and allocated bytes of the binlog files, and their number.
fn binlog_disk_use(dir: &Path) -> (u64, u64, usize) {
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
fn names_file_and_offset(stderr: &str, path: &Path, offset: usize) -> bool {
    let path = path.display().to_string();
    let offset = offset.to_string();
    stderr.lines().any(|l| l.contains(&path) && l.split(|c: char| !c.is_ascii_digit()).any(|w| w == offset))
}

/// True if a line of `stderr` says `job <id>`.
fn names_job(stderr: &str, id: u64) -> bool {
    let word = format!("job {id}");
    stderr
        .lines()
        .any(|l| l.match_indices(&word).any(|(i, _)| !l[i + word.len()..].starts_with(|c: char| c.is_ascii_digit())))
}

// ----- 1. recovery of every state -------------------------------------------------

/// Fields of `stats-job` that must survive a restart unchanged.
const KEPT_FIELDS: [&str; 9] = ["tube", "pri", "ttr", "delay", "reserves", "timeouts", "releases", "buries", "kicks"];

/// One job of the scenario and what it must look like after the restart.
struct Expected {
    what: &'static str,
    id: u64,
    body: Vec<u8>,
    state: &'static str,
    /// `stats-job` as of its last logged change.
    snapshot: Stats,
}

fn state_scenario(stop_with_sigterm: bool) {
    let dir = TempDir::new().unwrap();
    let mut server = start(dir.path(), &[]);
    let mut c = server.connect();
    let mut jobs: Vec<Expected> = Vec::new();
    let mut max_id = 0;
    let mut add = |what: &'static str, id: u64, body: &[u8], state: &'static str| {
        max_id = max_id.max(id);
        jobs.push(Expected { what, id, body: body.to_vec(), state, snapshot: Stats::default() });
    };

    let id = c.put(5, 0, 60, b"a ready job");
    add("ready", id, b"a ready job", "ready");
    let delayed = c.put(6, 100, 60, b"a delayed job");
    add("delayed 100 s", delayed, b"a delayed job", "delayed");

    // Three jobs buried in an order other than their ids: b2, b3, b1.
    let b: Vec<u64> = (1..=3).map(|i| c.put(7, 0, 60, format!("buried {i}").as_bytes())).collect();
    for &i in &[1, 2, 0] {
        c.exchange(format!("reserve-job {}\r\n", b[i]), format!("RESERVED {} 8\r\nburied {}\r\n", b[i], i + 1));
        c.exchange(format!("bury {} 7\r\n", b[i]), "BURIED\r\n");
    }
    for (i, &id) in b.iter().enumerate() {
        add("buried", id, format!("buried {}", i + 1).as_bytes(), "buried");
    }

    let released = c.put(100, 0, 60, b"released with a new priority");
    c.call(format!("reserve-job {released}\r\n"));
    c.exchange(format!("release {released} 3 0\r\n"), "RELEASED\r\n");
    add("released, new priority, no delay", released, b"released with a new priority", "ready");

    let rel_delayed = c.put(9, 0, 60, b"released with a delay");
    c.call(format!("reserve-job {rel_delayed}\r\n"));
    c.exchange(format!("release {rel_delayed} 11 200\r\n"), "RELEASED\r\n");
    add("released with delay 200 s", rel_delayed, b"released with a delay", "delayed");

    // Kicked with `kick` (buried, then delayed) in tubes of their own.
    c.exchange("use kick-buried\r\n", "USING kick-buried\r\n");
    let kicked = c.put(12, 0, 60, b"buried then kicked");
    c.call(format!("reserve-job {kicked}\r\n"));
    c.exchange(format!("bury {kicked} 13\r\n"), "BURIED\r\n");
    c.exchange("kick 10\r\n", "KICKED 1\r\n");
    add("buried, kicked", kicked, b"buried then kicked", "ready");
    c.exchange("use kick-delayed\r\n", "USING kick-delayed\r\n");
    let kicked_delayed = c.put(14, 500, 60, b"delayed then kicked");
    c.exchange("kick 10\r\n", "KICKED 1\r\n");
    add("delayed, kicked", kicked_delayed, b"delayed then kicked", "ready");
    c.exchange("use default\r\n", "USING default\r\n");

    // kick-job of a delayed and of a buried job.
    let kj_delayed = c.put(15, 300, 60, b"delayed then kick-job");
    c.exchange(format!("kick-job {kj_delayed}\r\n"), "KICKED\r\n");
    add("delayed, kick-job", kj_delayed, b"delayed then kick-job", "ready");
    let kj_buried = c.put(16, 0, 60, b"buried then kick-job");
    c.call(format!("reserve-job {kj_buried}\r\n"));
    c.exchange(format!("bury {kj_buried} 17\r\n"), "BURIED\r\n");
    c.exchange(format!("kick-job {kj_buried}\r\n"), "KICKED\r\n");
    add("buried, kick-job", kj_buried, b"buried then kick-job", "ready");

    // reserve-job out of the buried state (logged): comes back ready.
    let rj_buried = c.put(18, 0, 60, b"buried then reserve-job");
    c.call(format!("reserve-job {rj_buried}\r\n"));
    c.exchange(format!("bury {rj_buried} 19\r\n"), "BURIED\r\n");
    c.call(format!("reserve-job {rj_buried}\r\n"));
    add("buried, then reserved by reserve-job", rj_buried, b"buried then reserve-job", "ready");

    let other = put_in_tube(&mut c, "other.tube-1", b"in another tube");
    add("in another tube", other, b"in another tube", "ready");

    let binary: &[u8] = b"\r\n\0bin\r\nary\0\x01\xff\xfe body\r\n\0";
    let bin = c.put(4_294_967_295, 0, 4_294_967_295, binary);
    add("binary body, max pri and ttr", bin, binary, "ready");

    // Deleted in each state: must stay deleted.
    let mut deleted = Vec::new();
    let d_ready = c.put(1, 0, 60, b"deleted ready");
    let d_delayed = c.put(1, 1000, 60, b"deleted delayed");
    let d_buried = c.put(1, 0, 60, b"deleted buried");
    c.call(format!("reserve-job {d_buried}\r\n"));
    c.exchange(format!("bury {d_buried} 1\r\n"), "BURIED\r\n");
    let d_reserved = c.put(1, 0, 60, b"deleted reserved");
    c.call(format!("reserve-job {d_reserved}\r\n"));
    for id in [d_ready, d_delayed, d_buried, d_reserved] {
        c.exchange(format!("delete {id}\r\n"), "DELETED\r\n");
        deleted.push(id);
    }

    // Reserved (not logged: comes back ready with its counters as of put),
    // reserved last so the snapshot below is taken before.
    let reserved = c.put(20, 0, 60, b"reserved at the crash");
    add("reserved", reserved, b"reserved at the crash", "ready");
    let max_id = deleted.iter().copied().chain([max_id]).max().unwrap();

    for job in jobs.iter_mut() {
        job.snapshot = c.stats_job(job.id).expect("job exists before the stop");
    }
    c.call(format!("reserve-job {reserved}\r\n"));
    let delayed_left_before = c.stats_job(delayed).unwrap().num("time-left");
    assert!(delayed_left_before >= 98, "delayed job time-left before the stop: {delayed_left_before}");

    if stop_with_sigterm {
        let status = server.terminate();
        assert_eq!(status.code(), Some(0), "sprout -b exit status after SIGTERM: {status}");
    } else {
        server.kill9();
    }
    drop(c);
    let server = start(dir.path(), &[]);
    let mut c = server.connect();
    let mut failures = Vec::new();
    for job in &jobs {
        let Some(after) = c.stats_job(job.id) else {
            failures.push(format!("{} job {}: NOT_FOUND after restart", job.what, job.id));
            continue;
        };
        if after["state"] != job.state {
            failures.push(format!(
                "{} job {}: state {} after restart, expected {}",
                job.what, job.id, after["state"], job.state
            ));
        }
        for key in KEPT_FIELDS {
            if after.get(key) != job.snapshot.get(key) {
                failures.push(format!(
                    "{} job {}: {key} {:?} after restart, {:?} before",
                    job.what,
                    job.id,
                    after.get(key),
                    job.snapshot.get(key)
                ));
            }
        }
        if after.num("file") == 0 {
            failures.push(format!("{} job {}: stats-job file is 0 with -b", job.what, job.id));
        }
        match c.peek(job.id) {
            Some(body) if body == job.body => {}
            other => failures
                .push(format!("{} job {}: body {:?} after restart, expected {:?}", job.what, job.id, other, job.body)),
        }
    }
    let live: BTreeMap<u64, Option<Vec<u8>>> = jobs.iter().map(|j| (j.id, Some(j.body.clone()))).collect();
    failures.extend(files_in_use(&mut c, &live, "after restart"));
    // Delays keep their deadline: time-left goes on from where it was.
    for (id, full, what) in [(delayed, 100, "delayed 100 s"), (rel_delayed, 200, "released with delay 200 s")] {
        let left = c.stats_job(id).unwrap().num("time-left");
        if !(full - 10..=full).contains(&left) {
            failures.push(format!("{what} job {id}: time-left {left} after restart, expected {}..={full}", full - 10));
        }
    }
    for &id in &deleted {
        if let Some(body) = c.peek(id) {
            failures
                .push(format!("deleted job {id} is back after restart with body {:?}", String::from_utf8_lossy(&body)));
        }
    }
    // The tube of a job is recreated.
    let tubes = String::from_utf8(c.request("list-tubes\r\n")).unwrap();
    for tube in ["other.tube-1", "kick-buried", "kick-delayed"] {
        if !tubes.contains(&format!("- {tube}\n")) {
            failures.push(format!("tube {tube} not recreated: list-tubes {tubes:?}"));
        }
    }
    c.exchange("use other.tube-1\r\n", "USING other.tube-1\r\n");
    if c.peek_id("peek-ready") != Some(other) {
        failures.push(format!("peek-ready in other.tube-1 does not find job {other}"));
    }
    c.exchange("use default\r\n", "USING default\r\n");
    let s = c.stats();
    for (key, want) in [("current-jobs-buried", 3), ("current-jobs-delayed", 2), ("current-jobs-reserved", 0)] {
        if s.num(key) != want {
            failures.push(format!("stats {key}: {} after restart, expected {want}", s.num(key)));
        }
    }
    // Buried jobs come back in burial order: b2, b3, b1.
    let mut order = Vec::new();
    while let Some(id) = c.peek_id("peek-buried") {
        order.push(id);
        c.exchange("kick 1\r\n", "KICKED 1\r\n");
        if order.len() > 5 {
            break;
        }
    }
    if order != [b[1], b[2], b[0]] {
        failures.push(format!("buried order after restart {order:?}, buried as {:?}", [b[1], b[2], b[0]]));
    }
    // Ids continue above the highest ever handed out.
    let next = c.put(0, 0, 60, b"after the restart");
    if next != max_id + 1 {
        failures.push(format!("first put after restart got id {next}, expected {}", max_id + 1));
    }
    for job in &jobs {
        c.exchange(format!("delete {}\r\n", job.id), "DELETED\r\n");
    }
    let how = if stop_with_sigterm { "SIGTERM" } else { "kill -9" };
    assert!(failures.is_empty(), "after {how} and restart:\n{}", failures.join("\n"));
}

fn put_in_tube(c: &mut Client, tube: &str, body: &[u8]) -> u64 {
    c.exchange(format!("use {tube}\r\n"), format!("USING {tube}\r\n"));
    let id = c.put(14, 0, 60, body);
    c.exchange("use default\r\n", "USING default\r\n");
    id
}

#[test]
fn every_state_survives_kill_9() {
    state_scenario(false);
}

#[test]
fn every_state_survives_sigterm() {
    state_scenario(true);
}

/// Buries sent in one pipelined write happen in one turn of the server's
/// loop; their order must still come back (peek-buried and kick order).
#[test]
fn pipelined_buries_keep_their_order_after_kill_9() {
    let dir = TempDir::new().unwrap();
    let mut server = start(dir.path(), &[]);
    let mut c = server.connect();
    let ids: Vec<u64> = (0..4).map(|i| c.put(0, 0, 60, format!("job {i}").as_bytes())).collect();
    for &id in &ids {
        assert!(found(&c.request(format!("reserve-job {id}\r\n"))).is_some());
    }
    let order = [ids[3], ids[1], ids[0], ids[2]];
    let cmds: Vec<u8> = order.iter().flat_map(|id| format!("bury {id} 0\r\n").into_bytes()).collect();
    for reply in c.pipeline(cmds, 4) {
        assert_eq!(reply, b"BURIED\r\n");
    }
    assert_eq!(c.peek_id("peek-buried"), Some(order[0]), "before the restart");
    server.kill9();
    let server = start(dir.path(), &[]);
    let mut c = server.connect();
    let mut got = Vec::new();
    while let Some(id) = c.peek_id("peek-buried") {
        got.push(id);
        c.exchange("kick 1\r\n", "KICKED 1\r\n");
        assert!(got.len() <= 4, "kick did not empty the buried list: {got:?}");
    }
    assert_eq!(got, order, "burial order after kill -9 and restart (jobs buried by one pipelined write)");
}

/// Ids are never reused: not after every job was deleted, not after
/// restarts with no new job in between, not once old files are gone.
#[test]
fn ids_continue_after_every_job_was_deleted_and_two_restarts() {
    let dir = TempDir::new().unwrap();
    let flags = ["-s", "4096"];
    let mut server = start(dir.path(), &flags);
    let mut c = server.connect();
    let body = vec![b'i'; 200];
    let ids: Vec<u64> = (0..60).map(|_| c.put(0, 0, 60, &body)).collect();
    assert_eq!(ids, (1..=60).collect::<Vec<u64>>());
    for id in &ids {
        c.exchange(format!("delete {id}\r\n"), "DELETED\r\n");
    }
    // Let the old files go (they are removed once synced); the ids must
    // continue however far that got, so no assertion here.
    wait_until(Duration::from_secs(5), || c.stats().num("binlog-oldest-index") >= 3);
    let s = c.stats();
    eprintln!(
        "ids: after 60 puts and deletes with -s 4096: binlog-oldest-index {}, binlog-current-index {}, files {:?}",
        s["binlog-oldest-index"],
        s["binlog-current-index"],
        binlog_files(dir.path()).iter().map(|(seq, _)| *seq).collect::<Vec<_>>()
    );
    server.kill9();

    // Restart 1: nothing put. Restart 2: the next id is 61.
    let mut server = start(dir.path(), &flags);
    assert_eq!(current_jobs(&mut server.connect()), 0, "deleted jobs came back");
    server.kill9();
    let mut server = start(dir.path(), &flags);
    let mut c = server.connect();
    assert_eq!(current_jobs(&mut c), 0, "deleted jobs came back");
    assert_eq!(c.put(0, 0, 60, b"x"), 61, "id after all jobs were deleted and two restarts");
    c.exchange("delete 61\r\n", "DELETED\r\n");
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    let server = start(dir.path(), &flags);
    let mut c = server.connect();
    assert_eq!(c.put(0, 0, 60, b"y"), 62, "id after a deleted job and a SIGTERM restart");
}

// ----- 2. the lock ----------------------------------------------------------------

#[test]
fn a_second_server_on_the_same_directory_exits_10() {
    let dir = TempDir::new().unwrap();
    let mut first = start(dir.path(), &[]);
    first.connect().put(0, 0, 60, b"held");
    match launch(dir.path(), &[]) {
        Ok(second) => panic!("a second sprout started on a locked -b dir (pid {})", second.pid()),
        Err(Exited { status, stderr }) => {
            assert_eq!(status.code(), Some(10), "exit status of the second sprout; stderr:\n{stderr}");
            let dir_name = dir.path().display().to_string();
            assert!(stderr.contains(&dir_name), "stderr does not name the directory {dir_name}:\n{stderr}");
            let pid = first.pid().to_string();
            assert!(
                stderr.split(|c: char| !c.is_ascii_digit()).any(|w| w == pid),
                "stderr does not name the first server's pid {pid}:\n{stderr}"
            );
        }
    }
    // The first still serves, and once it is gone a new one starts.
    assert!(first.connect().peek(1).is_some());
    first.kill9();
    let third = start(dir.path(), &[]);
    let mut c = third.connect();
    assert_eq!(c.peek(1).as_deref(), Some(&b"held"[..]));
    assert_eq!(c.put(0, 0, 60, b"after"), 2);
}

// ----- 3. a torn tail at every offset -----------------------------------------------

/// What the last record of the log does to its job.
#[derive(Clone, Copy, Debug)]
enum LastRecord {
    /// `put`: the job is there only if the whole record is.
    Put,
    /// `bury` of a ready job: ready without the record, buried with it.
    Bury,
    /// `delete`: the job is there unless the whole record is.
    Delete,
}

const TORN_FLAGS: [&str; 4] = ["-f", "0", "-s", "4096"];

fn torn_tail(last: LastRecord) {
    let dir = TempDir::new().unwrap();
    let mut server = start(dir.path(), &TORN_FLAGS);
    let mut c = server.connect();
    let mut earlier = BTreeMap::new();
    let ready = c.put(1, 0, 60, b"earlier ready");
    earlier.insert(ready, Some(b"earlier ready".to_vec()));
    let delayed = c.put(2, 3600, 60, b"earlier delayed");
    earlier.insert(delayed, Some(b"earlier delayed".to_vec()));
    let buried = c.put(3, 0, 60, b"earlier buried");
    c.request(format!("reserve-job {buried}\r\n"));
    c.exchange(format!("bury {buried} 3\r\n"), "BURIED\r\n");
    earlier.insert(buried, Some(b"earlier buried".to_vec()));
    // The body ends in a non-zero byte, so zeroing any tail changes it.
    let body = b"the subject\r\n\0of the last record!".to_vec();
    let subject = c.put(4, 0, 60, &body);
    let kind = match last {
        LastRecord::Put => KIND_JOB,
        LastRecord::Bury => {
            c.request(format!("reserve-job {subject}\r\n"));
            c.exchange(format!("bury {subject} 5\r\n"), "BURIED\r\n");
            KIND_STATE
        }
        LastRecord::Delete => {
            c.exchange(format!("delete {subject}\r\n"), "DELETED\r\n");
            KIND_DELETE
        }
    };
    server.kill9();
    let (file, recs) = newest_records(dir.path());
    let rec = *recs.last().unwrap();
    assert_eq!((rec.kind, rec.id), (kind, subject), "the last record of {file} is not the {last:?} of job {subject}");
    let bytes = fs::read(dir.path().join(&file)).unwrap();
    let torn_cuts = bytes[rec.offset..rec.offset + rec.len].iter().rposition(|&b| b != 0).unwrap();
    eprintln!(
        "torn tail ({last:?}): last record of {file} at offset {}, {} bytes; cuts after 1..={torn_cuts} bytes \
         tear it, longer cuts only drop trailing zeros",
        rec.offset, rec.len
    );

    let next_k = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let started = Instant::now();
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let k = next_k.fetch_add(1, Ordering::Relaxed);
                    if k > rec.len {
                        return;
                    }
                    let case = TornCase {
                        src: dir.path(),
                        file: &file,
                        rec,
                        k,
                        last,
                        subject,
                        body: &body,
                        earlier: &earlier,
                    };
                    let found = case.run();
                    failures.lock().unwrap().extend(
                        found.into_iter().map(|f| format!("{last:?}, cut after {k} of {} bytes: {f}", rec.len)),
                    );
                }
            });
        }
    });
    eprintln!("torn tail ({last:?}): {} cuts checked in {:?}", rec.len + 1, started.elapsed());
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

struct TornCase<'a> {
    src: &'a Path,
    file: &'a str,
    rec: RecordPos,
    /// Bytes of the last record that made it to disk.
    k: usize,
    last: LastRecord,
    subject: u64,
    body: &'a [u8],
    earlier: &'a BTreeMap<u64, Option<Vec<u8>>>,
}

impl TornCase<'_> {
    fn run(&self) -> Vec<String> {
        let copy = copy_binlog(self.src);
        let path = copy.path().join(self.file);
        let (offset, len, k) = (self.rec.offset, self.rec.len, self.k);
        // A record whose last bytes are zeros is whole once its last
        // non-zero byte is written: zeroing the rest changes nothing.
        let original = fs::read(&path).unwrap();
        let whole = original[offset + k..offset + len].iter().all(|&b| b == 0);
        patch(&path, offset + k, |b| b[..len - k].fill(0));
        let server = match launch(copy.path(), &TORN_FLAGS) {
            Ok(server) => server,
            Err(Exited { status, stderr }) => return vec![format!("refused to start ({status}); stderr:\n{stderr}")],
        };
        let mut failures = Vec::new();
        let stderr = server.stderr_text();
        if k > 0 && !whole && !names_file_and_offset(&stderr, &path, offset) {
            failures.push(format!("no warning naming {} and offset {offset}; stderr:\n{stderr}", path.display()));
        }
        let mut c = server.connect();
        let mut expected = self.earlier.clone();
        let subject_body = match self.last {
            LastRecord::Put if !whole => None,
            LastRecord::Delete if whole => None,
            _ => Some(self.body.to_vec()),
        };
        expected.insert(self.subject, subject_body.clone());
        failures.extend(check_jobs(&mut c, &expected));
        if let LastRecord::Bury = self.last {
            let want = if whole { "buried" } else { "ready" };
            match c.stats_job(self.subject) {
                Some(s) if s["state"] == want => {}
                other => failures.push(format!("job {}: stats-job {other:?}, expected state {want}", self.subject)),
            }
        }
        // New ids go above every id that is still in the log.
        let subject_put_logged = !matches!(self.last, LastRecord::Put) || whole;
        let highest = self.earlier.keys().copied().chain(subject_put_logged.then_some(self.subject)).max();
        let new_body = format!("after the cut at {k}").into_bytes();
        let reply = c.put_reply(0, 0, 60, &new_body);
        let Some(new_id) = inserted_id(reply.as_bytes()) else {
            failures.push(format!("put after recovery answered {reply:?}"));
            return failures;
        };
        if Some(new_id) <= highest {
            failures.push(format!("put after recovery got id {new_id}, not above {highest:?}"));
        }
        // What is appended after the cut reads back after another crash.
        drop(c);
        let mut server = server;
        server.kill9();
        let server = match launch(copy.path(), &TORN_FLAGS) {
            Ok(server) => server,
            Err(Exited { status, stderr }) => {
                failures.push(format!("second restart refused ({status}); stderr:\n{stderr}"));
                return failures;
            }
        };
        expected.insert(new_id, Some(new_body));
        failures
            .extend(check_jobs(&mut server.connect(), &expected).into_iter().map(|f| format!("second restart: {f}")));
        failures
    }
}

#[test]
fn torn_last_put_is_cut_at_every_offset() {
    torn_tail(LastRecord::Put);
}

#[test]
fn torn_last_bury_is_cut_at_every_offset() {
    torn_tail(LastRecord::Bury);
}

#[test]
fn torn_last_delete_is_cut_at_every_offset() {
    torn_tail(LastRecord::Delete);
}

// ----- 4. flipped bytes -------------------------------------------------------------

/// Jobs 1..=5, job 2 buried afterwards (so a state record follows its full
/// record), then job 6 as the last record. Returns the bodies.
fn damage_fixture(dir: &Path) -> BTreeMap<u64, Vec<u8>> {
    let mut server = start(dir, &TORN_FLAGS);
    let mut c = server.connect();
    let mut bodies = BTreeMap::new();
    for i in 1..=6u64 {
        let body = format!("body of job {i}: \r\n\0 {}!", "x".repeat(i as usize * 3)).into_bytes();
        assert_eq!(c.put(10 + i as u32, 0, 60, &body), i);
        bodies.insert(i, body);
        if i == 5 {
            c.request("reserve-job 2\r\n");
            c.exchange("bury 2 77\r\n", "BURIED\r\n");
        }
    }
    server.kill9();
    bodies
}

#[test]
fn a_flipped_byte_in_an_earlier_record_is_refused_or_skipped() {
    let dir = TempDir::new().unwrap();
    let bodies = damage_fixture(dir.path());
    let (file, recs) = newest_records(dir.path());
    let full = |id: u64| *recs.iter().find(|r| r.kind == KIND_JOB && r.id == id).expect("full record");
    // (what, victim, byte offset in the file, xor, whether the id stays legible)
    let variants = [
        ("a body byte", 2, full(2).offset + full(2).len - 5, 0x40, true),
        ("a checksum byte", 3, full(3).offset + 1, 0x01, true),
        ("a length byte", 4, full(4).offset + 4, 0x01, true),
        ("an id byte", 1, full(1).offset + FRAME_LEN + 1, 0x04, false),
    ];
    let mut failures = Vec::new();
    for (what, victim, at, xor, id_legible) in variants {
        let rec_offset = full(victim).offset;
        let copy = copy_binlog(dir.path());
        let path = copy.path().join(&file);
        patch(&path, at, |b| b[0] ^= xor);
        let tag = format!("{what} of job {victim} (file offset {at}, record at {rec_offset}) flipped");
        match launch(copy.path(), &TORN_FLAGS) {
            Ok(server) => failures.push(format!(
                "{tag}: sprout started without --skip-damaged-records; stderr:\n{}",
                server.stderr_text()
            )),
            Err(Exited { status, stderr }) => {
                if status.code() != Some(1) {
                    failures.push(format!("{tag}: refused with {status}, expected exit code 1"));
                }
                if !names_file_and_offset(&stderr, &path, rec_offset) {
                    failures.push(format!(
                        "{tag}: the error does not name {} and offset {rec_offset}:\n{stderr}",
                        path.display()
                    ));
                }
                eprintln!("{tag}: refused ({status}): {}", stderr.trim_end());
            }
        }
        let flags = [&TORN_FLAGS[..], &["--skip-damaged-records"]].concat();
        let server = match launch(copy.path(), &flags) {
            Ok(server) => server,
            Err(Exited { status, stderr }) => {
                failures.push(format!("{tag}: --skip-damaged-records refused to start ({status}); stderr:\n{stderr}"));
                continue;
            }
        };
        let stderr = server.stderr_text();
        eprintln!("{tag}, --skip-damaged-records: {}", stderr.trim_end());
        if id_legible && !names_job(&stderr, victim) {
            failures.push(format!("{tag}: --skip-damaged-records does not log the dropped job {victim}:\n{stderr}"));
        }
        let mut c = server.connect();
        let expected: BTreeMap<u64, Option<Vec<u8>>> =
            bodies.iter().map(|(&id, b)| (id, (id != victim).then(|| b.clone()))).collect();
        failures
            .extend(check_jobs(&mut c, &expected).into_iter().map(|f| format!("{tag}, --skip-damaged-records: {f}")));
        for (&id, _) in bodies.iter().filter(|(id, _)| **id != victim) {
            let s = c.stats_job(id);
            let (state, pri) = if id == 2 { ("buried", 77) } else { ("ready", 10 + id) };
            if s.as_ref().map(|s| (s["state"].as_str(), s.num("pri"))) != Some((state, pri)) {
                failures.push(format!(
                    "{tag}, --skip-damaged-records: job {id} stats-job {s:?}, expected {state} pri {pri}"
                ));
            }
        }
        let new_id = c.put(0, 0, 60, b"after skipping");
        if new_id <= 6 {
            failures.push(format!("{tag}, --skip-damaged-records: new put got id {new_id}, ids 1..=6 were used"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_flipped_byte_in_the_last_record_is_never_accepted_silently() {
    let dir = TempDir::new().unwrap();
    let bodies = damage_fixture(dir.path());
    let (file, recs) = newest_records(dir.path());
    let rec = *recs.last().unwrap();
    assert_eq!((rec.kind, rec.id), (KIND_JOB, 6));
    for (what, at) in [("body", rec.offset + rec.len - 4), ("priority", rec.offset + FRAME_LEN + 9)] {
        let copy = copy_binlog(dir.path());
        let path = copy.path().join(&file);
        patch(&path, at, |b| b[0] ^= 0x10);
        match launch(copy.path(), &TORN_FLAGS) {
            Err(Exited { status, stderr }) => {
                eprintln!("last record, flipped {what} byte: refused ({status}): {}", stderr.trim_end());
                assert!(!status.success(), "exit status {status} after refusing");
                assert!(
                    names_file_and_offset(&stderr, &path, rec.offset),
                    "flipped {what} byte of the last record: refused without naming {} and offset {}:\n{stderr}",
                    path.display(),
                    rec.offset
                );
            }
            Ok(server) => {
                let stderr = server.stderr_text();
                eprintln!("last record, flipped {what} byte: started: {}", stderr.trim_end());
                assert!(
                    names_file_and_offset(&stderr, &path, rec.offset),
                    "flipped {what} byte of the last record: started without a warning naming {} and offset {}:\n{stderr}",
                    path.display(),
                    rec.offset
                );
                let mut c = server.connect();
                let mut expected: BTreeMap<u64, Option<Vec<u8>>> =
                    bodies.iter().map(|(&id, b)| (id, Some(b.clone()))).collect();
                expected.insert(6, None);
                let failures = check_jobs(&mut c, &expected);
                assert!(failures.is_empty(), "flipped {what} byte of the last record:\n{}", failures.join("\n"));
            }
        }
    }
}

// ----- 5. bounded disk use ------------------------------------------------------------

const SMALL_FILE: u64 = 65536;
/// The most the binlog files may take at the end of a long run with few
/// live jobs: four small files.
const DISK_BOUND: u64 = 4 * SMALL_FILE;
/// The most they may take at any moment of the run (sampled after each
/// batch): generous, since an old file goes only once the fsync covering
/// what freed it is done (at the default -f 50 that is up to two intervals
/// of writes, here several small files), but far below the 15+ MB the
/// cycles write.
const PEAK_BOUND: u64 = 32 * SMALL_FILE;
const CYCLES: usize = 100_000;
const BATCH: usize = 500;

/// Waits (up to 10 s) for the files to shrink under the bound: old files go
/// once what replaced them is synced.
fn settle_disk_use(dir: &Path) -> (u64, u64, usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let usage = binlog_disk_use(dir);
        if usage.0 <= DISK_BOUND || Instant::now() > deadline {
            return usage;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Prints the disk-use figures of a cycles test and checks them against
/// the bounds: settled size at the end, peak during the run.
fn check_disk_use(cycles: &str, dir: &Path, started: Instant, peak: (u64, u64, usize), c: &mut Client) -> Stats {
    let elapsed = started.elapsed();
    let (apparent, allocated, files) = settle_disk_use(dir);
    let s = c.stats();
    eprintln!(
        "disk use, {CYCLES} {cycles} with -s 65536 in {elapsed:?}: at the end {apparent} bytes \
         ({allocated} allocated) in {files} files, bound {DISK_BOUND}; peak seen {} bytes in {} files; \
         binlog-oldest-index {}, binlog-current-index {}, binlog-records-written {}, binlog-records-migrated {}",
        peak.0,
        peak.2,
        s["binlog-oldest-index"],
        s["binlog-current-index"],
        s["binlog-records-written"],
        s["binlog-records-migrated"]
    );
    assert!(apparent <= DISK_BOUND, "binlog files take {apparent} bytes after {CYCLES} {cycles}, bound {DISK_BOUND}");
    assert!(peak.0 <= PEAK_BOUND, "binlog files took {} bytes during {CYCLES} {cycles}, bound {PEAK_BOUND}", peak.0);
    s
}

#[test]
fn disk_use_stays_bounded_over_100000_put_delete_cycles() {
    let dir = TempDir::new().unwrap();
    let flags = ["-s", "65536"];
    let mut server = start(dir.path(), &flags);
    let mut c = server.connect();
    let body = b"a put/delete cycle";
    let started = Instant::now();
    let mut peak = (0, 0, 0);
    for _ in 0..CYCLES / BATCH {
        let cmds: Vec<u8> = (0..BATCH).flat_map(|_| put_command(0, 0, 60, body)).collect();
        let ids: Vec<u64> = c
            .pipeline(cmds, BATCH)
            .iter()
            .map(|r| inserted_id(r).unwrap_or_else(|| panic!("put: {:?}", String::from_utf8_lossy(r))))
            .collect();
        peak = peak.max(binlog_disk_use(dir.path()));
        let cmds: Vec<u8> = ids.iter().flat_map(|id| format!("delete {id}\r\n").into_bytes()).collect();
        for r in c.pipeline(cmds, BATCH) {
            assert_eq!(r, b"DELETED\r\n");
        }
        peak = peak.max(binlog_disk_use(dir.path()));
    }
    let s = check_disk_use("put/delete cycles", dir.path(), started, peak, &mut c);
    assert!(s.num("binlog-oldest-index") > 1, "binlog-oldest-index did not move: {s:?}");
    assert!(s.num("binlog-records-written") >= 2 * CYCLES as u64, "binlog-records-written: {s:?}");
    server.kill9();
    let server = start(dir.path(), &flags);
    let mut c = server.connect();
    assert_eq!(current_jobs(&mut c), 0, "deleted jobs came back");
    assert_eq!(c.put(0, 0, 60, b"next"), CYCLES as u64 + 1, "id after {CYCLES} put/delete cycles and kill -9");
}

#[test]
fn disk_use_stays_bounded_over_100000_release_cycles() {
    let dir = TempDir::new().unwrap();
    let flags = ["-s", "65536"];
    let mut server = start(dir.path(), &flags);
    let mut c = server.connect();
    // Long-lived jobs in the first file: they must be migrated forward.
    let mut keep = BTreeMap::new();
    for i in 0..10 {
        let body = format!("long-lived job {i} ").repeat(60).into_bytes();
        keep.insert(c.put(1000 + i, 0, 60, &body), Some(body));
    }
    let cycled = c.put(0, 0, 60, b"cycled");
    let started = Instant::now();
    let mut peak = (0, 0, 0);
    for batch in 0..CYCLES / BATCH {
        let mut cmds = Vec::new();
        for i in batch * BATCH..(batch + 1) * BATCH {
            // Every other release is delayed; reserve-job takes the job out
            // of the delayed state at once (and that is logged too).
            let delay = if i % 2 == 0 { 1 } else { 0 };
            cmds.extend(format!("reserve-job {cycled}\r\nrelease {cycled} {} {delay}\r\n", i % 1000).into_bytes());
        }
        for (n, r) in c.pipeline(cmds, 2 * BATCH).iter().enumerate() {
            let want: &[u8] = if n % 2 == 0 { b"RESERVED" } else { b"RELEASED\r\n" };
            assert!(
                r.starts_with(want),
                "cycle reply {:?}, expected {:?}",
                String::from_utf8_lossy(r),
                String::from_utf8_lossy(want)
            );
        }
        peak = peak.max(binlog_disk_use(dir.path()));
    }
    let s = check_disk_use("reserve-job/release cycles (10 long-lived 1.2 KB jobs)", dir.path(), started, peak, &mut c);
    assert!(s.num("binlog-oldest-index") > 1, "binlog-oldest-index did not move: {s:?}");
    assert!(s.num("binlog-records-migrated") > 0, "no job was migrated: {s:?}");
    let before = c.stats_job(cycled).unwrap();
    let mut failures = files_in_use(&mut c, &keep, "before kill -9");
    server.kill9();
    let server = start(dir.path(), &flags);
    let mut c = server.connect();
    failures.extend(files_in_use(&mut c, &keep, "after kill -9"));
    failures.extend(check_jobs(&mut c, &keep));
    assert!(failures.is_empty(), "long-lived jobs after {CYCLES} release cycles and kill -9:\n{}", failures.join("\n"));
    let after = c.stats_job(cycled).expect("the cycled job after kill -9");
    for key in ["state", "pri", "reserves", "releases", "delay"] {
        assert_eq!(after.get(key), before.get(key), "cycled job's {key} after kill -9");
    }
    assert_eq!((after.num("reserves"), after.num("releases")), (CYCLES as u64, CYCLES as u64));
    assert_eq!(after.num("pri"), ((CYCLES - 1) % 1000) as u64);
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

// ----- 6. kill -9 under load ------------------------------------------------------------

/// What one client saw acknowledged before the server died.
#[derive(Default)]
struct LoadLog {
    puts: Vec<(u64, Vec<u8>)>,
    deletes: Vec<u64>,
    /// A delete sent but not answered: the job may or may not be there.
    delete_in_flight: Option<u64>,
    /// A put sent but not answered: a job with an unknown id may exist.
    put_in_flight: bool,
    /// Replies that are neither success nor a dead connection.
    unexpected: Vec<String>,
}

/// Puts jobs and deletes every third one until the connection dies.
fn load_client(addr: &Addr, tag: String, barrier: &Barrier) -> LoadLog {
    let mut log = LoadLog::default();
    let client = Client::try_connect(addr);
    barrier.wait();
    let Ok(mut c) = client else { return log };
    // A reply, or `None` once the connection is dead.
    let reply = |c: &mut Client| c.try_read_reply(Duration::from_secs(10)).ok();
    for n in 0..1_000_000u64 {
        let body = format!("{tag}-{n}-{}", "p".repeat((n % 40) as usize)).into_bytes();
        if c.try_send(put_command(0, 0, 120, &body)).is_err() {
            log.put_in_flight = true;
            return log;
        }
        let Some(line) = reply(&mut c) else {
            log.put_in_flight = true;
            return log;
        };
        match inserted_id(&line) {
            Some(id) => log.puts.push((id, body)),
            None => log.unexpected.push(format!("put: {:?}", String::from_utf8_lossy(&line))),
        }
        if n % 3 == 2 {
            let Some(&(id, _)) = log.puts.get(log.puts.len().wrapping_sub(2)) else { continue };
            if c.try_send(format!("delete {id}\r\n")).is_err() {
                log.delete_in_flight = Some(id);
                return log;
            }
            match reply(&mut c).as_deref() {
                Some(b"DELETED\r\n") => log.deletes.push(id),
                Some(other) => log.unexpected.push(format!("delete {id}: {:?}", String::from_utf8_lossy(other))),
                None => {
                    log.delete_in_flight = Some(id);
                    return log;
                }
            }
        }
    }
    log
}

fn kill_loop(flags: &[&str], label: &str) {
    let dir = TempDir::new().unwrap();
    let mut rng = Rng(0x5EED_0FB1_A710_C5A7 ^ flags.len() as u64);
    // Jobs that must be there, must not, and may be either.
    let mut live: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut deleted: BTreeSet<u64> = BTreeSet::new();
    let mut maybe: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut unknown_puts = 0u64;
    let mut seen_ids: HashSet<u64> = HashSet::new();
    let mut max_acked = 0;
    let mut failures = Vec::new();
    for round in 0..=5 {
        let mut server = start(dir.path(), flags);
        let mut c = server.connect();
        // Everything acknowledged before the crash is there, exactly.
        let mut expected: BTreeMap<u64, Option<Vec<u8>>> =
            live.iter().map(|(&id, b)| (id, Some(b.clone()))).chain(deleted.iter().map(|&id| (id, None))).collect();
        failures.extend(check_jobs(&mut c, &expected).into_iter().map(|f| format!("{label}, restart {round}: {f}")));
        for (id, body) in std::mem::take(&mut maybe) {
            match c.peek(id) {
                None => {
                    deleted.insert(id);
                }
                Some(got) if got == body => {
                    live.insert(id, body);
                }
                Some(got) => {
                    failures.push(format!("{label}, restart {round}: job {id} (delete unanswered) has body {got:?}"))
                }
            }
        }
        let count = current_jobs(&mut c);
        if count < live.len() as u64 || count > live.len() as u64 + unknown_puts {
            failures.push(format!(
                "{label}, restart {round}: {count} jobs, expected {} acknowledged plus at most {unknown_puts} unanswered puts",
                live.len()
            ));
        }
        if round == 5 {
            let next = c.put(0, 0, 60, b"last");
            if next <= max_acked {
                failures
                    .push(format!("{label}: id {next} after the last restart, {max_acked} was acknowledged before"));
            }
            break;
        }
        drop(c);
        expected.clear();

        let delay = Duration::from_millis(50 + rng.below(251));
        let barrier = Barrier::new(5);
        let addr = server.addr().clone();
        let logs: Vec<LoadLog> = thread::scope(|s| {
            let (addr, barrier) = (&addr, &barrier);
            let handles: Vec<_> =
                (0..4).map(|t| s.spawn(move || load_client(addr, format!("r{round}t{t}"), barrier))).collect();
            barrier.wait();
            thread::sleep(delay);
            server.kill9();
            handles.into_iter().map(|h| h.join().expect("load client")).collect()
        });
        let (mut puts, mut dels) = (0, 0);
        for log in logs {
            failures.extend(log.unexpected.iter().map(|u| format!("{label}, round {round}: unexpected reply {u}")));
            puts += log.puts.len();
            dels += log.deletes.len();
            for (id, body) in log.puts {
                if !seen_ids.insert(id) {
                    failures.push(format!("{label}, round {round}: id {id} acknowledged twice (reused after a crash)"));
                }
                max_acked = max_acked.max(id);
                live.insert(id, body);
            }
            for id in log.deletes {
                live.remove(&id);
                deleted.insert(id);
            }
            if let Some((id, body)) = log.delete_in_flight.and_then(|id| live.remove_entry(&id)) {
                maybe.insert(id, body);
            }
            unknown_puts += u64::from(log.put_in_flight);
        }
        eprintln!("{label}, round {round}: killed after {delay:?}: {puts} puts and {dels} deletes acknowledged");
        if puts == 0 {
            failures.push(format!("{label}, round {round}: no put was acknowledged in {delay:?}"));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn kill_9_loop_under_load_default_fsync() {
    kill_loop(&[], "default -f 50");
}

#[test]
fn kill_9_loop_under_load_fsync_always() {
    kill_loop(&["-f", "0"], "-f 0");
}

// ----- 7. a full disk ---------------------------------------------------------------------

/// Unmounts the tmpfs when dropped, even when the test fails.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Puts 1 KB jobs until `OUT_OF_MEMORY`; returns how many were inserted.
fn fill(c: &mut Client, acked: &mut BTreeMap<u64, Vec<u8>>, tag: &str) -> usize {
    for n in 0..100_000 {
        let mut body = format!("{tag} {n} ").into_bytes();
        body.resize(1024, b'.');
        let reply = c.put_reply(0, 0, 60, &body);
        match inserted_id(reply.as_bytes()) {
            Some(id) => {
                acked.insert(id, body);
            }
            None if reply == "OUT_OF_MEMORY\r\n" => return n,
            None => panic!("put on a filling disk answered {reply:?}"),
        }
    }
    panic!("100000 puts of 1 KB fit on a 2 MB tmpfs");
}

#[test]
fn a_full_disk_refuses_puts_keeps_serving_and_restarts() {
    let test = "a_full_disk_refuses_puts_keeps_serving_and_restarts";
    if !support::is_root() {
        support::skip(test, "not running as root (tmpfs mount needed)");
        return;
    }
    let mnt = TempDir::new().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(mnt.path())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        support::skip(test, "cannot mount a tmpfs");
        return;
    }
    let _unmount = Unmount(mnt.path().to_path_buf());
    let dir = mnt.path().join("binlog");
    let flags = ["-s", "65536"];
    let mut server = start(&dir, &flags);
    let mut c = server.connect();
    let mut acked = BTreeMap::new();
    let first = fill(&mut c, &mut acked, "first");
    eprintln!("full disk: {first} puts of 1 KB before OUT_OF_MEMORY on a 2 MB tmpfs, {:?}", binlog_disk_use(&dir));
    assert!(first > 100, "only {first} puts fit");
    // Still serving.
    let s = c.stats();
    assert_eq!(s.num("current-jobs-ready"), acked.len() as u64);
    let (&some_id, some_body) = acked.iter().next().unwrap();
    assert_eq!(c.peek(some_id).as_ref(), Some(some_body));
    c.exchange("list-tube-used\r\n", "USING default\r\n");
    // Nothing was freed: a put of the same size is still refused.
    assert_eq!(c.put_reply(0, 0, 60, [b'f'; 1024]), "OUT_OF_MEMORY\r\n");
    // Deleting the oldest jobs frees their files; puts succeed again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut freed = 0;
    let recovered_id = loop {
        assert!(Instant::now() < deadline, "puts still refused after deleting {freed} jobs");
        let oldest: Vec<u64> = acked.keys().take(20).copied().collect();
        for id in oldest {
            c.exchange(format!("delete {id}\r\n"), "DELETED\r\n");
            acked.remove(&id);
            freed += 1;
        }
        thread::sleep(Duration::from_millis(100));
        let mut body = b"room again ".to_vec();
        body.resize(1024, b'.');
        let reply = c.put_reply(0, 0, 60, &body);
        if let Some(id) = inserted_id(reply.as_bytes()) {
            acked.insert(id, body);
            break id;
        }
        assert_eq!(reply, "OUT_OF_MEMORY\r\n");
    };
    eprintln!("full disk: puts succeed again (job {recovered_id}) after deleting the {freed} oldest jobs");
    let second = fill(&mut c, &mut acked, "second");
    eprintln!("full disk: {second} more puts before OUT_OF_MEMORY again");
    // kill -9 with the disk full, and restart on the full disk.
    drop(c);
    server.kill9();
    let server = start(&dir, &flags);
    eprintln!("full disk: restart stderr: {}", server.stderr_text().trim_end());
    let mut c = server.connect();
    assert_eq!(current_jobs(&mut c), acked.len() as u64, "jobs after a restart on a full disk");
    let expected: BTreeMap<u64, Option<Vec<u8>>> = acked.iter().map(|(&id, b)| (id, Some(b.clone()))).collect();
    let failures = check_jobs(&mut c, &expected);
    assert!(failures.is_empty(), "after a restart on a full disk:\n{}", failures.join("\n"));
    // It serves: deletes work, and once they free a file, puts too.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "puts still refused after the restart and deletes");
        let oldest: Vec<u64> = acked.keys().take(20).copied().collect();
        for id in oldest {
            c.exchange(format!("delete {id}\r\n"), "DELETED\r\n");
            acked.remove(&id);
        }
        thread::sleep(Duration::from_millis(100));
        if c.put_reply(0, 0, 60, [b'a'; 1024]).starts_with("INSERTED ") {
            break;
        }
    }
    drop(c);
    drop(server);
}

// ----- 8. SIGTERM right after a put -----------------------------------------------------------

#[test]
fn sigterm_right_after_a_put_keeps_the_job() {
    for flags in [&["-f", "50"][..], &["-F"][..]] {
        let dir = TempDir::new().unwrap();
        let mut server = start(dir.path(), flags);
        let mut c = server.connect();
        let ids: Vec<u64> =
            (0..3).map(|i| c.put(0, 0, 60, format!("put {i} just before SIGTERM").as_bytes())).collect();
        let status = server.terminate();
        assert_eq!(status.code(), Some(0), "{flags:?}: exit status after SIGTERM");
        let server = start(dir.path(), flags);
        let mut c = server.connect();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(
                c.peek(*id),
                Some(format!("put {i} just before SIGTERM").into_bytes()),
                "{flags:?}: job {id} after SIGTERM and restart"
            );
        }
    }
}
