//! `sprout binlog inspect DIR`, run as an operator runs it, on directories
//! the servers wrote: its counts match what the servers show, damage sets
//! the exit status and names file and offset, a torn tail does not, and on
//! the directory of a running server it never fails and changes nothing.

use std::collections::BTreeMap;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tempfile::TempDir;

use crate::files::{KIND_JOB, copy_binlog, newest_records, patch};
use crate::support::{Binary, Client, Server, inserted_id, put_command};
use crate::{SYNCED_SMALL_FILES, start};

/// `sprout binlog inspect ARGS...`: its exit code and stdout.
fn inspect(args: &[&str]) -> (i32, String) {
    let out = Binary::sprout().run(&[&["binlog", "inspect"], args].concat());
    let code = out.status.code().expect("inspect exited, not killed");
    (code, String::from_utf8(out.stdout).expect("UTF-8 output"))
}

/// The report on `dir` as JSON, and the exit code.
fn inspect_json(dir: &Path) -> (i32, Value) {
    let (code, out) = inspect(&["--json", dir.to_str().unwrap()]);
    let json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("inspect --json: {e}:\n{out}"));
    (code, json)
}

/// The report on `dir` as text, and the exit code.
fn inspect_text(dir: &Path) -> (i32, String) {
    inspect(&[dir.to_str().unwrap()])
}

/// A state's count in a JSON counts object.
fn count(counts: &Value, state: &str) -> u64 {
    counts[state].as_u64().unwrap_or_else(|| panic!("no {state} in {counts}"))
}

/// Tubes `default` and `emails`: puts, deletes, delays, buries, a job taken
/// out of the buried state by `reserve-job` (logged reserved), one taken
/// from ready (reserved, not logged). Ids 1 to 50.
fn drive(c: &mut Client) {
    for i in 1..=30 {
        c.put(10, 0, 60, format!("default job {i}"));
    }
    c.exchange("use emails\r\n", "USING emails\r\n");
    for i in 31..=50 {
        c.put(5, if i <= 35 { 3600 } else { 0 }, 60, format!("email {i}: {}", "x".repeat(i)));
    }
    for id in 1..=10 {
        c.exchange(format!("delete {id}\r\n"), "DELETED\r\n");
    }
    for id in 36..=38 {
        assert!(c.call(format!("reserve-job {id}\r\n")).starts_with("RESERVED"));
        c.exchange(format!("bury {id} 1\r\n"), "BURIED\r\n");
    }
    assert!(c.call("reserve-job 38\r\n").starts_with("RESERVED"), "a buried job reserved");
    assert!(c.call("reserve-job 11\r\n").starts_with("RESERVED"), "a ready job reserved");
}

/// `stats-tube`'s job counts of each tube that holds jobs.
fn tube_counts(c: &mut Client) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
    let mut tubes = BTreeMap::new();
    for tube in ["default", "emails"] {
        let s = c.yaml(&format!("stats-tube {tube}"));
        let counts = ["ready", "reserved", "delayed", "buried"]
            .into_iter()
            .map(|state| (state, s.num(&format!("current-jobs-{state}"))))
            .collect();
        tubes.insert(tube.to_string(), counts);
    }
    tubes
}

/// Each tube of the report holds what `stats-tube` said, `reserved` jobs
/// counting as ready (a restart makes them so).
fn assert_same_counts(report: &Value, tubes: &BTreeMap<String, BTreeMap<&'static str, u64>>, when: &str) {
    let live = &report["live"];
    let mut total = 0;
    for (tube, stats) in tubes {
        let counts = &live["tubes"][tube];
        let ready = stats["ready"] + stats["reserved"];
        let got = [count(counts, "ready"), count(counts, "delayed"), count(counts, "buried")];
        assert_eq!(got, [ready, stats["delayed"], stats["buried"]], "{when}: tube {tube}: {counts} vs {stats:?}");
        assert_eq!(count(counts, "total"), stats.values().sum::<u64>(), "{when}: tube {tube}");
        total += stats.values().sum::<u64>();
    }
    assert_eq!(count(live, "total"), total, "{when}: {live}");
    assert_eq!(live["tubes"].as_object().unwrap().len(), tubes.len(), "{when}: {live}");
}

