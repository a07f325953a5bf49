//! Many tubes and many waiters: the heads index, broad watch lists and
//! broad waiters must give exactly the answers a look at every tube would.
//! The harness checks the indexes and the engine invariant after each step.

use super::rng::Rng;
use super::*;

/// A harness with `conns` connections (ids 0..conns).
fn harness(conns: usize) -> Harness {
    let mut h = Harness::new();
    for conn in 4..conns {
        h.engine.connect(conn);
    }
    h
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

impl Harness {
    fn watch(&mut self, conn: ConnId, name: &str) -> Reply {
        self.call(conn, Command::Watch(tube(name)))
    }

    fn ignore(&mut self, conn: ConnId, name: &str) -> Reply {
        self.call(conn, Command::Ignore(tube(name)))
    }

    /// Watches every tube in `names`, and no longer `default`.
    fn watch_only(&mut self, conn: ConnId, names: &[String]) {
        for name in names {
            self.watch(conn, name);
        }
        assert_eq!(self.ignore(conn, "default"), Reply::Watching(names.len()));
    }

    /// Puts a job into `tube`; returns every reply the put produced.
    fn put_into(&mut self, conn: ConnId, tube_name: &str, pri: u32) -> Vec<(ConnId, Reply)> {
        self.call(conn, Command::Use(tube(tube_name)));
        let job = NewJob { pri, delay: 0, ttr: 100, body: tube_name.as_bytes().into() };
        self.run(conn, Command::Put(job))
    }

    /// Puts a job that no waiter takes; its id.
    fn put_ready(&mut self, tube_name: &str, pri: u32) -> u64 {
        match self.put_into(0, tube_name, pri).as_slice() {
            [(0, Reply::Inserted(id))] => *id,
            other => panic!("put into {tube_name} gave {other:?}"),
        }
    }

    /// Puts a job that must go straight to `waiter`; its id.
    fn put_for(&mut self, tube_name: &str, waiter: ConnId) -> u64 {
        match self.put_into(0, tube_name, 0).as_slice() {
            [(to, Reply::Reserved { id, .. }), (0, Reply::Inserted(inserted))] if id == inserted => {
                assert_eq!(*to, waiter, "job {id} put into {tube_name} went to the wrong waiter");
                *id
            }
            other => panic!("put into {tube_name} gave {other:?}"),
        }
    }

    fn tube_stat(&mut self, name: &str, key: &str) -> String {
        self.stat(0, Command::StatsTube(tube(name)), key)
    }
}

#[test]
fn a_broad_reserve_takes_the_best_job_of_its_unpaused_tubes() {
    let mut h = harness(4);
    h.watch_only(1, &names("t", 20));
    // Better jobs in 25 tubes it does not watch: more heads than it has
    // tubes, so the walk through the heads gives up and asks each tube.
    let unwatched = names("u", 25);
    h.watch_only(2, &unwatched);
    for name in &unwatched {
        h.put_ready(name, 0);
    }
    let paused_best = h.put_ready("t3", 1);
    let second = h.put_ready("t7", 2);
    let tied = h.put_ready("t12", 2);
    let worst = h.put_ready("t15", 5);
    h.put_ready("t3", 9);
    assert_eq!(h.call(0, Command::PauseTube { tube: tube("t3"), delay: 10 }), Reply::Paused);
    assert_eq!(h.reserved_id(1), second);
    assert_eq!(h.reserved_id(1), tied);
    assert_eq!(h.reserved_id(1), worst);
    assert_eq!(h.reserve(1, Some(0)), Some(Reply::TimedOut), "only the paused tube has ready jobs");
    h.advance(10 * SECOND);
    assert_eq!(h.reserved_id(1), paused_best);
    // With the unwatched heads gone, the first head is its own.
    for _ in 0..25 {
        h.reserved_id(2);
    }
    let last = h.put_ready("t19", 3);
    assert_eq!(h.reserved_id(1), last);
}

#[test]
fn ties_across_tubes_go_by_id_for_narrow_and_broad_watchers() {
    let mut h = harness(4);
    let tubes = names("t", 10);
    h.watch_only(1, &tubes);
    for name in &tubes[..3] {
        h.watch(2, name);
    }
    assert_eq!(h.ignore(2, "default"), Reply::Watching(3));
    let mut ids = Vec::new();
    for name in ["t2", "t0", "t1", "t2", "t0", "t1"] {
        ids.push(h.put_ready(name, 7));
    }
    let got: Vec<u64> = (0..6).map(|i| h.reserved_id(if i % 2 == 0 { 1 } else { 2 })).collect();
    assert_eq!(got, ids);
}

#[test]
fn waiters_are_served_in_arrival_order_mixing_narrow_and_broad() {
    let mut h = harness(8);
    let (first, second) = (names("t", 10), names("u", 10));
    h.watch_only(1, &first);
    h.watch_only(3, &first);
    h.watch_only(6, &second);
    for conn in [2, 4] {
        h.watch(conn, "t3");
        h.ignore(conn, "default");
    }
    h.watch(5, "t5");
    h.ignore(5, "default");
    for conn in [6, 1, 2, 3, 4, 5] {
        assert_eq!(h.reserve(conn, None), None);
    }
    assert_eq!(h.tube_stat("t3", "current-waiting"), "4");
    assert_eq!(h.tube_stat("t5", "current-waiting"), "3");
    assert_eq!(h.tube_stat("u0", "current-waiting"), "1");
    assert_eq!(h.server_stat("current-waiting"), "6");
    for waiter in [1, 2, 3, 4] {
        h.put_for("t3", waiter);
    }
    // Nobody waiting watches t3 any more.
    h.put_ready("t3", 0);
    assert_eq!(h.tube_stat("t3", "current-waiting"), "0");
    h.put_for("t5", 5);
    h.put_for("u7", 6);
    assert_eq!(h.server_stat("current-waiting"), "0");
}

#[test]
fn a_broad_waiter_behind_many_others_is_found_by_its_mark() {
    let mut h = harness(16);
    let (others, mine) = (names("a", 10), names("b", 10));
    // Twelve broad waiters that do not watch b0, then one that does, then a
    // narrow one on b0: the walk through the broad queue gives up after
    // one look (b0 has one broad watcher) and reads that watcher's mark.
    for conn in 1..13 {
        h.watch_only(conn, &others);
        assert_eq!(h.reserve(conn, None), None);
    }
    h.watch_only(13, &mine);
    assert_eq!(h.reserve(13, None), None);
    h.watch(14, "b0");
    h.ignore(14, "default");
    assert_eq!(h.reserve(14, None), None);
    h.put_for("b0", 13);
    h.put_for("b0", 14);
    // The narrow waiter came first this time: it wins over the broad one.
    assert_eq!(h.reserve(14, None), None);
    assert_eq!(h.reserve(13, None), None);
    h.put_for("b0", 14);
    h.put_for("b9", 13);
    for conn in 1..13 {
        h.put_for("a4", conn);
    }
}

#[test]
fn watch_and_ignore_while_jobs_are_ready() {
    let mut h = harness(4);
    // Tube t<i> holds one job of priority 10 - i: higher tubes are better.
    let tubes = names("t", 10);
    let pri = |i: usize| 10 - i as u32;
    let ids: Vec<u64> = tubes.iter().enumerate().map(|(i, name)| h.put_ready(name, pri(i))).collect();
    // Reserves job i (which must be the best it may take) and releases it.
    let take_and_release = |h: &mut Harness, i: usize| {
        assert_eq!(h.reserved_id(1), ids[i]);
        assert_eq!(h.call(1, Command::Release { id: ids[i], pri: pri(i), delay: 0 }), Reply::Released);
    };
    for name in &tubes[..8] {
        h.watch(1, name);
    }
    // default and t0..t7: nine tubes, a broad list.
    assert!(h.engine.session(1).watched.is_broad());
    take_and_release(&mut h, 7);
    assert_eq!(h.ignore(1, "t7"), Reply::Watching(8));
    assert!(!h.engine.session(1).watched.is_broad());
    take_and_release(&mut h, 6);
    assert_eq!(h.watch(1, "t9"), Reply::Watching(9));
    take_and_release(&mut h, 9);
    assert_eq!(h.ignore(1, "default"), Reply::Watching(8));
    take_and_release(&mut h, 9);
    // ignore moves the last tube into the hole, as in beanstalkd.
    let order = ["t9", "t0", "t1", "t2", "t3", "t4", "t5", "t6"];
    assert_eq!(h.call(1, Command::ListTubesWatched), Reply::Ok(crate::protocol::yaml::tube_list(order.into_iter())));
    assert_eq!(h.ignore(1, "t9"), Reply::Watching(7));
    take_and_release(&mut h, 6);
}

#[test]
fn deadline_soon_even_with_a_ready_job_in_a_paused_tube() {
    for broad in [false, true] {
        let mut h = harness(4);
        if broad {
            for name in names("f", 10) {
                h.watch(1, &name);
            }
        }
        h.watch(1, "p");
        h.put_ready("default", 0);
        let held = h.reserved_id(1);
        assert_eq!(h.job_stat(held, "ttr"), "100");
        h.put_ready("p", 0);
        assert_eq!(h.call(0, Command::PauseTube { tube: tube("p"), delay: 500 }), Reply::Paused);
        h.advance(99 * SECOND + SECOND / 2);
        assert_eq!(h.reserve(1, None), Some(Reply::DeadlineSoon), "broad: {broad}");
        // A job it may take wins over DEADLINE_SOON.
        let free = h.put_ready(if broad { "f3" } else { "default" }, 5);
        assert_eq!(h.reserve(1, None), Some(reserved(free, if broad { "f3" } else { "default" })));
    }
}

#[test]
fn pause_expiry_serves_waiters_in_arrival_order() {
    let mut h = harness(6);
    let low = h.put_ready("t", 5);
    let best = h.put_ready("t", 1);
    let middle = h.put_ready("t", 3);
    assert_eq!(h.call(0, Command::PauseTube { tube: tube("t"), delay: 2 }), Reply::Paused);
    h.watch(2, "t");
    for name in names("f", 9) {
        h.watch(1, &name);
    }
    h.watch(1, "t");
    h.watch(3, "t");
    h.ignore(3, "default");
    h.watch(5, "t");
    for conn in [2, 1, 4, 3, 5] {
        assert_eq!(h.reserve(conn, None), None);
    }
    assert_eq!(h.tube_stat("t", "current-waiting"), "4");
    let served = h.advance(2 * SECOND);
    assert_eq!(served, vec![(2, reserved(best, "t")), (1, reserved(middle, "t")), (3, reserved(low, "t"))]);
    assert_eq!(h.tube_stat("t", "current-waiting"), "1");
    assert!(h.engine.is_waiting(4) && h.engine.is_waiting(5));
}

/// What a look at every tube says: the best ready job among `conn`'s
/// unpaused watched tubes.
fn best_by_brute_force(engine: &Engine, conn: ConnId) -> Option<u64> {
    let session = engine.session(conn);
    session.watched.iter().filter_map(|&t| engine.tubes[t].reservable()).min().map(|(_, id)| id)
}

/// What a look at every connection says: the waiting connections that
/// watch `tube`. (Which of them a job goes to is beanstalkd's round-robin
/// order, which waiters.rs's tests and the engine's fuzz model check.)
fn waiters_by_brute_force(engine: &Engine, name: &str) -> Vec<ConnId> {
    let Some(tube) = engine.tubes.find(&tube(name)) else { return Vec::new() };
    let waiting = engine.sessions.iter().enumerate().filter_map(|(conn, s)| Some((conn, s.as_ref()?)));
    waiting.filter(|(_, s)| s.wait.is_some() && s.watched.contains(tube)).map(|(conn, _)| conn).collect()
}

#[test]
fn random_mixes_of_tubes_and_watchers_match_a_look_at_everything() {
    const CONNS: usize = 24;
    let mut h = harness(CONNS);
    let tubes = names("t", 20);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut held: Vec<Vec<u64>> = vec![Vec::new(); CONNS];
    let (mut handed, mut to_broad, mut reserved_now) = (0, 0, 0);
    for _ in 0..20_000 {
        let conn = rng.index(CONNS);
        let name = tubes[rng.index(tubes.len())].as_str();
        // A waiting connection sends nothing: time passes instead.
        let op = if h.engine.is_waiting(conn) { 11 } else { rng.index(12) };
        let replies = match op {
            // Watch lists grow past and shrink below the broad threshold.
            0 | 1 => h.run(conn, Command::Watch(tube(name))),
            2 => h.run(conn, Command::Ignore(tube(name))),
            3 => {
                let waiters = waiters_by_brute_force(&h.engine, name);
                let paused = h.engine.tubes.find(&tube(name)).is_some_and(|t| h.engine.tubes[t].is_paused());
                let replies = h.put_into(conn, name, rng.below(4) as u32);
                let Some((_, Reply::Inserted(id))) = replies.last() else { panic!("{replies:?}") };
                match (!waiters.is_empty() && !paused).then_some(replies[0].0) {
                    Some(waiter) => {
                        assert!(waiters.contains(&waiter), "{waiter} is not waiting on {name}: {replies:?}");
                        assert_eq!(replies[0], (waiter, reserved(*id, name)));
                        handed += 1;
                        to_broad += usize::from(h.engine.session(waiter).watched.is_broad());
                    }
                    None => assert_eq!(replies.len(), 1, "{replies:?}"),
                }
                replies
            }
            4..=7 => {
                let best = best_by_brute_force(&h.engine, conn);
                let soon = h.engine.deadline_soon(conn, h.now);
                let timeout = [Some(0), Some(0), Some(2), None][rng.index(4)];
                let replies = h.run(conn, Command::ReserveWithTimeout(timeout));
                match (best, soon, timeout, replies.as_slice()) {
                    (Some(id), _, _, [(to, Reply::Reserved { id: got, .. })]) if *to == conn && *got == id => {
                        reserved_now += 1;
                    }
                    (None, true, _, [(to, Reply::DeadlineSoon)]) if *to == conn => {}
                    (None, false, Some(0), [(to, Reply::TimedOut)]) if *to == conn => {}
                    (None, false, Some(1..) | None, []) => {}
                    _ => panic!("reserve by {conn}: best {best:?}, deadline soon {soon}, got {replies:?}"),
                }
                replies
            }
            8 | 9 => match held[conn].pop() {
                Some(id) => h.run(conn, Command::Delete(id)),
                None => continue,
            },
            10 => match held[conn].pop() {
                Some(id) => h.run(conn, Command::Release { id, pri: rng.below(4) as u32, delay: 0 }),
                None => continue,
            },
            _ if rng.below(3) == 0 && !h.engine.is_waiting(conn) => {
                h.run(conn, Command::PauseTube { tube: tube(name), delay: rng.below(3) as u32 })
            }
            _ => h.advance(SECOND * rng.below(3) / 4),
        };
        // Track who holds which job (hand-outs, reserves, TTRs running out).
        for (to, reply) in &replies {
            if let Reply::Reserved { id, .. } = reply {
                held[*to].push(*id);
            }
        }
        for (conn, list) in held.iter_mut().enumerate() {
            list.retain(|&id| h.engine.is_reserved_by(id, conn));
        }
    }
    // The mix did exercise both paths, with narrow and broad lists.
    assert!(
        handed > 300 && to_broad > 100 && reserved_now > 300,
        "{handed} hand-outs ({to_broad} to broad), {reserved_now} reserves"
    );
}
