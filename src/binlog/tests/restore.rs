//! A start restores each job as its record is read, and acts on later
//! records (state changes, deletes, compaction's rewrites) against what it
//! restored so far: those records in files after the job's own.

use super::*;

/// Small files, so that a few jobs' records span many of them.
const SMALL: u64 = 4096;

/// Puts and deletes jobs until the log is `files` files further on.
fn fill_files(e: &mut Engine<Option<Binlog>>, files: usize) {
    let current = |e: &Engine<Option<Binlog>>| binlog(e).segments[binlog(e).current].seq;
    let until = current(e) + files as u64;
    while current(e) < until {
        let id = put(e, T0, 0, 0, &[b'f'; 300]);
        run(e, T0, 0, Command::Delete(id));
        commit(e);
    }
}

/// Each file counts exactly the restored jobs whose full record it holds.
fn assert_files_count_their_jobs(opened: &Opened) {
    let jobs = opened.restoration.jobs();
    for segment in &opened.binlog.segments {
        let holds = jobs.iter().filter(|j| u64::from(j.journal_tag.file) == segment.seq).count() as u64;
        assert_eq!(segment.live_jobs, holds, "file {}", segment.seq);
    }
    let live_bytes: u64 = jobs.iter().map(|j| record::accounted_job_len(j.body.len()) as u64).sum();
    assert_eq!(opened.binlog.live_bytes, live_bytes);
}

fn list_tubes(e: &mut Engine<Option<Binlog>>) -> String {
    let Reply::Ok(yaml) = run(e, T0, 1, Command::ListTubes) else { panic!("list-tubes") };
    String::from_utf8(yaml).unwrap()
}

#[test]
fn later_files_delete_change_and_bury_jobs_restored_from_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), SMALL, T0).unwrap();
    run(&mut e, T0, 0, Command::Use(TubeName::new(b"gone").unwrap()));
    let deleted = put(&mut e, T0, 1, 0, b"deleted later");
    run(&mut e, T0, 0, Command::Use(TubeName::new(b"kept").unwrap()));
    let delayed = put(&mut e, T0, 2, 0, b"delayed later");
    let first_buried = put(&mut e, T0, 3, 0, b"buried second");
    let second_buried = put(&mut e, T0, 4, 0, b"buried first");
    let kicked = put(&mut e, T0, 5, 0, b"buried, then kicked");
    let ready = put(&mut e, T0, 6, 0, b"left ready");
    commit(&mut e);
    fill_files(&mut e, 2);
    // The job of the higher id is buried first, in an earlier file.
    for id in [second_buried, kicked] {
        assert!(matches!(run(&mut e, T0, 1, Command::ReserveJob(id)), Reply::Reserved { .. }));
        assert_eq!(run(&mut e, T0, 1, Command::Bury { id, pri: 40 }), Reply::Buried);
    }
    commit(&mut e);
    fill_files(&mut e, 2);
    assert!(matches!(run(&mut e, T0 + 1, 1, Command::ReserveJob(first_buried)), Reply::Reserved { .. }));
    assert_eq!(run(&mut e, T0 + 1, 1, Command::Bury { id: first_buried, pri: 41 }), Reply::Buried);
    assert_eq!(run(&mut e, T0 + 1, 1, Command::KickJob(kicked)), Reply::KickedOne);
    assert_eq!(run(&mut e, T0 + 1, 1, Command::Delete(deleted)), Reply::Deleted);
    commit(&mut e);
    fill_files(&mut e, 2);
    assert!(matches!(run(&mut e, T0 + 2, 1, Command::ReserveJob(delayed)), Reply::Reserved { .. }));
    assert_eq!(run(&mut e, T0 + 2, 1, Command::Release { id: delayed, pri: 9, delay: 100 }), Reply::Released);
    commit(&mut e);
    fill_files(&mut e, 2);
    assert!(binlog(&e).stats().records_migrated > 0, "compaction rewrote some of the jobs further on");
    drop(e); // a crash

    let opened = Binlog::open(&config(dir.path(), SMALL)).unwrap();
    assert_files_count_their_jobs(&opened);
    drop(opened);
    let later = T0 + 10 * SECOND;
    let mut e = open(dir.path(), SMALL, later).unwrap();
    assert_eq!(run(&mut e, later, 1, Command::StatsJob(deleted)), Reply::NotFound);
    assert!(!list_tubes(&mut e).contains("gone"), "a tube whose jobs were all deleted is not made");
    assert_eq!(job_field(&mut e, later, delayed, "state"), "delayed");
    assert_eq!(job_field(&mut e, later, delayed, "pri"), "9");
    assert_eq!(job_field(&mut e, later, delayed, "time-left"), "90");
    assert_eq!(job_field(&mut e, later, kicked, "state"), "ready");
    assert_eq!(job_field(&mut e, later, kicked, "kicks"), "1");
    assert_eq!(job_field(&mut e, later, ready, "state"), "ready");
    run(&mut e, later, 0, Command::Use(TubeName::new(b"kept").unwrap()));
    // Burial order, not id order.
    for (id, body) in [(second_buried, &b"buried first"[..]), (first_buried, b"buried second")] {
        assert_eq!(run(&mut e, later, 0, Command::PeekBuried), Reply::Found { id, body: body.into() });
        assert_eq!(run(&mut e, later, 0, Command::KickJob(id)), Reply::KickedOne);
    }
    assert_eq!(field(run(&mut e, later, 1, Command::Stats), "current-jobs-ready"), "4");
}

