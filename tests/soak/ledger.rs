//! The ledger: every fact the server acknowledged, which every restart must
//! show, and what was in flight when it died, which a restart may or may
//! not show.
//!
//! A job is known from the `INSERTED` that acknowledged its put, or from a
//! `RESERVED` that handed it out before its producer read that reply (the
//! body's token names the put). What the log must bring back for a job is
//! a [`Logged`]: priority, the delay last set, ready, delayed or buried,
//! and the counters a logged change carries. A job usually has one; it has
//! several ([`Job::alts`]) only where the replies cannot tell which of two
//! changes came first (a kick whose reply was read after another client's
//! change to the same job was entered), until a reservation or the next
//! restart's check tells.
//!
//! A command is entered before it is sent ([`Ledger::begin`]) and applied
//! when its reply is read ([`Ledger::ack`]). One whose reply never came,
//! because the server died, stays in flight: the check after the restart
//! accepts the job as it was or as the command left it, and settles it as
//! it finds it. A put whose reply never came stays an [`Intent`]: its job
//! may exist, with an id nobody read.
//!
//! Replies on different connections may be read in another order than the
//! server did the commands: a job released by one worker can be reserved
//! and buried by another before the first has entered its release. So a
//! reservation is entered only once no command about the job is in flight
//! (the workers wait for that), and every change to a job that a client
//! holds comes after it in the ledger, as on the server. Only a kick whose
//! reply comes while another client's change is entered stays unordered;
//! see [`kicked`].
//!
//! Reserving, touching, a TTR running out and a delay ending are not
//! logged (protocol.md, "The binlog"): a reserved job comes back ready, a
//! delayed one whose time came ready, and none of them changes a job here
//! except that a reservation shows the job was ready.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::body;
use crate::control::show;
use crate::support::Rng;

/// Bytes of a job record before its tube name and body, and of a delete
/// record (docs/binlog-format.md, "Payloads"): a live job's share of the
/// log is its job record and the delete set aside for it.
const JOB_RECORD_FIXED: u64 = 79;
const DELETE_RECORD: u64 = 17;

/// What the log holds for a job: what a restart brings back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ready,
    /// Delayed until a moment in `from..=to`: the delay added to the times
    /// the command was sent and its reply read.
    Delayed {
        from: Instant,
        to: Instant,
    },
    Buried,
}

impl Kind {
    /// Ready, or delayed by `delay` seconds from a moment in `sent..=done`.
    fn after(delay: u32, sent: Instant, done: Instant) -> Kind {
        let secs = Duration::from_secs(delay.into());
        if delay == 0 { Kind::Ready } else { Kind::Delayed { from: sent + secs, to: done + secs } }
    }

    fn kickable(self) -> bool {
        matches!(self, Kind::Delayed { .. } | Kind::Buried)
    }
}

/// One possible logged state of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Logged {
    pub pri: u32,
    /// The delay last set, by the put or a release, in seconds.
    pub delay: u32,
    pub kind: Kind,
    pub releases: u32,
    pub buries: u32,
    pub kicks: u32,
}

/// A logged change a client asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Delete,
    Release {
        pri: u32,
        delay: u32,
    },
    Bury {
        pri: u32,
    },
    /// `kick-job`, or a `kick` of the job's tube.
    Kick,
}

impl Op {
    /// `state` after the op, sent at `sent` and done by `done`: `None` once
    /// deleted. A kick changes only a buried or delayed job.
    pub fn apply(self, state: Logged, sent: Instant, done: Instant) -> Option<Logged> {
        Some(match self {
            Op::Delete => return None,
            Op::Release { pri, delay } => {
                Logged { pri, delay, kind: Kind::after(delay, sent, done), releases: state.releases + 1, ..state }
            }
            Op::Bury { pri } => Logged { pri, kind: Kind::Buried, buries: state.buries + 1, ..state },
            Op::Kick if state.kind.kickable() => Logged { kind: Kind::Ready, kicks: state.kicks + 1, ..state },
            Op::Kick => state,
        })
    }
}

/// A command sent about a job whose reply was not read yet.
#[derive(Clone, Copy, Debug)]
pub struct InFlight {
    seq: u64,
    pub op: Op,
    pub sent: Instant,
    /// The job's [`Job::version`] when it was sent.
    version: u64,
}

#[derive(Clone, Debug)]
pub struct Job {
    pub token: u64,
    pub tube: usize,
    pub len: usize,
    pub ttr: u32,
    /// What the log may hold for it (at least one).
    pub alts: Vec<Logged>,
    pub inflight: Vec<InFlight>,
    /// Raised by every change entered, so that a kick can tell whether
    /// another client's change was entered while its reply was on its way.
    pub version: u64,
}

