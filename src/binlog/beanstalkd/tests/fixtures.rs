//! Files beanstalkd 1.12 wrote (`testdata/`, made by `testdata/make.py`),
//! read and replayed, and compared with what beanstalkd's own recovery made
//! of the same files (`testdata/*.expected`).

use super::*;

pub(super) const SESSION: &[u8] = include_bytes!("../testdata/session/binlog.1");
pub(super) const ROTATION: [(u64, &[u8]); 2] =
    [(5, include_bytes!("../testdata/rotation/binlog.5")), (6, include_bytes!("../testdata/rotation/binlog.6"))];
pub(super) const RESTART: [(u64, &[u8]); 2] =
    [(1, include_bytes!("../testdata/restart/binlog.1")), (2, include_bytes!("../testdata/restart/binlog.2"))];

/// Every fixture file.
pub(super) fn all_files() -> Vec<&'static [u8]> {
    let mut files = vec![SESSION];
    files.extend(ROTATION.iter().chain(&RESTART).map(|(_, bytes)| *bytes));
    files
}

/// A job as beanstalkd's `stats-job` and `peek` showed it after a restart.
#[derive(Debug)]
struct SeenByBeanstalkd {
    id: u64,
    fields: std::collections::HashMap<String, String>,
    body: Vec<u8>,
}

/// Parses a `.expected` file: the live jobs, the absent ids, the next id.
fn expected(text: &str) -> (Vec<SeenByBeanstalkd>, Vec<u64>, u64) {
    let (mut jobs, mut absent, mut next_id) = (Vec::new(), Vec::new(), 0);
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        match words[..] {
            ["next-id", n] => next_id = n.parse().unwrap(),
            ["job", id, "absent"] => absent.push(id.parse().unwrap()),
            ["job", id, ref fields @ ..] => {
                let fields: std::collections::HashMap<String, String> = fields
                    .iter()
                    .map(|f| f.split_once('=').unwrap())
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let hex = &fields["body"];
                let body = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
                jobs.push(SeenByBeanstalkd { id: id.parse().unwrap(), fields, body });
            }
            _ => panic!("bad line {line:?}"),
        }
    }
    (jobs, absent, next_id)
}

/// The import agrees with beanstalkd's own recovery of the same files, job
/// by job, but for sprout's departures: beanstalkd adds one to a buried
/// job's `buries` at every restart (#668).
fn agrees_with_beanstalkd(files: &[(u64, &[u8])], expected_text: &str) -> Imported {
    let imported = import(files);
    let (seen, absent, next_id) = expected(expected_text);
    assert_eq!(imported.jobs.len(), seen.len(), "live jobs");
    for seen in &seen {
        let job = job(&imported, seen.id);
        let f = |k: &str| seen.fields[k].as_str();
        let state = match job.state {
            ImportedState::Ready => "ready",
            ImportedState::Delayed { .. } => "delayed",
            ImportedState::Buried { .. } => "buried",
        };
        assert_eq!(state, f("state"), "job {}", seen.id);
        assert_eq!(job.pri.to_string(), f("pri"), "job {}", seen.id);
        assert_eq!(job.tube.as_str(), f("tube"), "job {}", seen.id);
        assert_eq!((job.ttr_ns / SECOND as u64).to_string(), f("ttr"), "job {}", seen.id);
        let c = job.counts;
        let buries_after_restart = c.buries + u32::from(state == "buried");
        assert_eq!(c.reserves.to_string(), f("reserves"), "job {}", seen.id);
        assert_eq!(c.timeouts.to_string(), f("timeouts"), "job {}", seen.id);
        assert_eq!(c.releases.to_string(), f("releases"), "job {}", seen.id);
        assert_eq!(buries_after_restart.to_string(), f("buries"), "job {}", seen.id);
        assert_eq!(c.kicks.to_string(), f("kicks"), "job {}", seen.id);
        assert_eq!(imported.bodies.get(job.body), &seen.body[..], "job {}", seen.id);
    }
    for id in absent {
        assert!(imported.jobs.iter().all(|job| job.id != id), "job {id} is gone");
    }
    assert_eq!(imported.next_id, next_id);
    imported
}

#[test]
fn every_fixture_file_reads_to_a_clean_end() {
    let ends: Vec<End> = all_files().into_iter().map(|bytes| read_file(bytes).end).collect();
    // Files rotated away are cut to their records (binlog.5 of rotation);
    // the others end in the preallocated zeros.
    let expected = [2445, 4081, 1351, 494, 270].map(|at| End::Clean { at });
    assert_eq!(ends, expected);
}

