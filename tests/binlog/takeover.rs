//! Taking over beanstalkd's binlog in place: Debian's real beanstalkd
//! writes the directory, is killed with `-9`, and sprout starts on it. What
//! sprout then serves is compared with what beanstalkd itself serves after
//! its own restart on a copy of the same directory; where beanstalkd's
//! replay loses jobs or gets them wrong, sprout must not, and the tests
//! say which.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::files::{binlog_files, copy_binlog};
use crate::support::{Binary, Client, Exited, Rng, Server};
use crate::{launch, start};

/// What a client sees of one job: the `stats-job` fields a restart keeps,
/// and the body.
#[derive(Clone, Debug, PartialEq, Eq)]
struct JobSeen {
    tube: String,
    state: String,
    pri: u64,
    delay: u64,
    ttr: u64,
    reserves: u64,
    timeouts: u64,
    releases: u64,
    buries: u64,
    kicks: u64,
    body: Vec<u8>,
}

/// Every job with an id up to `max_id`, as `c`'s server shows it.
fn jobs_seen(c: &mut Client, max_id: u64) -> BTreeMap<u64, JobSeen> {
    let mut jobs = BTreeMap::new();
    for id in 1..=max_id {
        let Some(stats) = c.stats_job(id) else { continue };
        let body = c.peek(id).unwrap_or_else(|| panic!("job {id}: stats-job found it, peek did not"));
        jobs.insert(
            id,
            JobSeen {
                tube: stats["tube"].clone(),
                state: stats["state"].clone(),
                pri: stats.num("pri"),
                delay: stats.num("delay"),
                ttr: stats.num("ttr"),
                reserves: stats.num("reserves"),
                timeouts: stats.num("timeouts"),
                releases: stats.num("releases"),
                buries: stats.num("buries"),
                kicks: stats.num("kicks"),
                body,
            },
        );
    }
    jobs
}

/// How two views of the jobs differ, readably (bodies by length): empty
/// when they are the same.
fn differences(got: &BTreeMap<u64, JobSeen>, want: &BTreeMap<u64, JobSeen>) -> String {
    let short = |j: &JobSeen| format!("{} {} pri {} ({} bytes)", j.tube, j.state, j.pri, j.body.len());
    let mut out = Vec::new();
    for (id, job) in got {
        match want.get(id) {
            None => out.push(format!("job {id}: only sprout has it: {}", short(job))),
            Some(w) if w != job => out.push(format!("job {id}: sprout {job:?}\n    expected {w:?}")),
            Some(_) => {}
        }
    }
    for (id, job) in want.iter().filter(|(id, _)| !got.contains_key(id)) {
        out.push(format!("job {id}: sprout lacks it: {}", short(job)));
    }
    out.join("\n")
}

/// The beanstalkd of these tests, or `None` (a skip, outside CI).
fn beanstalkd(test: &str) -> Option<Binary> {
    Binary::beanstalkd_or_skip(test)
}

/// Restarts beanstalkd on `dir` (a copy: its replay changes the directory)
/// with `flags`, and returns what it serves.
fn beanstalkd_restart(bin: &Binary, dir: &Path, flags: &[&str], max_id: u64) -> BTreeMap<u64, JobSeen> {
    let server = bin.server().binlog(dir).args(flags).start();
    jobs_seen(&mut server.connect(), max_id)
}

/// The files' bytes, by name, to check that beanstalkd's files come out of
/// the takeover untouched.
fn file_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    binlog_files(dir).into_iter().map(|(seq, path)| (format!("binlog.{seq}"), fs::read(path).unwrap())).collect()
}

/// The directory beanstalkd's files were moved to, once there is one.
fn imported_dir(dir: &Path) -> Option<PathBuf> {
    let mut found = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("beanstalkd-imported-"));
    let first = found.next();
    assert!(found.next().is_none(), "more than one beanstalkd-imported-* directory in {}", dir.display());
    first
}