impl Job {
    /// The one logged state, if it is certain and nothing is in flight.
    pub fn settled(&self) -> Option<Logged> {
        (self.alts.len() == 1 && self.inflight.is_empty()).then_some(self.alts[0])
    }

    fn push_alt(&mut self, alt: Logged) {
        if !self.alts.contains(&alt) {
            self.alts.push(alt);
        }
    }

    /// Every state a restart may bring back (`None`: the job may be gone):
    /// the logged ones, and those after any of the commands in flight when
    /// the server died at `died` (a `kick` of its tube, `bulk_kick`,
    /// among them), in any order.
    pub fn possible(&self, bulk_kick: bool, died: Instant) -> Vec<Option<Logged>> {
        let mut ops: Vec<(Op, Instant)> = self.inflight.iter().map(|f| (f.op, f.sent)).collect();
        if bulk_kick {
            ops.push((Op::Kick, died));
        }
        possible_after(&self.alts, &ops, died)
    }
}

/// `start`, and what any sequence of `ops` (each at most once, in any
/// order, done by `died`) makes of it.
pub fn possible_after(start: &[Logged], ops: &[(Op, Instant)], died: Instant) -> Vec<Option<Logged>> {
    fn walk(state: Logged, ops: &[(Op, Instant)], left: &mut Vec<bool>, died: Instant, out: &mut Vec<Option<Logged>>) {
        if !out.contains(&Some(state)) {
            out.push(Some(state));
        }
        for i in 0..ops.len() {
            if !left[i] {
                continue;
            }
            let (op, sent) = ops[i];
            match op.apply(state, sent, died) {
                Some(next) => {
                    left[i] = false;
                    walk(next, ops, left, died, out);
                    left[i] = true;
                }
                None if !out.contains(&None) => out.push(None),
                None => {}
            }
        }
    }
    let mut out = Vec::new();
    for &state in start {
        walk(state, ops, &mut vec![true; ops.len()], died, &mut out);
    }
    out
}

/// A put sent whose reply was not read yet.
#[derive(Clone, Copy, Debug)]
pub struct Intent {
    pub tube: usize,
    pub pri: u32,
    pub delay: u32,
    pub ttr: u32,
    pub len: usize,
    pub sent: Instant,
    /// The id a `RESERVED` showed it under before the `INSERTED` was read.
    registered_as: Option<u64>,
}

impl Intent {
    pub fn new(tube: usize, pri: u32, delay: u32, ttr: u32, len: usize, sent: Instant) -> Intent {
        Intent { tube, pri, delay, ttr, len, sent, registered_as: None }
    }

    /// What the log holds for the job once its put is done by `done`.
    pub fn logged(&self, done: Instant) -> Logged {
        let kind = Kind::after(self.delay, self.sent, done);
        Logged { pri: self.pri, delay: self.delay, kind, releases: 0, buries: 0, kicks: 0 }
    }

    fn job(&self, token: u64, done: Instant) -> Job {
        Job {
            token,
            tube: self.tube,
            len: self.len,
            ttr: self.ttr,
            alts: vec![self.logged(done)],
            inflight: Vec::new(),
            version: 0,
        }
    }
}

/// What the log holds for a live job: its job record and the delete set
/// aside for it (every tube name of the soak is `soak-NN`, 7 bytes).
pub fn log_bytes(body_len: usize) -> u64 {
    JOB_RECORD_FIXED + 7 + body_len as u64 + DELETE_RECORD
}

#[derive(Default)]
pub struct Ledger {
    pub jobs: HashMap<u64, Job>,
    /// Acknowledged deletes: id, and the token of the job deleted.
    pub deleted: HashMap<u64, u64>,
    /// The same ids in the order they were acknowledged; those from
    /// `deletes_checked` on came after the last check.
    pub deleted_order: Vec<u64>,
    pub deletes_checked: usize,
    /// Puts sent whose reply was not read, by token.
    pub intents: HashMap<u64, Intent>,
    /// The tube of a `kick N` sent whose kicked jobs are not entered yet.
    pub bulk_kick: Option<usize>,
    /// Jobs and unregistered intents per tube, in all, and their log bytes.
    pub live_per_tube: Vec<usize>,
    pub live: usize,
    pub live_bytes: u64,
    /// The seqs of every command in flight.
    inflight: HashSet<u64>,
    next_seq: u64,
}

