//! What the generator knows of the server's state while it writes a script:
//! a small model of beanstalkd 1.12, exact where the script's shape depends
//! on it.
//!
//! The model does not predict replies (the two servers are compared with
//! each other, not with the model). It knows what it must to write a script
//! that runs without stalls: which jobs exist and in which state, so a
//! `reserve` is sent only when it returns at once or when the script means
//! it to wait; which connection a job goes to when it becomes ready while
//! connections wait (beanstalkd's `process_queue` and its per-tube
//! round-robin `ms_take`, followed step by step); which `$N` a put will be.
//! A model error shows up as a reply that does not come (`<no reply>` in
//! beanstalkd's transcript), which the random test reports as the
//! generator's fault.

use std::collections::HashMap;

/// A connection of the script, by its index in [`Model::conns`].
pub(crate) type ConnId = usize;
/// A job, by its index in [`Model::jobs`].
pub(crate) type JobKey = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Its put line was read; its body has not all arrived.
    Arriving,
    Ready,
    Delayed,
    Buried,
    Reserved(ConnId),
    /// Deleted, dropped with its connection, or refused for a bad CRLF.
    Gone,
}

#[derive(Clone, Debug)]
pub(crate) struct Job {
    /// The id both servers give it (they count from 1 alike).
    pub(crate) id: u64,
    pub(crate) tube: String,
    pub(crate) pri: u32,
    pub(crate) state: State,
    /// While delayed: when it comes due, in the model's clock.
    pub(crate) deadline: u64,
    /// While buried: the order of burial. While reserved: the order of
    /// reservation (a closing connection's jobs go back in that order).
    pub(crate) order: u64,
    /// Its `$N`, once its `INSERTED` reply was read.
    pub(crate) named: Option<usize>,
    /// A TTR under 1000 s, which could run out during the script (or, at
    /// 1 s, answer `DEADLINE_SOON`): the job must never be reserved.
    pub(crate) short_ttr: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Conn {
    pub(crate) name: String,
    pub(crate) open: bool,
    pub(crate) used: String,
    /// In beanstalkd's order (`ms_remove` moves the last tube into the gap),
    /// which is the order a waiting connection joins the tubes' queues in.
    pub(crate) watched: Vec<String>,
    /// Waits in a `reserve` (its reply is not written yet).
    pub(crate) waiting: bool,
    /// Replies written by the server and not read by the script yet.
    pub(crate) unread: usize,
    /// Commands sent behind the reserve it waits in (they run, and answer,
    /// once it gets a job).
    pub(crate) queued: usize,
    /// In the middle of a line (sent in two parts).
    pub(crate) partial_line: bool,
    /// The job whose body is still being sent.
    pub(crate) arriving: Option<JobKey>,
}

/// A tube's part of the state that is not its jobs: its waiting
/// connections (beanstalkd's `Ms`, with its round-robin cursor) and its
/// pause. Dropped with the tube, as beanstalkd frees it.
#[derive(Clone, Debug, Default)]
struct Tube {
    waiting: Vec<ConnId>,
    last: usize,
    paused: bool,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Model {
    pub(crate) conns: Vec<Conn>,
    pub(crate) jobs: Vec<Job>,
    tubes: HashMap<String, Tube>,
    /// The last id handed out (put lines that were read, body or not).
    pub(crate) last_id: u64,
    /// The model's clock: one tick per command, so deadlines set by two
    /// commands never tie (they do not in beanstalkd, which reads the clock
    /// at each command).
    clock: u64,
    order: u64,
    /// How many `$N` the script has: the `INSERTED` replies read so far.
    pub(crate) named: usize,
    /// After SIGUSR1: every put is refused (`DRAINING`), its id spent.
    pub(crate) draining: bool,
}

/// One second in the model's clock (more ticks than any script has
/// commands).
const SECOND: u64 = 1_000_000;

impl Model {
    pub(crate) fn new() -> Model {
        let mut model = Model::default();
        model.tubes.insert("default".into(), Tube::default());
        model
    }

    /// Opens a connection named `name` (using and watching `default`).
    pub(crate) fn connect(&mut self, name: String) -> ConnId {
        self.conns.push(Conn {
            name,
            open: true,
            used: "default".into(),
            watched: vec!["default".into()],
            waiting: false,
            unread: 0,
            queued: 0,
            partial_line: false,
            arriving: None,
        });
        self.conns.len() - 1
    }

    /// Advances the clock: called once per command.
    pub(crate) fn tick(&mut self) {
        self.clock += 1;
    }

    fn next_order(&mut self) -> u64 {
        self.order += 1;
        self.order
    }

    pub(crate) fn tube_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tubes.keys().cloned().collect();
        names.sort();
        names
    }