/// After a takeover: beanstalkd's files all moved, byte for byte, no
/// staging directory left, sprout's files in place.
fn check_moved_intact(dir: &Path, before: &BTreeMap<String, Vec<u8>>) {
    let moved = imported_dir(dir).unwrap_or_else(|| panic!("no beanstalkd-imported-* in {}", dir.display()));
    assert_eq!(&file_bytes(&moved), before, "beanstalkd's files changed on their way to {}", moved.display());
    for name in [".sprout-import", ".sprout-import.tmp"] {
        assert!(!dir.join(name).exists(), "{name} is left in {}", dir.display());
    }
    let sprouts = file_bytes(dir);
    assert!(!sprouts.is_empty(), "no binlog file of sprout's in {}", dir.display());
    for (name, bytes) in sprouts {
        assert!(bytes.starts_with(b"SPROUTWL"), "{name} in {} is not sprout's", dir.display());
    }
}

/// A job's body of `len` bytes that says which job it is.
fn body(tag: usize, len: usize) -> Vec<u8> {
    let mut body = format!("job {tag} ").into_bytes();
    body.resize(len, b'a' + (tag % 26) as u8);
    body.truncate(len);
    body
}

/// Drives beanstalkd through every state a restart keeps, over several
/// small files (`-s 4096`), and returns the highest id it gave, the burial
/// order of tube `graveyard`, and the connection holding reserved jobs
/// (kept open until the kill).
struct Driven {
    max_id: u64,
    burial_order: Vec<u64>,
    _holder: Client,
}

fn drive_every_state(server: &Server) -> Driven {
    let mut c = server.connect();
    let mut holder = server.connect();
    let tubes = ["default", "alpha", "b-2", "c.3", "d_4", "e+5", "f(6)", "g;7", "h$8", "i/9", "j10", "k11"];
    let mut ids = Vec::new();
    // Enough jobs to span several files, in many tubes, at several
    // priorities, with an empty body and larger ones.
    for i in 0..160 {
        let tube = tubes[i % tubes.len()];
        assert_eq!(c.call(format!("use {tube}\r\n")), format!("USING {tube}\r\n"));
        let len = match i % 7 {
            0 => 0,
            1 => 1000,
            _ => 10 + i % 50,
        };
        ids.push(c.put((i % 5) as u32 * 100, 0, 30 + i as u32, body(i, len)));
    }
    // Deletes that leave the old files alive (a few of their jobs live on).
    for &id in ids.iter().filter(|&&id| id % 4 != 0 && id < 140) {
        assert_eq!(c.call(format!("delete {id}\r\n")), "DELETED\r\n");
    }
    let live: Vec<u64> = ids.iter().copied().filter(|&id| id % 4 == 0 || id >= 140).collect();
    // Delayed an hour, at put and by a release with a delay.
    assert_eq!(c.call("use later\r\n"), "USING later\r\n");
    let delayed_put = c.put(7, 3600, 60, b"delayed at put");
    let released_delayed = live[0];
    assert!(c.call(format!("reserve-job {released_delayed}\r\n")).starts_with("RESERVED"));
    assert_eq!(c.call(format!("release {released_delayed} 77 3600\r\n")), "RELEASED\r\n");
    // Released with a new priority and no delay (beanstalkd does not log
    // that: both servers come back with the old priority).
    let released = live[1];
    assert!(c.call(format!("reserve-job {released}\r\n")).starts_with("RESERVED"));
    assert_eq!(c.call(format!("release {released} 5 0\r\n")), "RELEASED\r\n");
    // Buried in an order that is not their id order, in a tube of their
    // own; one of them kicked, then buried again.
    assert_eq!(c.call("use graveyard\r\n"), "USING graveyard\r\n");
    let graves: Vec<u64> = (0..5).map(|i| c.put(3, 0, 60, format!("grave {i}"))).collect();
    let mut burial_order = Vec::new();
    for &id in &[graves[3], graves[0], graves[4], graves[1], graves[2]] {
        assert!(c.call(format!("reserve-job {id}\r\n")).starts_with("RESERVED"));
        assert_eq!(c.call(format!("bury {id} 9\r\n")), "BURIED\r\n");
        burial_order.push(id);
    }
    assert_eq!(c.call(format!("kick-job {}\r\n", graves[0])), "KICKED\r\n");
    burial_order.retain(|&id| id != graves[0]);
    assert!(c.call(format!("reserve-job {}\r\n", graves[0])).starts_with("RESERVED"));
    assert_eq!(c.call(format!("bury {} 9\r\n", graves[0])), "BURIED\r\n");
    burial_order.push(graves[0]);
    // Kicked out of the delayed state.
    assert_eq!(c.call("use kicked\r\n"), "USING kicked\r\n");
    let kicked = c.put(1, 3600, 60, b"kicked");
    assert_eq!(c.call(format!("kick-job {kicked}\r\n")), "KICKED\r\n");
    // Reserved when the server dies: ready again after any restart.
    for tube in ["alpha", "b-2"] {
        assert!(holder.call(format!("watch {tube}\r\n")).starts_with("WATCHING"));
    }
    for _ in 0..3 {
        assert!(holder.call("reserve-with-timeout 0\r\n").starts_with("RESERVED"));
    }
    // The highest id is alive, so the next id is the same on both sides.
    assert_eq!(c.call("use default\r\n"), "USING default\r\n");
    let last = c.put(0, 0, 60, b"the last one");
    assert!(last > delayed_put);
    Driven { max_id: last, burial_order, _holder: holder }
}

