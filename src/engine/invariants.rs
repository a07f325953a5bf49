//! The engine's invariant check: each index agrees with the state it
//! summarises, and the invariant in mod.rs holds. The engine's unit tests
//! run it after every step, and so does the engine's fuzz target
//! (`fuzz/targets/engine.rs`), which is why it is public; the server never
//! calls it (it walks every job and connection).

use crate::engine::journal::Journal;
use crate::engine::timers::Timer;
use crate::engine::watchlist::BROAD;
use crate::engine::{Engine, JobState};

impl<J: Journal> Engine<J> {
    /// Panics unless every index agrees with the state it summarises and
    /// the invariant in mod.rs holds. O(jobs + connections + tubes).
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        // The heads index holds exactly the unpaused tubes' best ready jobs.
        let mut expected: Vec<_> = self.tubes.iter().filter_map(|t| Some((t.reservable()?, t.name.clone()))).collect();
        expected.sort();
        let actual: Vec<_> = self.tubes.heads().iter().map(|(key, t)| (key, self.tubes[t].name.clone())).collect();
        assert_eq!(actual, expected, "heads index");

        // The timers hold a tube's first delayed job, and no other.
        let firsts: Vec<_> = self.tubes.ids().filter_map(|t| self.tubes[t].delayed.first().copied()).collect();
        for &(at, id) in &firsts {
            assert!(self.timers.contains(at, Timer::DelayEnds(id)), "no timer for delayed job {id}");
        }
        assert_eq!(self.timers.count(|t| matches!(t, Timer::DelayEnds(_))), firsts.len(), "delay timers");

        // Each tube's buried jobs are its jobs in the buried state, in
        // burial order, each filed where a removal will find it.
        let mut buried = 0;
        for tube in self.tubes.ids() {
            let fifo = &self.tubes[tube].buried;
            fifo.check();
            let mut last = None;
            for (range, id) in fifo.filed() {
                let job = self.jobs.get(id).unwrap_or_else(|| panic!("deleted job {id} still buried"));
                assert_eq!(job.state(), JobState::Buried, "job {id} in the buried jobs");
                assert_eq!(job.tube(), tube, "job {id} buried in another tube");
                let buried_at = self.extras.get(id).deadline;
                assert!(range.contains(&buried_at), "job {id} buried at {buried_at} filed under {range:?}");
                assert!(last < Some(buried_at), "buried jobs out of burial order at job {id}");
                last = Some(buried_at);
                buried += 1;
            }
        }
        assert_eq!(self.counts.buried, buried, "buried count");

        // No unpaused tube has a ready job while a waiting connection watches it.
        for tube in self.tubes.ids() {
            if self.tubes[tube].reservable().is_some() {
                assert_eq!(self.first_waiter(tube), None, "tube {} has ready jobs and a waiter", self.tubes[tube].name);
            }
        }

        // Every waiter is registered where its kind says, and nowhere else.
        let (mut narrow_entries, mut broad_entries, mut broad_waiting, mut waiting) = (0, 0, 0, 0);
        for (conn, session) in self.sessions.iter().enumerate() {
            let Some(session) = session else { continue };
            let watched = &session.watched;
            watched.check();
            assert_eq!(watched.is_broad(), watched.len() > BROAD);
            let seq = session.wait.map(|w| w.seq);
            waiting += usize::from(seq.is_some());
            if let Some(mark) = watched.mark() {
                assert_eq!(mark.get(), seq, "connection {conn}'s mark");
                broad_entries += watched.len();
                for &tube in watched {
                    let shared = self.tubes[tube].waiters.broad.get(&conn).expect("broad watcher unknown to its tube");
                    assert!(shared.is_shared_with(mark));
                }
                if let Some(seq) = seq {
                    assert!(self.broad_waiters.contains(&(seq, conn)));
                    broad_waiting += 1;
                }
            } else if let Some(seq) = seq {
                narrow_entries += watched.len();
                for &tube in watched {
                    assert!(self.tubes[tube].waiters.narrow.contains(seq, conn));
                }
            }
        }
        let ids = || self.tubes.ids().map(|t| &self.tubes[t].waiters);
        assert_eq!(ids().map(|w| w.narrow.len()).sum::<usize>(), narrow_entries, "narrow registrations");
        assert_eq!(ids().map(|w| w.broad.len()).sum::<usize>(), broad_entries, "broad registrations");
        assert_eq!(self.broad_waiters.len(), broad_waiting, "broad waiters");
        assert_eq!(self.counts.waiting, waiting as u64, "waiting count");