/// The line of the text report that counts the live jobs, from the JSON's
/// figures: both say the same.
fn live_line(report: &Value) -> String {
    let live = &report["live"];
    format!(
        "live jobs: {}: {} ready ({} of them logged reserved), {} delayed, {} buried",
        count(live, "total"),
        count(live, "ready"),
        count(live, "reserved"),
        count(live, "delayed"),
        count(live, "buried")
    )
}

/// Each kind of record, added up over the files.
fn records(report: &Value, kind: &str) -> u64 {
    report["files"].as_array().unwrap().iter().filter_map(|f| f["records"][kind].as_u64()).sum()
}

#[test]
fn sprout_s_files_hold_what_stats_shows_and_a_restart_brings_back() {
    let dir = TempDir::new().unwrap();
    let mut server = start(dir.path(), &SYNCED_SMALL_FILES);
    let mut c = server.connect();
    drive(&mut c);
    let before = tube_counts(&mut c);
    server.kill9();

    let (code, report) = inspect_json(dir.path());
    assert_eq!(code, 0, "{report:#}");
    assert_eq!((&report["format"], &report["clean"]), (&Value::from("sprout"), &Value::from(true)));
    assert_same_counts(&report, &before, "at the kill");
    assert_eq!(count(&report["live"]["tubes"]["emails"], "reserved"), 1, "job 38, taken out of burial");
    assert_eq!(count(&report["live"]["tubes"]["default"], "reserved"), 0, "job 11's reserve is not logged");
    assert_eq!(
        [records(&report, "job"), records(&report, "state"), records(&report, "delete")],
        [50, 4, 10],
        "50 puts; 3 buries and a reserve-job of a buried job; 10 deletes"
    );
    let (code, text) = inspect_text(dir.path());
    assert_eq!(code, 0);
    assert!(text.contains(&live_line(&report)), "the text and the JSON differ:\n{text}");
    assert!(text.contains("damage: none"), "{text}");

    let server = start(dir.path(), &SYNCED_SMALL_FILES);
    let mut c = server.connect();
    let after = tube_counts(&mut c);
    assert_same_counts(&report, &after, "after a restart");
    assert!(after.values().all(|t| t["reserved"] == 0));
    assert_eq!(c.put(1, 0, 60, "next"), report["next_id"].as_u64().unwrap(), "the next id, as inspect said");
}

#[test]
fn beanstalkd_s_files_hold_what_beanstalkd_and_a_takeover_bring_back() {
    let test = "inspect::beanstalkd_s_files_hold_what_beanstalkd_and_a_takeover_bring_back";
    let Some(beanstalkd) = Binary::beanstalkd_or_skip(test) else { return };
    let dir = TempDir::new().unwrap();
    let mut server = beanstalkd.server().binlog(dir.path()).args(["-s", "4096"]).start();
    let mut c = server.connect();
    drive(&mut c);
    server.kill9();
    let taken_over = copy_binlog(dir.path());

    let (code, report) = inspect_json(dir.path());
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["format"], "beanstalkd");
    assert!(report["files"].as_array().unwrap().len() >= 2, "-s 4096 makes several files: {report:#}");
    assert!(report["files"].as_array().unwrap().iter().all(|f| f["format"] == "beanstalkd_v7"), "{report:#}");
    assert_eq!(records(&report, "full"), 50, "{report:#}");

    let restarted = beanstalkd.server().binlog(dir.path()).args(["-s", "4096"]).start();
    let after = tube_counts(&mut restarted.connect());
    assert_same_counts(&report, &after, "beanstalkd restarted");
    drop(restarted);

    let sprout = start(taken_over.path(), &SYNCED_SMALL_FILES);
    let mut c = sprout.connect();
    assert_same_counts(&report, &tube_counts(&mut c), "sprout took it over");
    assert_eq!(c.put(1, 0, 60, "next"), report["next_id"].as_u64().unwrap(), "the next id, as inspect said");
}

