//! Moving a job between states. Every state change is `unplace` followed by
//! one `place_*`, so the counters and timers that go with each state are kept
//! in one place.

use std::collections::BTreeSet;

use super::Engine;
use super::ids::{ConnId, JobId, TubeId};
use super::job::JobState;
use super::journal::Journal;
use super::outbox::{Reply, ReplyBody};
use super::time::Nanos;
use super::timers::Timer;
use super::tubes::URGENT_PRIORITY;

impl<J: Journal> Engine<J> {
    /// Counts a ready job of priority `pri` in `tube` in or out of the
    /// ready and urgent counters (the engine's and, for urgent, the tube's).
    #[inline]
    fn count_ready(&mut self, tube: TubeId, pri: u32, added: bool) {
        let step = |n: &mut u64| if added { *n += 1 } else { *n -= 1 };
        step(&mut self.counts.ready);
        if pri < URGENT_PRIORITY {
            step(&mut self.counts.urgent);
            step(&mut self.tubes[tube].urgent);
        }
    }

    /// Takes the job out of the structure its state puts it in, with the
    /// counters and timer that go with it.
    pub(super) fn unplace(&mut self, id: JobId) {
        let job = &self.jobs[id];
        let (tube, state, pri) = (job.tube(), job.state(), job.pri);
        // Every state but ready has a deadline, in the job's extras.
        let deadline = || self.extras.get(id).deadline;
        match state {
            JobState::Ready => {
                self.tubes.remove_ready(tube, (pri, id));
                self.count_ready(tube, pri, false);
            }
            JobState::Delayed => {
                let deadline = deadline();
                self.change_delayed(tube, |delayed| delayed.remove(&(deadline, id)));
                self.counts.delayed -= 1;
            }
            JobState::Buried => {
                let buried_at = deadline();
                let removed = self.tubes[tube].buried.remove(buried_at, id);
                debug_assert!(removed, "buried job {id} not in its tube's buried jobs");
                self.counts.buried -= 1;
            }
            JobState::Reserved => {
                let conn = self.extras.holder(id);
                // Its entry, and its connection's TTR timer if it was set
                // for this job, are left to go lazily (held.rs).
                self.session_mut(conn).reserved.remove();
                self.tubes[tube].reserved -= 1;
                self.counts.reserved -= 1;
                self.meter_unreserved(id);
            }
        }
    }

    /// Makes the job ready and hands it to a waiting connection if any.
    pub(super) fn place_ready(&mut self, now: Nanos, id: JobId) {
        let job = self.job_mut(id);
        job.set_state(JobState::Ready);
        let (tube, pri) = (job.tube(), job.pri);
        self.tubes.insert_ready(tube, (pri, id));
        self.count_ready(tube, pri, true);
        self.meter_ready(now, id, tube);
        self.serve_waiters(now, tube);
    }

    /// Makes many jobs ready at once (recovery): jobs in the table, marked
    /// ready but in no queue yet, each given as (tube, priority, id), 16
    /// bytes (a restart may bring back millions). Each tube's ready queue
    /// is given its keys sorted, so that it is built a chunk at a time
    /// (`ReadyQueue::append`).
    pub(super) fn place_ready_all(&mut self, now: Nanos, mut ready: Vec<(TubeId, u32, JobId)>) {
        self.meter_restored_ready(now, ready.iter().map(|&(_, _, id)| id));
        // Sorting what comes already sorted (one tube, one priority, ids in
        // order: the usual restart) is one pass.
        ready.sort_unstable();
        for run in ready.chunk_by(|a, b| a.0 == b.0) {
            let tube = run[0].0;
            for &(_, pri, _) in run {
                self.count_ready(tube, pri, true);
            }
            self.tubes.append_ready(tube, run.iter().map(|&(_, pri, id)| (pri, id)));
            self.serve_waiters(now, tube);
        }
    }

    pub(super) fn place_delayed(&mut self, now: Nanos, id: JobId, delay: Nanos) {
        let deadline = now + delay;
        let job = self.job_mut(id);
        job.set_state(JobState::Delayed);
        let tube = job.tube();
        self.extras.get_mut(id).deadline = deadline;
        self.change_delayed(tube, |delayed| delayed.insert((deadline, id)));
        self.counts.delayed += 1;
    }

