//! Directories that an older sprout wrote in format 1, read and written on
//! by this one: the same changes logged in format 1 bring back the same
//! jobs as in format 2; a restart appends to a format-1 file in format 1;
//! compaction moves the jobs of format-1 files into format-2 files; and
//! format 2's own tube declarations survive restarts and damage.

use std::fs;

use super::*;
use crate::binlog::record::{Decoded, FileDecoder, Format, HEADER_LEN, Header, v1};

/// Rewrites a `binlog.N` as an older sprout would have written the same
/// records: format 1's header (same seq and next id) and format 1's
/// record bytes (pinned by `v1::tests::the_encoding_is_the_same_bytes`).
/// The file keeps at least its size (format 1's records are larger: then
/// it grows, which a reader takes as it is).
fn rewrite_as_format_1(path: &Path) {
    let bytes = fs::read(path).unwrap();
    let header = Header::decode(&bytes).unwrap();
    let mut decoder = FileDecoder::new(header.format);
    let mut out = Header { format: Format::V1, ..header }.encode().to_vec();
    let mut at = HEADER_LEN;
    loop {
        match decoder.decode(&bytes[at..]) {
            Decoded::Record(record, len) => {
                v1::encode(&record, &mut out);
                at += len;
            }
            Decoded::End => break,
            Decoded::Damaged => panic!("{}: damaged at {at}", path.display()),
        }
    }
    out.resize(out.len().max(bytes.len()), 0);
    fs::write(path, out).unwrap();
}

/// The format version of each `binlog.N` in `dir`, oldest first.
fn versions(dir: &Path) -> Vec<u8> {
    binlog_files(dir).iter().map(|p| fs::read(p).unwrap()[8]).collect()
}

/// Copies the `binlog.N` files of `from` into a new directory.
fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for path in binlog_files(from) {
        fs::copy(&path, to.path().join(path.file_name().unwrap())).unwrap();
    }
    to
}

/// Jobs in every state, in three tubes, with counters, delays and bodies
/// of several sizes; some deleted. Returns the ids put.
fn every_kind_of_job(e: &mut Engine<Option<Binlog>>, now: Nanos) -> Vec<u64> {
    let mut ids = Vec::new();
    for (i, tube) in ["default", "emails", &"t".repeat(200)].into_iter().enumerate() {
        run(e, now, 0, Command::Use(TubeName::new(tube.as_bytes()).unwrap()));
        for j in 0..40u32 {
            let body = vec![b'a' + (j % 26) as u8; (j as usize * 37) % 700];
            let delay = if j % 5 == 1 { 100 + j } else { 0 };
            ids.push(put(e, now, j * 1000 + i as u32, delay, &body));
        }
    }
    for (k, &id) in ids.iter().enumerate() {
        let now = now + k as u64;
        match k % 7 {
            // Released with a new priority and a delay: counters, delay,
            // ready time.
            0 => {
                run(e, now, 1, Command::ReserveJob(id));
                run(e, now, 1, Command::Release { id, pri: 3, delay: 30 });
            }
            // Buried, kicked back, buried again.
            2 => {
                run(e, now, 1, Command::ReserveJob(id));
                run(e, now, 1, Command::Bury { id, pri: 9 });
                run(e, now, 1, Command::KickJob(id));
                run(e, now, 1, Command::ReserveJob(id));
                run(e, now, 1, Command::Bury { id, pri: 8 });
            }
            3 => assert_eq!(run(e, now, 1, Command::Delete(id)), Reply::Deleted),
            // Reserved at the crash.
            5 => assert!(matches!(run(e, now, 1, Command::ReserveJob(id)), Reply::Reserved { .. })),
            _ => {}
        }
    }
    commit(e);
    ids
}