    fn make_tube(&mut self, name: &str) {
        self.tubes.entry(name.to_string()).or_default();
    }

    /// Frees the tubes nothing refers to any more (beanstalkd's reference
    /// counts: the connections using or watching it, its jobs, and
    /// `default`'s own), with their pause and waiting queue.
    fn collect_tubes(&mut self) {
        let conns = &self.conns;
        let jobs = &self.jobs;
        self.tubes.retain(|name, _| {
            name == "default"
                || conns.iter().any(|c| c.open && (c.used == *name || c.watched.contains(name)))
                || jobs.iter().any(|j| j.state != State::Gone && j.tube == *name)
        });
    }

    /// The ready jobs of a tube, best first (priority, then id).
    fn best_ready(&self, tube: &str) -> Option<JobKey> {
        (0..self.jobs.len())
            .filter(|&k| self.jobs[k].state == State::Ready && self.jobs[k].tube == tube)
            .min_by_key(|&k| (self.jobs[k].pri, self.jobs[k].id))
    }

    /// The job a `reserve` on `conn` would take at once, if any: the best
    /// ready job of its watched tubes that are not paused.
    pub(crate) fn reservable(&self, conn: ConnId) -> Option<JobKey> {
        self.conns[conn]
            .watched
            .iter()
            .filter(|t| !self.tubes[*t].paused)
            .filter_map(|t| self.best_ready(t))
            .min_by_key(|&k| (self.jobs[k].pri, self.jobs[k].id))
    }

    pub(crate) fn waiting_count(&self) -> usize {
        self.conns.iter().filter(|c| c.open && c.waiting).count()
    }

    /// beanstalkd's `process_queue`: while some tube with waiting
    /// connections has a ready job and is not paused, the best such job
    /// goes to the connection that tube's queue hands out next.
    fn process_queue(&mut self) {
        loop {
            let best = self
                .tubes
                .iter()
                .filter(|(_, t)| !t.waiting.is_empty() && !t.paused)
                .filter_map(|(name, _)| self.best_ready(name))
                .min_by_key(|&k| (self.jobs[k].pri, self.jobs[k].id));
            let Some(job) = best else { return };
            let tube = self.tubes.get_mut(&self.jobs[job].tube).unwrap();
            // ms_take
            tube.last %= tube.waiting.len();
            let conn = tube.waiting.swap_remove(tube.last);
            tube.last += 1;
            self.stop_waiting(conn);
            self.reserve_to(job, conn);
            self.conns[conn].unread += 1 + std::mem::take(&mut self.conns[conn].queued);
        }
    }

    /// beanstalkd's `remove_waiting_conn`.
    fn stop_waiting(&mut self, conn: ConnId) {
        if !self.conns[conn].waiting {
            return;
        }
        self.conns[conn].waiting = false;
        for name in self.conns[conn].watched.clone() {
            let tube = self.tubes.get_mut(&name).unwrap();
            if let Some(i) = tube.waiting.iter().position(|&c| c == conn) {
                tube.waiting.swap_remove(i);
            }
        }
    }

    fn reserve_to(&mut self, job: JobKey, conn: ConnId) {
        let order = self.next_order();
        let j = &mut self.jobs[job];
        j.state = State::Reserved(conn);
        j.order = order;
    }

    /// Makes a job ready and hands it to a waiting connection if one can
    /// take it (beanstalkd's `enqueue_job` with no delay).
    fn make_ready(&mut self, job: JobKey) {
        self.jobs[job].state = State::Ready;
        self.process_queue();
    }

    fn make_delayed(&mut self, job: JobKey, delay: u32) {
        self.jobs[job].state = State::Delayed;
        self.jobs[job].deadline = u64::from(delay) * SECOND + self.clock;
    }

    /// A put line was read: the job exists (with its id) from now on, its
    /// body still to come.
    pub(crate) fn put_line(&mut self, conn: ConnId, pri: u32, ttr: u32) -> JobKey {
        self.last_id += 1;
        let tube = self.conns[conn].used.clone();
        self.jobs.push(Job {
            id: self.last_id,
            tube,
            pri,
            state: State::Arriving,
            deadline: 0,
            order: 0,
            named: None,
            short_ttr: ttr < 1000,
        });
        let job = self.jobs.len() - 1;
        self.conns[conn].arriving = Some(job);
        job
    }

    /// The job's body arrived, ending in CRLF: it is queued.
    pub(crate) fn put_body(&mut self, job: JobKey, delay: u32) {
        self.body_done(job);
        if delay > 0 {
            self.make_delayed(job, delay);
        } else {
            self.make_ready(job);
        }
    }

