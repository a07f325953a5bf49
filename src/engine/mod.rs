//! The queue engine: the only owner of jobs, tubes and reservations.
//!
//! It is pure: no sockets, no clock, no files. The server feeds it commands
//! with the current time ([`Engine::apply`]), lets it act on the passage of
//! time ([`Engine::tick`], at [`Engine::next_deadline`]), and collects the
//! replies it produced ([`Engine::take_replies`]), which may be addressed to
//! other connections than the one that sent the command (a `put` can complete
//! another client's waiting `reserve`). The server's own way in is
//! [`Engine::answer`], which returns the command's own reply instead of
//! queueing it, and [`Engine::answer_put`], whose body may be borrowed.
//!
//! Invariant that makes reservation cheap: a tube that is not paused never has
//! both ready jobs and a waiting connection that watches it. Whenever a job
//! becomes ready, or a tube resumes, waiters are served on the spot, in
//! beanstalkd's order (waiters.rs). So a waiter woken by tube T has no ready job in any other tube it
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
//! - A job that becomes ready finds the tube's next waiter in O(log n),
//!   be it one of 10,000 waiting on that tube or a worker watching them all.
//!
//! # Map
//!
//! Files import only from the layers below their own, so each can be read
//! knowing only those:
//!
//! 1. Leaves, which import nothing from the engine: ids.rs (`JobId`,
//!    `TubeId`, `ConnId`) and time.rs (`Nanos` and its helpers).
//! 2. Data structures, which know nothing of `Engine`: bodies.rs (job bodies,
//!    packed), ttr.rs (a job's TTR: two bytes in its record, the rare
//!    longer ones in a map), extras.rs (a job's counters, deadline and
//!    holder, once it has any), ready/ (a tube's ready jobs, packed),
//!    buried.rs (a tube's buried jobs in burial order, packed), chunked.rs
//!    (the rules both packed queues keep their chunks by), heads.rs (every tube's best ready job), timers.rs (all that is due at
//!    a time), waiters.rs (how a tube finds its waiting connections),
//!    watchlist.rs (the tubes a connection watches), held.rs (the jobs a
//!    connection holds, soonest deadline first), ready_since.rs (when
//!    a tube's longest-waiting ready job became ready, for metrics).
//!    The job table and the extras' tables are the crate's `IdIndex`
//!    (idindex.rs): records by job id, in a window that slides with the
//!    ids.
//! 3. Records and registries: job.rs (the 30-byte job record), tubes.rs
//!    (the tube registry and each tube's queues), session.rs (one
//!    connection's state), journal.rs (what the write-ahead log is told),
//!    meter.rs (what metrics measure per tube, and the cap on tubes with
//!    figures of their own), outbox.rs (replies on their way out, which
//!    name their job bodies in the store rather than copy them).
//! 4. `Engine`, defined here, with one `impl` block per concern, because a
//!    concern needs most of the engine's state (jobs, tubes, sessions,
//!    timers, counters) at once and so cannot be a type of its own:
//!    - mod.rs: construction, the calls the server drives the engine with
//!      (`connect`, `apply`, `tick`, `take_replies`, ...), the journal's
//!      upkeep, and the helpers every block uses (`count`, `session`,
//!      `job_mut`, `journal_sees`, `drop_tube_if_unused`, ...).
//!    - commands.rs: `execute` and one handler per command: what a command
//!      does, in the protocol's terms.
//!    - placement.rs: `unplace` and the `place_*` calls, the only code that
//!      moves a job between states, so that the counters and timers of each
//!      state change in one place; `hand_out`, which reserves.
//!    - waiting.rs: reserves that wait (`best_reservable`, `begin_wait`,
//!      `end_wait`, `serve_waiters`): the reservation invariant and its costs.
//!    - watching.rs: `start_watching`, `stop_watching`, `leave_tube`: watch
//!      lists, the tubes' watcher counts and broad registrations in step.
//!    - stats.rs: the `stats`, `stats-tube` and `stats-job` documents.
//!    - metrics.rs: `enable_metrics`, the hooks that feed the meter (each
//!      an untaken branch while metrics are off), and `figures`, what a
//!      scrape reports.
//!    - restore.rs: startup from the log: the `Restoration` the replay
//!      fills as it reads, adopted and placed in bulk by `restore_all`;
//!      ids resuming.
//! 5. tests/: engine tests on a fake clock, and `check_invariants`
//!    (tests/invariants.rs), which they run after every step.
//!
//! What the blocks rely on one another to keep (`check_invariants` checks
//! those it can):
//!
//! - A job is in exactly one home, the one its [`Place`] names: its tube's
//!   ready queue, delayed set or buried FIFO, or, reserved, the reserved
//!   set of the holder its extras name.
//!   Only `unplace` and `place_*` move it, keeping the state counters, the
//!   urgent counts, the tube's reserved count and the timers in step.
//! - The heads index holds exactly the unpaused tubes' best ready jobs: only
//!   the tube registry changes ready jobs and pauses, and it updates heads.
//! - A tube's first delayed job has a timer, and no other delayed job does.
//! - A waiting connection is registered as its watch list's kind says:
//!   narrow, in each watched tube; broad, in `broad_waiters` with its mark
//!   set, and every tube a broad list watches knows the list's mark. A
//!   waiting connection sends no commands, so its watch list holds still.
//! - The reservation invariant above: whatever makes a job ready or resumes
//!   a tube calls `serve_waiters` (placement.rs, `tick`).
//! - A tube lives while a connection uses or watches it or it holds a job;
//!   whatever lets go of one of these calls `drop_tube_if_unused`.
//! - A job has extras only while it lives.
//! - What a restart must see (puts, deletes, releases, burials, kicks)
//!   reaches the journal before it is acknowledged, and room for it is
//!   checked (`log_put`, `reserve_update`) before the job changes, so a full
//!   disk refuses the command and leaves the job as it was. Reservations
//!   are not logged (a restart brings reserved jobs back ready); reserve-job
//!   logs taking a job out of buried or delayed if there is room.