/// Jobs 1 to 6 in `-s 4096` files, synced; returns the newest file with
/// records, and the offset and length of each job's full record there.
fn small_log(dir: &Path) -> (String, BTreeMap<u64, (usize, usize)>) {
    let mut server = start(dir, &SYNCED_SMALL_FILES);
    let mut c = server.connect();
    for i in 1..=6u64 {
        assert_eq!(c.put(1, 0, 60, format!("job {i} {}", "y".repeat(20))), i);
    }
    server.kill9();
    let (file, recs) = newest_records(dir);
    let full = recs.iter().filter(|r| r.kind == KIND_JOB).map(|r| (r.id, (r.offset, r.len))).collect();
    (file, full)
}

fn hash_of(path: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    fs::read(path).unwrap().hash(&mut h);
    h.finish()
}

#[test]
fn a_flipped_byte_before_the_last_record_is_damage_named_by_file_and_offset() {
    let dir = TempDir::new().unwrap();
    let (file, full) = small_log(dir.path());
    let (&victim, &(offset, len)) = full.iter().rev().nth(1).expect("two jobs in the newest file");
    let path = dir.path().join(&file);
    patch(&path, offset + len - 3, |b| b[0] ^= 0x08);
    let hash = hash_of(&path);

    let (code, text) = inspect_text(dir.path());
    assert_eq!(code, 1, "damage makes the exit status 1:\n{text}");
    assert!(text.contains(&format!("{file} at offset {offset}: ")), "names {file} and offset {offset}:\n{text}");
    assert!(text.contains(&format!("about job {victim}")), "{text}");
    let (code, report) = inspect_json(dir.path());
    assert_eq!(code, 1);
    assert_eq!(report["clean"], false);
    let damage = &report["damage"].as_array().unwrap()[..];
    assert_eq!(damage.len(), 1, "{report:#}");
    assert_eq!((&damage[0]["file"], &damage[0]["offset"]), (&Value::from(file.as_str()), &Value::from(offset)));
    assert_eq!(hash_of(&path), hash, "inspect repairs nothing");
}

#[test]
fn a_torn_tail_of_the_newest_file_is_noted_and_no_damage() {
    let dir = TempDir::new().unwrap();
    let (file, full) = small_log(dir.path());
    let (_, &(offset, len)) = full.iter().next_back().expect("the last job");
    let path = dir.path().join(&file);
    // The second half of the last record never reached the disk.
    patch(&path, offset + len / 2, |b| b[..len - len / 2].fill(0));
    let hash = hash_of(&path);

    let (code, text) = inspect_text(dir.path());
    assert_eq!(code, 0, "a torn tail is no damage:\n{text}");
    assert!(text.contains(&format!("torn tail at offset {offset} (a write in progress, or a crash")), "{text}");
    assert!(text.contains("damage: none"), "{text}");
    let (code, report) = inspect_json(dir.path());
    assert_eq!(code, 0);
    let files = report["files"].as_array().unwrap();
    let torn = files.iter().find(|f| f["name"] == file.as_str()).expect("the file");
    assert_eq!(torn["torn_tail"]["offset"], offset, "{torn:#}");
    assert_eq!(torn["records_end"], offset, "{torn:#}");
    assert_eq!(count(&report["live"], "total"), 5, "the torn job was never acknowledged");
    assert_eq!(hash_of(&path), hash, "inspect repairs nothing");
}

#[test]
fn an_unreadable_directory_or_bad_usage_is_exit_status_2() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("missing");
    assert_eq!(inspect(&[missing.to_str().unwrap()]).0, 2);
    assert_eq!(inspect(&[]).0, 2, "no DIR");
    assert_eq!(inspect(&["--jsn", dir.path().to_str().unwrap()]).0, 2, "an unknown flag");
    let (code, help) = inspect(&["--help"]);
    assert_eq!(code, 0);
    for said in ["Exit status:", "reclaimable_bytes", "Y - X - H"] {
        assert!(help.contains(said), "--help says {said}:\n{help}");
    }
}