/// Every job's `stats-job` and body, and the buried jobs in the order they
/// come back.
fn snapshot(e: &mut Engine<Option<Binlog>>, now: Nanos, ids: &[u64]) -> Vec<Reply> {
    let mut seen = Vec::new();
    for &id in ids {
        seen.push(run(e, now, 1, Command::StatsJob(id)));
        seen.push(run(e, now, 1, Command::Peek(id)));
    }
    seen
}

/// A snapshot without the files the jobs' records are in (which the sizes
/// of the records decide).
fn without_files(replies: Vec<Reply>) -> Vec<Reply> {
    replies
        .into_iter()
        .map(|r| match r {
            Reply::Ok(yaml) => {
                let text = String::from_utf8(yaml).unwrap();
                Reply::Ok(text.lines().filter(|l| !l.starts_with("file: ")).collect::<Vec<_>>().join("\n").into())
            }
            other => other,
        })
        .collect()
}

#[test]
fn a_format_1_directory_replays_as_the_same_log_in_format_2_does() {
    let written = tempfile::tempdir().unwrap();
    let mut e = open(written.path(), 8192, T0).unwrap();
    let ids = every_kind_of_job(&mut e, T0);
    drop(e);
    assert!(binlog_files(written.path()).len() > 3, "several files");
    let older = copy_dir(written.path());
    for path in binlog_files(older.path()) {
        rewrite_as_format_1(&path);
    }
    assert!(versions(older.path()).iter().all(|&v| v == 1));
    assert!(versions(written.path()).iter().all(|&v| v == 2));

    let later = T0 + 20 * SECOND;
    let mut new = open(written.path(), 8192, later).unwrap();
    let mut old = open(older.path(), 8192, later).unwrap();
    let expected = snapshot(&mut new, later, &ids);
    assert!(expected.iter().any(|r| matches!(r, Reply::Found { .. })));
    assert_eq!(snapshot(&mut old, later, &ids), expected);
    assert_eq!(run(&mut old, later, 1, Command::PeekBuried), run(&mut new, later, 1, Command::PeekBuried));

    // Written on: a restart appended to the newest format-1 file in format
    // 1, and what it appends reads back.
    let mut more = ids.clone();
    for e in [&mut new, &mut old] {
        more.truncate(ids.len());
        for _ in 0..3 {
            more.push(put(e, later, 5, 0, b"after the upgrade"));
        }
        run(e, later, 1, Command::Delete(ids[1]));
        commit(e);
    }
    drop((new, old));
    let mut new = open(written.path(), 8192, later).unwrap();
    let mut old = open(older.path(), 8192, later).unwrap();
    assert_eq!(without_files(snapshot(&mut old, later, &more)), without_files(snapshot(&mut new, later, &more)));
    assert!(versions(older.path()).contains(&1));
}

#[test]
fn compaction_moves_the_jobs_of_format_1_files_into_format_2_files() {
    let dir = tempfile::tempdir().unwrap();
    let file_size = 8192;
    let mut e = open(dir.path(), file_size, T0).unwrap();
    let ids = every_kind_of_job(&mut e, T0);
    drop(e);
    for path in binlog_files(dir.path()) {
        rewrite_as_format_1(&path);
    }
    let mut e = open(dir.path(), file_size, T0).unwrap();
    let before = snapshot(&mut e, T0, &ids);
    // Put and delete until the log has moved every job out of the format-1
    // files and retired them.
    for round in 0.. {
        assert!(round < 2000, "format-1 files left: {:?}", versions(dir.path()));
        for _ in 0..20 {
            let id = put(&mut e, T0, 1, 0, b"some body of a job");
            run(&mut e, T0, 0, Command::Delete(id));
        }
        commit(&mut e);
        if !versions(dir.path()).contains(&1) {
            break;
        }
    }
    assert!(e.journal().stats().records_migrated > 0);
    // The migrated jobs have their record in a format-2 file now.
    let mut live = 0;
    for &id in &ids {
        if run(&mut e, T0, 1, Command::StatsJob(id)) != Reply::NotFound {
            let file: u64 = job_field(&mut e, T0, id, "file").parse().unwrap();
            assert_eq!(fs::read(dir.path().join(format!("binlog.{file}"))).unwrap()[8], 2, "job {id}");
            live += 1;
        }
    }
    assert!(live > 0);
    assert_eq!(without_files(snapshot(&mut e, T0, &ids)), without_files(before.clone()));
    drop(e);
    let mut e = open(dir.path(), file_size, T0).unwrap();
    assert_eq!(without_files(snapshot(&mut e, T0, &ids)), without_files(before));
    assert!(versions(dir.path()).iter().all(|&v| v == 2));
}