#![warn(missing_docs)]

mod bodies;
mod buried;
mod chunked;
mod commands;
mod extras;
mod heads;
mod held;
mod ids;
mod invariants;
mod job;
mod journal;
mod meter;
mod metrics;
mod outbox;
mod placement;
mod ready;
mod ready_since;
mod restore;
mod session;
mod stats;
mod time;
mod timers;
mod ttr;
mod tubes;
mod waiters;
mod waiting;
mod watching;
mod watchlist;

pub use bodies::{Bodies, BodyRef};
pub use extras::{JobCounts, JobExtras};
pub use ids::{ConnId, JobId, MAX_JOB_ID};
pub use job::{Job, JobState, JournalTag, Place};
pub use journal::{JobView, Journal, JournalStats, NoJournal};
pub use restore::{Gone, Restoration, RestoredChange, RestoredJob};
pub use time::{Nanos, SECOND, secs, whole_secs};

use std::collections::BTreeSet;

use crate::host::HostInfo;
use crate::idindex::IdIndex;
use crate::protocol::command::NewJob;
use crate::protocol::{self, BodyBytes, Command, Op, TubeName};
use extras::Extras;
use ids::TubeId;
use meter::Meter;
use outbox::{Outbox, Reply};
use session::{PendingPut, Session};
use timers::{Timer, Timers};
use ttr::LongTtrs;
use tubes::Tubes;

/// Settings the engine needs from the command line and the host.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// `-z`: the largest body a put may carry.
    pub max_job_size: u32,
    /// `-s`, reported by stats as `binlog-max-size`.
    pub binlog_max_size: u64,
    /// The process and machine facts `stats` reports, and how to read its
    /// CPU time (tests pass fixed ones).
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

