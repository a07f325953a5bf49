//! The replay rules, one test each, on files built from the layout.

use super::*;

fn ids(imported: &Imported) -> Vec<u64> {
    imported.jobs.iter().map(|j| j.id).collect()
}

#[test]
fn a_full_record_for_a_new_id_makes_a_job_of_every_field() {
    let record = Rec {
        pri: 5,
        delay_ns: 3 * SECOND,
        ttr_ns: 60 * SECOND,
        created_at_ns: 1_700_000_000 * SECOND,
        ..Rec::full(3, "emails", b"send it")
    }
    .counts(1, 2, 3, 4, 5);
    let imported = import(&[(1, &v7(&[record]))]);
    let job = job(&imported, 3);
    assert_eq!(
        *job,
        ImportedJob {
            id: 3,
            tube: tube("emails"),
            pri: 5,
            delay_ns: 3_000_000_000,
            ttr_ns: 60_000_000_000,
            created_at_ns: 1_700_000_000 * SECOND,
            state: ImportedState::Ready,
            reserved: false,
            counts: JobCounts { reserves: 1, timeouts: 2, releases: 3, buries: 4, kicks: 5 },
            body: job.body,
        }
    );
    assert_eq!(body(&imported, 3), b"send it");
    assert_eq!(imported.next_id, 4);
}

#[test]
fn a_full_record_for_a_known_id_replaces_every_field_and_the_body() {
    let first = Rec::full(1, "old", b"old body").pri(1).counts(1, 1, 1, 1, 1);
    let again = Rec { ttr_ns: 99 * SECOND, created_at_ns: 5 * SECOND, ..Rec::full(1, "new", b"new") }.pri(2);
    let imported = import(&[(1, &v7(&[first])), (2, &v7(&[again]))]);
    let job = job(&imported, 1);
    assert_eq!((job.tube.as_str(), job.pri, job.ttr_ns, job.created_at_ns), ("new", 2, 99_000_000_000, 5 * SECOND));
    assert_eq!(job.counts, JobCounts::default());
    assert_eq!(body(&imported, 1), b"new");
    assert_eq!(imported.counts.full_records_rewritten, 1);
}

#[test]
fn a_short_record_for_an_unknown_id_is_ignored() {
    let imported = import(&[(4, &v7(&[Rec::short(8, State::Buried), Rec::short(9, State::Deleted)]))]);
    assert!(imported.jobs.is_empty());
    assert_eq!(imported.counts.short_records_ignored, 2);
    assert_eq!(imported.next_id, 10, "their ids are never handed out again");
}

#[test]
fn a_short_record_for_a_known_id_replaces_the_jobrec_fields_and_keeps_tube_and_body() {
    let put = Rec::full(1, "tube", b"body");
    let released =
        Rec { delay_ns: 100 * SECOND, ttr_ns: 20 * SECOND, created_at_ns: 7, ..Rec::short(1, State::Delayed) }
            .pri(55)
            .deadline(2_000 * SECOND)
            .counts(1, 0, 1, 0, 0);
    let imported = import(&[(1, &v7(&[put])), (2, &v7(&[released]))]);
    let job = job(&imported, 1);
    assert_eq!(
        (job.tube.as_str(), job.pri, job.delay_ns, job.ttr_ns),
        ("tube", 55, 100 * SECOND as u64, 20 * SECOND as u64)
    );
    assert_eq!(job.created_at_ns, 7, "every field of the record, as beanstalkd copies the whole Jobrec");
    assert_eq!(job.state, ImportedState::Delayed { ready_at_ns: 2_000 * SECOND });
    assert_eq!(job.counts, JobCounts { reserves: 1, timeouts: 0, releases: 1, buries: 0, kicks: 0 });
    assert_eq!(body(&imported, 1), b"body");
}

#[test]
fn state_deleted_removes_the_job_and_its_body() {
    let bytes = v7(&[Rec::full(1, "t", b"one"), Rec::full(2, "t", b"two"), Rec::short(1, State::Deleted)]);
    let imported = import(&[(1, &bytes)]);
    assert_eq!(ids(&imported), [2]);
    assert_eq!(imported.counts.deleted_seen, 1);
    assert_eq!(imported.next_id, 3);
}