#[test]
fn a_job_rewritten_by_compaction_counts_in_the_file_of_its_last_full_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), SMALL, T0).unwrap();
    let kept: Vec<u64> = (0..3).map(|i| put(&mut e, T0, i, 0, b"kept across files")).collect();
    commit(&mut e);
    fill_files(&mut e, 8);
    assert!(binlog(&e).stats().records_migrated > 0, "compaction rewrote the kept jobs further on");
    // Deleted after their rewrite: the delete is about the rewritten record.
    assert_eq!(run(&mut e, T0, 1, Command::Delete(kept[1])), Reply::Deleted);
    commit(&mut e);
    drop(e);

    let opened = Binlog::open(&config(dir.path(), SMALL)).unwrap();
    assert_files_count_their_jobs(&opened);
    let ids: Vec<u64> = opened.restoration.jobs().iter().map(|j| j.id).collect();
    assert_eq!(ids, [kept[0], kept[2]]);
    drop(opened);
    // Files that hold none of the live jobs' full records go.
    let mut e = open(dir.path(), SMALL, T0).unwrap();
    commit(&mut e);
    assert!(binlog_files(dir.path()).len() <= 8, "{:?}", binlog_files(dir.path()));
    assert_eq!(job_field(&mut e, T0, kept[2], "pri"), "2");
}

#[test]
fn ttrs_too_long_for_a_record_come_back_through_deletes_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open(dir.path(), SMALL, T0).unwrap();
    let put_ttr = |e: &mut Engine<Option<Binlog>>, ttr: u32| {
        let job = NewJob { pri: 0, delay: 0, ttr, body: (&b"long"[..]).into() };
        match run(e, T0, 0, Command::Put(job)) {
            Reply::Inserted(id) => id,
            other => panic!("put: {other:?}"),
        }
    };
    let short = put_ttr(&mut e, 65_535);
    let long = put_ttr(&mut e, 65_536);
    let longest = put_ttr(&mut e, u32::MAX);
    let deleted = put_ttr(&mut e, 100_000);
    commit(&mut e);
    fill_files(&mut e, 8);
    assert!(binlog(&e).stats().records_migrated > 0, "compaction rewrote the jobs further on");
    assert_eq!(run(&mut e, T0, 1, Command::Delete(deleted)), Reply::Deleted);
    commit(&mut e);
    drop(e);

    let mut e = open(dir.path(), SMALL, T0).unwrap();
    // Matches the long TTRs kept apart with the records that say so.
    e.check_invariants();
    for (id, ttr) in [(short, "65535"), (long, "65536"), (longest, "4294967295")] {
        assert_eq!(job_field(&mut e, T0, id, "ttr"), ttr, "job {id}");
    }
    assert_eq!(run(&mut e, T0, 1, Command::StatsJob(deleted)), Reply::NotFound);
    assert_eq!(run(&mut e, T0, 1, Command::Delete(long)), Reply::Deleted);
    assert_eq!(job_field(&mut e, T0, longest, "ttr"), "4294967295");
    e.check_invariants();
}
