//! Engine tests on a fake clock: time is just a number passed in, so TTRs,
//! delays and pauses are tested without sleeping.

use super::*;
use crate::host::HostInfo;
use crate::protocol::command::NewJob;
use crate::protocol::{Reply, TubeName};

const MS: Nanos = 1_000_000;

struct Harness {
    engine: Engine,
    now: Nanos,
}

fn tube(name: &str) -> TubeName {
    TubeName::new(name.as_bytes()).unwrap()
}

impl Harness {
    fn new() -> Harness {
        let config = EngineConfig { max_job_size: 65535, binlog_max_size: 10_485_760, host: HostInfo::fake() };
        let mut engine = Engine::new(config, 0);
        for conn in 0..4 {
            engine.connect(conn);
        }
        Harness { engine, now: 0 }
    }

    /// Runs a command and returns every reply it produced. A put's line is
    /// announced first, as the server does when the decoder reads it.
    fn run(&mut self, conn: ConnId, command: Command) -> Vec<(ConnId, Reply)> {
        if matches!(command, Command::Put(_)) {
            self.engine.begin_put(conn);
        }
        self.engine.apply(self.now, conn, command);
        self.engine.check_invariants();
        self.engine.take_replies().collect()
    }

    /// Runs a command that must answer its sender and nobody else.
    fn call(&mut self, conn: ConnId, command: Command) -> Reply {
        let replies = self.run(conn, command);
        assert_eq!(replies.len(), 1, "{replies:?}");
        assert_eq!(replies[0].0, conn);
        replies[0].1.clone()
    }

    fn put(&mut self, conn: ConnId, pri: u32, delay: u32, ttr: u32, body: &str) -> u64 {
        let job = NewJob { pri, delay, ttr, body: body.as_bytes().into() };
        match self.call(conn, Command::Put(job)) {
            Reply::Inserted(id) => id,
            other => panic!("put gave {other:?}"),
        }
    }

    fn reserve(&mut self, conn: ConnId, timeout: Option<u32>) -> Option<Reply> {
        let replies = self.run(conn, Command::ReserveWithTimeout(timeout));
        assert!(replies.len() <= 1);
        replies.into_iter().next().map(|(c, r)| {
            assert_eq!(c, conn);
            r
        })
    }

    fn reserved_id(&mut self, conn: ConnId) -> u64 {
        match self.reserve(conn, Some(0)) {
            Some(Reply::Reserved { id, .. }) => id,
            other => panic!("reserve gave {other:?}"),
        }
    }

    /// Advances the clock and returns the replies timers produced.
    fn advance(&mut self, by: Nanos) -> Vec<(ConnId, Reply)> {
        self.now += by;
        self.engine.tick(self.now);
        self.engine.check_invariants();
        self.engine.take_replies().collect()
    }