/// The ids `kick 1` brings back from tube `graveyard`, one at a time: the
/// order its buried jobs are in.
fn buried_order(c: &mut Client) -> Vec<u64> {
    assert_eq!(c.call("use graveyard\r\n"), "USING graveyard\r\n");
    let mut order = Vec::new();
    while let Some(id) = c.peek_id("peek-buried") {
        assert_eq!(c.call("kick 1\r\n"), "KICKED 1\r\n");
        order.push(id);
    }
    order
}

/// Every job comes over as beanstalkd's own restart brings it back: tube,
/// state, priority, delay, ttr, counters and body, the per-tube counts, the
/// next id. Except where beanstalkd's replay is wrong: it adds one to each
/// buried job's `buries` (#668), and it restores buried jobs in the order
/// their records first appear, not the order they were buried.
#[test]
fn every_job_comes_over_as_beanstalkd_restarts_it() {
    let Some(bin) = beanstalkd("every_job_comes_over_as_beanstalkd_restarts_it") else { return };
    let dir = TempDir::new().unwrap();
    let mut original = bin.server().binlog(dir.path()).args(["-s", "4096"]).start();
    let driven = drive_every_state(&original);
    original.kill9();
    let theirs = file_bytes(dir.path());
    assert!(theirs.len() >= 4, "the load spans only {} beanstalkd files", theirs.len());

    let copy = copy_binlog(dir.path());
    let restarted = bin.server().binlog(copy.path()).args(["-s", "4096"]).start();
    let mut bc = restarted.connect();
    let expected = jobs_seen(&mut bc, driven.max_id + 5);

    let sprout = start(dir.path(), &[]);
    let mut sc = sprout.connect();
    let got = jobs_seen(&mut sc, driven.max_id + 5);
    check_moved_intact(dir.path(), &theirs);
    let stderr = sprout.stderr_text();
    assert!(stderr.contains("took over beanstalkd's log"), "no takeover line in sprout's log:\n{stderr}");

    assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "which jobs exist");
    let mut differences = Vec::new();
    for (id, want) in &expected {
        let mut want = want.clone();
        if want.state == "buried" {
            // beanstalkd adds one at every restart (#668); sprout keeps the
            // count as logged.
            want.buries -= 1;
        }
        if got[id] != want {
            differences
                .push(format!("job {id}: beanstalkd's restart {want:?}\n          sprout's takeover {:?}", got[id]));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    assert_eq!(got.values().filter(|j| j.state == "delayed").count(), 2, "the two delayed jobs");
    for tube in ["default", "alpha", "later", "graveyard", "kicked", "k11"] {
        for key in ["current-jobs-ready", "current-jobs-delayed", "current-jobs-buried", "current-jobs-urgent"] {
            let command = format!("stats-tube {tube}");
            assert_eq!(sc.yaml(&command)[key], bc.yaml(&command)[key], "{command}: {key}");
        }
    }
    // Burial order: sprout's is the order the jobs were buried in;
    // beanstalkd's is the order their first records came in.
    let beanstalkd_order = buried_order(&mut bc);
    assert_eq!(buried_order(&mut sc), driven.burial_order, "sprout's burial order");
    let mut first_seen = driven.burial_order.clone();
    first_seen.sort_unstable();
    assert_eq!(beanstalkd_order, first_seen, "beanstalkd's restart orders buried jobs by first record");
    assert_eq!(sc.put(0, 0, 60, b"next"), bc.put(0, 0, 60, b"next"), "the next id");

    // A second start is an ordinary restart of sprout's own log.
    let before = jobs_seen(&mut sc, driven.max_id + 5);
    drop(sprout);
    let again = start(dir.path(), &[]);
    assert_eq!(jobs_seen(&mut again.connect(), driven.max_id + 5), before, "after sprout restarts on its own log");
    assert!(!again.stderr_text().contains("took over"), "a second takeover:\n{}", again.stderr_text());
}

/// beanstalkd 1.12 accepts a put of 65,534 or 65,535 bytes at the default
/// `-z`, then refuses its record at the next start (its body and CRLF
/// exceed `-z`) and drops it with every later record of its file. sprout
/// takes every one of them over.
#[test]
fn jobs_beanstalkd_loses_at_its_restart_come_over() {
    let Some(bin) = beanstalkd("jobs_beanstalkd_loses_at_its_restart_come_over") else { return };
    let dir = TempDir::new().unwrap();
    let mut original = bin.server().binlog(dir.path()).start();
    let mut c = original.connect();
    let bodies = [body(1, 10), body(2, 65_534), body(3, 65_535), body(4, 10), body(5, 0)];
    for (i, b) in bodies.iter().enumerate() {
        assert_eq!(c.put(0, 0, 60, b), i as u64 + 1);
    }
    original.kill9();
    let copy = copy_binlog(dir.path());
    let theirs = beanstalkd_restart(&bin, copy.path(), &[], 5);
    assert_eq!(theirs.keys().copied().collect::<Vec<_>>(), [1], "beanstalkd's own restart keeps only job 1");

    let sprout = start(dir.path(), &[]);
    let mut sc = sprout.connect();
    for (i, b) in bodies.iter().enumerate() {
        assert_eq!(sc.peek(i as u64 + 1).as_ref(), Some(b), "job {} ({} bytes)", i + 1, b.len());
    }
    assert_eq!(sc.put(0, 0, 60, b"next"), 6);
}

/// sprout killed after each step of the import that changes the disk (a
/// file written or synced, a rename, a removal: the test hook kills the
/// process with SIGKILL right there), then started again: every time, the
/// same jobs as an import that was never interrupted, none twice, and
/// beanstalkd's files moved untouched.
#[test]
fn kill_9_at_every_step_of_the_import_changes_nothing() {
    let Some(bin) = beanstalkd("kill_9_at_every_step_of_the_import_changes_nothing") else { return };
    let dir = TempDir::new().unwrap();
    let mut original = bin.server().binlog(dir.path()).args(["-s", "4096"]).start();
    let driven = drive_every_state(&original);
    // More live jobs, for more of sprout's small files to write.
    let mut c = original.connect();
    let max_id = (0..60).map(|i| c.put(2, 0, 60, body(i, 400))).max().unwrap();
    original.kill9();
    let driven = Driven { max_id, ..driven };
    let theirs = file_bytes(dir.path());
    // sprout's own files small too, so the import has many steps.
    let flags = ["-s", "4096"];
    let reference = {
        let copy = copy_binlog(dir.path());
        let sprout = start(copy.path(), &flags);
        jobs_seen(&mut sprout.connect(), driven.max_id + 1)
    };
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 10_000, "the import never finished");
        let copy = copy_binlog(dir.path());
        let crashed = crate::sprout_on(copy.path(), &flags).env("SPROUT_TEST_TAKEOVER_CRASH_AT", steps.to_string());
        match crashed.try_start() {
            Ok(_) => break, // fewer steps than that: the import is done
            Err(Exited { status, stderr }) => {
                assert_eq!(status.signal(), Some(libc::SIGKILL), "step {steps}: not killed there; stderr:\n{stderr}")
            }
        }
        let sprout = start(copy.path(), &flags);
        let got = jobs_seen(&mut sprout.connect(), driven.max_id + 1);
        let diff = differences(&got, &reference);
        assert!(diff.is_empty(), "killed after step {steps}, unlike an uninterrupted import:\n{diff}");
        check_moved_intact(copy.path(), &theirs);
    }
    eprintln!("the import took {} steps; killed after each, then started again", steps - 1);
    assert!(steps > 50, "only {} steps to stop at", steps - 1);
}