impl Ledger {
    pub fn new(tubes: usize) -> Ledger {
        Ledger { live_per_tube: vec![0; tubes], ..Ledger::default() }
    }

    fn count(&mut self, tube: usize, len: usize, up: bool) {
        if up {
            self.live_per_tube[tube] += 1;
            self.live += 1;
            self.live_bytes += log_bytes(len);
        } else {
            self.live_per_tube[tube] -= 1;
            self.live -= 1;
            self.live_bytes -= log_bytes(len);
        }
    }

    /// A put is about to be sent.
    pub fn intend(&mut self, token: u64, intent: Intent) {
        self.count(intent.tube, intent.len, true);
        self.intents.insert(token, intent);
    }

    /// The put of `token` was answered `INSERTED id` at `now`.
    pub fn inserted(&mut self, token: u64, id: u64, now: Instant) -> Result<(), String> {
        let intent = self.intents.remove(&token).expect("a put's intent is entered before it is sent");
        match intent.registered_as {
            Some(seen) if seen == id => return Ok(()),
            Some(seen) => {
                return Err(format!("put of token {token:x} INSERTED {id}, but RESERVED showed it as {seen}"));
            }
            None => {}
        }
        let existing = self.jobs.get(&id).map(|j| j.token).or_else(|| self.deleted.get(&id).copied());
        if let Some(other) = existing {
            self.count(intent.tube, intent.len, false);
            return Err(format!("INSERTED {id} for token {token:x}: that id was acknowledged before, token {other:x}"));
        }
        self.jobs.insert(id, intent.job(token, now));
        Ok(())
    }

    /// The put of `token` was refused, or its connection broke and the
    /// check found no job of its: it made nothing (true), unless a
    /// `RESERVED` showed its job (false).
    pub fn drop_intent(&mut self, token: u64) -> bool {
        match self.intents.remove(&token) {
            Some(intent) if intent.registered_as.is_none() => {
                self.count(intent.tube, intent.len, false);
                true
            }
            _ => false,
        }
    }

    /// `RESERVED id` with `body` was read at `now`: the job exists, is whole,
    /// and was ready.
    pub fn reserved(&mut self, id: u64, body: &[u8], now: Instant) -> Result<(), String> {
        let Some(token) = body::token(body) else {
            return Err(format!("RESERVED {id}: the body is not whole: {}", show(body)));
        };
        if let Some(job) = self.jobs.get_mut(&id) {
            if job.token != token {
                return Err(format!(
                    "RESERVED {id} with the body of token {token:x}; its put had token {:x}",
                    job.token
                ));
            }
            job.version += 1;
            let alts = std::mem::take(&mut job.alts);
            for alt in alts {
                job.push_alt(Logged { kind: Kind::Ready, ..alt });
            }
            return Ok(());
        }
        if let Some(&was) = self.deleted.get(&id) {
            return Err(format!("RESERVED {id} (token {token:x}): its delete was acknowledged (token {was:x})"));
        }
        let Some(intent) = self.intents.get_mut(&token) else {
            return Err(format!("RESERVED {id} with token {token:x}, which no put in flight has"));
        };
        if let Some(seen) = intent.registered_as {
            return Err(format!("RESERVED {id} with token {token:x}, already reserved as {seen}"));
        }
        intent.registered_as = Some(id);
        let mut job = intent.job(token, now);
        job.alts[0].kind = Kind::Ready;
        self.jobs.insert(id, job);
        Ok(())
    }

    /// True while a command about job `id` waits for its reply to be
    /// entered.
    pub fn in_flight(&self, id: u64) -> bool {
        self.jobs.get(&id).is_some_and(|j| !j.inflight.is_empty())
    }

    /// `op` about job `id` is about to be sent at `now`; its seq, for
    /// [`Ledger::ack`] or [`Ledger::cancel`], or `None` if the job is not
    /// known (any more).
    pub fn begin(&mut self, id: u64, op: Op, now: Instant) -> Option<u64> {
        let job = self.jobs.get_mut(&id)?;
        self.next_seq += 1;
        let seq = self.next_seq;
        job.inflight.push(InFlight { seq, op, sent: now, version: job.version });
        self.inflight.insert(seq);
        Some(seq)
    }

    fn take_inflight(&mut self, id: u64, seq: u64) -> Option<InFlight> {
        self.inflight.remove(&seq);
        let job = self.jobs.get_mut(&id)?;
        let at = job.inflight.iter().position(|f| f.seq == seq)?;
        Some(job.inflight.remove(at))
    }