#[test]
fn session_records_decode_field_by_field() {
    let read = read_file(SESSION);
    assert_eq!(read.version, Some(Version::V7));
    assert_eq!(read.records.len(), 22);
    let first = &read.records[0];
    assert_eq!((first.offset, first.len, first.id), (4, 95, 1));
    assert_eq!(first.tube, Some(tube("tA")));
    assert_eq!((first.pri, first.delay_ns, first.ttr_ns, first.body_size), (10, 0, 30 * SECOND, 9));
    assert_eq!((first.state, first.body), (State::Ready, Some(&b"job-one"[..])));
    let delayed = &read.records[1];
    assert_eq!((delayed.id, delayed.state, delayed.delay_ns), (2, State::Delayed, 3600 * SECOND));
    assert_eq!(delayed.deadline_at_ns - delayed.created_at_ns, 3600 * SECOND, "put's time plus its delay");
    let delete = &read.records[3];
    assert_eq!(
        (delete.offset, delete.len, delete.id, delete.state, delete.tube.clone()),
        (295, 84, 3, State::Deleted, None)
    );
    let bury = &read.records[5];
    assert_eq!((bury.offset, bury.id, bury.pri, bury.state, bury.body), (474, 4, 99, State::Buried, None));
    assert_eq!(bury.counts, JobCounts { reserves: 1, timeouts: 0, releases: 0, buries: 1, kicks: 0 });
    let binary = read.records.iter().find(|r| r.id == 12).unwrap();
    assert_eq!(binary.body, Some(&b"a\r\nb\x00c\xff\r\n"[..]), "CRLF inside a body is the body's");
    let long = read.records.iter().find(|r| r.id == 13).unwrap();
    assert_eq!(long.tube.as_ref().map(|t| t.as_str().len()), Some(200));
    assert_eq!((long.pri, long.ttr_ns), (u32::MAX, i64::from(u32::MAX) * SECOND));
}

#[test]
fn session_replays_as_beanstalkd_recovers_it() {
    let imported = agrees_with_beanstalkd(&[(1, SESSION)], include_str!("../testdata/session.expected"));
    let delayed = job(&imported, 2);
    assert!(
        matches!(delayed.state, ImportedState::Delayed { ready_at_ns } if ready_at_ns == delayed.created_at_ns + 3600 * SECOND)
    );
    // Released with a delay of 100 s: ready 100 s after the release.
    assert!(matches!(job(&imported, 7).state, ImportedState::Delayed { .. }));
    // Reserved when beanstalkd stopped, which logs nothing: ready, no reserve.
    assert_eq!((job(&imported, 5).state, job(&imported, 5).counts.reserves), (ImportedState::Ready, 0));
    // Released without delay logs nothing: the priority is the put's.
    assert_eq!(job(&imported, 6).pri, 0);
}

#[test]
fn session_buried_jobs_come_back_in_burial_order() {
    let imported = import(&[(1, SESSION)]);
    // 10 was buried before 9, though 9's full record comes first (where
    // beanstalkd would put it first).
    let buried: Vec<u64> =
        imported.jobs.iter().filter(|j| matches!(j.state, ImportedState::Buried { .. })).map(|j| j.id).collect();
    assert_eq!(buried, [4, 10, 9]);
    let order: Vec<u64> = imported.jobs.iter().map(|j| j.id).collect();
    assert_eq!(order, [1, 2, 5, 6, 7, 8, 11, 12, 13, 14, 4, 10, 9], "others in id order, then buried");
    assert_eq!(
        imported.counts,
        ImportCounts {
            records: 22,
            ready: 8,
            delayed: 2,
            buried: 3,
            reserved_made_ready: 0,
            deleted_seen: 1,
            short_records_ignored: 0,
            full_records_rewritten: 0,
        }
    );
}

#[test]
fn rotation_replays_as_beanstalkd_recovers_it() {
    let imported = agrees_with_beanstalkd(&ROTATION, include_str!("../testdata/rotation.expected"));
    // Compaction moved job 1 while it was reserved: a full record in state
    // reserved, which comes back ready with the reserve it counted.
    assert_eq!((job(&imported, 1).state, job(&imported, 1).counts.reserves), (ImportedState::Ready, 1));
    assert_eq!(imported.counts.reserved_made_ready, 1);
    // binlog.5 opens with deletes of jobs whose full records were in files
    // beanstalkd had deleted, and the bury of job 2 before compaction wrote
    // job 2 again (buried): that full record is its burial.
    assert_eq!(imported.counts.short_records_ignored, 26);
    assert_eq!(job(&imported, 2).state, ImportedState::Buried { rank: 24 });
}

#[test]
fn restart_replays_as_beanstalkd_recovers_it() {
    let imported = agrees_with_beanstalkd(&RESTART, include_str!("../testdata/restart.expected"));
    // The kick written after beanstalkd's restart counts the bury it added
    // at that restart (#668): sprout keeps what was logged.
    assert_eq!(job(&imported, 2).counts.buries, 2);
    assert_eq!(job(&imported, 5).tube, tube("tB"));
}