/// What a directory's files are: name, size, mtime, a hash of the bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, SystemTime, u64)> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            (e.file_name().to_string_lossy().into_owned(), (m.len(), m.modified().unwrap(), hash_of(&e.path())))
        })
        .collect()
}

/// Commands the client under load sends at once: the server writes their
/// records in one write, across pages.
const BATCH: usize = 16;

/// While a thread puts and deletes (64 KiB files, made and retired all the
/// time), inspect runs again and again: it always exits 0 with a report.
/// Now and then the server is stopped (SIGSTOP) so the directory holds
/// still: inspect then changes no file, no name, no mtime, and counts the
/// jobs the client was told about (give or take the batch in flight).
#[test]
fn inspect_on_a_running_server_never_fails_and_changes_nothing() {
    let dir = TempDir::new().unwrap();
    let mut server: Server = crate::sprout_on(dir.path(), &["-s", "65536"]).start();
    let stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(AtomicU64::new(0));
    let puts = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, live, puts) = (stop.clone(), live.clone(), puts.clone());
        let mut c = server.connect();
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut ids = std::collections::VecDeque::new();
            let mut put = 0u64;
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) && put < 200_000 {
                let mut batch = Vec::new();
                for _ in 0..BATCH {
                    put += 1;
                    let body = format!("load {put} {}", "z".repeat((put * 37 % 1500) as usize));
                    batch.extend(put_command(1, 0, 60, body));
                }
                for reply in c.pipeline(batch, BATCH) {
                    ids.push_back(inserted_id(&reply).expect("INSERTED"));
                }
                live.store(ids.len() as u64, Ordering::SeqCst);
                puts.store(put, Ordering::SeqCst);
                if ids.len() > 10 * BATCH {
                    let gone: Vec<u64> = ids.drain(..BATCH).collect();
                    let deletes = gone.iter().flat_map(|id| format!("delete {id}\r\n").into_bytes()).collect();
                    for reply in c.pipeline(deletes, BATCH) {
                        assert_eq!(reply, b"DELETED\r\n");
                    }
                    live.store(ids.len() as u64, Ordering::SeqCst);
                }
            }
        })
    };
    let mut failures = Vec::new();
    let (mut round, mut retired_while_read) = (0, 0);
    // At least 40 rounds, and until the load has gone through many files.
    let deadline = Instant::now() + Duration::from_secs(60);
    while round < 40 || (puts.load(Ordering::SeqCst) < 20_000 && Instant::now() < deadline) {
        round += 1;
        if round % 4 == 3 {
            server.signal(libc::SIGSTOP);
            // The client takes in a reply sent before the stop.
            std::thread::sleep(Duration::from_millis(20));
            let before = snapshot(dir.path());
            let told = live.load(Ordering::SeqCst);
            let (code, report) = inspect_json(dir.path());
            let (text_code, _) = inspect_text(dir.path());
            let after = snapshot(dir.path());
            server.signal(libc::SIGCONT);
            if before != after {
                failures.push(format!("round {round}: the directory changed under inspect:\n{before:?}\n{after:?}"));
            }
            let total = count(&report["live"], "total");
            if (code, text_code) != (0, 0) || total.abs_diff(told) > BATCH as u64 {
                failures.push(format!("round {round}: exit {code}/{text_code}, {total} jobs, told {told}: {report:#}"));
            }
        } else {
            let (code, report) = inspect_json(dir.path());
            if code != 0 || report["clean"] != true {
                failures.push(format!("round {round}: exit {code} under load: {report:#}"));
            }
            retired_while_read +=
                report["notes"].as_array().unwrap().iter().filter(|n| n.to_string().contains("gone")).count();
        }
    }
    eprintln!(
        "inspect under load: {round} rounds over {} puts; {retired_while_read} files retired between listing and reading",
        puts.load(Ordering::SeqCst)
    );
    stop.store(true, Ordering::Relaxed);
    load.join().expect("the load ran");
    assert!(server.exit_status().is_none(), "the server still runs");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