/// beanstalkd's newest file cut at every record boundary and in the middle
/// of each record's parts (its name length, name, job struct, body):
/// sprout takes over what beanstalkd's own restart reads of the same file
/// cut there, and names the offset of the record it cut. Then the same as a
/// crash leaves the file: beanstalkd writes a record in one `write` per
/// part, into a file preallocated with zeros, so `kill -9` can stop it
/// between two parts, with zeros after.
#[test]
fn a_torn_newest_file_is_cut_at_every_offset() {
    let Some(bin) = beanstalkd("a_torn_newest_file_is_cut_at_every_offset") else { return };
    let dir = TempDir::new().unwrap();
    let mut original = bin.server().binlog(dir.path()).args(["-s", "4096"]).start();
    let mut c = original.connect();
    let mut max_id = 0;
    for i in 0..40 {
        max_id = c.put(i % 3, 0, 60, body(i as usize, 20 + i as usize * 7));
        if i % 5 == 4 {
            assert_eq!(c.call(format!("delete {}\r\n", max_id - 2)), "DELETED\r\n");
        }
    }
    let reserved = c.peek_id("reserve-with-timeout 0").expect("a job to reserve");
    assert_eq!(c.call(format!("bury {reserved} 1\r\n")), "BURIED\r\n");
    original.kill9();

    let files = binlog_files(dir.path());
    let (newest_seq, newest) = files
        .iter()
        .rev()
        .find(|(_, p)| !sprout::binlog::beanstalkd::read_file(&fs::read(p).unwrap()).records.is_empty())
        .cloned()
        .expect("a file with records");
    let name = format!("binlog.{newest_seq}");
    let bytes = fs::read(&newest).unwrap();
    let records = sprout::binlog::beanstalkd::read_file(&bytes).records;
    let (mut cuts, mut between_writes) = (Vec::new(), Vec::new());
    for r in &records {
        let name_len = r.tube.as_ref().map_or(0, |t| t.as_str().len());
        let (after_name, after_struct) = (r.offset + 4 + name_len, r.offset + 4 + name_len + 80);
        cuts.extend([r.offset, r.offset + 2, r.offset + 4 + name_len / 2, after_name + 40, r.offset + r.len - 1]);
        between_writes.extend([r.offset + 4, after_name, after_struct.min(r.offset + r.len)]);
    }
    let end = records.last().map_or(4, |r| r.offset + r.len);
    cuts.push(end);
    for list in [&mut cuts, &mut between_writes] {
        list.sort_unstable();
        list.dedup();
    }
    // What beanstalkd's own restart reads of the file cut at `cut`.
    let beanstalkd_reads = |cut: usize| {
        let truncated = copy_binlog(dir.path());
        let file = fs::OpenOptions::new().write(true).open(truncated.path().join(&name)).unwrap();
        file.set_len(cut as u64).unwrap();
        let mut expected = beanstalkd_restart(&bin, truncated.path(), &["-s", "4096"], max_id);
        for job in expected.values_mut().filter(|j| j.state == "buried") {
            job.buries -= 1; // #668
        }
        expected
    };
    let check = |cut: usize, file_bytes: &[u8], expected: &BTreeMap<u64, JobSeen>, how: &str| {
        let torn = copy_binlog(dir.path());
        fs::write(torn.path().join(&name), file_bytes).unwrap();
        let sprout = launch(torn.path(), &[]).unwrap_or_else(|e| panic!("{how} at {cut}: sprout refused: {e:?}"));
        let diff = differences(&jobs_seen(&mut sprout.connect(), max_id), expected);
        assert!(diff.is_empty(), "{name} {how} at offset {cut}:\n{diff}");
        // A record cut inside is named by where it starts (unless all that
        // is left of it is zeros: the zero tail itself); a cut between
        // records tears nothing.
        let stderr = sprout.stderr_text();
        match records.iter().find(|r| r.offset < cut && cut < r.offset + r.len) {
            Some(torn) if file_bytes[torn.offset..cut].iter().all(|&b| b == 0) => {}
            Some(torn) => {
                let says = format!("{name}: cut off a torn record at offset {} ", torn.offset);
                assert!(stderr.contains(&says), "{how} at {cut}: no warning {says:?}:\n{stderr}");
            }
            None => assert!(!stderr.contains("torn"), "{how} at {cut}, between records: a warning:\n{stderr}"),
        }
    };
    for &cut in &cuts {
        check(cut, &bytes[..cut], &beanstalkd_reads(cut), "truncated");
    }
    for &cut in &between_writes {
        let mut zeroed = bytes.clone();
        zeroed[cut..].fill(0);
        check(cut, &zeroed, &beanstalkd_reads(cut), "zeroed from a write boundary");
    }
    eprintln!(
        "{name}: {} records; truncated at {} offsets, zeroed at {}",
        records.len(),
        cuts.len(),
        between_writes.len()
    );
}