/// The queue engine: every job, tube, reservation and waiting reserve of one
/// server, and the counters `stats` reports. See the module docs for how
/// the server drives it.
///
/// What it promises its caller:
/// - Replies are the ones beanstalkd 1.12 gives, in the order it gives
///   them, each for the connection it is meant for, which need not be the
///   one whose command caused it.
/// - What a restart must see (a put, delete, release, burial or kick) is
///   in the journal `J` before it is acknowledged, and a command the
///   journal has no room for is refused and leaves its job as it was. With
///   [`NoJournal`] every change is accepted and forgotten.
/// - It reads no clock: every call that needs the time takes `now`, which
///   must never go backwards, and [`Engine::tick`] at
///   [`Engine::next_deadline`] is all it needs to act on time.
///   Calls given the same `now` happen at one instant, and deadlines that
///   tie go to the lower id; the server gives each command a time of its
///   own (server/clock.rs), so that a later command never looks earlier.
/// - A put or a reserve costs O(log n), however many tubes and connections
///   there are (see the module docs for the bounds).
///
/// In return the caller calls [`Engine::connect`] before a connection's
/// first command and [`Engine::disconnect`] once after its last, announces
/// each put's line with [`Engine::begin_put`] before its [`Command::Put`],
/// and sends no command for a connection while [`Engine::is_waiting`] says
/// it waits.
pub struct Engine<J: Journal = NoJournal> {
    config: EngineConfig,
    journal: J,
    started_at: Nanos,
    /// Every live job's record, by id, in the id index's window itself.
    jobs: IdIndex<Job>,
    /// The TTRs too long for a job's record.
    long_ttrs: LongTtrs,
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
    replies: Outbox,
    /// What metrics measure, while they are on (metrics.rs, meter.rs).
    meter: Option<Box<Meter>>,
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
            jobs: IdIndex::default(),
            long_ttrs: LongTtrs::default(),
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
            replies: Outbox::default(),
            meter: None,
        }
    }

    /// The journal, for the server to read its figures and state.
    pub fn journal(&self) -> &J {
        &self.journal
    }

    /// The journal, for the server to commit and sync what the engine
    /// logged; what to log stays the engine's decision.
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

    /// Replies produced since the last call, in the order they were made,
    /// each with its own copy of its job body, if it has one.
    pub fn take_replies(&mut self) -> impl Iterator<Item = (ConnId, protocol::Reply)> + '_ {
        self.replies.take(&self.bodies)
    }

    /// Replies produced since the last call, in the order they were made,
    /// their job bodies lent from the engine's store until they are
    /// written: the server's way, which copies no body but into the output.
    pub fn send_replies(&mut self) -> impl Iterator<Item = (ConnId, protocol::Reply<BodyBytes<'_>>)> + '_ {
        self.replies.send(&self.bodies)
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

    /// When [`Engine::tick`] next has work to do. A connection's TTR timer
    /// whose job went since it was set (placement.rs) is first moved to the
    /// connection's soonest job, so the answer is never early (hence
    /// `&mut`).
    pub fn next_deadline(&mut self) -> Option<Nanos> {
        while let Some((at, Timer::TtrEnds(id, conn))) = self.timers.first() {
            if self.ttr_timer_is_live(at, id, conn) {
                break;
            }
            let soonest = self.soonest_held(conn);
            self.set_ttr_timer(conn, soonest);
        }
        self.timers.next()
    }

    /// Whether `conn`'s TTR timer, set at `at` for job `id`, is still for a
    /// job it holds until then.
    fn ttr_timer_is_live(&self, at: Nanos, id: JobId, conn: ConnId) -> bool {
        holds(&self.jobs, &self.extras, conn, at, id)
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
        // In the order they were reserved, as beanstalkd gives them back: a
        // waiter served on the spot gets the one reserved first.
        let reserved = self.session(conn).in_reservation_order(|id| self.is_reserved_by(id, conn));
        debug_assert_eq!(reserved.len(), self.session(conn).reserved.len());
        for id in reserved {
            self.unplace(id);
            self.place_ready(now, id);
        }
        self.set_ttr_timer(conn, None);
        let session = self.sessions[conn].take().expect("disconnect of an unknown connection");
        // In beanstalkd's order (ms_clear: the first tube, then the one
        // that moves into its slot, the last, each time), which decides
        // where the tubes that vanish leave their holes in list-tubes.
        let mut watched = session.watched.iter();
        for &tube in watched.next().into_iter().chain(watched.rev()) {
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
            self.replies.push(conn, Reply::TimedOut);
        }
    }

    /// Acts on every timer due at `now`: delayed jobs become ready, TTRs run
    /// out, pauses end, waiting reserves time out.
    pub fn tick(&mut self, now: Nanos) {
        while let Some((at, timer)) = self.timers.pop_due(now) {
            match timer {
                Timer::DelayEnds(id) => {
                    self.unplace(id);
                    self.place_ready(now, id);
                }
                Timer::TtrEnds(id, conn) => {
                    self.session_mut(conn).ttr_timer = None;
                    // Set for the connection's soonest job, which may have
                    // gone since (or been reserved again, until later).
                    if self.ttr_timer_is_live(at, id, conn) {
                        self.meter_ttr_expiry(id);
                        self.unplace(id);
                        self.counts.job_timeouts += 1;
                        self.extras.get_mut(id).counts.timeouts += 1;
                        self.place_ready(now, id);
                    }
                    // The next soonest, if it is due too, comes next in
                    // this loop, in the timers' order.
                    if self.sessions.get(conn).is_some_and(Option::is_some) {
                        let soonest = self.soonest_held(conn);
                        self.set_ttr_timer(conn, soonest);
                    }
                }
                Timer::Unpause(tube) => {
                    // Tubes that resume at one instant resume together, and
                    // their waiters get the best of their jobs first, as in
                    // beanstalkd (process_queue looks at every tube).
                    let at = self.tubes[tube].pause.expect("a paused tube").until;
                    let mut resumed = vec![tube];
                    resumed.extend(std::iter::from_fn(|| self.timers.pop_unpause_at(at)));
                    for &tube in &resumed {
                        self.tubes.set_pause(tube, None);
                    }
                    self.serve_waiters_of(now, &resumed);
                }
                Timer::ReserveTimeout(conn) => {
                    self.end_wait(conn);
                    self.replies.push(conn, Reply::TimedOut);
                }
                Timer::DeadlineSoon(conn) => {
                    self.meter_deadline_soon(conn);
                    self.end_wait(conn);
                    self.replies.push(conn, Reply::DeadlineSoon);
                }
            }
        }
    }

    /// Carries out one command from `conn`. Its reply, if it has one yet,
    /// and any replies to other connections it caused, go to the outbox.
    /// A [`Command::Put`] comes after [`Engine::begin_put`] for its line.
    pub fn apply(&mut self, now: Nanos, conn: ConnId, command: Command) {
        self.catch_up(now);
        if let Some(reply) = self.execute(now, conn, command) {
            self.replies.push(conn, reply);
        }
    }

    /// [`Engine::apply`], the server's way: the command's own reply, if it
    /// has one yet, is returned, its body lent from the store, rather than
    /// queued in the outbox, which keeps the replies it caused to other
    /// connections (and a later reply to `conn`, for a reserve that waits).
    /// Replies to `conn` still in the outbox come before the one returned:
    /// the server takes the outbox after every command, so that there are
    /// none. (Through the outbox, the put's reply cost a push, a drain, and
    /// a look-up of its connection.)
    pub fn answer(&mut self, now: Nanos, conn: ConnId, command: Command) -> Option<protocol::Reply<BodyBytes<'_>>> {
        self.catch_up(now);
        let reply = self.execute(now, conn, command)?;
        Some(outbox::lend(reply, &self.bodies))
    }

    /// [`Engine::answer`] for a put whose body is lent, for the moment of
    /// the call: the store copies it, which is the body's one copy when it
    /// is borrowed from where it arrived (the server's read buffer).
    // Inlined into the server's loop, which calls it for every put: without
    // the hint, whether it was depended on which of the crate's code units
    // the two ended up in, which changes to unrelated code moved (some 45
    // instructions a put, callgrind).
    #[inline]
    pub fn answer_put(
        &mut self,
        now: Nanos,
        conn: ConnId,
        job: NewJob<BodyBytes<'_>>,
    ) -> protocol::Reply<BodyBytes<'_>> {
        self.catch_up(now);
        let reply = self.put(now, conn, job);
        outbox::lend(reply, &self.bodies)
    }

    /// True while replies wait in the outbox ([`Engine::send_replies`]).
    pub fn has_replies(&self) -> bool {
        !self.replies.is_empty()
    }

    /// What fell due by `now` happens before a command, as beanstalkd ticks
    /// between a connection's commands: a `pause-tube t 0` has ended by the
    /// next command of the same write.
    fn catch_up(&mut self, now: Nanos) {
        if self.timers.next().is_some_and(|at| at <= now) {
            self.tick(now);
        }
    }

    /// A `put` line from `conn` was accepted and its body is on its way.
    /// As in beanstalkd, the put is counted, the connection becomes a
    /// producer and the job's id is assigned now: `stats` shows them while
    /// the body arrives, and another connection's put takes the next id.
    ///
    /// The job is made at the put's own time; see [`Engine::begin_put_at`].
    pub fn begin_put(&mut self, conn: ConnId) {
        self.start_put(conn, None);
    }

    /// [`Engine::begin_put`] for a line read at `line_at`: as in beanstalkd,
    /// the job is made then, so its `age` counts from the line even when
    /// its body takes a while (its delay still counts from the body).
    pub fn begin_put_at(&mut self, conn: ConnId, line_at: Nanos) {
        self.start_put(conn, Some(line_at));
    }

    fn start_put(&mut self, conn: ConnId, line_at: Option<Nanos>) {
        self.count(Op::Put);
        self.mark_producer(conn);
        let id = self.next_job_id;
        self.next_job_id += 1;
        self.session_mut(conn).pending_put = Some(PendingPut { id, line_at });
    }

    /// The body of `conn`'s put did not end in CRLF: the put fails
    /// (the server answers `EXPECTED_CRLF`), and its id stays spent.
    pub fn abandon_put(&mut self, conn: ConnId) {
        self.take_pending_put(conn);
    }

    /// Counts a line under `op` in the `cmd-*` stats that brings the engine
    /// no command: beanstalkd counts a put over `-z`, and a put or
    /// pause-tube line with bad arguments, before it rejects them.
    pub fn count_rejected(&mut self, op: Op) {
        self.count(op);
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
        reserved_by(&self.jobs, &self.extras, id) == Some(conn)
    }

    pub(super) fn drop_tube_if_unused(&mut self, tube: TubeId) {
        let Some(dropped) = self.tubes.drop_if_unused(tube) else { return };
        if let Some(pause) = dropped.pause {
            self.timers.remove(pause.until, Timer::Unpause(tube));
        }
        if let Some(meter) = &mut self.meter {
            meter.tube_dropped(tube, &dropped);
        }
    }

    /// The live tube of that name, created if there is none (the caller
    /// must make something hold it, or drop it).
    pub(super) fn tube_named(&mut self, name: &TubeName) -> TubeId {
        let before = self.tubes.len();
        let tube = self.tubes.get_or_create(name);
        if self.tubes.len() > before
            && let Some(meter) = &mut self.meter
        {
            meter.tube_created(tube);
        }
        tube
    }

    pub(super) fn session(&self, conn: ConnId) -> &Session {
        self.sessions[conn].as_ref().expect("unknown connection")
    }

    /// The job `conn` holds whose TTR ends first, with its deadline.
    pub(super) fn soonest_held(&mut self, conn: ConnId) -> Option<(Nanos, JobId)> {
        let (jobs, extras) = (&self.jobs, &self.extras);
        let session = self.sessions[conn].as_mut().expect("unknown connection");
        session.reserved.first(|deadline, id| holds(jobs, extras, conn, deadline, id))
    }

    /// When beanstalkd's safety margin starts for `conn`: a second before
    /// the TTR of its reserved job that runs out first. From then on, a
    /// reserve that has no job to hand out answers `DEADLINE_SOON`.
    pub(super) fn deadline_soon_at(&mut self, conn: ConnId) -> Option<Nanos> {
        self.soonest_held(conn).map(|(deadline, _)| deadline.saturating_sub(SECOND))
    }

    /// True once `conn`'s safety margin started ([`Engine::deadline_soon_at`]).
    pub(super) fn deadline_soon(&mut self, conn: ConnId, now: Nanos) -> bool {
        self.deadline_soon_at(conn).is_some_and(|at| now >= at)
    }

    pub(super) fn session_mut(&mut self, conn: ConnId) -> &mut Session {
        self.sessions[conn].as_mut().expect("unknown connection")
    }

    pub(super) fn job_mut(&mut self, id: JobId) -> &mut Job {
        self.jobs.get_mut(id).expect("unknown job")
    }

    /// Calls `f` with the journal and everything it may write about job `id`
    /// (unless the journal keeps nothing).
    pub(super) fn journal_sees<R: Default>(&mut self, id: JobId, f: impl FnOnce(&mut J, JobView) -> R) -> R {
        if !self.journal.keeps_anything() {
            return R::default();
        }
        let Engine { journal, jobs, long_ttrs, bodies, extras, tubes, .. } = self;
        let job = &jobs[id];
        let view = JobView {
            id,
            job,
            ttr: long_ttrs.get(id, job.ttr),
            extras: extras.get(id),
            tube: &tubes[job.tube()].name,
            body: bodies.get(job.body),
        };
        f(journal, view)
    }

    /// Logs job `id`'s new state (after a successful `reserve_update`).
    pub(super) fn log_update(&mut self, id: JobId) {
        self.journal_sees(id, |journal, job| journal.log_update(job));
    }
}

#[cfg(test)]
mod tests;

/// Whether `conn` holds job `id` until `deadline`: what [`held::HeldJobs`]
/// asks of its entries.
fn holds(jobs: &IdIndex<Job>, extras: &Extras, conn: ConnId, deadline: Nanos, id: JobId) -> bool {
    jobs.get(id).is_some_and(|job| job.state() == JobState::Reserved) && {
        let extras = extras.get(id);
        extras.holder as ConnId == conn && extras.deadline == deadline
    }
}

/// The connection holding job `id`, if the job is reserved.
fn reserved_by(jobs: &IdIndex<Job>, extras: &Extras, id: JobId) -> Option<ConnId> {
    jobs.get(id).is_some_and(|job| job.state() == JobState::Reserved).then(|| extras.holder(id))
}