    fn stat(&mut self, conn: ConnId, command: Command, key: &str) -> String {
        let Reply::Ok(yaml) = self.call(conn, command) else { panic!("no yaml") };
        let text = String::from_utf8(yaml).unwrap();
        let prefix = format!("{key}: ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
            .unwrap_or_else(|| panic!("{key} missing in {text}"))
    }

    fn job_stat(&mut self, id: u64, key: &str) -> String {
        self.stat(0, Command::StatsJob(id), key)
    }

    fn server_stat(&mut self, key: &str) -> String {
        self.stat(0, Command::Stats, key)
    }
}

fn reserved(id: u64, body: &str) -> Reply {
    Reply::Reserved { id, body: body.as_bytes().into() }
}

fn found(id: u64, body: &str) -> Reply {
    Reply::Found { id, body: body.as_bytes().into() }
}

#[test]
fn ready_order_is_priority_then_id() {
    let mut h = Harness::new();
    let a = h.put(0, 5, 0, 10, "a");
    let b = h.put(0, 1, 0, 10, "b");
    let c = h.put(0, 5, 0, 10, "c");
    assert_eq!([h.reserved_id(1), h.reserved_id(1), h.reserved_id(1)], [b, a, c]);
    assert_eq!(h.reserve(1, Some(0)), Some(Reply::TimedOut));
}

#[test]
fn ids_only_grow_even_when_a_put_fails() {
    let mut h = Harness::new();
    assert_eq!(h.put(0, 0, 0, 1, "x"), 1);
    // A put whose body ends without CRLF: its line took id 2.
    h.engine.begin_put(0);
    assert_eq!(h.server_stat("current-producers"), "1");
    h.engine.abandon_put(0);
    assert_eq!(h.put(0, 0, 0, 1, "x"), 3);
    // A put over -z is counted, and takes no id.
    h.engine.count_rejected(Op::Put);
    assert_eq!(h.engine.take_replies().count(), 0, "the decoder answers JOB_TOO_BIG");
    assert_eq!(h.put(0, 0, 0, 1, "x"), 4);
    assert_eq!(h.server_stat("cmd-put"), "5");
}

#[test]
fn delayed_job_becomes_ready_at_its_deadline() {
    let mut h = Harness::new();
    let id = h.put(0, 0, 2, 10, "later");
    assert_eq!(h.job_stat(id, "state"), "delayed");
    assert_eq!(h.engine.next_deadline(), Some(2 * SECOND));
    assert_eq!(h.reserve(1, None), None, "waits");
    assert!(h.advance(2 * SECOND - 1).is_empty());
    assert_eq!(h.advance(1), vec![(1, reserved(id, "later"))]);
}

/// Delayed jobs in several tubes come ready one at a time in (deadline, id)
/// order across all tubes, though only each tube's first has a timer.
#[test]
fn delayed_jobs_of_many_tubes_come_ready_in_deadline_then_id_order() {
    let mut h = Harness::new();
    h.call(0, Command::Use(tube("a")));
    let a_late = h.put(0, 0, 3, 10, "a at 3 s");
    let a_early = h.put(0, 0, 2, 10, "a at 2 s");
    h.call(0, Command::Use(tube("b")));
    let b_early = h.put(0, 0, 2, 10, "b at 2 s");
    let b_first = h.put(0, 0, 1, 10, "b at 1 s");
    for conn in 1..=3 {
        h.call(conn, Command::Watch(tube("a")));
        h.call(conn, Command::Watch(tube("b")));
        assert_eq!(h.reserve(conn, None), None, "waits");
    }
    // The waiters get the jobs in beanstalkd's order (waiters.rs): 1 came
    // first; then conn 3 sits in 1's old slot of tube a's list, under its
    // cursor, and 2 is b's last waiter.
    assert_eq!(h.advance(SECOND), vec![(1, reserved(b_first, "b at 1 s"))]);
    assert_eq!(
        h.advance(SECOND),
        vec![(3, reserved(a_early, "a at 2 s")), (2, reserved(b_early, "b at 2 s"))],
        "equal deadlines: the lower id first"
    );
    assert_eq!(h.reserve(1, None), None);
    assert_eq!(h.advance(SECOND), vec![(1, reserved(a_late, "a at 3 s"))]);
    assert_eq!(h.engine.next_deadline().map(|at| at > h.now), Some(true), "only TTRs are left");
}

#[test]
fn ttr_expiry_returns_the_job_exactly_at_the_deadline() {
    let mut h = Harness::new();
    let id = h.put(0, 0, 0, 3, "x");
    h.reserved_id(1);
    assert_eq!(h.job_stat(id, "time-left"), "3");
    h.advance(3 * SECOND - 1);
    assert_eq!(h.job_stat(id, "state"), "reserved");
    // beanstalkd 1.12 can lose this timer when it fires in the very
    // microsecond of the deadline; the engine releases at `now >= deadline`.
    h.advance(1);
    assert_eq!(h.job_stat(id, "state"), "ready");
    assert_eq!(h.job_stat(id, "timeouts"), "1");
    assert_eq!(h.server_stat("job-timeouts"), "1");
    assert_eq!(h.call(1, Command::Delete(id)), Reply::Deleted, "ready jobs can be deleted by anyone");
}

#[test]
fn ttr_zero_is_one_second() {
    let mut h = Harness::new();
    let id = h.put(0, 0, 0, 0, "x");
    assert_eq!(h.job_stat(id, "ttr"), "1");
}

/// A TTR too long for a job's record (ttr.rs) is kept apart: reported,
/// run out and deleted like any other.
#[test]
fn ttrs_too_long_for_the_record_are_kept_exactly() {
    let mut h = Harness::new();
    let short = h.put(0, 0, 0, 65_535, "short");
    let long = h.put(0, 0, 0, 65_536, "long");
    let longest = h.put(0, 0, 0, u32::MAX, "longest");
    assert_eq!([short, long, longest].map(|id| h.job_stat(id, "ttr")), ["65535", "65536", "4294967295"]);
    for id in [short, long, longest] {
        assert_eq!(h.reserved_id(1), id);
    }
    assert_eq!(h.job_stat(long, "time-left"), "65536");
    h.advance(65_536 * SECOND);
    assert_eq!([short, long, longest].map(|id| h.job_stat(id, "state")), ["ready", "ready", "reserved"]);
    assert_eq!(h.call(2, Command::Delete(long)), Reply::Deleted);
    assert_eq!(h.call(1, Command::Delete(longest)), Reply::Deleted);
}

/// A connection whose id does not fit the narrow extras' two bytes holds
/// its jobs as any other (its jobs' extras are wide).
#[test]
fn a_connection_with_a_large_id_holds_its_jobs() {
    let mut h = Harness::new();
    let big: ConnId = 70_000;
    h.engine.connect(big);
    let id = h.put(0, 0, 0, 5, "x");
    assert_eq!(h.reserved_id(big), id);
    assert_eq!(h.call(1, Command::Delete(id)), Reply::NotFound, "held by the other connection");
    assert_eq!(h.call(big, Command::Release { id, pri: 1, delay: 0 }), Reply::Released);
    assert_eq!(h.reserved_id(big), id);
    assert_eq!(h.call(big, Command::Touch(id)), Reply::Touched);
    h.engine.disconnect(h.now, big);
    h.engine.check_invariants();
    assert_eq!(h.job_stat(id, "state"), "ready");
    assert_eq!(h.reserved_id(1), id);
    assert_eq!(h.call(1, Command::Delete(id)), Reply::Deleted);
}

#[test]
fn deadline_soon_answers_a_reserve_within_the_last_second() {
    let mut h = Harness::new();
    h.put(0, 0, 0, 3, "x");
    h.reserved_id(1);
    // Waiting: told DEADLINE_SOON one second before the TTR runs out.
    assert_eq!(h.reserve(1, None), None);
    assert!(h.advance(2 * SECOND - 1).is_empty());
    assert_eq!(h.advance(1), vec![(1, Reply::DeadlineSoon)]);
    // Inside the margin, a new reserve is answered at once.
    assert_eq!(h.reserve(1, None), Some(Reply::DeadlineSoon));
    // Unless a watched tube has a ready job.
    let other = h.put(0, 0, 0, 5, "y");
    assert_eq!(h.reserve(1, None), Some(reserved(other, "y")));
}

#[test]
fn ttr_of_one_second_is_always_deadline_soon() {
    let mut h = Harness::new();
    h.put(0, 0, 0, 1, "x");
    h.reserved_id(1);
    assert_eq!(h.reserve(1, Some(10)), Some(Reply::DeadlineSoon));
}

#[test]
fn reserve_with_timeout_times_out() {
    let mut h = Harness::new();
    assert_eq!(h.reserve(1, Some(0)), Some(Reply::TimedOut));
    assert_eq!(h.reserve(1, Some(2)), None);
    assert_eq!(h.server_stat("current-waiting"), "1");
    assert!(h.advance(2 * SECOND - 1).is_empty());
    assert_eq!(h.advance(1), vec![(1, Reply::TimedOut)]);
    assert_eq!(h.server_stat("current-waiting"), "0");
    assert_eq!(h.engine.next_deadline(), None);
}

#[test]
fn waiters_are_served_in_arrival_order_across_tubes() {
    let mut h = Harness::new();
    h.call(1, Command::Watch(tube("a")));
    h.call(2, Command::Watch(tube("b")));
    h.call(3, Command::Watch(tube("b")));
    assert_eq!(h.reserve(1, None), None);
    assert_eq!(h.reserve(2, None), None);
    assert_eq!(h.reserve(3, None), None);
    h.call(0, Command::Use(tube("b")));
    let first = NewJob { pri: 0, delay: 0, ttr: 5, body: b"1".as_slice().into() };
    let replies = h.run(0, Command::Put(first));
    // Connection 1 watches default and a, not b... but it also watches
    // default; connection 2 arrived before 3, and both watch b.
    assert_eq!(replies[0].0, 2);
    assert!(matches!(replies[1], (0, Reply::Inserted(_))));
    h.call(0, Command::Use(tube("default")));
    let second = NewJob { pri: 0, delay: 0, ttr: 5, body: b"2".as_slice().into() };
    let replies = h.run(0, Command::Put(second));
    assert_eq!(replies[0].0, 1, "default is watched by 1 and 3; 1 came first");
}

#[test]
fn priority_is_global_across_watched_tubes() {
    let mut h = Harness::new();
    h.call(0, Command::Use(tube("a")));
    let low = h.put(0, 5, 0, 5, "a5");
    h.call(0, Command::Use(tube("b")));
    let high = h.put(0, 1, 0, 5, "b1");
    h.call(1, Command::Watch(tube("a")));
    h.call(1, Command::Watch(tube("b")));
    assert_eq!(h.reserved_id(1), high);
    assert_eq!(h.reserved_id(1), low);
}

#[test]
fn disconnect_returns_reserved_jobs_to_a_waiter() {
    let mut h = Harness::new();
    let id = h.put(0, 0, 0, 100, "x");
    h.reserved_id(1);
    assert_eq!(h.reserve(2, None), None);
    h.engine.disconnect(h.now, 1);
    let replies: Vec<_> = h.engine.take_replies().collect();
    assert_eq!(replies, vec![(2, reserved(id, "x"))]);
    assert_eq!(h.job_stat(id, "timeouts"), "0", "a disconnect is not a timeout");
    assert_eq!(h.job_stat(id, "reserves"), "2");
}

#[test]
fn hang_up_while_waiting_times_out() {
    let mut h = Harness::new();
    assert_eq!(h.reserve(1, None), None);
    h.engine.hang_up(1);
    let replies: Vec<_> = h.engine.take_replies().collect();
    assert_eq!(replies, vec![(1, Reply::TimedOut)]);
    assert!(!h.engine.is_waiting(1));
}

#[test]
fn pause_holds_back_reserves_until_it_ends() {
    let mut h = Harness::new();
    let id = h.put(0, 0, 0, 5, "x");
    assert_eq!(h.call(0, Command::PauseTube { tube: tube("default"), delay: 3 }), Reply::Paused);
    assert_eq!(h.reserve(1, Some(0)), Some(Reply::TimedOut));
    assert_eq!(h.reserve(1, None), None);
    assert_eq!(h.stat(0, Command::StatsTube(tube("default")), "pause"), "3");
    h.advance(SECOND / 2);
    assert_eq!(h.stat(0, Command::StatsTube(tube("default")), "pause-time-left"), "2");
    // peek-ready and reserve-job ignore the pause.
    assert!(matches!(h.call(0, Command::PeekReady), Reply::Found { .. }));
    assert_eq!(h.advance(3 * SECOND), vec![(1, reserved(id, "x"))]);
    assert_eq!(h.stat(0, Command::StatsTube(tube("default")), "pause"), "0");
}

#[test]
fn pause_zero_still_pauses_briefly() {
    let mut h = Harness::new();
    h.put(0, 0, 0, 5, "x");
    h.call(0, Command::PauseTube { tube: tube("default"), delay: 0 });
    assert_eq!(h.reserve(1, None), None);
    assert_eq!(h.advance(1).len(), 1);
}

/// Things due at one instant happen in beanstalkd's order (prottick):
/// pauses end before TTRs do, so the resumed tube's waiter takes the job
/// that was ready, and the job whose TTR ran out comes back after.
#[test]
fn a_pause_ending_as_a_ttr_ends_serves_the_waiters_first() {
    let mut h = Harness::new();
    let held = h.put(0, 0, 0, 2, "held");
    assert_eq!(h.reserved_id(1), held);
    let waiting = h.put(0, 5, 0, 5, "waiting");
    h.call(0, Command::PauseTube { tube: tube("default"), delay: 2 });
    assert_eq!(h.reserve(2, None), None);
    assert_eq!(h.advance(2 * SECOND), vec![(2, reserved(waiting, "waiting"))]);
    assert_eq!(h.job_stat(held, "state"), "ready");
}

/// Tubes that resume at one instant resume together: a waiter watching
/// both gets the better job of the two, whichever tube came first, as
/// beanstalkd's process_queue picks the best job of every tube.
#[test]
fn tubes_resuming_at_one_instant_serve_the_best_job_first() {
    let mut h = Harness::new();
    h.call(0, Command::Use(tube("a")));
    let worse = h.put(0, 5, 0, 5, "a5");
    h.call(0, Command::Use(tube("b")));
    let better = h.put(0, 1, 0, 5, "b1");
    for name in ["a", "b"] {
        h.call(0, Command::PauseTube { tube: tube(name), delay: 1 });
        h.call(1, Command::Watch(tube(name)));
    }
    assert_eq!(h.reserve(1, None), None);
    assert_eq!(h.advance(SECOND), vec![(1, reserved(better, "b1"))]);
    assert_eq!(h.reserved_id(1), worse, "a resumed too");
}

/// A waiter whose timeout runs out as its job enters its last second is
/// told DEADLINE_SOON, as beanstalkd's conn_timeout tells it.
#[test]
fn deadline_soon_wins_over_a_timeout_due_at_the_same_instant() {
    let mut h = Harness::new();
    h.put(0, 0, 0, 3, "x");
    h.reserved_id(1);
    assert_eq!(h.reserve(1, Some(2)), None);
    assert_eq!(h.advance(2 * SECOND), vec![(1, Reply::DeadlineSoon)]);
    assert_eq!(h.engine.next_deadline(), Some(3 * SECOND), "the timeout went with the wait");
}

#[test]
fn pause_of_missing_tube_is_not_found() {
    let mut h = Harness::new();
    assert_eq!(h.call(0, Command::PauseTube { tube: tube("nope"), delay: 1 }), Reply::NotFound);
    assert_eq!(h.server_stat("cmd-pause-tube"), "1");
}

#[test]
fn release_with_delay_and_new_priority() {
    let mut h = Harness::new();
    let id = h.put(0, 10, 0, 5, "x");
    h.reserved_id(1);
    assert_eq!(h.call(2, Command::Release { id, pri: 3, delay: 0 }), Reply::NotFound, "not the reserver");
    assert_eq!(h.call(1, Command::Release { id, pri: 3, delay: 4 }), Reply::Released);
    assert_eq!(h.job_stat(id, "state"), "delayed");
    assert_eq!(h.job_stat(id, "pri"), "3");
    assert_eq!(h.job_stat(id, "delay"), "4");
    assert_eq!(h.job_stat(id, "releases"), "1");
    h.advance(4 * SECOND);
    assert_eq!(h.job_stat(id, "state"), "ready");
}

#[test]
fn bury_and_kick() {
    let mut h = Harness::new();
    let a = h.put(0, 0, 0, 5, "a");
    let b = h.put(0, 0, 0, 5, "b");
    let d = h.put(0, 0, 100, 5, "d");
    for _ in 0..2 {
        let id = h.reserved_id(1);
        assert_eq!(h.call(1, Command::Bury { id, pri: 7 }), Reply::Buried);
    }
    assert_eq!(h.call(0, Command::PeekBuried), Reply::Found { id: a, body: b"a".as_slice().into() });
    assert_eq!(h.server_stat("current-jobs-buried"), "2");
    // Buried jobs are kicked first, oldest first, and never with delayed ones.
    assert_eq!(h.call(0, Command::Kick(1)), Reply::Kicked(1));
    assert_eq!(h.job_stat(a, "state"), "ready");
    assert_eq!(h.call(0, Command::Kick(10)), Reply::Kicked(1));
    assert_eq!(h.job_stat(b, "kicks"), "1");
    assert_eq!(h.job_stat(b, "buries"), "1");
    assert_eq!(h.call(0, Command::Kick(10)), Reply::Kicked(1));
    assert_eq!(h.job_stat(d, "state"), "ready");
    assert_eq!(h.call(0, Command::Kick(10)), Reply::Kicked(0));
}

/// Kicks take buried jobs in burial order, whatever their ids, around a
/// delete, a kick-job and a reserve-job from the middle, and a job kicked
/// and buried again goes to the back.
#[test]
fn kicks_follow_burial_order_around_removals_from_the_middle() {
    let mut h = Harness::new();
    let ids: Vec<u64> = (0..600).map(|n| h.put(0, 0, 0, 50, &n.to_string())).collect();
    let mut burial_order: Vec<u64> = ids.iter().map(|_| h.reserved_id(1)).collect();
    burial_order.reverse();
    for &id in &burial_order {
        h.advance(1);
        assert_eq!(h.call(1, Command::Bury { id, pri: 0 }), Reply::Buried);
    }
    let (deleted, kicked, taken, again) = (burial_order[10], burial_order[300], burial_order[301], burial_order[0]);
    assert_eq!(h.call(1, Command::Delete(deleted)), Reply::Deleted);
    assert_eq!(h.call(1, Command::KickJob(kicked)), Reply::KickedOne);
    assert_eq!(h.call(2, Command::ReserveJob(taken)), reserved(taken, &(taken - 1).to_string()));
    assert_eq!(h.call(1, Command::KickJob(again)), Reply::KickedOne);
    assert_eq!(h.call(2, Command::ReserveJob(again)), reserved(again, &(again - 1).to_string()));
    assert_eq!(h.call(2, Command::Bury { id: again, pri: 0 }), Reply::Buried);
    assert_eq!(h.job_stat(again, "buries"), "2");
    assert_eq!(h.job_stat(again, "kicks"), "1");
    let mut expected: Vec<u64> =
        burial_order.iter().copied().filter(|id| ![deleted, kicked, taken, again].contains(id)).collect();
    expected.push(again);
    assert_eq!(h.stat(0, Command::StatsTube(tube("default")), "current-jobs-buried"), expected.len().to_string());
    for id in expected {
        assert_eq!(h.call(0, Command::PeekBuried), found(id, &(id - 1).to_string()));
        assert_eq!(h.call(0, Command::Kick(1)), Reply::Kicked(1));
    }
    assert_eq!(h.call(0, Command::PeekBuried), Reply::NotFound);
}

/// A job's counters go on past 255 (where the extras table keeps them
/// apart), and back.
#[test]
fn counters_past_a_byte_are_kept_exactly() {
    let mut h = Harness::new();
    let id = h.put(0, 0, 0, 50, "x");
    for _ in 0..300 {
        h.reserved_id(1);
        assert_eq!(h.call(1, Command::Bury { id, pri: 0 }), Reply::Buried);
        assert_eq!(h.call(0, Command::KickJob(id)), Reply::KickedOne);
    }
    h.reserved_id(1);
    assert_eq!(h.call(1, Command::Bury { id, pri: 0 }), Reply::Buried);
    for (key, value) in [("reserves", "301"), ("buries", "301"), ("kicks", "300"), ("state", "buried")] {
        assert_eq!(h.job_stat(id, key), value, "{key}");
    }
    assert_eq!(h.call(0, Command::PeekBuried), found(id, "x"));
    assert_eq!(h.call(0, Command::Delete(id)), Reply::Deleted);
    assert_eq!(h.server_stat("current-jobs-buried"), "0");
}

#[test]
fn kick_job_works_on_buried_and_delayed_only() {
    let mut h = Harness::new();
    let d = h.put(0, 0, 100, 5, "d");
    let r = h.put(0, 0, 0, 5, "r");
    assert_eq!(h.call(0, Command::KickJob(d)), Reply::KickedOne);
    assert_eq!(h.call(0, Command::KickJob(r)), Reply::NotFound);
    assert_eq!(h.call(0, Command::KickJob(999)), Reply::NotFound);
}

#[test]
fn touch_extends_the_ttr() {
    let mut h = Harness::new();
    let id = h.put(0, 0, 0, 3, "x");
    h.reserved_id(1);
    h.advance(2 * SECOND);
    assert_eq!(h.call(1, Command::Touch(id)), Reply::Touched);
    assert_eq!(h.call(2, Command::Touch(id)), Reply::NotFound);
    h.advance(2 * SECOND);
    assert_eq!(h.job_stat(id, "state"), "reserved");
    h.advance(SECOND);
    assert_eq!(h.job_stat(id, "state"), "ready");
}

#[test]
fn delete_rules() {
    let mut h = Harness::new();
    let id = h.put(0, 0, 0, 5, "x");
    h.reserved_id(1);
    assert_eq!(h.call(2, Command::Delete(id)), Reply::NotFound, "reserved by another");
    assert_eq!(h.call(1, Command::Delete(id)), Reply::Deleted);
    assert_eq!(h.call(1, Command::Delete(id)), Reply::NotFound);
    assert_eq!(h.server_stat("cmd-delete"), "3");
    assert_eq!(h.stat(0, Command::StatsTube(tube("default")), "cmd-delete"), "1");
}

#[test]
fn reserve_job_takes_any_unreserved_job() {
    let mut h = Harness::new();
    h.call(0, Command::Use(tube("other")));
    let buried = h.put(0, 0, 0, 5, "b");
    let delayed = h.put(0, 0, 50, 5, "d");
    h.call(1, Command::Watch(tube("other")));
    let id = h.reserved_id(1);
    h.call(1, Command::Bury { id, pri: 0 });
    assert_eq!(h.call(2, Command::ReserveJob(buried)), reserved(buried, "b"));
    assert_eq!(h.call(3, Command::ReserveJob(buried)), Reply::NotFound, "already reserved");
    assert_eq!(h.call(3, Command::ReserveJob(delayed)), reserved(delayed, "d"));
    assert_eq!(h.server_stat("current-jobs-delayed"), "0");
    assert_eq!(h.server_stat("current-jobs-reserved"), "2");
}

#[test]
fn tubes_vanish_when_unused_except_default() {
    let mut h = Harness::new();
    h.call(0, Command::Use(tube("t")));
    h.call(1, Command::Watch(tube("w")));
    let id = h.put(0, 0, 0, 5, "x");
    assert_eq!(h.server_stat("current-tubes"), "3");
    h.call(0, Command::Use(tube("default")));
    assert_eq!(h.server_stat("current-tubes"), "3", "t still holds a job");
    h.call(0, Command::Delete(id));
    assert_eq!(h.server_stat("current-tubes"), "2");
    assert_eq!(h.call(1, Command::Ignore(tube("w"))), Reply::Watching(1));
    assert_eq!(h.server_stat("current-tubes"), "1");
    assert_eq!(h.call(1, Command::Ignore(tube("default"))), Reply::NotIgnored);
    assert_eq!(h.call(1, Command::StatsTube(tube("w"))), Reply::NotFound);
}

#[test]
fn ignore_swaps_the_last_tube_into_the_hole() {
    let mut h = Harness::new();
    for name in ["w1", "w2", "w3"] {
        h.call(1, Command::Watch(tube(name)));
    }
    h.call(1, Command::Ignore(tube("default")));
    let Reply::Ok(yaml) = h.call(1, Command::ListTubesWatched) else { panic!() };
    assert_eq!(yaml, b"---\n- w3\n- w1\n- w2\n");
    assert_eq!(h.call(1, Command::Ignore(tube("nope"))), Reply::Watching(3));
}

#[test]
fn list_tubes_order_after_a_tube_vanishes() {
    let mut h = Harness::new();
    for name in ["a", "b", "c"] {
        h.call(1, Command::Watch(tube(name)));
    }
    h.call(1, Command::Ignore(tube("a")));
    let Reply::Ok(yaml) = h.call(1, Command::ListTubes) else { panic!() };
    assert_eq!(yaml, b"---\n- default\n- c\n- b\n");
}

/// A worker that hangs up gives its jobs back in the order it reserved them
/// (beanstalkd's list of a connection's reserved jobs), not by TTR: a
/// waiting worker gets the one reserved first, touched or not.
#[test]
fn a_worker_that_hangs_up_gives_its_jobs_back_in_reservation_order() {
    let mut h = Harness::new();
    let first = h.put(0, 0, 0, 100, "first");
    let second = h.put(0, 0, 0, 50, "second");
    assert_eq!(h.reserved_id(1), first);
    assert_eq!(h.reserved_id(1), second);
    h.call(1, Command::Touch(first));
    // Reserved again after a release: now the latest.
    h.call(1, Command::Release { id: first, pri: 0, delay: 0 });
    assert_eq!(h.reserved_id(1), first);
    assert_eq!(h.reserve(2, None), None);
    h.engine.disconnect(h.now, 1);
    assert_eq!(h.engine.take_replies().collect::<Vec<_>>(), vec![(2, reserved(second, "second"))]);
    assert_eq!(h.call(0, Command::Delete(first)), Reply::Deleted);
    // Many reservations let go of keep the list short, and the order right.
    let ids: Vec<_> = (0..100).map(|_| h.put(0, 0, 0, 100, "x")).collect();
    for &id in &ids {
        assert_eq!(h.reserved_id(3), id);
        if id % 3 != 0 {
            h.call(3, Command::Delete(id));
        }
    }
    assert!(h.engine.session(3).reservation_order_len() <= 2 * 34 + 16);
    assert_eq!(h.reserve(2, None), None);
    h.engine.disconnect(h.now, 3);
    let kept = ids.iter().copied().find(|id| id % 3 == 0).unwrap();
    assert_eq!(h.engine.take_replies().next(), Some((2, reserved(kept, "x"))));
}

/// A client that hangs up lets go of its watched tubes in beanstalkd's
/// order (ms_clear: the first, then the last, and so on backwards), which
/// decides where each vanishing tube's hole in list-tubes is filled from.
#[test]
fn list_tubes_order_after_a_client_with_several_tubes_hangs_up() {
    let mut h = Harness::new();
    for name in ["a", "b"] {
        h.call(1, Command::Watch(tube(name)));
    }
    h.call(2, Command::Use(tube("x")));
    h.call(3, Command::Use(tube("y")));
    h.engine.disconnect(h.now, 1);
    let Reply::Ok(yaml) = h.call(0, Command::ListTubes) else { panic!() };
    // b goes first, y filling its hole; then a, x filling its hole.
    assert_eq!(yaml, b"---\n- default\n- x\n- y\n");
}

#[test]
fn a_paused_tube_that_vanishes_leaves_no_timer() {
    let mut h = Harness::new();
    h.call(1, Command::Watch(tube("p")));
    h.call(1, Command::PauseTube { tube: tube("p"), delay: 60 });
    h.call(1, Command::Ignore(tube("p")));
    assert_eq!(h.engine.next_deadline(), None);
    h.call(2, Command::Watch(tube("p")));
    assert_eq!(h.stat(2, Command::StatsTube(tube("p")), "pause"), "0");
}

#[test]
fn draining_refuses_puts_but_spends_ids() {
    let mut h = Harness::new();
    h.engine.set_draining();
    let job = NewJob { pri: 0, delay: 0, ttr: 1, body: b"x".as_slice().into() };
    assert_eq!(h.call(0, Command::Put(job)), Reply::Draining);
    assert_eq!(h.server_stat("draining"), "true");
    assert_eq!(h.server_stat("current-jobs-ready"), "0");
}

#[test]
fn urgent_counts_ready_jobs_below_1024() {
    let mut h = Harness::new();
    h.put(0, 1023, 0, 5, "u");
    h.put(0, 1024, 0, 5, "n");
    assert_eq!(h.server_stat("current-jobs-urgent"), "1");
    h.reserved_id(1);
    assert_eq!(h.server_stat("current-jobs-urgent"), "0");
}

#[test]
fn producer_and_worker_counts() {
    let mut h = Harness::new();
    h.put(0, 0, 0, 5, "x");
    h.put(0, 0, 0, 5, "x");
    h.reserved_id(1);
    assert_eq!(h.server_stat("current-producers"), "1");
    assert_eq!(h.server_stat("current-workers"), "1");
    h.engine.disconnect(h.now, 0);
    assert_eq!(h.stat(1, Command::Stats, "current-producers"), "0");
    assert_eq!(h.stat(1, Command::Stats, "current-connections"), "3");
    assert_eq!(h.stat(1, Command::Stats, "total-connections"), "4");
}

#[test]
fn age_and_uptime_follow_the_clock() {
    let mut h = Harness::new();
    let id = h.put(0, 0, 0, 5, "x");
    h.advance(7 * SECOND + 500 * MS);
    assert_eq!(h.job_stat(id, "age"), "7");
    assert_eq!(h.server_stat("uptime"), "7");
}

#[test]
fn a_job_is_as_old_as_its_put_line_and_delayed_from_its_body() {
    let mut h = Harness::new();
    h.engine.begin_put_at(0, h.now);
    h.advance(2 * SECOND);
    let job = NewJob { pri: 0, delay: 1, ttr: 5, body: b"x".as_slice().into() };
    h.engine.apply(h.now, 0, Command::Put(job));
    h.engine.check_invariants();
    assert_eq!(h.engine.take_replies().collect::<Vec<_>>(), [(0, Reply::Inserted(1))]);
    assert_eq!(h.job_stat(1, "age"), "2");
    assert_eq!(h.job_stat(1, "time-left"), "1", "due a second after the body");
    h.advance(SECOND - 1);
    assert_eq!(h.job_stat(1, "state"), "delayed");
}

mod many_tubes;
mod metrics;
/// The tests' one random generator, shared with the integration tests.
#[path = "../../../tests/support/rng.rs"]
pub(super) mod rng;

/// Replies name bodies in the store until they are taken; a body deleted
/// (and its cell reused) before then must not change a reply that shows it.
#[test]
fn replies_keep_their_bodies_when_the_job_goes_before_they_are_taken() {
    for len in [5, 3000] {
        let mut h = Harness::new();
        let first = "a".repeat(len);
        let id = h.put(0, 0, 0, 10, &first);
        let apply = |h: &mut Harness, command| {
            if matches!(command, Command::Put(_)) {
                h.engine.begin_put(0);
            }
            h.engine.apply(h.now, 0, command);
        };
        apply(&mut h, Command::Peek(id));
        apply(&mut h, Command::Reserve);
        apply(&mut h, Command::Delete(id));
        let second = NewJob { pri: 0, delay: 0, ttr: 10, body: "b".repeat(len).as_bytes().into() };
        apply(&mut h, Command::Put(second));
        apply(&mut h, Command::Peek(id + 1));
        h.engine.check_invariants();
        let (first, second): (std::rc::Rc<[u8]>, std::rc::Rc<[u8]>) =
            (first.as_bytes().into(), "b".repeat(len).as_bytes().into());
        let expected = vec![
            (0, Reply::Found { id, body: first.clone() }),
            (0, Reply::Reserved { id, body: first }),
            (0, Reply::Deleted),
            (0, Reply::Inserted(id + 1)),
            (0, Reply::Found { id: id + 1, body: second }),
        ];
        assert_eq!(h.engine.take_replies().collect::<Vec<_>>(), expected);
    }
}

/// The server's way to take replies (bodies lent from the store) writes the
/// same bytes as replies with their own copies.
#[test]
fn lent_replies_write_the_same_bytes() {
    for len in [0, 7, 1024, 1025, 3000] {
        let mut h = Harness::new();
        let body = "x".repeat(len);
        let id = h.put(0, 0, 0, 10, &body);
        h.engine.apply(h.now, 0, Command::Peek(id));
        h.engine.apply(h.now, 0, Command::Reserve);
        let mut lent = Vec::new();
        for (_, reply) in h.engine.send_replies() {
            reply.write_to(&mut lent);
        }
        let expected = format!("FOUND {id} {len}\r\n{body}\r\nRESERVED {id} {len}\r\n{body}\r\n");
        assert_eq!(String::from_utf8(lent).unwrap(), expected);
    }
}

/// The server's way in: a command's own reply comes back from `answer`,
/// its body lent from the store, and only the replies it caused to other
/// connections wait in the outbox.
#[test]
fn answer_returns_the_own_reply_and_queues_the_others() {
    let mut h = Harness::new();
    assert_eq!(h.engine.answer(h.now, 0, Command::Reserve), None, "connection 0 waits");
    assert!(!h.engine.has_replies());

    h.engine.begin_put(1);
    let job = NewJob { pri: 0, delay: 0, ttr: 5, body: BodyBytes::Borrowed(b"lent") };
    assert_eq!(h.engine.answer_put(h.now, 1, job), protocol::Reply::Inserted(1));
    h.engine.check_invariants();
    let queued: Vec<_> = h.engine.take_replies().collect();
    assert_eq!(queued, [(0, Reply::Reserved { id: 1, body: b"lent".as_slice().into() })], "the waiter's");

    h.put(1, 0, 0, 5, "second");
    let reply = h.engine.answer(h.now, 2, Command::Peek(2));
    assert_eq!(reply, Some(protocol::Reply::Found { id: 2, body: BodyBytes::Borrowed(b"second") }));
    assert!(!h.engine.has_replies(), "nothing queued for a command's own reply");
}