#[test]
fn a_deleted_id_comes_back_as_a_new_job_if_written_again() {
    // Not something beanstalkd writes, but what its rules say: the second
    // full record is a job of its own.
    let bytes = v7(&[Rec::full(1, "t", b"one"), Rec::short(1, State::Deleted), Rec::full(1, "u", b"again")]);
    let imported = import(&[(1, &bytes)]);
    assert_eq!(ids(&imported), [1]);
    assert_eq!(body(&imported, 1), b"again");
}

#[test]
fn a_reserved_job_comes_back_ready() {
    let bytes = v7(&[Rec::full(1, "t", b"x").state(State::Reserved).counts(1, 0, 0, 0, 0), Rec::full(2, "t", b"y")]);
    let imported = import(&[(1, &bytes)]);
    assert_eq!(job(&imported, 1).state, ImportedState::Ready);
    assert_eq!(job(&imported, 1).counts.reserves, 1);
    assert_eq!((imported.counts.ready, imported.counts.reserved_made_ready), (2, 1));
}

#[test]
fn a_delayed_job_keeps_its_deadline() {
    let bytes = v7(&[Rec::full(1, "t", b"x").state(State::Delayed).deadline(1_800_000_000 * SECOND)]);
    let imported = import(&[(1, &bytes)]);
    assert_eq!(job(&imported, 1).state, ImportedState::Delayed { ready_at_ns: 1_800_000_000 * SECOND });
    assert_eq!(imported.counts.delayed, 1);
}

#[test]
fn a_kick_makes_a_buried_job_ready() {
    let bytes = v7(&[
        Rec::full(1, "t", b"x"),
        Rec::short(1, State::Buried).counts(1, 0, 0, 1, 0),
        Rec::short(1, State::Ready).counts(1, 0, 0, 1, 1),
    ]);
    let imported = import(&[(1, &bytes)]);
    assert_eq!(job(&imported, 1).state, ImportedState::Ready);
    assert_eq!(job(&imported, 1).counts.kicks, 1);
}

#[test]
fn there_is_no_size_limit() {
    // beanstalkd drops a job over -z at replay (65,535 bytes by default, CRLF
    // included) with every later record of the file.
    for len in [65_534, 65_535, 1 << 20] {
        let big = vec![b'z'; len];
        let bytes = v7(&[Rec::full(1, "t", &big), Rec::full(2, "t", b"after")]);
        let imported = import(&[(1, &bytes)]);
        assert_eq!(body(&imported, 1), &big[..]);
        assert_eq!(ids(&imported), [1, 2]);
    }
}

#[test]
fn buried_jobs_come_back_in_burial_order_after_the_others_in_id_order() {
    let file1 = v7(&[
        Rec::full(1, "t", b"1"),
        Rec::full(2, "t", b"2"),
        Rec::full(3, "t", b"3"),
        Rec::full(4, "t", b"4").state(State::Delayed),
        Rec::short(3, State::Buried),
        Rec::short(1, State::Buried),
    ]);
    let file2 = v7(&[Rec::short(2, State::Buried), Rec::full(6, "t", b"6"), Rec::full(5, "t", b"5")]);
    let imported = import(&[(1, &file1), (2, &file2)]);
    assert_eq!(ids(&imported), [4, 5, 6, 3, 1, 2]);
    let ranks: Vec<ImportedState> = imported.jobs[3..].iter().map(|j| j.state).collect();
    assert_eq!(
        ranks,
        [ImportedState::Buried { rank: 5 }, ImportedState::Buried { rank: 6 }, ImportedState::Buried { rank: 7 }],
        "the position of the burying record, over all files"
    );
}

#[test]
fn a_job_kept_buried_keeps_its_burial_rank() {
    // Compaction writes job 1 again (buried, with its counters) after job 2
    // was buried: job 1 was still buried first.
    let file1 = v7(&[Rec::full(1, "t", b"1"), Rec::full(2, "t", b"2"), Rec::short(1, State::Buried)]);
    let file2 = v7(&[
        Rec::short(2, State::Buried),
        Rec::full(1, "t", b"1").state(State::Buried).counts(1, 0, 0, 1, 0),
        Rec::short(1, State::Buried).pri(3),
    ]);
    let imported = import(&[(1, &file1), (2, &file2)]);
    assert_eq!(ids(&imported), [1, 2]);
    assert_eq!(job(&imported, 1).state, ImportedState::Buried { rank: 3 });
    assert_eq!(job(&imported, 1).pri, 3);
}