    /// Makes many jobs delayed at once (recovery): jobs in the table,
    /// marked delayed with their deadlines (in the future) but in no set
    /// yet, given as each tube's (deadline, id) list. A tube's empty set is
    /// built at once from its list (collected in place, sorted, its nodes
    /// filled): inserted one at a time, each entry searched the tree from
    /// its root (about 800 instructions a job) and left the nodes half
    /// empty.
    pub(super) fn place_delayed_all(&mut self, by_tube: Vec<(TubeId, Vec<(Nanos, JobId)>)>) {
        for (tube, entries) in by_tube {
            let added = entries.len();
            self.change_delayed(tube, |set| {
                let before = set.len();
                if set.is_empty() {
                    *set = entries.into_iter().collect();
                } else {
                    set.extend(entries);
                }
                set.len() == before + added
            });
            self.counts.delayed += added as u64;
        }
    }

    /// Changes a tube's delayed jobs, and keeps a timer for its first one
    /// only: the earliest of the tubes' first jobs is the earliest of all, so
    /// delayed jobs still come ready one at a time in (deadline, id) order,
    /// and a million delayed jobs do not each cost an entry in the timers.
    fn change_delayed(&mut self, tube: TubeId, change: impl FnOnce(&mut BTreeSet<(Nanos, JobId)>) -> bool) {
        let delayed = &mut self.tubes[tube].delayed;
        let first = delayed.first().copied();
        assert!(change(delayed), "a delayed job added twice or removed twice");
        let new_first = delayed.first().copied();
        if new_first != first {
            // A popped timer is gone already: removing it again is harmless.
            if let Some((at, id)) = first {
                self.timers.remove(at, Timer::DelayEnds(id));
            }
            if let Some((at, id)) = new_first {
                self.timers.insert(at, Timer::DelayEnds(id));
            }
        }
    }

    /// The burial time, kept strictly increasing, orders the tube's buried
    /// FIFO; it is kept as the job's deadline and logged, so that a restart
    /// brings buried jobs back in the order they were buried.
    pub(super) fn place_buried(&mut self, id: JobId, buried_at: Nanos) {
        let buried_at = buried_at.max(self.last_buried_at + 1);
        self.last_buried_at = buried_at;
        let job = self.job_mut(id);
        job.set_state(JobState::Buried);
        let tube = job.tube();
        self.extras.get_mut(id).deadline = buried_at;
        self.tubes[tube].buried.push(buried_at, id);
        self.counts.buried += 1;
    }

    /// Reserves job `id` for `conn` until its TTR from `now`; `counted`:
    /// a reservation `stats-job` counts (a reserve; a touch is not), in
    /// the same change of the job's extras.
    pub(super) fn place_reserved(&mut self, now: Nanos, id: JobId, conn: ConnId, counted: bool) {
        let job = self.jobs.get_mut(id).expect("unknown job");
        let deadline = now + self.long_ttrs.get(id, job.ttr);
        job.set_state(JobState::Reserved);
        let tube = job.tube();
        {
            let mut extras = self.extras.get_mut(id);
            extras.hold(conn, deadline);
            extras.counts.reserves += u32::from(counted);
        }
        let (jobs, extras) = (&self.jobs, &self.extras);
        let session = self.sessions[conn].as_mut().expect("unknown connection");
        session.reserved.insert(deadline, id, |deadline, id| super::holds(jobs, extras, conn, deadline, id));
        // One TTR timer a connection, for its soonest job: a job reserved
        // after the others (the usual case) leaves it as it is.
        if session.ttr_timer.is_none_or(|set| (deadline, id) < set) {
            self.set_ttr_timer(conn, Some((deadline, id)));
        }
        self.tubes[tube].reserved += 1;
        self.counts.reserved += 1;
    }

    /// Sets `conn`'s TTR timer for `soonest` (its soonest held job), or
    /// none, replacing the one set before if any.
    pub(super) fn set_ttr_timer(&mut self, conn: ConnId, soonest: Option<(Nanos, JobId)>) {
        let session = self.sessions[conn].as_mut().expect("unknown connection");
        if let Some((at, id)) = std::mem::replace(&mut session.ttr_timer, soonest) {
            self.timers.remove(at, Timer::TtrEnds(id, conn));
        }
        if let Some((at, id)) = soonest {
            self.timers.insert(at, Timer::TtrEnds(id, conn));
        }
    }

    /// Reserves a job that is not reserved yet for `conn`, and makes the
    /// reply carrying it.
    pub(super) fn hand_out(&mut self, now: Nanos, conn: ConnId, id: JobId) -> Reply {
        self.meter_reserve(now, id);
        self.unplace(id);
        self.place_reserved(now, id, conn, true);
        let (jobs, extras) = (&self.jobs, &self.extras);
        let session = self.sessions[conn].as_mut().expect("unknown connection");
        session.note_reservation(id, |id| super::reserved_by(jobs, extras, id) == Some(conn));
        let body = self.jobs[id].body;
        Reply::Reserved { id, body: ReplyBody::Stored(body) }
    }
}