#[test]
fn a_restart_declares_new_tubes_after_those_of_the_file_it_appends_to() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 1 << 16, T0).unwrap();
    run(&mut e, T0, 0, Command::Use(TubeName::new(b"a").unwrap()));
    let a = put(&mut e, T0, 0, 0, b"in a");
    commit(&mut e);
    drop(e);
    // The restart appends to binlog.1, which declared "a" as index 0: "b"
    // must take index 1, and "a" keeps 0.
    let mut e = open(dir.path(), 1 << 16, T0).unwrap();
    run(&mut e, T0, 0, Command::Use(TubeName::new(b"b").unwrap()));
    let b = put(&mut e, T0, 0, 0, b"in b");
    run(&mut e, T0, 0, Command::Use(TubeName::new(b"a").unwrap()));
    let a2 = put(&mut e, T0, 0, 0, b"in a again");
    commit(&mut e);
    drop(e);
    assert_eq!(binlog_files(dir.path()).len(), 2, "one file with records and a spare");
    let mut e = open(dir.path(), 1 << 16, T0).unwrap();
    for (id, tube) in [(a, "a"), (b, "b"), (a2, "a")] {
        assert_eq!(job_field(&mut e, T0, id, "tube"), format!("\"{tube}\""));
    }
}

#[test]
fn a_lost_tube_declaration_drops_the_jobs_that_name_it_and_keeps_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), 1 << 16, T0).unwrap();
    let ids: Vec<u64> = (0..4).map(|i| put(&mut e, T0, 0, 0, format!("job {i}").as_bytes())).collect();
    run(&mut e, T0, 0, Command::Use(TubeName::new(b"other").unwrap()));
    let other = put(&mut e, T0, 0, 0, b"in another tube");
    commit(&mut e);
    drop(e);
    // The body of the first job: its record declared "default".
    let file = dir.path().join("binlog.1");
    let mut bytes = fs::read(&file).unwrap();
    let body = bytes.windows(5).position(|w| w == b"job 0").unwrap();
    bytes[body] ^= 1;
    fs::write(&file, &bytes).unwrap();
    let refused = open(dir.path(), 1 << 16, T0).err().expect("damage is refused").to_string();
    assert!(refused.contains("damaged record at offset 32"), "{refused}");

    let mut skip = config(dir.path(), 1 << 16);
    skip.skip_damaged = true;
    let Opened { restoration, next_id, .. } = Binlog::open(&skip).unwrap();
    let jobs = restoration.jobs();
    // The jobs after it named "default" by its index: gone with it. The
    // job in another tube stays, and no id is handed out again.
    assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [other]);
    assert_eq!(next_id, other + 1);
    // Padded over: the next start needs no flag, and finds the same.
    let mut e = open(dir.path(), 1 << 16, T0).unwrap();
    assert_eq!(run(&mut e, T0, 1, Command::Peek(ids[1])), Reply::NotFound);
    assert_eq!(job_field(&mut e, T0, other, "tube"), "\"other\"");
    // Appended after the damage, "default" is declared again, and read.
    let new = put(&mut e, T0, 0, 0, b"new");
    assert_eq!(new, other + 1);
    commit(&mut e);
    drop(e);
    let mut e = open(dir.path(), 1 << 16, T0).unwrap();
    assert_eq!(job_field(&mut e, T0, new, "tube"), "\"default\"");
}
