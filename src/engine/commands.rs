//! One handler per command: what each does to the queues and what it answers.

use super::Engine;
use super::bodies::BodyRef;
use super::extras::JobExtras;
use super::ids::{ConnId, JobId};
use super::job::{Job, JobState, JournalTag, Place};
use super::journal::{JobView, Journal};
use super::outbox::{Reply, ReplyBody};
use super::session::PendingPut;
use super::time::{Nanos, secs};
use super::timers::Timer;
use super::ttr::RecordTtr;
use super::tubes;
use crate::protocol::command::NewJob;
use crate::protocol::{BodyBytes, Command, Op, TubeName};

impl<J: Journal> Engine<J> {
    pub(super) fn execute(&mut self, now: Nanos, conn: ConnId, command: Command) -> Option<Reply> {
        use Command as C;
        let reply = match command {
            C::Put(job) => self.put(now, conn, job.map_body(BodyBytes::Shared)),
            C::Reserve => return self.reserve(now, conn, Op::Reserve, None),
            C::ReserveWithTimeout(timeout) => return self.reserve(now, conn, Op::ReserveWithTimeout, timeout),
            C::ReserveJob(id) => self.reserve_job(now, conn, id),
            C::Delete(id) => self.delete(now, conn, id),
            C::Release { id, pri, delay } => self.release(now, conn, id, pri, delay),
            C::Bury { id, pri } => self.bury(now, conn, id, pri),
            C::Touch(id) => self.touch(now, conn, id),
            C::Use(name) => self.use_tube(conn, &name),
            C::Watch(name) => self.watch(conn, &name),
            C::Ignore(name) => self.ignore(conn, &name),
            C::Peek(id) => {
                self.count(Op::Peek);
                self.found(self.jobs.contains(id).then_some(id))
            }
            C::PeekReady => {
                self.count(Op::PeekReady);
                let tube = &self.tubes[self.session(conn).used];
                self.found(tube.ready.first().map(|(_, id)| id))
            }
            C::PeekDelayed => {
                self.count(Op::PeekDelayed);
                let tube = &self.tubes[self.session(conn).used];
                self.found(tube.delayed.first().map(|&(_, id)| id))
            }
            C::PeekBuried => {
                self.count(Op::PeekBuried);
                let tube = &self.tubes[self.session(conn).used];
                self.found(tube.buried.first())
            }
            C::Kick(bound) => self.kick(now, conn, bound),
            C::KickJob(id) => self.kick_job(now, id),
            C::Stats => {
                self.count(Op::Stats);
                Reply::Ok(self.server_stats(now))
            }
            C::StatsJob(id) => {
                self.count(Op::StatsJob);
                match self.jobs.get(id) {
                    Some(job) => Reply::Ok(self.job_stats(now, id, job)),
                    None => Reply::NotFound,
                }
            }
            C::StatsTube(name) => {
                self.count(Op::StatsTube);
                match self.tubes.find(&name) {
                    Some(tube) => Reply::Ok(self.tube_stats(now, tube)),
                    None => Reply::NotFound,
                }
            }
            C::ListTubes => {
                self.count(Op::ListTubes);
                Reply::Ok(crate::protocol::yaml::tube_list(self.tubes.iter().map(|t| t.name.as_str())))
            }
            C::ListTubeUsed => {
                self.count(Op::ListTubeUsed);
                Reply::Using(self.tubes[self.session(conn).used].name.clone())
            }
            C::ListTubesWatched => {
                self.count(Op::ListTubesWatched);
                let names = self.session(conn).watched.iter().map(|&t| self.tubes[t].name.as_str());
                Reply::Ok(crate::protocol::yaml::tube_list(names))
            }
            C::PauseTube { tube, delay } => self.pause_tube(now, &tube, delay),
        };
        Some(reply)
    }

    // ----- commands -------------------------------------------------------

    /// The put whose body just arrived, its id assigned when its line was
    /// ([`Engine::begin_put`]).
    pub(super) fn take_pending_put(&mut self, conn: ConnId) -> PendingPut {
        self.session_mut(conn).pending_put.take().expect("a put's body comes after its line (Engine::begin_put)")
    }