    /// The job's body did not end in CRLF (`EXPECTED_CRLF`): its id is spent.
    pub(crate) fn put_refused(&mut self, job: JobKey) {
        self.body_done(job);
        self.jobs[job].state = State::Gone;
        self.collect_tubes();
    }

    fn body_done(&mut self, job: JobKey) {
        for c in &mut self.conns {
            if c.arriving == Some(job) {
                c.arriving = None;
            }
        }
    }

    /// True if no job with a short TTR is reserved: what the generator
    /// writes must keep this.
    pub(crate) fn is_safe(&self) -> bool {
        !self.jobs.iter().any(|j| j.short_ttr && matches!(j.state, State::Reserved(_)))
    }

    /// The live job with this id, if any.
    pub(crate) fn job_by_id(&self, id: u64) -> Option<JobKey> {
        self.jobs.iter().position(|j| j.id == id && j.state != State::Gone)
    }

    /// The script read the job's `INSERTED`: it is `$N` from now on.
    pub(crate) fn name_job(&mut self, job: JobKey) {
        self.named += 1;
        self.jobs[job].named = Some(self.named);
    }

    /// `reserve` or `reserve-with-timeout`: true if the connection got a
    /// job at once; else it waits (`wait`) or times out at once.
    pub(crate) fn reserve(&mut self, conn: ConnId, wait: bool) -> bool {
        // wait_for_job, then process_queue.
        self.conns[conn].waiting = true;
        for name in self.conns[conn].watched.clone() {
            self.tubes.get_mut(&name).unwrap().waiting.push(conn);
        }
        let before = self.conns[conn].unread;
        self.process_queue();
        if self.conns[conn].unread > before {
            // The reply is read with the command's own.
            self.conns[conn].unread -= 1;
            return true;
        }
        if !wait {
            // A timeout of 0 ends at beanstalkd's next tick, before any
            // other command.
            self.stop_waiting(conn);
        }
        false
    }

    /// `reserve-job`: true if it reserved the job.
    pub(crate) fn reserve_job(&mut self, conn: ConnId, job: JobKey) -> bool {
        if !matches!(self.jobs[job].state, State::Ready | State::Delayed | State::Buried) {
            return false;
        }
        self.reserve_to(job, conn);
        true
    }

    pub(crate) fn delete(&mut self, conn: ConnId, job: JobKey) {
        let state = self.jobs[job].state;
        if state == State::Reserved(conn) || matches!(state, State::Ready | State::Delayed | State::Buried) {
            self.jobs[job].state = State::Gone;
            self.collect_tubes();
        }
    }

    pub(crate) fn release(&mut self, conn: ConnId, job: JobKey, pri: u32, delay: u32) {
        if self.jobs[job].state != State::Reserved(conn) {
            return;
        }
        self.jobs[job].pri = pri;
        if delay > 0 {
            self.make_delayed(job, delay);
        } else {
            self.make_ready(job);
        }
    }

    pub(crate) fn bury(&mut self, conn: ConnId, job: JobKey, pri: u32) {
        if self.jobs[job].state != State::Reserved(conn) {
            return;
        }
        let order = self.next_order();
        let j = &mut self.jobs[job];
        j.pri = pri;
        j.state = State::Buried;
        j.order = order;
    }

    /// `kick <bound>` in the connection's used tube: buried jobs oldest
    /// first, or if there is none, delayed jobs soonest first.
    pub(crate) fn kick(&mut self, conn: ConnId, bound: u32) {
        let tube = self.conns[conn].used.clone();
        let in_state = |model: &Model, state: State| -> Vec<JobKey> {
            (0..model.jobs.len()).filter(|&k| model.jobs[k].state == state && model.jobs[k].tube == tube).collect()
        };
        let mut jobs = in_state(self, State::Buried);
        if jobs.is_empty() {
            jobs = in_state(self, State::Delayed);
            jobs.sort_by_key(|&k| (self.jobs[k].deadline, self.jobs[k].id));
        } else {
            jobs.sort_by_key(|&k| self.jobs[k].order);
        }
        for job in jobs.into_iter().take(bound as usize) {
            self.make_ready(job);
        }
    }

    pub(crate) fn kick_job(&mut self, job: JobKey) {
        if matches!(self.jobs[job].state, State::Buried | State::Delayed) {
            self.make_ready(job);
        }
    }

    pub(crate) fn use_tube(&mut self, conn: ConnId, name: &str) {
        self.make_tube(name);
        self.conns[conn].used = name.to_string();
        self.collect_tubes();
    }

    pub(crate) fn watch(&mut self, conn: ConnId, name: &str) {
        self.make_tube(name);
        if !self.conns[conn].watched.iter().any(|t| t == name) {
            self.conns[conn].watched.push(name.to_string());
        }
    }

