//! The queue engine: the only owner of jobs, tubes and reservations.
//!
//! It is pure: no sockets, no clock, no files. The server feeds it commands
//! with the current time ([`Engine::apply`]), lets it act on the passage of
//! time ([`Engine::tick`], at [`Engine::next_deadline`]), and collects the
//! replies it produced ([`Engine::take_replies`]), which may be addressed to
//! other connections than the one that sent the command (a `put` can complete
//! another client's waiting `reserve`).
//!
//! Invariant that makes reservation cheap: a tube that is not paused never has
//! both ready jobs and waiting connections. Whenever a job becomes ready, or a
//! tube resumes, waiters are served on the spot, earliest first. So a waiter
//! woken by tube T has no ready job in any other tube it watches, and T's best
//! job is the best job it could get.

mod job;
mod jobs;
mod journal;
mod session;
mod stats;
mod time;
mod timers;
mod tubes;

pub use job::{Job, JobCounts, JobId, JobState};
pub use journal::{Journal, JournalStats, JournalTag, NoJournal};
pub use stats::HostInfo;
pub use time::{Nanos, SECOND, secs};

use crate::protocol::command::NewJob;
use crate::protocol::{Command, Op, Reply, TubeName};
use jobs::JobTable;
use session::{PendingPut, Session, Wait};
use timers::{Timer, Timers};
use tubes::{TubeId, Tubes, URGENT_PRIORITY};

/// The server's handle for a client connection (its slab key).
pub type ConnId = usize;

/// Settings the engine needs from the command line and the host.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// `-z`: the largest body a put may carry.
    pub max_job_size: u32,
    /// `-s`, reported by stats as `binlog-max-size`.
    pub binlog_max_size: u64,
    pub host: HostInfo,
}

/// Counters behind `stats`.
#[derive(Debug, Default)]
struct Counts {
    ready: u64,
    urgent: u64,
    reserved: u64,
    delayed: u64,
    buried: u64,
    ops: [u64; Op::COUNT],
    job_timeouts: u64,
    total_jobs: u64,
    connections: u64,
    total_connections: u64,
    producers: u64,
    workers: u64,
    waiting: u64,
}

/// A job read back from the write-ahead log at startup.
#[derive(Clone, Debug)]
pub struct RestoredJob {
    pub id: JobId,
    pub tube: TubeName,
    pub pri: u32,
    pub delay: Nanos,
    pub ttr: Nanos,
    pub created_at: Nanos,
    /// Ready, delayed or buried (reserved jobs come back ready).
    pub state: JobState,
    /// For a delayed job, when it becomes ready.
    pub ready_at: Nanos,
    pub counts: JobCounts,
    pub body: std::rc::Rc<[u8]>,
    pub journal_tag: JournalTag,
}

pub struct Engine<J: Journal = NoJournal> {
    config: EngineConfig,
    journal: J,
    started_at: Nanos,
    jobs: JobTable,
    tubes: Tubes,
    /// Indexed by connection id; `None` for ids not connected.
    sessions: Vec<Option<Session>>,
    timers: Timers,
    next_job_id: JobId,
    next_wait_seq: u64,
    /// Burial times are kept strictly increasing, so burial order survives
    /// a restart even for jobs buried within the same nanosecond.
    last_buried_at: Nanos,
    counts: Counts,
    draining: bool,
    replies: Vec<(ConnId, Reply)>,
}

impl Engine<NoJournal> {
    /// An engine that keeps nothing on disk.
    pub fn new(config: EngineConfig, now: Nanos) -> Engine {
        Engine::with_journal(config, now, NoJournal)
    }
}

impl<J: Journal> Engine<J> {
    /// An engine that logs every change to `journal`. `now` is the time the
    /// server started, for `uptime`.
    pub fn with_journal(config: EngineConfig, now: Nanos, journal: J) -> Engine<J> {
        Engine {
            config,
            journal,
            started_at: now,
            jobs: JobTable::default(),
            tubes: Tubes::new(),
            sessions: Vec::new(),
            timers: Timers::default(),
            next_job_id: 1,
            next_wait_seq: 0,
            last_buried_at: 0,
            counts: Counts::default(),
            draining: false,
            replies: Vec::new(),
        }
    }

    pub fn journal(&self) -> &J {
        &self.journal
    }

    pub fn journal_mut(&mut self) -> &mut J {
        &mut self.journal
    }