/// The way back: beanstalkd's jobs taken over by sprout, changed there
/// (a release with a new priority, which beanstalkd never logs), exported,
/// and replayed by beanstalkd: the same jobs, with the new priority.
#[test]
fn round_trip_beanstalkd_sprout_export_beanstalkd() {
    let Some(bin) = beanstalkd("round_trip_beanstalkd_sprout_export_beanstalkd") else { return };
    let dir = TempDir::new().unwrap();
    let mut original = bin.server().binlog(dir.path()).args(["-s", "4096"]).start();
    let driven = drive_every_state(&original);
    original.kill9();

    let mut sprout = start(dir.path(), &[]);
    let mut sc = sprout.connect();
    let reprioritised = driven.max_id;
    assert!(sc.call(format!("reserve-job {reprioritised}\r\n")).starts_with("RESERVED"));
    assert_eq!(sc.call(format!("release {reprioritised} 4242 0\r\n")), "RELEASED\r\n");
    let ours = jobs_seen(&mut sc, driven.max_id);
    let order = {
        let mut order = driven.burial_order.clone();
        order.dedup();
        order
    };
    sprout.terminate();

    let dest = TempDir::new().unwrap();
    let out = Binary::sprout().run(&[
        "binlog",
        "export",
        "--beanstalkd",
        dir.path().to_str().unwrap(),
        dest.path().join("back").to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "export failed: {said}");
    assert!(said.contains("exported"), "{said}");

    let back = bin.server().binlog(&dest.path().join("back")).start();
    let mut bc = back.connect();
    let mut theirs = jobs_seen(&mut bc, driven.max_id);
    for job in theirs.values_mut().filter(|j| j.state == "buried") {
        job.buries -= 1; // #668, at this replay
    }
    assert_eq!(theirs, ours, "beanstalkd after the round trip");
    assert_eq!(theirs[&reprioritised].pri, 4242, "the release priority survives the way back");
    assert_eq!(buried_order(&mut bc), order, "burial order after the round trip");
}

/// Version 5, beanstalkd's legacy format (no beanstalkd that writes it can
/// be installed): files built here from the layout in the reference (8-byte
/// name length, a 77-byte job struct, times in microseconds) are taken
/// over like version 7.
#[test]
fn version_5_files_are_taken_over() {
    let dir = TempDir::new().unwrap();
    let now_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64;
    let mut file = 5i32.to_le_bytes().to_vec();
    let v5 =
        |out: &mut Vec<u8>, tube: &str, id: u64, pri: u32, delay_us: u64, deadline_us: u64, state: u8, body: &[u8]| {
            out.extend_from_slice(&(tube.len() as u64).to_le_bytes());
            out.extend_from_slice(tube.as_bytes());
            let mut rec = [0u8; 77];
            rec[0..8].copy_from_slice(&id.to_le_bytes());
            rec[8..12].copy_from_slice(&pri.to_le_bytes());
            rec[16..24].copy_from_slice(&delay_us.to_le_bytes());
            rec[24..32].copy_from_slice(&(90_000_000u64).to_le_bytes()); // ttr 90 s
            let size = body.len() as i32 + 2;
            rec[32..36].copy_from_slice(&size.to_le_bytes());
            rec[40..48].copy_from_slice(&(now_us - 5_000_000).to_le_bytes());
            rec[48..56].copy_from_slice(&deadline_us.to_le_bytes());
            rec[56..60].copy_from_slice(&2u32.to_le_bytes()); // reserves
            rec[76] = state;
            out.extend_from_slice(&rec);
            if !tube.is_empty() {
                out.extend_from_slice(body);
                out.extend_from_slice(b"\r\n");
            }
        };
    v5(&mut file, "old", 7, 12, 0, 0, 1, b"ready in v5");
    v5(&mut file, "old", 8, 13, 3_600_000_000, now_us + 3_600_000_000, 4, b"delayed in v5");
    v5(&mut file, "older", 9, 14, 0, 0, 1, b"buried in v5");
    v5(&mut file, "", 9, 14, 0, 0, 3, b"buried in v5");
    file.resize(file.len() + 200, 0);
    fs::write(dir.path().join("binlog.1"), &file).unwrap();

    let sprout = start(dir.path(), &[]);
    let mut c = sprout.connect();
    let jobs = jobs_seen(&mut c, 10);
    assert_eq!(jobs.keys().copied().collect::<Vec<_>>(), [7, 8, 9]);
    assert_eq!((jobs[&7].state.as_str(), jobs[&7].pri, jobs[&7].ttr, jobs[&7].reserves), ("ready", 12, 90, 2));
    assert_eq!((jobs[&8].state.as_str(), jobs[&8].delay), ("delayed", 3600));
    let left = c.stats_job(8).unwrap().num("time-left");
    assert!((3590..=3600).contains(&left), "the v5 deadline, from microseconds: {left} s left");
    assert_eq!((jobs[&9].tube.as_str(), jobs[&9].state.as_str()), ("older", "buried"));
    assert_eq!(jobs[&9].body, b"buried in v5");
    assert_eq!(c.put(0, 0, 60, b"next"), 10);
    assert!(sprout.stderr_text().contains("format 5"), "{}", sprout.stderr_text());
}

/// beanstalkd's files damaged at random (bytes flipped, lengths set huge,
/// files cut): sprout takes over what it can read or refuses with a
/// message naming the file, and never crashes; `--skip-damaged-records`
/// always takes over.
#[test]
fn damaged_beanstalkd_files_are_refused_or_skipped_never_a_crash() {
    let Some(bin) = beanstalkd("damaged_beanstalkd_files_are_refused_or_skipped_never_a_crash") else { return };
    let dir = TempDir::new().unwrap();
    let mut original = bin.server().binlog(dir.path()).args(["-s", "4096"]).start();
    let mut c = original.connect();
    for i in 0..60 {
        c.put(i % 4, 0, 60, body(i as usize, 5 + i as usize * 3));
    }
    original.kill9();
    let files = binlog_files(dir.path());
    let mut rng = Rng(0x5eed_0fda_4a9e);
    let (mut refused, mut taken) = (0, 0);
    for round in 0..24 {
        let copy = copy_binlog(dir.path());
        let (seq, _) = files[rng.index(files.len())];
        let path = copy.path().join(format!("binlog.{seq}"));
        let mut bytes = fs::read(&path).unwrap();
        match round % 3 {
            0 => {
                for _ in 0..3 {
                    let at = rng.index(bytes.len());
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            1 => {
                let at = 4 + rng.index(bytes.len() - 8);
                bytes[at..at + 4].copy_from_slice(&i32::MAX.to_le_bytes());
            }
            _ => bytes.truncate(rng.index(bytes.len())),
        }
        fs::write(&path, &bytes).unwrap();
        let skip = round % 2 == 1;
        let flags: &[&str] = if skip { &["--skip-damaged-records"] } else { &[] };
        match launch(copy.path(), flags) {
            Ok(server) => {
                taken += 1;
                let stats = server.connect().stats();
                assert!(stats.num("current-jobs-ready") <= 60, "round {round}: {stats:?}");
            }
            Err(Exited { status, stderr }) => {
                assert!(!skip, "round {round}: refused with --skip-damaged-records: {status}\n{stderr}");
                assert_eq!(status.code(), Some(1), "round {round}: a crash, not a refusal: {status}\n{stderr}");
                assert!(stderr.contains("binlog."), "round {round}: the refusal names no file:\n{stderr}");
                refused += 1;
            }
        }
    }
    eprintln!("damaged copies: {taken} taken over, {refused} refused");
}

/// A directory holding both beanstalkd's files and sprout's is refused:
/// which jobs are current cannot be told.
#[test]
fn a_directory_with_both_kinds_of_files_is_refused() {
    let Some(bin) = beanstalkd("a_directory_with_both_kinds_of_files_is_refused") else { return };
    let dir = TempDir::new().unwrap();
    let mut sprout = start(dir.path(), &[]);
    sprout.connect().put(0, 0, 60, b"sprout's");
    sprout.terminate();
    let theirs = TempDir::new().unwrap();
    let mut b = bin.server().binlog(theirs.path()).start();
    b.connect().put(0, 0, 60, b"beanstalkd's");
    b.kill9();
    fs::copy(theirs.path().join("binlog.1"), dir.path().join("binlog.99")).unwrap();
    let Err(Exited { status, stderr }) = launch(dir.path(), &[]) else { panic!("sprout started on a mixed directory") };
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("both beanstalkd's binlog files and sprout's"), "{stderr}");
}

/// A job larger than the `-z` beanstalkd will run with (its body and CRLF
/// within `-z`, or its replay drops it with the rest of its file) is
/// exported into a file of its own, after the others, and named with the
/// `-z` it needs: a beanstalkd with the default `-z` loses only those; one
/// started with the `-z` named keeps them all.
#[test]
fn export_gives_each_job_too_large_for_z_a_file_of_its_own() {
    let Some(bin) = beanstalkd("export_gives_each_job_too_large_for_z_a_file_of_its_own") else { return };
    let dir = TempDir::new().unwrap();
    let mut sprout = start(dir.path(), &["-z", "100000"]);
    let mut c = sprout.connect();
    let bodies = [body(1, 70_000), body(2, 10), body(3, 65_534), body(4, 10), body(5, 65_533)];
    for (i, b) in bodies.iter().enumerate() {
        assert_eq!(c.put(0, 0, 60, b), i as u64 + 1);
    }
    sprout.terminate();
    let dest = TempDir::new().unwrap();
    let back = dest.path().join("back");
    let out = Binary::sprout().run(&[
        "binlog",
        "export",
        "--beanstalkd",
        dir.path().to_str().unwrap(),
        back.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("2 jobs are larger than beanstalkd -z 65535") && said.contains("-z 70002"), "{said}");
    assert!(said.contains("jobs 1, 3"), "{said}");
    assert_eq!(binlog_files(&back).len(), 3, "the others' file, then one file each");

    let copy = copy_binlog(&back);
    let kept = beanstalkd_restart(&bin, copy.path(), &[], 5);
    assert_eq!(kept.keys().copied().collect::<Vec<_>>(), [2, 4, 5], "beanstalkd -z 65535 keeps all but those");
    let all = beanstalkd_restart(&bin, &back, &["-z", "70002"], 5);
    assert_eq!(all.len(), 5, "beanstalkd -z 70002 keeps them all");
    for (i, b) in bodies.iter().enumerate() {
        assert_eq!(&all[&(i as u64 + 1)].body, b, "job {}", i + 1);
    }
}