    pub(super) fn put(&mut self, now: Nanos, conn: ConnId, new: NewJob<BodyBytes<'_>>) -> Reply {
        let PendingPut { id, line_at } = self.take_pending_put(conn);
        if self.draining {
            return Reply::Draining;
        }
        let tube = self.session(conn).used;
        let delayed = new.delay > 0;
        // beanstalkd raises a TTR of 0 to one second.
        let ttr_secs = new.ttr.max(1);
        let mut job = Job {
            pri: new.pri,
            ttr: RecordTtr::of(ttr_secs),
            // Stored once the log has taken it.
            body: BodyRef::default(),
            created_at: line_at.map_or(now, |at| at.min(now)),
            place: Place::new(tube, if delayed { JobState::Delayed } else { JobState::Ready }),
            journal_tag: JournalTag::default(),
        };
        let extras = JobExtras {
            delay_secs: new.delay,
            deadline: if delayed { now + secs(new.delay) } else { 0 },
            ..JobExtras::default()
        };
        let (tube_name, body) = (&self.tubes[tube].name, new.body.bytes());
        let view = JobView { id, job: &job, ttr: secs(ttr_secs), extras, tube: tube_name, body };
        match self.journal.log_put(view) {
            Some(tag) => job.journal_tag = tag,
            None => return Reply::OutOfMemory,
        }
        job.body = self.bodies.insert_lent(new.body);
        self.jobs.insert(id, job);
        self.long_ttrs.keep(id, ttr_secs);
        // A job put without a delay has no extras: nothing has happened
        // to it yet (the check costs a put less than `set`'s).
        if delayed {
            self.extras.set(id, extras);
        }
        self.counts.total_jobs += 1;
        self.tubes[tube].total_jobs += 1;
        if delayed {
            self.place_delayed(now, id, secs(new.delay));
        } else {
            self.place_ready(now, id);
        }
        Reply::Inserted(id)
    }

    /// `None` when the connection now waits for a job.
    pub(super) fn reserve(&mut self, now: Nanos, conn: ConnId, op: Op, timeout: Option<u32>) -> Option<Reply> {
        self.count(op);
        self.mark_worker(conn);
        // With a job due within a second, beanstalkd answers DEADLINE_SOON at
        // once if no watched tube has a ready job, paused or not; else it
        // waits, and, having no job it may hand out, answers DEADLINE_SOON
        // at its next tick. Either way: a job if one may be handed out, else
        // DEADLINE_SOON, so ready jobs in paused tubes need no look here.
        if let Some(id) = self.best_reservable(conn) {
            let tube = self.jobs[id].tube();
            self.tubes[tube].waiters.narrow.served_at_once();
            return Some(self.hand_out(now, conn, id));
        }
        if self.deadline_soon(conn, now) {
            self.meter_deadline_soon(conn);
            return Some(Reply::DeadlineSoon);
        }
        if timeout == Some(0) {
            return Some(Reply::TimedOut);
        }
        self.begin_wait(now, conn, timeout);
        None
    }

    pub(super) fn reserve_job(&mut self, now: Nanos, conn: ConnId, id: JobId) -> Reply {
        self.count(Op::ReserveJob);
        match self.jobs.get(id) {
            Some(job) if job.state() != JobState::Reserved => {
                // Taking a job out of the buried or delayed state is logged,
                // so that a crash brings it back ready, not buried.
                let was_parked = job.state() != JobState::Ready;
                self.mark_worker(conn);
                let reply = self.hand_out(now, conn, id);
                if was_parked && self.journal.reserve_update() {
                    self.log_update(id);
                }
                reply
            }
            _ => Reply::NotFound,
        }
    }

    pub(super) fn delete(&mut self, now: Nanos, conn: ConnId, id: JobId) -> Reply {
        self.count(Op::Delete);
        let Some(job) = self.jobs.get(id) else { return Reply::NotFound };
        if job.state() == JobState::Reserved && self.extras.holder(id) != conn {
            return Reply::NotFound;
        }
        self.meter_hold_ends(now, id);
        self.unplace(id);
        let job = self.jobs.remove(id).expect("job vanished");
        self.journal.log_delete(id, &job);
        self.long_ttrs.forget(id, job.ttr);
        self.replies.detach(&self.bodies);
        self.bodies.remove(job.body);
        self.extras.forget(id);
        self.tubes[job.tube()].deletes += 1;
        self.drop_tube_if_unused(job.tube());
        Reply::Deleted
    }

    pub(super) fn release(&mut self, now: Nanos, conn: ConnId, id: JobId, pri: u32, delay: u32) -> Reply {
        self.count(Op::Release);
        if !self.is_reserved_by(id, conn) {
            return Reply::NotFound;
        }
        if !self.journal.reserve_update() {
            return Reply::OutOfMemory;
        }
        self.meter_hold_ends(now, id);
        self.unplace(id);
        self.job_mut(id).pri = pri;
        {
            let mut extras = self.extras.get_mut(id);
            extras.delay_secs = delay;
            extras.counts.releases += 1;
        }
        // Logged before placing: placing a ready job may hand it straight to
        // a waiting worker, and the log must say "ready", not "reserved".
        if delay > 0 {
            self.place_delayed(now, id, secs(delay));
            self.log_update(id);
        } else {
            self.job_mut(id).set_state(JobState::Ready);
            self.log_update(id);
            self.place_ready(now, id);
        }
        Reply::Released
    }

