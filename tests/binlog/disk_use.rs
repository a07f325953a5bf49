//! Disk use stays bounded by the live jobs.

use std::collections::BTreeMap;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::files::binlog_disk_use;
use crate::support::{Client, Stats, inserted_id, put_command};
use crate::{check_jobs, current_jobs, files_in_use, start};

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
