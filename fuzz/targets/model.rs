//! A small, obviously-correct model of beanstalkd 1.12's queues, which the
//! engine's fuzz target (engine.rs) holds the engine to.
//!
//! Plain vectors and maps, no index kept in step with anything: every
//! question ("the best ready job", "the next deadline") is a scan over all
//! jobs, so each rule is a few lines to check by eye against beanstalkd's
//! prot.c. What it knows: tubes and when they live and die (and the order
//! `list-tubes` shows them in), priorities, delays, reservations and TTRs,
//! `DEADLINE_SOON`, burial order, kicks, pauses, connections waiting in a
//! reserve and which of them gets a job (ms.c's cursor), and the counts
//! `stats-job`, `stats-tube` and `stats` report about these. What it does
//! not: the `cmd-*` counters, producers and workers, the binlog, draining,
//! and bytes on the wire.
//!
//! Times are the engine's: the caller passes every call its time, strictly
//! increasing, as the server does. Several things due at one instant happen
//! in the order of [`Event`].

use std::collections::BTreeMap;
use std::rc::Rc;

use sprout::engine::{ConnId, JobId, Nanos, SECOND};
use sprout::protocol::{Command, Reply, TubeName};

/// What a connection is expected to be sent.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// Exactly this reply.
    Exactly(Reply),
    /// An `OK` document holding these keys with these values (strings
    /// unquoted), among others the model does not know.
    Yaml(Vec<(&'static str, String)>),
    /// An `OK` document listing these names, in this order.
    List(Vec<String>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Ready,
    Reserved(ConnId),
    Delayed,
    Buried,
}

#[derive(Debug)]
struct Job {
    tube: String,
    pri: u32,
    /// In seconds, as last given by put or release.
    delay: u32,
    ttr: u32,
    body: Rc<[u8]>,
    state: State,
    /// Delayed: when it becomes ready. Reserved: when its TTR runs out.
    deadline: Nanos,
    /// Buried: burial order. Reserved: reservation order.
    seq: u64,
    created: Nanos,
    reserves: u64,
    timeouts: u64,
    releases: u64,
    buries: u64,
    kicks: u64,
}

#[derive(Debug)]
struct Tube {
    name: String,
    /// (duration, until) while paused.
    pause: Option<(Nanos, Nanos)>,
    /// The waiting connections that watch it, kept as ms.c keeps a set:
    /// appended at the end, removed by moving the last one into the hole.
    waiting: Vec<ConnId>,
    /// ms.c's cursor: the next waiter to get a job is `waiting[last % len]`.
    last: usize,
    total_jobs: u64,
    deletes: u64,
    pauses: u64,
}

#[derive(Debug)]
struct Session {
    used: String,
    /// In beanstalkd's order: appended, and ignore moves the last into the hole.
    watched: Vec<String>,
    /// While blocked in a reserve: when it times out, if it does.
    wait: Option<Option<Nanos>>,
    pending_put: Option<JobId>,
}

/// Things that happen at a time of their own, in the order they happen
/// when due at the same instant: delays end before pauses (prottick), and
/// pauses before anything about connections; a waiter told `DEADLINE_SOON`
/// is not also told `TIMED_OUT` (conn_timeout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    DelayEnds(JobId),
    /// Every pause due at that instant ends, then waiters are served.
    Unpause,
    TtrEnds(JobId),
    DeadlineSoon(ConnId),
    TimedOut(ConnId),
}

/// The model: every job, tube and connection.
pub struct Model {
    jobs: BTreeMap<JobId, Job>,
    /// Live tubes in `list-tubes` order: created at the end, removed by
    /// moving the last one into the hole.
    tubes: Vec<Tube>,
    sessions: BTreeMap<ConnId, Session>,
    next_id: JobId,
    /// Orders burials and reservations.
    seq: u64,
    job_timeouts: u64,
    total_jobs: u64,
    replies: Vec<(ConnId, Expect)>,
}

fn secs(s: u32) -> Nanos {
    u64::from(s) * SECOND
}

impl Default for Model {
    fn default() -> Model {
        Model {
            jobs: BTreeMap::new(),
            tubes: vec![Tube::new("default")],
            sessions: BTreeMap::new(),
            next_id: 1,
            seq: 0,
            job_timeouts: 0,
            total_jobs: 0,
            replies: Vec::new(),
        }
    }
}

impl Tube {
    fn new(name: &str) -> Tube {
        let name = name.to_string();
        Tube { name, pause: None, waiting: Vec::new(), last: 0, total_jobs: 0, deletes: 0, pauses: 0 }
    }
}

impl Model {
    // ----- what the fuzz target asks ----------------------------------------

    /// The replies produced since the last call.
    pub fn take_replies(&mut self) -> Vec<(ConnId, Expect)> {
        std::mem::take(&mut self.replies)
    }

    pub fn is_waiting(&self, c: ConnId) -> bool {
        self.sessions[&c].wait.is_some()
    }

    /// The id the next put will get.
    pub fn next_id(&self) -> JobId {
        self.next_id
    }

    /// The jobs `c` holds, by id.
    pub fn held(&self, c: ConnId) -> Vec<JobId> {
        self.jobs.iter().filter(|(_, j)| j.state == State::Reserved(c)).map(|(&id, _)| id).collect()
    }

    /// Its state, a line a job, tube and connection, for a failure's report.
    pub fn dump(&self) -> String {
        let jobs = self.jobs.iter().map(|(id, j)| format!("job {id}: {j:?}\n"));
        let tubes = self.tubes.iter().map(|tube| format!("{tube:?}\n"));
        let sessions = self.sessions.iter().map(|(c, s)| format!("connection {c}: {s:?}\n"));
        jobs.chain(tubes).chain(sessions).collect()
    }

    /// When something next happens by itself.
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.next_event().map(|(at, _)| at)
    }

    // ----- connections ------------------------------------------------------

    pub fn connect(&mut self, c: ConnId) {
        let session =
            Session { used: "default".into(), watched: vec!["default".into()], wait: None, pending_put: None };
        assert!(self.sessions.insert(c, session).is_none());
    }

    /// beanstalkd's connclose: the wait ends, reserved jobs go back to
    /// ready in the order they were reserved (a touch does not move one),
    /// then the watched tubes are let go (ms_clear: slot 0, into which the
    /// last one moves, each time), then the used tube.
    pub fn disconnect(&mut self, t: Nanos, c: ConnId) {
        self.end_wait(c);
        let mut held: Vec<_> = self.held(c).into_iter().map(|id| (self.jobs[&id].seq, id)).collect();
        held.sort();
        for (_, id) in held {
            self.make_ready(t, id);
        }
        let mut session = self.sessions.remove(&c).unwrap();
        while !session.watched.is_empty() {
            let tube = session.watched.swap_remove(0);
            self.drop_if_unused(&tube);
        }
        self.drop_if_unused(&session.used);
    }

    /// The client shut down its sending side: a waiting reserve gives up.
    pub fn hang_up(&mut self, c: ConnId) {
        if self.is_waiting(c) {
            self.end_wait(c);
            self.replies.push((c, Expect::Exactly(Reply::TimedOut)));
        }
    }

    /// A put's line: its id is taken now, even if its body never comes.
    pub fn begin_put(&mut self, c: ConnId) {
        self.session(c).pending_put = Some(self.next_id);
        self.next_id += 1;
    }

    pub fn abandon_put(&mut self, c: ConnId) {
        self.session(c).pending_put = None;
    }

    // ----- time -------------------------------------------------------------

    /// Everything due by `t` happens, earliest first.
    pub fn tick(&mut self, t: Nanos) {
        while let Some((at, event)) = self.next_event().filter(|&(at, _)| at <= t) {
            match event {
                Event::DelayEnds(id) => self.make_ready(t, id),
                Event::Unpause => {
                    for tube in self.tubes.iter_mut().filter(|tube| tube.pause.is_some_and(|(_, until)| until <= at)) {
                        tube.pause = None;
                    }
                    self.serve(t);
                }
                Event::TtrEnds(id) => {
                    self.job(id).timeouts += 1;
                    self.job_timeouts += 1;
                    self.make_ready(t, id);
                }
                Event::DeadlineSoon(c) => {
                    self.end_wait(c);
                    self.replies.push((c, Expect::Exactly(Reply::DeadlineSoon)));
                }
                Event::TimedOut(c) => self.hang_up(c),
            }
        }
    }

    fn next_event(&self) -> Option<(Nanos, Event)> {
        let jobs = self.jobs.iter().filter_map(|(&id, j)| match j.state {
            State::Delayed => Some((j.deadline, Event::DelayEnds(id))),
            State::Reserved(_) => Some((j.deadline, Event::TtrEnds(id))),
            _ => None,
        });
        let pauses = self.tubes.iter().filter_map(|tube| Some((tube.pause?.1, Event::Unpause)));
        let waits = self.sessions.iter().filter(|(_, s)| s.wait.is_some()).flat_map(|(&c, s)| {
            let soon = self.deadline_soon_at(c).map(|at| (at, Event::DeadlineSoon(c)));
            let timeout = s.wait.flatten().map(|at| (at, Event::TimedOut(c)));
            soon.into_iter().chain(timeout)
        });
        jobs.chain(pauses).chain(waits).min()
    }

    /// A second before the TTR of the job `c` holds that runs out first.
    fn deadline_soon_at(&self, c: ConnId) -> Option<Nanos> {
        let held = self.jobs.values().filter(|j| j.state == State::Reserved(c));
        held.map(|j| j.deadline).min().map(|d| d.saturating_sub(SECOND))
    }

    // ----- commands ---------------------------------------------------------

    /// Carries out a command; its reply, and those it causes to others,
    /// go to the replies.
    /// What fell due by `t` happens first (beanstalkd ticks between a
    /// connection's commands).
    pub fn apply(&mut self, t: Nanos, c: ConnId, command: &Command) {
        self.tick(t);
        if let Some(reply) = self.execute(t, c, command) {
            self.replies.push((c, reply));
        }
    }

    fn execute(&mut self, t: Nanos, c: ConnId, command: &Command) -> Option<Expect> {
        use Command as C;
        let reply = match command {
            C::Put(new) => {
                let id = self.session(c).pending_put.take().expect("put without begin_put");
                let tube = self.sessions[&c].used.clone();
                let state = if new.delay > 0 { State::Delayed } else { State::Ready };
                let job = Job {
                    tube: tube.clone(),
                    pri: new.pri,
                    delay: new.delay,
                    ttr: new.ttr.max(1),
                    body: new.body.clone(),
                    state,
                    deadline: t + secs(new.delay),
                    seq: 0,
                    created: t,
                    reserves: 0,
                    timeouts: 0,
                    releases: 0,
                    buries: 0,
                    kicks: 0,
                };
                self.jobs.insert(id, job);
                self.tube(&tube).unwrap().total_jobs += 1;
                self.total_jobs += 1;
                self.serve(t);
                Reply::Inserted(id)
            }
            C::Reserve => return self.reserve(t, c, None),
            C::ReserveWithTimeout(timeout) => return self.reserve(t, c, *timeout),
            C::ReserveJob(id) => match self.jobs.get(id) {
                Some(j) if !matches!(j.state, State::Reserved(_)) => self.reserve_for(t, c, *id),
                _ => Reply::NotFound,
            },
            C::Delete(id) => match self.jobs.get(id) {
                Some(j) if matches!(j.state, State::Reserved(holder) if holder != c) => Reply::NotFound,
                Some(_) => {
                    let job = self.jobs.remove(id).unwrap();
                    self.tube(&job.tube).unwrap().deletes += 1;
                    self.drop_if_unused(&job.tube);
                    Reply::Deleted
                }
                None => Reply::NotFound,
            },
            C::Release { id, pri, delay } if self.holds(c, *id) => {
                let job = self.job(*id);
                (job.pri, job.delay) = (*pri, *delay);
                job.releases += 1;
                if *delay > 0 {
                    (job.state, job.deadline) = (State::Delayed, t + secs(*delay));
                } else {
                    self.make_ready(t, *id);
                }
                Reply::Released
            }
            C::Bury { id, pri } if self.holds(c, *id) => {
                self.seq += 1;
                let (job, seq) = (self.jobs.get_mut(id).unwrap(), self.seq);
                (job.pri, job.state, job.seq) = (*pri, State::Buried, seq);
                job.buries += 1;
                Reply::Buried
            }
            C::Touch(id) if self.holds(c, *id) => {
                let job = self.job(*id);
                job.deadline = t + secs(job.ttr);
                Reply::Touched
            }
            C::Release { .. } | C::Bury { .. } | C::Touch(_) => Reply::NotFound,
            C::Use(name) => {
                self.get_or_create(name.as_str());
                let old = std::mem::replace(&mut self.session(c).used, name.to_string());
                self.drop_if_unused(&old);
                Reply::Using(name.clone())
            }
            C::Watch(name) => {
                self.get_or_create(name.as_str());
                let watched = &mut self.session(c).watched;
                if !watched.iter().any(|w| w == name.as_str()) {
                    watched.push(name.to_string());
                }
                Reply::Watching(watched.len())
            }
            C::Ignore(name) => {
                let watched = &mut self.session(c).watched;
                match watched.iter().position(|w| w == name.as_str()) {
                    Some(_) if watched.len() < 2 => Reply::NotIgnored,
                    Some(i) => {
                        watched.swap_remove(i);
                        let n = watched.len();
                        self.drop_if_unused(name.as_str());
                        Reply::Watching(n)
                    }
                    None => Reply::Watching(watched.len()),
                }
            }
            C::Peek(id) => self.found(self.jobs.contains_key(id).then_some(*id)),
            C::PeekReady => self.found(self.first(&self.sessions[&c].used, State::Ready)),
            C::PeekDelayed => self.found(self.first(&self.sessions[&c].used, State::Delayed)),
            C::PeekBuried => self.found(self.first(&self.sessions[&c].used, State::Buried)),
            C::Kick(bound) => {
                let tube = self.sessions[&c].used.clone();
                let from = if self.first(&tube, State::Buried).is_some() { State::Buried } else { State::Delayed };
                let mut kicked = 0;
                while kicked < *bound {
                    let Some(id) = self.first(&tube, from) else { break };
                    self.kick(t, id);
                    kicked += 1;
                }
                Reply::Kicked(kicked)
            }
            C::KickJob(id) => match self.jobs.get(id).map(|j| j.state) {
                Some(State::Buried | State::Delayed) => {
                    self.kick(t, *id);
                    Reply::KickedOne
                }
                _ => Reply::NotFound,
            },
            C::PauseTube { tube, delay } => match self.tube(tube.as_str()) {
                Some(tube) => {
                    let duration = secs(*delay).max(1);
                    tube.pause = Some((duration, t + duration));
                    tube.pauses += 1;
                    Reply::Paused
                }
                None => Reply::NotFound,
            },
            C::StatsJob(id) => return Some(self.job_stats(t, *id)),
            C::StatsTube(name) => return Some(self.tube_stats(t, name.as_str())),
            C::Stats => return Some(self.server_stats()),
            C::ListTubes => return Some(Expect::List(self.tubes.iter().map(|tube| tube.name.clone()).collect())),
            C::ListTubesWatched => return Some(Expect::List(self.sessions[&c].watched.clone())),
            C::ListTubeUsed => Reply::Using(TubeName::new(self.sessions[&c].used.as_bytes()).unwrap()),
        };
        Some(Expect::Exactly(reply))
    }

    /// A job if one may be had, else `DEADLINE_SOON` within a second of a
    /// held job's TTR, else `TIMED_OUT` for a zero timeout, else a wait.
    fn reserve(&mut self, t: Nanos, c: ConnId, timeout: Option<u32>) -> Option<Expect> {
        let reply = if let Some(id) = self.best_for(c) {
            // beanstalkd queues even this reserve in every watched tube's
            // set, then takes it from the job's tube at once, where it is
            // alone (no waiter watches a tube with a ready job): that
            // tube's cursor moves to 1.
            let name = self.jobs[&id].tube.clone();
            self.tubes.iter_mut().find(|tube| tube.name == name).unwrap().last = 1;
            self.reserve_for(t, c, id)
        } else if self.deadline_soon_at(c).is_some_and(|at| t >= at) {
            Reply::DeadlineSoon
        } else if timeout == Some(0) {
            Reply::TimedOut
        } else {
            // enqueue_waiting_conn: appended to every watched tube's set.
            let session = &self.sessions[&c];
            for name in &session.watched {
                let tube = self.tubes.iter_mut().find(|tube| tube.name == *name).unwrap();
                tube.waiting.push(c);
            }
            self.session(c).wait = Some(timeout.map(|s| t + secs(s)));
            return None;
        };
        Some(Expect::Exactly(reply))
    }

    /// beanstalkd's process_queue: while an unpaused tube has both a ready
    /// job and a waiter, the best such job over all tubes goes to its
    /// tube's next waiter (ms_take), who stops waiting everywhere.
    fn serve(&mut self, t: Nanos) {
        loop {
            let servable = |j: &Job| {
                j.state == State::Ready
                    && self
                        .tubes
                        .iter()
                        .any(|tube| tube.name == j.tube && tube.pause.is_none() && !tube.waiting.is_empty())
            };
            let best = self.jobs.iter().filter(|(_, j)| servable(j)).min_by_key(|&(&id, j)| (j.pri, id));
            let Some((&id, job)) = best else { return };
            let tube = self.tubes.iter_mut().find(|tube| tube.name == job.tube).unwrap();
            let i = tube.last % tube.waiting.len();
            let c = tube.waiting.swap_remove(i);
            tube.last = i + 1;
            self.end_wait(c);
            let reply = self.reserve_for(t, c, id);
            self.replies.push((c, Expect::Exactly(reply)));
        }
    }

    /// remove_waiting_conn: out of every tube's set, each hole filled by
    /// that set's last connection.
    fn end_wait(&mut self, c: ConnId) {
        self.session(c).wait = None;
        for tube in &mut self.tubes {
            if let Some(i) = tube.waiting.iter().position(|&w| w == c) {
                tube.waiting.swap_remove(i);
            }
        }
    }

    /// The best ready job in the unpaused tubes `c` watches.
    fn best_for(&self, c: ConnId) -> Option<JobId> {
        let watched = &self.sessions[&c].watched;
        let unpaused = |name: &String| self.tubes.iter().any(|tube| tube.name == *name && tube.pause.is_none());
        let ready = self.jobs.iter().filter(|(_, j)| j.state == State::Ready && watched.contains(&j.tube));
        ready.filter(|(_, j)| unpaused(&j.tube)).min_by_key(|&(&id, j)| (j.pri, id)).map(|(&id, _)| id)
    }

    /// The tube's next job in that state: ready by (priority, id), delayed
    /// by (deadline, id), buried in burial order.
    fn first(&self, tube: &str, state: State) -> Option<JobId> {
        let jobs = self.jobs.iter().filter(|(_, j)| j.tube == tube && j.state == state);
        jobs.min_by_key(|&(&id, j)| match state {
            State::Ready => (u64::from(j.pri), id),
            State::Delayed => (j.deadline, id),
            _ => (j.seq, id),
        })
        .map(|(&id, _)| id)
    }

    fn reserve_for(&mut self, t: Nanos, c: ConnId, id: JobId) -> Reply {
        self.seq += 1;
        let (job, seq) = (self.jobs.get_mut(&id).unwrap(), self.seq);
        (job.state, job.deadline, job.seq) = (State::Reserved(c), t + secs(job.ttr), seq);
        job.reserves += 1;
        Reply::Reserved { id, body: job.body.clone() }
    }

    fn make_ready(&mut self, t: Nanos, id: JobId) {
        self.job(id).state = State::Ready;
        self.serve(t);
    }

    fn kick(&mut self, t: Nanos, id: JobId) {
        self.job(id).kicks += 1;
        self.make_ready(t, id);
    }

    fn found(&self, id: Option<JobId>) -> Reply {
        match id {
            Some(id) => Reply::Found { id, body: self.jobs[&id].body.clone() },
            None => Reply::NotFound,
        }
    }

    fn holds(&self, c: ConnId, id: JobId) -> bool {
        self.jobs.get(&id).is_some_and(|j| j.state == State::Reserved(c))
    }

    // ----- tubes ------------------------------------------------------------

    fn get_or_create(&mut self, name: &str) {
        if self.tube(name).is_none() {
            self.tubes.push(Tube::new(name));
        }
    }

    /// A tube lives while a connection uses or watches it or a job is in it
    /// (`default` always). Nothing if it is gone already.
    fn drop_if_unused(&mut self, name: &str) {
        let used = self.sessions.values().any(|s| s.used == name || s.watched.iter().any(|w| w == name));
        if name == "default" || used || self.jobs.values().any(|j| j.tube == name) {
            return;
        }
        if let Some(i) = self.tubes.iter().position(|tube| tube.name == name) {
            self.tubes.swap_remove(i);
        }
    }

    // ----- stats ------------------------------------------------------------

    fn job_stats(&self, t: Nanos, id: JobId) -> Expect {
        let Some(j) = self.jobs.get(&id) else { return Expect::Exactly(Reply::NotFound) };
        let (state, time_left) = match j.state {
            State::Ready => ("ready", 0),
            State::Reserved(_) => ("reserved", j.deadline.saturating_sub(t) / SECOND),
            State::Delayed => ("delayed", j.deadline.saturating_sub(t) / SECOND),
            State::Buried => ("buried", 0),
        };
        let n = |v: u64| v.to_string();
        Expect::Yaml(vec![
            ("id", n(id)),
            ("tube", j.tube.clone()),
            ("state", state.into()),
            ("pri", n(j.pri.into())),
            ("age", n((t - j.created) / SECOND)),
            ("delay", n(j.delay.into())),
            ("ttr", n(j.ttr.into())),
            ("time-left", n(time_left)),
            ("reserves", n(j.reserves)),
            ("timeouts", n(j.timeouts)),
            ("releases", n(j.releases)),
            ("buries", n(j.buries)),
            ("kicks", n(j.kicks)),
        ])
    }

    fn tube_stats(&self, t: Nanos, name: &str) -> Expect {
        let Some(tube) = self.tubes.iter().find(|tube| tube.name == name) else {
            return Expect::Exactly(Reply::NotFound);
        };
        let count =
            |f: &dyn Fn(&Job) -> bool| self.jobs.values().filter(|j| j.tube == name && f(j)).count().to_string();
        let sessions = |f: &dyn Fn(&Session) -> bool| self.sessions.values().filter(|s| f(s)).count().to_string();
        let (pause, left) = tube.pause.map_or((0, 0), |(d, until)| (d / SECOND, until.saturating_sub(t) / SECOND));
        Expect::Yaml(vec![
            ("name", name.into()),
            ("current-jobs-urgent", count(&|j| j.state == State::Ready && j.pri < 1024)),
            ("current-jobs-ready", count(&|j| j.state == State::Ready)),
            ("current-jobs-reserved", count(&|j| matches!(j.state, State::Reserved(_)))),
            ("current-jobs-delayed", count(&|j| j.state == State::Delayed)),
            ("current-jobs-buried", count(&|j| j.state == State::Buried)),
            ("total-jobs", tube.total_jobs.to_string()),
            ("current-using", sessions(&|s| s.used == name)),
            ("current-watching", sessions(&|s| s.watched.iter().any(|w| w == name))),
            ("current-waiting", tube.waiting.len().to_string()),
            ("cmd-delete", tube.deletes.to_string()),
            ("cmd-pause-tube", tube.pauses.to_string()),
            ("pause", pause.to_string()),
            ("pause-time-left", left.to_string()),
        ])
    }

    fn server_stats(&self) -> Expect {
        let count = |f: &dyn Fn(&Job) -> bool| self.jobs.values().filter(|j| f(j)).count().to_string();
        Expect::Yaml(vec![
            ("current-jobs-urgent", count(&|j| j.state == State::Ready && j.pri < 1024)),
            ("current-jobs-ready", count(&|j| j.state == State::Ready)),
            ("current-jobs-reserved", count(&|j| matches!(j.state, State::Reserved(_)))),
            ("current-jobs-delayed", count(&|j| j.state == State::Delayed)),
            ("current-jobs-buried", count(&|j| j.state == State::Buried)),
            ("job-timeouts", self.job_timeouts.to_string()),
            ("total-jobs", self.total_jobs.to_string()),
            ("current-tubes", self.tubes.len().to_string()),
            ("current-connections", self.sessions.len().to_string()),
            ("current-waiting", self.sessions.values().filter(|s| s.wait.is_some()).count().to_string()),
        ])
    }

    // ----- lookups ----------------------------------------------------------

    fn session(&mut self, c: ConnId) -> &mut Session {
        self.sessions.get_mut(&c).expect("unknown connection")
    }

    fn job(&mut self, id: JobId) -> &mut Job {
        self.jobs.get_mut(&id).expect("unknown job")
    }

    fn tube(&mut self, name: &str) -> Option<&mut Tube> {
        self.tubes.iter_mut().find(|tube| tube.name == name)
    }
}