    /// Puts a job recovered from the log back in its state. Buried jobs must
    /// be restored in the order they were buried.
    pub fn restore(&mut self, now: Nanos, restored: RestoredJob) {
        let tube = self.tubes.get_or_create(&restored.tube);
        self.restore_into(now, restored, tube);
    }

    fn restore_into(&mut self, now: Nanos, restored: RestoredJob, tube: TubeId) {
        let id = restored.id;
        let job = Job {
            id,
            tube,
            pri: restored.pri,
            delay: restored.delay,
            ttr: restored.ttr,
            body: restored.body,
            created_at: restored.created_at,
            state: JobState::Ready,
            deadline: 0,
            reserver: None,
            counts: restored.counts,
            journal_tag: restored.journal_tag,
        };
        self.jobs.insert(id, job);
        self.next_job_id = self.next_job_id.max(id + 1);
        match restored.state {
            JobState::Delayed if restored.ready_at > now => {
                self.place_delayed(now, id, restored.ready_at - now);
            }
            JobState::Buried => self.place_buried(id, restored.ready_at),
            _ => self.place_ready(now, id),
        }
    }

    /// Restores many jobs at once (recovery), sizing tables once.
    pub fn restore_all(&mut self, now: Nanos, jobs: Vec<RestoredJob>) {
        self.jobs.reserve(jobs.len());
        let mut last_tube: Option<(TubeName, TubeId)> = None;
        for job in jobs {
            // Jobs mostly come in runs of one tube: skip the name lookup.
            let tube = match &last_tube {
                Some((name, id)) if *name == job.tube => *id,
                _ => {
                    let id = self.tubes.get_or_create(&job.tube);
                    last_tube = Some((job.tube.clone(), id));
                    id
                }
            };
            self.restore_into(now, job, tube);
        }
    }

    /// Ids handed out from now on are at least `next`.
    pub fn raise_next_job_id(&mut self, next: JobId) {
        self.next_job_id = self.next_job_id.max(next);
    }

    pub fn next_job_id(&self) -> JobId {
        self.next_job_id
    }

    /// Lets the journal rewrite jobs it wants moved forward (compaction).
    pub fn maintain_journal(&mut self) {
        for id in self.journal.jobs_to_migrate() {
            let Some(job) = self.jobs.get(&id) else { continue };
            if let Some(tag) = self.journal.log_migration(job, &self.tubes[job.tube].name) {
                self.job_mut(id).journal_tag = tag;
            }
        }
    }

