//! A flipped byte is never accepted silently.

use std::collections::BTreeMap;
use std::path::Path;

use tempfile::TempDir;

use crate::files::{KIND_JOB, copy_binlog, dropped_with, names_file_and_offset, names_job, newest_records, patch};
use crate::support::Exited;
use crate::{SYNCED_SMALL_FILES, check_jobs, launch, start};

/// Jobs 1..=5, job 2 buried afterwards (so a state record follows its full
/// record), then job 6 as the last record. Returns the bodies.
fn damage_fixture(dir: &Path) -> BTreeMap<u64, Vec<u8>> {
    let mut server = start(dir, &SYNCED_SMALL_FILES);
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

/// Damage before the last record is not a torn tail: a flipped body,
/// checksum, length or id byte makes sprout refuse to start (exit 1, naming
/// the file and the record's offset); with `--skip-damaged-records` it
/// starts without the damaged job (logging which, when its id is legible)
/// and with every other job as it was, but for (format 2) the jobs whose
/// records named the tube the damaged record declared, each logged.
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
        ("an id byte", 1, full(1).offset + full(1).id_at, 0x04, false),
    ];
    let mut failures = Vec::new();
    for (what, victim, at, xor, id_legible) in variants {
        let rec_offset = full(victim).offset;
        let copy = copy_binlog(dir.path());
        let path = copy.path().join(&file);
        patch(&path, at, |b| b[0] ^= xor);
        let tag = format!("{what} of job {victim} (file offset {at}, record at {rec_offset}) flipped");
        match launch(copy.path(), &SYNCED_SMALL_FILES) {
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
        let flags = [&SYNCED_SMALL_FILES[..], &["--skip-damaged-records"]].concat();
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
        let dropped = dropped_with(&recs, victim);
        for &id in dropped.iter().filter(|&&id| id != victim) {
            if !names_job(&stderr, id) {
                failures.push(format!(
                    "{tag}: job {id}, whose tube was declared by the damaged record, is dropped \
                     without being logged:\n{stderr}"
                ));
            }
        }
        let mut c = server.connect();
        let expected: BTreeMap<u64, Option<Vec<u8>>> =
            bodies.iter().map(|(&id, b)| (id, (!dropped.contains(&id)).then(|| b.clone()))).collect();
        failures
            .extend(check_jobs(&mut c, &expected).into_iter().map(|f| format!("{tag}, --skip-damaged-records: {f}")));
        for (&id, _) in bodies.iter().filter(|(id, _)| !dropped.contains(id)) {
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

/// A flipped byte in the last record may look like a torn tail: sprout may
/// refuse or cut it, but either way it names the file and offset, and a
/// cut loses that job only.
#[test]
fn a_flipped_byte_in_the_last_record_is_never_accepted_silently() {
    let dir = TempDir::new().unwrap();
    let bodies = damage_fixture(dir.path());
    let (file, recs) = newest_records(dir.path());
    let rec = *recs.last().unwrap();
    assert_eq!((rec.kind, rec.id), (KIND_JOB, 6));
    for (what, at) in [("body", rec.offset + rec.len - 4), ("priority", rec.offset + rec.id_at + rec.id_len)] {
        let copy = copy_binlog(dir.path());
        let path = copy.path().join(&file);
        patch(&path, at, |b| b[0] ^= 0x10);
        match launch(copy.path(), &SYNCED_SMALL_FILES) {
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
