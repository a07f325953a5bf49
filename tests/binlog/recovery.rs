//! Every job state comes back after `kill -9` and after SIGTERM.

use std::collections::BTreeMap;
use std::time::Duration;

use tempfile::TempDir;

use crate::files::binlog_files;
use crate::support::{Client, Stats, found, wait_until};
use crate::{current_jobs, files_in_use, start};

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

/// Puts jobs into every state (ready; delayed; buried in an order other
/// than their ids; released with a new priority, with and without a delay;
/// kicked by `kick` and by `kick-job` out of buried and delayed; taken out
/// of buried by `reserve-job`; in other tubes; a binary body; deleted in
/// each state; reserved at the stop), stops the server (`kill -9`, or
/// SIGTERM and a clean exit), restarts it, and checks each job's state,
/// counters, body and file, that delays keep their deadlines, that tubes
/// come back, buried jobs in burial order, and that ids go on above every
/// id handed out.
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

/// A crash: only what was written before each reply counts.
#[test]
fn every_state_survives_kill_9() {
    state_scenario(false);
}

/// A clean stop, which also exits 0.
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

/// SIGTERM right after three puts, before the interval's fsync (`-f 50`)
/// or with none ever (`-F`): the clean shutdown writes and syncs what was
/// acknowledged, so the jobs come back.
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