    /// Replies produced since the last call, in the order they were made.
    pub fn take_replies(&mut self) -> std::vec::Drain<'_, (ConnId, Reply)> {
        self.replies.drain(..)
    }

    /// Drain mode (SIGUSR1): puts are refused with `DRAINING` from now on.
    pub fn set_draining(&mut self) {
        self.draining = true;
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// When [`Engine::tick`] next has work to do.
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.timers.next()
    }

    /// True while the connection is blocked in a reserve; the server must not
    /// feed it further commands until a reply for it comes out.
    pub fn is_waiting(&self, conn: ConnId) -> bool {
        self.sessions.get(conn).and_then(Option::as_ref).is_some_and(|s| s.wait.is_some())
    }

    /// A new client connection, using and watching `default`.
    pub fn connect(&mut self, conn: ConnId) {
        if self.sessions.len() <= conn {
            self.sessions.resize_with(conn + 1, || None);
        }
        assert!(self.sessions[conn].is_none(), "connection {conn} connected twice");
        let default = self.tubes.default_tube();
        self.tubes[default].using += 1;
        self.tubes[default].watching += 1;
        self.sessions[conn] = Some(Session::new(default));
        self.counts.connections += 1;
        self.counts.total_connections += 1;
    }

    /// The client hung up: its reserved jobs go back to ready (without
    /// counting a timeout, as beanstalkd does) and its tubes may vanish.
    pub fn disconnect(&mut self, now: Nanos, conn: ConnId) {
        if self.is_waiting(conn) {
            self.end_wait(conn);
        }
        let reserved: Vec<JobId> = self.session(conn).reserved.iter().map(|&(_, id)| id).collect();
        for id in reserved {
            self.unplace(id);
            self.place_ready(now, id);
        }
        let session = self.sessions[conn].take().expect("disconnect of an unknown connection");
        for tube in session.watched {
            self.tubes[tube].watching -= 1;
            self.drop_tube_if_unused(tube);
        }
        self.tubes[session.used].using -= 1;
        self.drop_tube_if_unused(session.used);
        self.counts.connections -= 1;
        self.counts.producers -= u64::from(session.is_producer);
        self.counts.workers -= u64::from(session.is_worker);
    }

    /// The client shut down its sending side: a waiting reserve gives up
    /// with `TIMED_OUT`, as in beanstalkd.
    pub fn hang_up(&mut self, conn: ConnId) {
        if self.is_waiting(conn) {
            self.end_wait(conn);
            self.replies.push((conn, Reply::TimedOut));
        }
    }

    /// Acts on every timer due at `now`: delayed jobs become ready, TTRs run
    /// out, pauses end, waiting reserves time out.
    pub fn tick(&mut self, now: Nanos) {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::DelayEnds(id) => {
                    self.unplace(id);
                    self.place_ready(now, id);
                }
                Timer::TtrEnds(id) => {
                    self.unplace(id);
                    self.counts.job_timeouts += 1;
                    self.job_mut(id).counts.timeouts += 1;
                    self.place_ready(now, id);
                }
                Timer::Unpause(tube) => {
                    self.tubes[tube].pause = None;
                    self.serve_waiters(now, tube);
                }
                Timer::ReserveTimeout(conn) => {
                    self.end_wait(conn);
                    self.replies.push((conn, Reply::TimedOut));
                }
                Timer::DeadlineSoon(conn) => {
                    self.end_wait(conn);
                    self.replies.push((conn, Reply::DeadlineSoon));
                }
            }
        }
    }

    /// Carries out one command from `conn`. Its reply, if it has one yet,
    /// and any replies to other connections it caused, go to the outbox.
    pub fn apply(&mut self, now: Nanos, conn: ConnId, command: Command) {
        if let Some(reply) = self.execute(now, conn, command) {
            self.replies.push((conn, reply));
        }
    }

    fn execute(&mut self, now: Nanos, conn: ConnId, command: Command) -> Option<Reply> {
        use Command as C;
        let reply = match command {
            C::PutHeader { too_big } => {
                self.start_put(conn, too_big);
                return None;
            }
            C::Put(job) => self.put(now, conn, job),
            C::PutWithoutCrlf => {
                self.take_pending_put(conn);
                Reply::ExpectedCrlf
            }
            C::PutTooBig => {
                if self.session_mut(conn).pending_put.take().is_none() {
                    self.count(Op::Put);
                }
                Reply::JobTooBig
            }
            C::CountedBadFormat(op) => {
                self.count(op);
                Reply::BadFormat
            }
            C::Reserve => return self.reserve(now, conn, Op::Reserve, None),
            C::ReserveWithTimeout(timeout) => return self.reserve(now, conn, Op::ReserveWithTimeout, timeout),
            C::ReserveJob(id) => self.reserve_job(now, conn, id),
            C::Delete(id) => self.delete(conn, id),
            C::Release { id, pri, delay } => self.release(now, conn, id, pri, delay),
            C::Bury { id, pri } => self.bury(now, conn, id, pri),
            C::Touch(id) => self.touch(now, conn, id),
            C::Use(name) => self.use_tube(conn, &name),
            C::Watch(name) => self.watch(conn, &name),
            C::Ignore(name) => self.ignore(conn, &name),
            C::Peek(id) => {
                self.count(Op::Peek);
                self.found(self.jobs.get(&id).map(|job| job.id))
            }
            C::PeekReady => {
                self.count(Op::PeekReady);
                let tube = &self.tubes[self.session(conn).used];
                self.found(tube.ready.first().map(|&(_, id)| id))
            }
            C::PeekDelayed => {
                self.count(Op::PeekDelayed);
                let tube = &self.tubes[self.session(conn).used];
                self.found(tube.delayed.first().map(|&(_, id)| id))
            }
            C::PeekBuried => {
                self.count(Op::PeekBuried);
                let tube = &self.tubes[self.session(conn).used];
                self.found(tube.buried.first().map(|&(_, id)| id))
            }
            C::Kick(bound) => self.kick(now, conn, bound),
            C::KickJob(id) => self.kick_job(now, id),
            C::Stats => {
                self.count(Op::Stats);
                Reply::Ok(self.server_stats(now))
            }
            C::StatsJob(id) => {
                self.count(Op::StatsJob);
                match self.jobs.get(&id) {
                    Some(job) => Reply::Ok(self.job_stats(now, job)),
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

    /// A put line was accepted: beanstalkd counts it, marks a producer and
    /// assigns the id now, before the body arrives, and stats show it.
    fn start_put(&mut self, conn: ConnId, too_big: bool) {
        self.count(Op::Put);
        let pending = if too_big {
            PendingPut::TooBig
        } else {
            self.mark_producer(conn);
            let id = self.next_job_id;
            self.next_job_id += 1;
            PendingPut::Job(id)
        };
        self.session_mut(conn).pending_put = Some(pending);
    }

    /// The id of the put whose body just arrived. A put without a header
    /// (engine tests) is started here.
    fn take_pending_put(&mut self, conn: ConnId) -> JobId {
        if !matches!(self.session(conn).pending_put, Some(PendingPut::Job(_))) {
            self.start_put(conn, false);
        }
        match self.session_mut(conn).pending_put.take() {
            Some(PendingPut::Job(id)) => id,
            _ => unreachable!("a put was just started"),
        }
    }

    fn put(&mut self, now: Nanos, conn: ConnId, new: NewJob) -> Reply {
        let id = self.take_pending_put(conn);
        if self.draining {
            return Reply::Draining;
        }
        let tube = self.session(conn).used;
        let delayed = new.delay > 0;
        let mut job = Job {
            id,
            tube,
            pri: new.pri,
            delay: secs(new.delay),
            // beanstalkd raises a TTR of 0 to one second.
            ttr: secs(new.ttr.max(1)),
            body: new.body,
            created_at: now,
            state: if delayed { JobState::Delayed } else { JobState::Ready },
            deadline: if delayed { now + secs(new.delay) } else { 0 },
            reserver: None,
            counts: JobCounts::default(),
            journal_tag: JournalTag::default(),
        };
        match self.journal.log_put(&job, &self.tubes[tube].name) {
            Some(tag) => job.journal_tag = tag,
            None => return Reply::OutOfMemory,
        }
        self.jobs.insert(id, job);
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
    fn reserve(&mut self, now: Nanos, conn: ConnId, op: Op, timeout: Option<u32>) -> Option<Reply> {
        self.count(op);
        self.mark_worker(conn);
        // beanstalkd answers DEADLINE_SOON at once only when no watched tube
        // has a ready job, paused or not.
        let any_ready = self.session(conn).watched.iter().any(|&t| !self.tubes[t].ready.is_empty());
        if self.session(conn).deadline_soon(now) && !any_ready {
            return Some(Reply::DeadlineSoon);
        }
        if let Some(id) = self.best_reservable(conn) {
            return Some(self.hand_out(now, conn, id));
        }
        if self.session(conn).deadline_soon(now) {
            return Some(Reply::DeadlineSoon);
        }
        if timeout == Some(0) {
            return Some(Reply::TimedOut);
        }
        self.begin_wait(now, conn, timeout);
        None
    }

    fn reserve_job(&mut self, now: Nanos, conn: ConnId, id: JobId) -> Reply {
        self.count(Op::ReserveJob);
        match self.jobs.get(&id) {
            Some(job) if job.state != JobState::Reserved => {
                // Taking a job out of the buried or delayed state is logged,
                // so that a crash brings it back ready, not buried.
                let was_parked = job.state != JobState::Ready;
                self.mark_worker(conn);
                let reply = self.hand_out(now, conn, id);
                if was_parked && self.journal.reserve_update() {
                    self.journal.log_update(&self.jobs[&id]);
                }
                reply
            }
            _ => Reply::NotFound,
        }
    }

    fn delete(&mut self, conn: ConnId, id: JobId) -> Reply {
        self.count(Op::Delete);
        let Some(job) = self.jobs.get(&id) else { return Reply::NotFound };
        if job.state == JobState::Reserved && job.reserver != Some(conn) {
            return Reply::NotFound;
        }
        self.unplace(id);
        self.journal.log_delete(&self.jobs[&id]);
        let job = self.jobs.remove(&id).expect("job vanished");
        self.tubes[job.tube].deletes += 1;
        self.drop_tube_if_unused(job.tube);
        Reply::Deleted
    }

    fn release(&mut self, now: Nanos, conn: ConnId, id: JobId, pri: u32, delay: u32) -> Reply {
        self.count(Op::Release);
        if !self.is_reserved_by(id, conn) {
            return Reply::NotFound;
        }
        if !self.journal.reserve_update() {
            return Reply::OutOfMemory;
        }
        self.unplace(id);
        let job = self.job_mut(id);
        job.pri = pri;
        job.delay = secs(delay);
        job.counts.releases += 1;
        // Logged before placing: placing a ready job may hand it straight to
        // a waiting worker, and the log must say "ready", not "reserved".
        if delay > 0 {
            self.place_delayed(now, id, secs(delay));
            self.journal.log_update(&self.jobs[&id]);
        } else {
            self.job_mut(id).state = JobState::Ready;
            self.journal.log_update(&self.jobs[&id]);
            self.place_ready(now, id);
        }
        Reply::Released
    }

    fn bury(&mut self, now: Nanos, conn: ConnId, id: JobId, pri: u32) -> Reply {
        self.count(Op::Bury);
        if !self.is_reserved_by(id, conn) {
            return Reply::NotFound;
        }
        if !self.journal.reserve_update() {
            return Reply::InternalError;
        }
        self.unplace(id);
        let job = self.job_mut(id);
        job.pri = pri;
        job.counts.buries += 1;
        self.place_buried(id, now);
        self.journal.log_update(&self.jobs[&id]);
        Reply::Buried
    }

    fn touch(&mut self, now: Nanos, conn: ConnId, id: JobId) -> Reply {
        self.count(Op::Touch);
        if !self.is_reserved_by(id, conn) {
            return Reply::NotFound;
        }
        self.unplace(id);
        self.place_reserved(now, id, conn);
        Reply::Touched
    }

    fn use_tube(&mut self, conn: ConnId, name: &TubeName) -> Reply {
        self.count(Op::Use);
        let tube = self.tubes.get_or_create(name);
        let old = std::mem::replace(&mut self.session_mut(conn).used, tube);
        self.tubes[tube].using += 1;
        self.tubes[old].using -= 1;
        self.drop_tube_if_unused(old);
        Reply::Using(name.clone())
    }

    fn watch(&mut self, conn: ConnId, name: &TubeName) -> Reply {
        self.count(Op::Watch);
        let tube = self.tubes.get_or_create(name);
        if !self.session(conn).watched.contains(&tube) {
            self.session_mut(conn).watched.push(tube);
            self.tubes[tube].watching += 1;
        }
        Reply::Watching(self.session(conn).watched.len())
    }

    fn ignore(&mut self, conn: ConnId, name: &TubeName) -> Reply {
        self.count(Op::Ignore);
        let tube = self.tubes.find(name);
        let watched = &self.session(conn).watched;
        let Some(pos) = watched.iter().position(|&t| Some(t) == tube) else {
            return Reply::Watching(watched.len());
        };
        if watched.len() < 2 {
            return Reply::NotIgnored;
        }
        let tube = self.session_mut(conn).watched.swap_remove(pos);
        self.tubes[tube].watching -= 1;
        self.drop_tube_if_unused(tube);
        Reply::Watching(self.session(conn).watched.len())
    }

    fn found(&self, id: Option<JobId>) -> Reply {
        match id.map(|id| &self.jobs[&id]) {
            Some(job) => Reply::Found { id: job.id, body: job.body.clone() },
            None => Reply::NotFound,
        }
    }

    /// Kicks buried jobs of the used tube, oldest first, or if it has none,
    /// delayed jobs, soonest first; never both.
    fn kick(&mut self, now: Nanos, conn: ConnId, bound: u32) -> Reply {
        self.count(Op::Kick);
        let tube = self.session(conn).used;
        let from_buried = !self.tubes[tube].buried.is_empty();
        let mut kicked = 0;
        while kicked < bound {
            let t = &self.tubes[tube];
            let next =
                if from_buried { t.buried.first().map(|&(_, id)| id) } else { t.delayed.first().map(|&(_, id)| id) };
            let Some(id) = next else { break };
            if !self.kick_one(now, id) {
                break;
            }
            kicked += 1;
        }
        Reply::Kicked(kicked)
    }

    fn kick_job(&mut self, now: Nanos, id: JobId) -> Reply {
        self.count(Op::KickJob);
        match self.jobs.get(&id).map(|job| job.state) {
            Some(JobState::Buried | JobState::Delayed) if self.kick_one(now, id) => Reply::KickedOne,
            _ => Reply::NotFound,
        }
    }

    /// `false` if the kick could not be logged (disk full).
    fn kick_one(&mut self, now: Nanos, id: JobId) -> bool {
        if !self.journal.reserve_update() {
            return false;
        }
        self.unplace(id);
        let job = self.job_mut(id);
        job.counts.kicks += 1;
        job.state = JobState::Ready;
        self.journal.log_update(&self.jobs[&id]);
        self.place_ready(now, id);
        true
    }

    fn pause_tube(&mut self, now: Nanos, name: &TubeName, delay: u32) -> Reply {
        self.count(Op::PauseTube);
        let Some(tube) = self.tubes.find(name) else { return Reply::NotFound };
        // A zero pause still pauses, for a nanosecond, as in beanstalkd.
        let duration = secs(delay).max(1);
        if let Some(old) = self.tubes[tube].pause {
            self.timers.remove(old.until, Timer::Unpause(tube));
        }
        let until = now + duration;
        self.tubes[tube].pause = Some(tubes::Pause { duration, until });
        self.tubes[tube].pauses += 1;
        self.timers.insert(until, Timer::Unpause(tube));
        Reply::Paused
    }

    // ----- job placement ------------------------------------------------------
    //
    // Every state change is `unplace` followed by one `place_*`, so the
    // counters and timers that go with each state are kept in one place.

    /// Takes the job out of the structure its state puts it in, with the
    /// counters and timer that go with it.
    fn unplace(&mut self, id: JobId) {
        let job = &self.jobs[&id];
        let (tube, state, deadline, pri) = (job.tube, job.state, job.deadline, job.pri);
        match state {
            JobState::Ready => {
                self.tubes[tube].ready.remove(&(pri, id));
                self.counts.ready -= 1;
                if pri < URGENT_PRIORITY {
                    self.counts.urgent -= 1;
                    self.tubes[tube].urgent -= 1;
                }
            }
            JobState::Delayed => {
                self.tubes[tube].delayed.remove(&(deadline, id));
                self.timers.remove(deadline, Timer::DelayEnds(id));
                self.counts.delayed -= 1;
            }
            JobState::Buried => {
                self.tubes[tube].buried.remove(&(deadline, id));
                self.counts.buried -= 1;
            }
            JobState::Reserved => {
                let conn = self.jobs[&id].reserver.expect("reserved job without reserver");
                self.job_mut(id).reserver = None;
                self.session_mut(conn).reserved.remove(&(deadline, id));
                self.timers.remove(deadline, Timer::TtrEnds(id));
                self.tubes[tube].reserved -= 1;
                self.counts.reserved -= 1;
            }
        }
    }

    /// Makes the job ready and hands it to a waiting connection if any.
    fn place_ready(&mut self, now: Nanos, id: JobId) {
        let job = self.job_mut(id);
        job.state = JobState::Ready;
        let (tube, pri) = (job.tube, job.pri);
        self.tubes[tube].ready.insert((pri, id));
        self.counts.ready += 1;
        if pri < URGENT_PRIORITY {
            self.counts.urgent += 1;
            self.tubes[tube].urgent += 1;
        }
        self.serve_waiters(now, tube);
    }

    fn place_delayed(&mut self, now: Nanos, id: JobId, delay: Nanos) {
        let deadline = now + delay;
        let job = self.job_mut(id);
        job.state = JobState::Delayed;
        job.deadline = deadline;
        let tube = job.tube;
        self.tubes[tube].delayed.insert((deadline, id));
        self.timers.insert(deadline, Timer::DelayEnds(id));
        self.counts.delayed += 1;
    }

    /// The burial time, kept strictly increasing, orders the tube's buried
    /// FIFO; it is kept in the job's deadline and logged, so that a restart
    /// brings buried jobs back in the order they were buried.
    fn place_buried(&mut self, id: JobId, buried_at: Nanos) {
        let buried_at = buried_at.max(self.last_buried_at + 1);
        self.last_buried_at = buried_at;
        let job = self.job_mut(id);
        job.state = JobState::Buried;
        job.deadline = buried_at;
        let tube = job.tube;
        self.tubes[tube].buried.insert((buried_at, id));
        self.counts.buried += 1;
    }

    fn place_reserved(&mut self, now: Nanos, id: JobId, conn: ConnId) {
        let job = self.job_mut(id);
        let deadline = now + job.ttr;
        job.state = JobState::Reserved;
        job.deadline = deadline;
        job.reserver = Some(conn);
        let tube = job.tube;
        self.session_mut(conn).reserved.insert((deadline, id));
        self.timers.insert(deadline, Timer::TtrEnds(id));
        self.tubes[tube].reserved += 1;
        self.counts.reserved += 1;
    }

    /// Reserves a job that is not reserved yet for `conn`, and makes the
    /// reply carrying it.
    fn hand_out(&mut self, now: Nanos, conn: ConnId, id: JobId) -> Reply {
        self.unplace(id);
        self.place_reserved(now, id, conn);
        let job = self.job_mut(id);
        job.counts.reserves += 1;
        Reply::Reserved { id, body: job.body.clone() }
    }

    // ----- waiting reserves ---------------------------------------------------

    /// The best ready job in the unpaused tubes `conn` watches.
    fn best_reservable(&self, conn: ConnId) -> Option<JobId> {
        let session = self.session(conn);
        session.watched.iter().filter_map(|&t| self.tubes[t].reservable()).min().map(|(_, id)| id)
    }

    fn begin_wait(&mut self, now: Nanos, conn: ConnId, timeout: Option<u32>) {
        let seq = self.next_wait_seq;
        self.next_wait_seq += 1;
        let timeout_at = timeout.map(|t| now + secs(t));
        let deadline_soon_at = self.session(conn).soonest_deadline().map(|d| d.saturating_sub(SECOND));
        for &tube in &self.sessions[conn].as_ref().expect("unknown connection").watched {
            self.tubes[tube].waiters.insert((seq, conn));
        }
        if let Some(at) = timeout_at {
            self.timers.insert(at, Timer::ReserveTimeout(conn));
        }
        if let Some(at) = deadline_soon_at {
            self.timers.insert(at, Timer::DeadlineSoon(conn));
        }
        self.session_mut(conn).wait = Some(Wait { seq, timeout_at, deadline_soon_at });
        self.counts.waiting += 1;
    }

    fn end_wait(&mut self, conn: ConnId) {
        let Some(wait) = self.session_mut(conn).wait.take() else { return };
        for &tube in &self.sessions[conn].as_ref().expect("unknown connection").watched {
            self.tubes[tube].waiters.remove(&(wait.seq, conn));
        }
        if let Some(at) = wait.timeout_at {
            self.timers.remove(at, Timer::ReserveTimeout(conn));
        }
        if let Some(at) = wait.deadline_soon_at {
            self.timers.remove(at, Timer::DeadlineSoon(conn));
        }
        self.counts.waiting -= 1;
    }

    /// Hands the tube's ready jobs to its waiters, earliest waiter first.
    fn serve_waiters(&mut self, now: Nanos, tube: TubeId) {
        loop {
            let t = &self.tubes[tube];
            let (Some(&(_, conn)), Some((_, id))) = (t.waiters.first(), t.reservable()) else { return };
            self.end_wait(conn);
            let reply = self.hand_out(now, conn, id);
            self.replies.push((conn, reply));
        }
    }

    // ----- helpers --------------------------------------------------------------

    fn count(&mut self, op: Op) {
        self.counts.ops[op as usize] += 1;
    }

    fn mark_producer(&mut self, conn: ConnId) {
        let session = self.session_mut(conn);
        if !std::mem::replace(&mut session.is_producer, true) {
            self.counts.producers += 1;
        }
    }

    fn mark_worker(&mut self, conn: ConnId) {
        let session = self.session_mut(conn);
        if !std::mem::replace(&mut session.is_worker, true) {
            self.counts.workers += 1;
        }
    }

    fn is_reserved_by(&self, id: JobId, conn: ConnId) -> bool {
        self.jobs.get(&id).is_some_and(|job| job.state == JobState::Reserved && job.reserver == Some(conn))
    }

    fn drop_tube_if_unused(&mut self, tube: TubeId) {
        if let Some(Some(pause)) = self.tubes.drop_if_unused(tube) {
            self.timers.remove(pause.until, Timer::Unpause(tube));
        }
    }

    fn session(&self, conn: ConnId) -> &Session {
        self.sessions[conn].as_ref().expect("unknown connection")
    }

    fn session_mut(&mut self, conn: ConnId) -> &mut Session {
        self.sessions[conn].as_mut().expect("unknown connection")
    }

    fn job_mut(&mut self, id: JobId) -> &mut Job {
        self.jobs.get_mut(&id).expect("unknown job")
    }
}

#[cfg(test)]
mod tests;