    /// The command `seq` about job `id` was refused (`NOT_FOUND`): no change.
    pub fn cancel(&mut self, id: u64, seq: u64) {
        self.take_inflight(id, seq);
    }

    /// The command `seq` about job `id` succeeded; its reply was read at
    /// `now`.
    pub fn ack(&mut self, id: u64, seq: u64, now: Instant) {
        let Some(f) = self.take_inflight(id, seq) else { return };
        if f.op == Op::Delete {
            return self.settle_deleted(id);
        }
        let job = self.jobs.get_mut(&id).expect("a command in flight is about a known job");
        match f.op {
            Op::Delete => unreachable!(),
            Op::Kick => kicked(job, f.version),
            op => {
                // A release or a bury by the client holding the job: it
                // comes after anything else entered about it.
                job.version += 1;
                let alts = std::mem::take(&mut job.alts);
                for alt in alts {
                    job.push_alt(op.apply(alt, f.sent, now).expect("not a delete"));
                }
            }
        }
    }

    /// The kicker saw that the `kick N` sent when job `id` was at `version`
    /// (`None`: not known then) kicked it.
    pub fn bulk_kicked(&mut self, id: u64, version: Option<u64>) {
        if let Some(job) = self.jobs.get_mut(&id) {
            kicked(job, version.unwrap_or(u64::MAX));
        }
    }

    /// True while any of these commands (by seq) or puts (by token) has no
    /// reply entered.
    pub fn any_pending(&self, seqs: &[u64], tokens: &[u64]) -> bool {
        seqs.iter().any(|s| self.inflight.contains(s)) || tokens.iter().any(|t| self.intents.contains_key(t))
    }

    /// The commands and puts in flight about jobs of `tube`.
    pub fn pending_in_tube(&self, tube: usize) -> (Vec<u64>, Vec<u64>) {
        let seqs = self.jobs.values().filter(|j| j.tube == tube).flat_map(|j| j.inflight.iter().map(|f| f.seq));
        let tokens = self.intents.iter().filter(|(_, i)| i.tube == tube).map(|(&t, _)| t);
        (seqs.collect(), tokens.collect())
    }

    /// Every job of `tube`, with its version.
    pub fn in_tube(&self, tube: usize) -> Vec<(u64, u64)> {
        self.jobs.iter().filter(|(_, j)| j.tube == tube).map(|(&id, j)| (id, j.version)).collect()
    }

    /// A job chosen at random among those `want` accepts.
    pub fn pick(&self, rng: &mut Rng, want: impl Fn(&Job) -> bool) -> Option<(u64, &Job)> {
        let mut chosen = None;
        let mut seen = 0;
        for (&id, job) in &self.jobs {
            if want(job) {
                seen += 1;
                if rng.below(seen) == 0 {
                    chosen = Some((id, job));
                }
            }
        }
        chosen
    }

    /// A deleted id chosen at random.
    pub fn pick_deleted(&self, rng: &mut Rng) -> Option<u64> {
        (!self.deleted_order.is_empty()).then(|| self.deleted_order[rng.index(self.deleted_order.len())])
    }

    /// The check found job `id` as `state`: that is what it is now, with
    /// nothing in flight.
    pub fn settle(&mut self, id: u64, state: Logged) {
        let job = self.jobs.get_mut(&id).expect("a known job");
        for f in job.inflight.drain(..) {
            self.inflight.remove(&f.seq);
        }
        job.alts = vec![state];
        job.version += 1;
    }

    /// Job `id` is gone: its delete was acknowledged, or the check found it
    /// gone with a delete in flight.
    pub fn settle_deleted(&mut self, id: u64) {
        let job = self.jobs.remove(&id).expect("a known job");
        for f in &job.inflight {
            self.inflight.remove(&f.seq);
        }
        self.count(job.tube, job.len, false);
        self.deleted.insert(id, job.token);
        self.deleted_order.push(id);
    }

    /// The check found the job of the put of `token` (whose reply was
    /// never read) under `id`, as `state`.
    pub fn settle_found(&mut self, token: u64, id: u64, state: Logged) {
        let intent = self.intents.remove(&token).expect("an intent");
        let mut job = intent.job(token, intent.sent);
        job.alts = vec![state];
        self.jobs.insert(id, job);
    }
}

