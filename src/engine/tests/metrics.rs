//! Metrics on a fake clock: what the meter measures (waits, holds, the
//! oldest ready job, expiries) and the cap on tubes with figures of their
//! own.

use super::*;
use crate::metrics::{Figures, JobHistogram, OTHER_TUBES, TubeFigures};

/// A harness with metrics on, up to `cap` tubes with figures of their own.
fn harness(cap: usize) -> Harness {
    let mut h = Harness::new();
    h.engine.enable_metrics(cap);
    h
}

impl Harness {
    fn figures(&mut self) -> Figures {
        self.engine.figures(self.now)
    }

    fn tube_figures(&mut self, name: &str) -> TubeFigures {
        let f = self.figures();
        if name == OTHER_TUBES {
            return f.other;
        }
        f.tubes.into_iter().find(|t| t.stats.name == name).unwrap_or_else(|| panic!("no figures for {name}"))
    }

    fn use_tube(&mut self, conn: ConnId, name: &str) {
        self.call(conn, Command::Use(tube(name)));
    }
}

/// The durations a histogram counted, as (bucket bound in seconds, count)
/// for its non-empty buckets.
fn counted(h: &JobHistogram) -> Vec<(f64, u64)> {
    h.buckets().filter(|&(_, n)| n > 0).collect()
}

#[test]
fn without_metrics_only_the_stats_figures() {
    let mut h = Harness::new();
    h.put(0, 0, 0, 5, "x");
    assert!(!h.engine.metrics_enabled());
    let f = h.figures();
    assert_eq!(f.server.ready, 1);
    assert!(f.tubes.is_empty());
}

#[test]
fn ready_wait_and_hold_are_measured_from_the_reserve_touches_notwithstanding() {
    let mut h = harness(10);
    let id = h.put(0, 0, 0, 60, "x");
    h.advance(2 * SECOND);
    assert_eq!(h.reserved_id(1), id);
    let t = h.tube_figures("default");
    assert_eq!(counted(&t.ready_wait), [(5.0, 1)], "waited 2 s");
    assert_eq!(t.ready_wait.sum_secs(), 2.0);
    h.advance(3 * SECOND);
    assert_eq!(h.call(1, Command::Touch(id)), Reply::Touched);
    h.advance(SECOND);
    assert_eq!(h.call(1, Command::Delete(id)), Reply::Deleted);
    let t = h.tube_figures("default");
    assert_eq!(t.hold.sum_secs(), 4.0, "held from the reserve, not the touch");
    assert!(h.engine.meter.as_ref().unwrap().touched.is_empty(), "the touch is forgotten with the job");
}

#[test]
fn release_and_bury_end_a_hold_and_a_released_job_waits_anew() {
    let mut h = harness(10);
    let id = h.put(0, 0, 0, 60, "x");
    h.reserved_id(1);
    h.advance(500 * MS);
    assert_eq!(h.call(1, Command::Release { id, pri: 0, delay: 0 }), Reply::Released);
    h.advance(SECOND);
    assert_eq!(h.tube_figures("default").oldest_ready_age, SECOND, "ready since the release");
    h.reserved_id(1);
    h.advance(SECOND);
    assert_eq!(h.call(1, Command::Bury { id, pri: 0 }), Reply::Buried);
    let t = h.tube_figures("default");
    assert_eq!(counted(&t.hold), [(0.5, 1), (1.0, 1)]);
    assert_eq!(counted(&t.ready_wait), [(0.001, 1), (1.0, 1)], "0 s, then 1 s after the release");
    assert_eq!(t.oldest_ready_age, 0, "no ready job");
}

#[test]
fn a_job_whose_body_came_after_its_line_is_ready_since_its_body() {
    let mut h = harness(10);
    h.engine.begin_put_at(0, h.now);
    h.advance(3 * SECOND);
    let job = NewJob { pri: 0, delay: 0, ttr: 5, body: b"x".as_slice().into() };
    h.engine.apply(h.now, 0, Command::Put(job));
    h.engine.check_invariants();
    h.advance(SECOND);
    assert_eq!(h.tube_figures("default").oldest_ready_age, SECOND, "not from the line 4 s ago");
    assert_eq!(h.job_stat(1, "age"), "4");
    assert_eq!(h.reserved_id(1), 1);
    assert_eq!(h.tube_figures("default").ready_wait.sum_secs(), 1.0);
}

#[test]
fn the_oldest_ready_job_is_the_longest_ready_whatever_its_priority() {
    let mut h = harness(10);
    let old = h.put(0, 100, 0, 60, "old");
    h.advance(SECOND);
    let urgent = h.put(0, 1, 0, 60, "urgent");
    h.advance(2 * SECOND);
    assert_eq!(h.tube_figures("default").oldest_ready_age, 3 * SECOND);
    assert_eq!(h.reserved_id(1), urgent);
    assert_eq!(h.tube_figures("default").oldest_ready_age, 3 * SECOND, "the old job still waits");
    assert_eq!(h.reserved_id(1), old);
    assert_eq!(h.tube_figures("default").oldest_ready_age, 0);
    // A delayed job is ready from the end of its delay; a TTR expiry makes
    // the job ready again from then.
    let delayed = h.put(0, 0, 2, 60, "later");
    h.advance(2 * SECOND);
    h.advance(SECOND);
    assert_eq!(h.tube_figures("default").oldest_ready_age, SECOND);
    assert_eq!(h.reserved_id(2), delayed);
    h.advance(60 * SECOND);
    let t = h.tube_figures("default");
    assert_eq!(t.ttr_expiries, 3, "every job held by 1 and 2 ran out");
    assert_eq!(t.oldest_ready_age, 0, "ready again just now");
    assert_eq!(h.figures().server.job_timeouts, 3);
}