    pub(super) fn bury(&mut self, now: Nanos, conn: ConnId, id: JobId, pri: u32) -> Reply {
        self.count(Op::Bury);
        if !self.is_reserved_by(id, conn) {
            return Reply::NotFound;
        }
        if !self.journal.reserve_update() {
            return Reply::InternalError;
        }
        self.meter_hold_ends(now, id);
        self.unplace(id);
        self.job_mut(id).pri = pri;
        self.extras.get_mut(id).counts.buries += 1;
        self.place_buried(id, now);
        self.log_update(id);
        Reply::Buried
    }

    pub(super) fn touch(&mut self, now: Nanos, conn: ConnId, id: JobId) -> Reply {
        self.count(Op::Touch);
        if !self.is_reserved_by(id, conn) {
            return Reply::NotFound;
        }
        let reserved_at = self.meter_before_touch(id);
        self.unplace(id);
        self.place_reserved(now, id, conn, false);
        self.meter_touched(id, reserved_at);
        Reply::Touched
    }

    pub(super) fn use_tube(&mut self, conn: ConnId, name: &TubeName) -> Reply {
        self.count(Op::Use);
        let tube = self.tube_named(name);
        let old = std::mem::replace(&mut self.session_mut(conn).used, tube);
        self.tubes[tube].using += 1;
        self.tubes[old].using -= 1;
        self.drop_tube_if_unused(old);
        Reply::Using(name.clone())
    }

    pub(super) fn watch(&mut self, conn: ConnId, name: &TubeName) -> Reply {
        self.count(Op::Watch);
        let tube = self.tube_named(name);
        self.start_watching(conn, tube);
        Reply::Watching(self.session(conn).watched.len())
    }

    pub(super) fn ignore(&mut self, conn: ConnId, name: &TubeName) -> Reply {
        self.count(Op::Ignore);
        let watched = &self.session(conn).watched;
        let Some(tube) = self.tubes.find(name).filter(|&t| watched.contains(t)) else {
            return Reply::Watching(watched.len());
        };
        if watched.len() < 2 {
            return Reply::NotIgnored;
        }
        self.stop_watching(conn, tube);
        Reply::Watching(self.session(conn).watched.len())
    }

    pub(super) fn found(&self, id: Option<JobId>) -> Reply {
        match id.map(|id| (id, &self.jobs[id])) {
            Some((id, job)) => Reply::Found { id, body: ReplyBody::Stored(job.body) },
            None => Reply::NotFound,
        }
    }

    /// Kicks buried jobs of the used tube, oldest first, or if it has none,
    /// delayed jobs, soonest first; never both.
    pub(super) fn kick(&mut self, now: Nanos, conn: ConnId, bound: u32) -> Reply {
        self.count(Op::Kick);
        let tube = self.session(conn).used;
        let from_buried = !self.tubes[tube].buried.is_empty();
        let mut kicked = 0;
        while kicked < bound {
            let t = &self.tubes[tube];
            let next = if from_buried { t.buried.first() } else { t.delayed.first().map(|&(_, id)| id) };
            let Some(id) = next else { break };
            if !self.kick_one(now, id) {
                break;
            }
            kicked += 1;
        }
        Reply::Kicked(kicked)
    }

    pub(super) fn kick_job(&mut self, now: Nanos, id: JobId) -> Reply {
        self.count(Op::KickJob);
        match self.jobs.get(id).map(|job| job.state()) {
            Some(JobState::Buried | JobState::Delayed) if self.kick_one(now, id) => Reply::KickedOne,
            _ => Reply::NotFound,
        }
    }

    /// `false` if the kick could not be logged (disk full).
    pub(super) fn kick_one(&mut self, now: Nanos, id: JobId) -> bool {
        if !self.journal.reserve_update() {
            return false;
        }
        self.unplace(id);
        self.extras.get_mut(id).counts.kicks += 1;
        self.job_mut(id).set_state(JobState::Ready);
        self.log_update(id);
        self.place_ready(now, id);
        true
    }

    pub(super) fn pause_tube(&mut self, now: Nanos, name: &TubeName, delay: u32) -> Reply {
        self.count(Op::PauseTube);
        let Some(tube) = self.tubes.find(name) else { return Reply::NotFound };
        // A zero pause still pauses, for a nanosecond, as in beanstalkd.
        let duration = secs(delay).max(1);
        if let Some(old) = self.tubes[tube].pause {
            self.timers.remove(old.until, Timer::Unpause(tube));
        }
        let until = now + duration;
        self.tubes.set_pause(tube, Some(tubes::Pause { duration, until }));
        self.tubes[tube].pauses += 1;
        self.timers.insert(until, Timer::Unpause(tube));
        Reply::Paused
    }
}