/// A kick of `job` (sent when it was at `version`) was done. Counters are
/// only ever changed by their own commands, so the kick counts for every
/// possible state. If nothing else was entered about the job since the
/// kick was sent, the kick is its latest change; otherwise those changes
/// may have come before the kick or after it, and both stay possible.
fn kicked(job: &mut Job, version: u64) {
    let alts = std::mem::take(&mut job.alts);
    let unchanged = job.version == version;
    job.version += 1;
    for alt in alts {
        let counted = Logged { kicks: alt.kicks + 1, ..alt };
        let done = Logged { kind: Kind::Ready, ..counted };
        if !unchanged || !alt.kind.kickable() {
            job.push_alt(counted);
        }
        if alt.kind.kickable() {
            job.push_alt(done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(pri: u32) -> Logged {
        Logged { pri, delay: 0, kind: Kind::Ready, releases: 0, buries: 0, kicks: 0 }
    }

    /// A job put with `pri` and reserved, as a worker holds it.
    fn held(ledger: &mut Ledger, id: u64, pri: u32, now: Instant) {
        let token = 0x70 + id;
        ledger.intend(token, Intent::new(0, pri, 0, 60, 40, now));
        ledger.inserted(token, id, now).unwrap();
        ledger.reserved(id, &body::make(token, 40), now).unwrap();
    }

    #[test]
    fn a_command_in_flight_may_be_done_or_not_and_a_delete_may_be_gone() {
        let now = Instant::now();
        let mut ledger = Ledger::new(1);
        held(&mut ledger, 1, 5, now);
        ledger.begin(1, Op::Bury { pri: 7 }, now).unwrap();
        let buried = Logged { pri: 7, kind: Kind::Buried, buries: 1, ..ready(5) };
        assert_eq!(ledger.jobs[&1].possible(false, now), [Some(ready(5)), Some(buried)]);
        held(&mut ledger, 2, 5, now);
        ledger.begin(2, Op::Delete, now).unwrap();
        assert_eq!(ledger.jobs[&2].possible(false, now), [Some(ready(5)), None]);
        // A kick of the tube in flight too: the bury, then the kick.
        let kicked = Logged { kind: Kind::Ready, kicks: 1, ..buried };
        assert_eq!(ledger.jobs[&1].possible(true, now), [Some(ready(5)), Some(buried), Some(kicked)]);
    }

    #[test]
    fn a_kick_answered_after_another_change_was_entered_leaves_both_possible() {
        let now = Instant::now();
        let mut ledger = Ledger::new(1);
        held(&mut ledger, 1, 5, now);
        let seq = ledger.begin(1, Op::Bury { pri: 5 }, now).unwrap();
        ledger.ack(1, seq, now);
        // Nothing entered meanwhile: the kick is the latest change.
        let seq = ledger.begin(1, Op::Kick, now).unwrap();
        ledger.ack(1, seq, now);
        assert_eq!(ledger.jobs[&1].alts, [Logged { kicks: 1, buries: 1, ..ready(5) }]);
        // A bury entered while the kick's reply was on its way.
        ledger.reserved(1, &body::make(0x71, 40), now).unwrap();
        let seq = ledger.begin(1, Op::Bury { pri: 5 }, now).unwrap();
        ledger.ack(1, seq, now);
        ledger.bulk_kicked(1, Some(0));
        let buried = Logged { kind: Kind::Buried, buries: 2, kicks: 2, ..ready(5) };
        assert_eq!(ledger.jobs[&1].alts, [buried, Logged { kind: Kind::Ready, ..buried }]);
        // A reservation shows it was ready.
        ledger.reserved(1, &body::make(0x71, 40), now).unwrap();
        assert_eq!(ledger.jobs[&1].alts, [Logged { kind: Kind::Ready, ..buried }]);
    }

    #[test]
    fn a_job_reserved_before_its_put_is_answered_is_known_once() {
        let now = Instant::now();
        let mut ledger = Ledger::new(1);
        ledger.intend(9, Intent::new(0, 1, 0, 60, 40, now));
        ledger.reserved(4, &body::make(9, 40), now).unwrap();
        let seq = ledger.begin(4, Op::Delete, now).unwrap();
        ledger.ack(4, seq, now);
        assert_eq!(ledger.inserted(9, 4, now), Ok(()));
        assert!(ledger.jobs.is_empty() && ledger.deleted.contains_key(&4) && ledger.live == 0);
        assert!(ledger.reserved(4, &body::make(9, 40), now).is_err(), "a deleted job reserved");
        ledger.intend(10, Intent::new(0, 1, 0, 60, 40, now));
        assert!(ledger.inserted(10, 4, now).is_err(), "an id handed out twice");
    }
}