#[test]
fn deadline_soon_counts_in_the_tube_of_the_job_about_to_expire() {
    let mut h = harness(10);
    h.use_tube(0, "work");
    h.call(1, Command::Watch(tube("work")));
    h.put(0, 0, 0, 1, "x");
    h.reserved_id(1);
    assert_eq!(h.reserve(1, Some(0)), Some(Reply::DeadlineSoon));
    assert_eq!(h.tube_figures("work").deadline_soon, 1);
    assert_eq!(h.tube_figures("default").deadline_soon, 0);
}

#[test]
fn tubes_beyond_the_cap_are_counted_together_and_keep_their_counts_when_dropped() {
    let mut h = harness(2);
    // default and a get series of their own; b and c do not.
    for (conn, name) in [(0, "a"), (1, "b"), (2, "c")] {
        h.use_tube(conn, name);
        h.put(conn, 0, 0, 60, name);
    }
    let f = h.figures();
    let names: Vec<_> = f.tubes.iter().map(|t| t.stats.name.as_str()).collect();
    assert_eq!(names, ["default", "a"]);
    assert_eq!((f.other_tubes, f.tube_cap), (2, 2));
    assert_eq!((f.other.stats.ready, f.other.stats.total_jobs, f.other.stats.using), (2, 2, 2));
    assert_eq!(f.other.stats.name, OTHER_TUBES);
    // Drain c and let it go: its counts stay in [other]'s.
    h.call(3, Command::Watch(tube("c")));
    h.call(3, Command::Ignore(tube("default")));
    let id = h.reserved_id(3);
    h.call(3, Command::Delete(id));
    h.call(3, Command::Watch(tube("default")));
    h.call(3, Command::Ignore(tube("c")));
    h.use_tube(2, "default");
    let f = h.figures();
    assert_eq!(f.other_tubes, 1);
    assert_eq!((f.other.stats.ready, f.other.stats.total_jobs, f.other.stats.deletes), (1, 2, 1));
    assert_eq!(counted(&f.other.ready_wait).len(), 1);
    // A tube created now is beyond the cap still (default and a hold it).
    h.use_tube(2, "d");
    assert_eq!(h.figures().other_tubes, 2);
}

#[test]
fn the_oldest_ready_job_of_many_passing_through_stays_bounded_in_memory() {
    let mut h = harness(10);
    h.put(0, 1000, 0, 60, "stays");
    for _ in 0..10_000 {
        h.advance(MS);
        let id = h.put(0, 0, 0, 60, "passes");
        h.reserved_id(1);
        h.call(1, Command::Delete(id));
    }
    let meter = h.engine.meter.as_mut().unwrap();
    let queue = &meter.tube(h.engine.tubes.default_tube()).ready_since;
    assert!(queue.len() < 100, "{} entries for one ready job", queue.len());
    assert_eq!(h.tube_figures("default").oldest_ready_age, 10 * SECOND);
}

#[test]
fn restored_ready_jobs_wait_from_their_put_or_from_the_restart() {
    use crate::engine::{Restoration, RestoredChange};
    let config = EngineConfig { max_job_size: 65535, binlog_max_size: 10_485_760, host: HostInfo::fake() };
    let mut engine = Engine::new(config, 100 * SECOND);
    engine.enable_metrics(10);
    let mut restoration = Restoration::default();
    let mut restore = |id, created_at, counts| {
        let body = restoration.store_body(b"x");
        let change = RestoredChange { pri: 0, state: JobState::Ready, delay: 0, ready_at: 0, counts };
        let job = RestoredJob {
            id,
            tube: tube("default"),
            change,
            ttr: SECOND,
            created_at,
            body,
            journal_tag: JournalTag::default(),
        };
        assert_eq!(restoration.restore(job), None);
    };
    let reserved_once = JobCounts { reserves: 1, ..JobCounts::default() };
    restore(1, 90 * SECOND, reserved_once);
    restore(2, 40 * SECOND, JobCounts::default());
    engine.restore_all(100 * SECOND, restoration);
    let f = engine.figures(110 * SECOND);
    assert_eq!(f.tubes[0].oldest_ready_age, 70 * SECOND, "job 2, never reserved, waits since its put");
    engine.connect(0);
    engine.apply(110 * SECOND, 0, Command::ReserveWithTimeout(Some(0)));
    engine.apply(110 * SECOND, 0, Command::ReserveWithTimeout(Some(0)));
    let f = engine.figures(110 * SECOND);
    let waits: Vec<_> = counted(&f.tubes[0].ready_wait);
    assert_eq!(waits, [(10.0, 1), (300.0, 1)], "job 1 waited since the restart (10 s), job 2 since its put (70 s)");
}
