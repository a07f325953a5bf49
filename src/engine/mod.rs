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
//! both ready jobs and a waiting connection that watches it. Whenever a job
//! becomes ready, or a tube resumes, waiters are served on the spot, earliest
//! first. So a waiter woken by tube T has no ready job in any other tube it
//! watches, and T's best job is the best job it could get; a put looks at one
//! tube, never at all the tubes its waiters watch.
//!
//! A put or a reserve costs O(log n) however many tubes a worker watches and
//! however many connections wait (waiting.rs gives the bounds when workers
//! watch many tubes but not the same ones):
//!
//! - A reserve with a job at hand takes the first entry of the heads index
//!   (heads.rs: every unpaused tube's best ready job, in order) whose tube the
//!   connection watches; watch lists answer "watches T?" in O(1)
//!   (watchlist.rs). A worker that watches all 10,000 tubes pays O(log n).
//! - A reserve that must wait registers with each watched tube if it watches
//!   a few, or else in one engine-wide queue (waiting.rs): O(log n) to start
//!   or end a wait however many tubes it watches.
//! - A job that becomes ready finds the tube's earliest waiter in O(log n),
//!   be it one of 10,000 waiting on that tube or a worker watching them all.

mod bodies;
mod commands;
mod extras;
mod heads;
mod ids;
mod job;
mod journal;
mod placement;
mod ready;
mod restore;
mod session;
mod stats;
mod table;
mod time;
mod timers;
mod tubes;
mod waiters;
mod waiting;
mod watching;
mod watchlist;

pub use bodies::{Bodies, BodyRef};
pub use extras::{JobCounts, JobExtras};
pub use ids::{ConnId, JobId};
pub use job::{Job, JobState, JournalTag, Place};
pub use journal::{JobView, Journal, JournalStats, NoJournal};
pub use restore::RestoredJob;
pub use time::{Nanos, SECOND, secs, whole_secs};

use std::collections::BTreeSet;

use crate::host::HostInfo;
use crate::protocol::{Command, Op, Reply};
use extras::Extras;
use ids::TubeId;
use session::Session;
use table::IdTable;
use timers::{Timer, Timers};
use tubes::Tubes;

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

pub struct Engine<J: Journal = NoJournal> {
    config: EngineConfig,
    journal: J,
    started_at: Nanos,
    jobs: IdTable<Job>,
    bodies: Bodies,
    extras: Extras,
    tubes: Tubes,
    /// Indexed by connection id; `None` for ids not connected.
    sessions: Vec<Option<Session>>,
    timers: Timers,
    next_job_id: JobId,
    next_wait_seq: u64,
    /// Waiting connections that watch many tubes, by (arrival, connection);
    /// the others wait in their tubes (waiting.rs).
    broad_waiters: BTreeSet<(u64, ConnId)>,
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
            jobs: IdTable::default(),
            bodies: Bodies::default(),
            extras: Extras::default(),
            tubes: Tubes::new(),
            sessions: Vec::new(),
            timers: Timers::default(),
            next_job_id: 1,
            next_wait_seq: 0,
            broad_waiters: BTreeSet::new(),
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

    /// Lets the journal rewrite jobs it wants moved forward (compaction).
    pub fn maintain_journal(&mut self) {
        for id in self.journal.jobs_to_migrate() {
            if !self.jobs.contains(id) {
                continue;
            }
            if let Some(tag) = self.journal_sees(id, |journal, job| journal.log_migration(job)) {
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

    /// Bytes the engine has freed in bulk so far (the pages of body size
    /// classes that emptied): what a drain gives back, which the allocator
    /// keeps until asked to return it.
    pub fn bulk_freed(&self) -> u64 {
        self.bodies.pages_freed()
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
        for &tube in &session.watched {
            self.leave_tube(conn, tube);
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
                    self.extras.get_mut(id).counts.timeouts += 1;
                    self.place_ready(now, id);
                }
                Timer::Unpause(tube) => {
                    self.tubes.set_pause(tube, None);
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

    // ----- helpers --------------------------------------------------------------

    pub(super) fn count(&mut self, op: Op) {
        self.counts.ops[op as usize] += 1;
    }

    pub(super) fn mark_producer(&mut self, conn: ConnId) {
        let session = self.session_mut(conn);
        if !std::mem::replace(&mut session.is_producer, true) {
            self.counts.producers += 1;
        }
    }

    pub(super) fn mark_worker(&mut self, conn: ConnId) {
        let session = self.session_mut(conn);
        if !std::mem::replace(&mut session.is_worker, true) {
            self.counts.workers += 1;
        }
    }

    pub(super) fn is_reserved_by(&self, id: JobId, conn: ConnId) -> bool {
        self.jobs.get(&id).is_some_and(|job| job.is_reserved_by(conn))
    }

    pub(super) fn drop_tube_if_unused(&mut self, tube: TubeId) {
        if let Some(Some(pause)) = self.tubes.drop_if_unused(tube) {
            self.timers.remove(pause.until, Timer::Unpause(tube));
        }
    }

    pub(super) fn session(&self, conn: ConnId) -> &Session {
        self.sessions[conn].as_ref().expect("unknown connection")
    }

    pub(super) fn session_mut(&mut self, conn: ConnId) -> &mut Session {
        self.sessions[conn].as_mut().expect("unknown connection")
    }

    pub(super) fn job_mut(&mut self, id: JobId) -> &mut Job {
        self.jobs.get_mut(&id).expect("unknown job")
    }

    /// Calls `f` with the journal and everything it may write about job `id`
    /// (unless the journal keeps nothing).
    pub(super) fn journal_sees<R: Default>(&mut self, id: JobId, f: impl FnOnce(&mut J, JobView) -> R) -> R {
        if !self.journal.keeps_anything() {
            return R::default();
        }
        let Engine { journal, jobs, bodies, extras, tubes, .. } = self;
        let job = &jobs[&id];
        let view = JobView { id, job, extras: extras.get(id), tube: &tubes[job.tube].name, body: bodies.get(job.body) };
        f(journal, view)
    }

    /// Logs job `id`'s new state (after a successful `reserve_update`).
    pub(super) fn log_update(&mut self, id: JobId) {
        self.journal_sees(id, |journal, job| journal.log_update(job));
    }
}

#[cfg(test)]
mod tests;