#[test]
fn a_job_first_seen_buried_ranks_at_its_full_record() {
    // The bury was in a file since deleted; compaction's full record is all
    // that is left of it.
    let file =
        v7(&[Rec::full(1, "t", b"1"), Rec::short(1, State::Buried), Rec::full(2, "t", b"2").state(State::Buried)]);
    let imported = import(&[(1, &file)]);
    assert_eq!(ids(&imported), [1, 2]);
    assert_eq!(job(&imported, 2).state, ImportedState::Buried { rank: 3 });
}

#[test]
fn a_buried_job_kicked_and_buried_again_ranks_at_its_last_burial() {
    let file = v7(&[
        Rec::full(1, "t", b"1"),
        Rec::full(2, "t", b"2"),
        Rec::short(1, State::Buried),
        Rec::short(2, State::Buried),
        Rec::short(1, State::Ready),
        Rec::short(1, State::Buried),
    ]);
    let imported = import(&[(1, &file)]);
    assert_eq!(ids(&imported), [2, 1]);
}

#[test]
fn counters_are_kept_as_logged() {
    // beanstalkd adds one to bury_ct of every buried job at each restart.
    let bytes = v7(&[Rec::full(1, "t", b"x"), Rec::short(1, State::Buried).counts(1, 0, 0, 1, 0)]);
    let imported = import(&[(1, &bytes)]);
    assert_eq!(job(&imported, 1).counts.buries, 1);
}

#[test]
fn the_next_id_is_past_every_id_named() {
    assert_eq!(import(&[]).next_id, 1);
    let bytes = v7(&[Rec::full(10, "t", b"x"), Rec::short(10, State::Deleted), Rec::full(3, "t", b"y")]);
    let imported = import(&[(1, &bytes)]);
    assert_eq!(imported.next_id, 11, "job 10 was deleted, but its id is used");
    let last = import(&[(1, &v7(&[Rec::full(MAX_JOB_ID, "t", b"x")]))]);
    assert_eq!(last.next_id, MAX_JOB_ID + 1, "the largest id, and the next");
}

#[test]
fn only_the_valid_records_before_the_end_are_applied() {
    let mut bytes = v7(&[Rec::full(1, "t", b"x"), Rec::full(2, "t", b"y")]);
    // Each record is 4 + 1 + 80 + 3 bytes; the second is cut in its Jobrec.
    bytes.truncate(4 + 88 + 20);
    let read = read_file(&bytes);
    assert!(matches!(read.end, End::Torn { at: 92, .. }), "{:?}", read.end);
    let mut replay = Replay::new();
    replay.apply(1, &read);
    assert_eq!(ids(&replay.finish()), [1]);
}

#[test]
fn jobs_share_one_copy_of_a_tube_name_across_files() {
    let imported = import(&[(1, &v7(&[Rec::full(1, "t", b"x")])), (2, &v7(&[Rec::full(2, "t", b"y")]))]);
    assert!(std::ptr::eq(imported.jobs[0].tube.as_str(), imported.jobs[1].tube.as_str()));
}

#[test]
fn bodies_survive_churn_of_rewrites_and_deletes() {
    // Replaced and deleted bodies are removed from the store and their
    // cells reused: removing the wrong one would show in a live job's body.
    let mut records = Vec::new();
    for round in 0..200u8 {
        records.push(Rec::full(1 + u64::from(round % 5), "t", &[round; 100]));
        records.push(Rec::full(10 + u64::from(round), "t", &[round; 99]));
        if round % 3 != 0 {
            records.push(Rec::short(10 + u64::from(round), State::Deleted));
        }
    }
    let imported = import(&[(1, &v7(&records))]);
    for id in 1..=5 {
        assert_eq!(body(&imported, id), [195 + id as u8 - 1; 100], "job {id}");
    }
    for round in (0..200u8).filter(|r| r % 3 == 0) {
        assert_eq!(body(&imported, 10 + u64::from(round)), [round; 99]);
    }
    assert_eq!(imported.jobs.len(), 5 + 67);
}

#[test]
fn a_job_with_holes_is_the_size_of_a_job() {
    // Replay::finish collects the live jobs in place, into the list with
    // holes, only if an empty hole costs nothing.
    assert_eq!(std::mem::size_of::<Option<ImportedJob>>(), std::mem::size_of::<ImportedJob>());
}