        // Every job is in a live tube, the jobs in each state add up to its
        // counter, and a reserved job's extras name a connected holder that
        // has an entry for it at the job's deadline.
        let live_tubes: std::collections::HashSet<_> = self.tubes.ids().collect();
        let mut in_state = [0u64; 4];
        for id in self.jobs.ids() {
            let job = &self.jobs[id];
            assert!(live_tubes.contains(&job.tube()), "job {id} in a dropped tube");
            in_state[job.state() as usize] += 1;
            if job.state() == JobState::Reserved {
                let conn = self.extras.holder(id);
                let session = self.sessions.get(conn).and_then(Option::as_ref);
                let session = session.unwrap_or_else(|| panic!("job {id} held by {conn}, not connected"));
                let deadline = self.extras.get(id).deadline;
                assert!(
                    session.reserved.entries().any(|e| e == (deadline, id)),
                    "job {id} unknown to its holder {conn}"
                );
            }
        }
        let counted = [self.counts.ready, self.counts.reserved, self.counts.delayed, self.counts.buried];
        assert_eq!(in_state, counted, "jobs in each state (ready, reserved, delayed, buried)");

        // Reservations and the jobs' places agree; extras are kept only for
        // live jobs.
        let mut reserved = 0;
        for (conn, session) in self.sessions.iter().enumerate() {
            let Some(session) = session else { continue };
            // Entries of jobs no longer held are forgotten lazily; the held
            // ones are all there, once each (an entry may be there twice).
            let held: std::collections::BTreeSet<_> = session
                .reserved
                .entries()
                .filter(|&(d, id)| super::holds(&self.jobs, &self.extras, conn, d, id))
                .collect();
            assert_eq!(held.len(), session.reserved.len(), "jobs held by {conn}");
            reserved += held.len() as u64;
        }
        assert_eq!(self.counts.reserved, reserved, "reserved count");

        // A connection holding jobs has one TTR timer, at or before its
        // soonest job's deadline; one that holds none may still have one.
        let mut ttr_timers = 0;
        for (conn, session) in self.sessions.iter().enumerate() {
            let Some(session) = session else { continue };
            let soonest =
                session.reserved.entries().filter(|&(d, id)| super::holds(&self.jobs, &self.extras, conn, d, id)).min();
            match (session.ttr_timer, soonest) {
                (Some((at, id)), soonest) => {
                    assert!(self.timers.contains(at, Timer::TtrEnds(id, conn)), "TTR timer of {conn} not set");
                    assert!(soonest.is_none_or(|s| (at, id) <= s), "TTR timer of {conn} after its soonest job");
                    ttr_timers += 1;
                }
                (None, Some(s)) => panic!("{conn} holds {s:?} with no TTR timer"),
                (None, None) => {}
            }
        }
        assert_eq!(self.timers.count(|t| matches!(t, Timer::TtrEnds(..))), ttr_timers, "TTR timers");
        self.long_ttrs.check(self.jobs.ids().map(|id| (id, self.jobs[id].ttr)));
        self.extras.check();
        for id in self.extras.ids() {
            assert!(self.jobs.contains(id), "extras kept for deleted job {id}");
        }

        // With metrics on, every ready job has a current entry in a
        // ready-since queue, which never runs backwards.
        if let Some(meter) = &self.meter {
            let mut entries = std::collections::HashSet::new();
            for queue in meter.ready_since_queues() {
                let mut last = 0;
                for (since, id) in queue.entries() {
                    assert!(since >= last, "ready-since queue out of order at job {id}");
                    last = since;
                    entries.insert((since, id));
                }
            }
            for id in self.jobs.ids() {
                let job = &self.jobs[id];
                if job.state() == JobState::Ready {
                    let since = super::metrics::ready_since(&self.extras, id, job);
                    assert!(entries.contains(&(since, id)), "ready job {id} has no current ready-since entry");
                }
            }
        }
    }
}