    pub(crate) fn ignore(&mut self, conn: ConnId, name: &str) {
        let watched = &mut self.conns[conn].watched;
        if let Some(i) = watched.iter().position(|t| t == name)
            && watched.len() > 1
        {
            watched.swap_remove(i);
            self.collect_tubes();
        }
    }

    /// `pause-tube`: a pause of 0 s lasts until beanstalkd's next tick,
    /// which serves the waiting connections before any other command.
    pub(crate) fn pause(&mut self, name: &str, seconds: u32) {
        if let Some(tube) = self.tubes.get_mut(name) {
            tube.paused = seconds > 0;
            if seconds == 0 {
                self.process_queue();
            }
        }
    }

    /// True if closing `conn` hands one of two or more reserved jobs to a
    /// waiting connection, where the order they go back in decides which.
    pub(crate) fn close_order_matters(&self, conn: ConnId) -> bool {
        let held = self.jobs.iter().filter(|j| j.state == State::Reserved(conn)).count();
        held >= 2 && self.conns.iter().enumerate().any(|(i, c)| i != conn && c.open && c.waiting)
    }

    /// The connection closed (`quit`, or the script closed it): it stops
    /// waiting, a job still arriving is dropped, its reserved jobs go back
    /// in the order it reserved them (each to a waiting connection if one
    /// can take it), and its tubes lose their references.
    pub(crate) fn close(&mut self, conn: ConnId) {
        self.stop_waiting(conn);
        if let Some(job) = self.conns[conn].arriving.take() {
            self.jobs[job].state = State::Gone;
        }
        let mut reserved: Vec<JobKey> =
            (0..self.jobs.len()).filter(|&k| self.jobs[k].state == State::Reserved(conn)).collect();
        reserved.sort_by_key(|&k| self.jobs[k].order);
        for job in reserved {
            self.make_ready(job);
        }
        let c = &mut self.conns[conn];
        c.open = false;
        c.partial_line = false;
        self.collect_tubes();
    }

    /// The jobs named `$1` to `$limit` for which `pred` holds.
    pub(crate) fn named_in(&self, limit: usize, pred: impl Fn(&Job) -> bool) -> Vec<JobKey> {
        (0..self.jobs.len())
            .filter(|&k| self.jobs[k].named.is_some_and(|n| n <= limit) && pred(&self.jobs[k]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(model: &mut Model, conn: ConnId, pri: u32) -> JobKey {
        model.tick();
        let job = model.put_line(conn, pri, 1000);
        model.put_body(job, 0);
        model.name_job(job);
        job
    }

    /// beanstalkd's order (ms.c): b waits, c waits, b gets a job (the
    /// cursor moves to 1, where c now sits alone at 0), b waits again
    /// (appended at 1): the next job goes to b, not c. And a reserve that
    /// gets a job at once moves the cursor too.
    #[test]
    fn waiters_are_served_round_the_cursor() {
        let mut model = Model::new();
        let (a, b, c) = (model.connect("a".into()), model.connect("b".into()), model.connect("c".into()));
        assert!(!model.reserve(b, true));
        assert!(!model.reserve(c, true));
        let first = put(&mut model, a, 0);
        assert_eq!(model.jobs[first].state, State::Reserved(b));
        assert!(!model.reserve(b, true));
        let second = put(&mut model, a, 0);
        assert_eq!(model.jobs[second].state, State::Reserved(b));

        let mut model = Model::new();
        let (a, b, c) = (model.connect("a".into()), model.connect("b".into()), model.connect("c".into()));
        let job = put(&mut model, a, 0);
        assert!(model.reserve(a, true), "a job at once");
        assert_eq!(model.jobs[job].state, State::Reserved(a));
        assert!(!model.reserve(b, true));
        assert!(!model.reserve(c, true));
        let next = put(&mut model, a, 0);
        assert_eq!(model.jobs[next].state, State::Reserved(c), "the cursor is at 1 since a's reserve");
    }

    /// A closing connection's jobs go back in the order it reserved them,
    /// each to a waiting connection at once.
    #[test]
    fn a_closing_connection_gives_its_jobs_back_in_reserve_order() {
        let mut model = Model::new();
        let (a, b) = (model.connect("a".into()), model.connect("b".into()));
        let low = put(&mut model, a, 5);
        let high = put(&mut model, a, 0);
        assert!(model.reserve(a, false));
        assert!(model.reserve(a, false));
        assert!(!model.reserve(b, true));
        model.close(a);
        assert_eq!(model.jobs[high].state, State::Reserved(b), "reserved first, so given back first");
        assert_eq!(model.jobs[low].state, State::Ready);
    }
}
