//! The check after every restart, before any actor is let back in: the
//! server holds exactly the jobs the ledger says, as it says.
//!
//! - Every job whose put was acknowledged and whose delete was not is
//!   there (else it was *lost*), with its body whole, its tube, TTR,
//!   priority, the delay last set, ready, delayed (with a deadline that
//!   fits the one acknowledged) or buried, and its release, bury and kick
//!   counts; one in-flight command may have been done or not.
//! - Every job whose delete was acknowledged since the last check, and a
//!   sample of those before, is not (else it was *resurrected*).
//! - A job the ledger does not know can only be a put whose reply never
//!   came: its id is among those handed out since the last check (between
//!   the two probes) and its body names such a put. Any other is a
//!   *phantom*.
//! - Then the totals: the server's job count is the ledger's, none is
//!   reserved, and as many are buried.
//!
//! Everything in flight is settled as found, so the ledger is certain
//! again when the actors come back.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::body;
use crate::control::show;
use crate::ledger::{Job, Kind, Ledger, Logged, Op, possible_after};
use crate::shared::{Counts, Shared};
use crate::support::{Client, Stats, found, inserted_id};

/// What a clock reading may be off by between this process and the
/// server's deadlines, which cross restarts as wall-clock times.
const SLACK: Duration = Duration::from_secs(1);

/// Commands sent at once.
const CHUNK: usize = 100;

/// The tube of the checker's probe job, which no actor uses.
const PROBE_TUBE: &str = "soak-probe";

/// A job as the server shows it.
#[derive(Debug)]
struct Seen {
    stats: Stats,
    body: Vec<u8>,
    /// The server answered between these two moments.
    asked: Instant,
    answered: Instant,
}

impl Seen {
    fn num(&self, key: &str) -> u64 {
        self.stats.num(key)
    }

    fn state(&self) -> &str {
        &self.stats["state"]
    }

    /// `want`, made more precise by what was seen, if what was seen fits.
    fn fits(&self, want: &Logged) -> Option<Logged> {
        let counters = (want.releases, want.buries, want.kicks);
        let seen_counters = (self.num("releases"), self.num("buries"), self.num("kicks"));
        if (u64::from(want.pri), u64::from(want.delay)) != (self.num("pri"), self.num("delay"))
            || (u64::from(counters.0), u64::from(counters.1), u64::from(counters.2)) != seen_counters
        {
            return None;
        }
        match (want.kind, self.state()) {
            (Kind::Ready, "ready") | (Kind::Buried, "buried") => Some(*want),
            // Its time came while the server was down or meanwhile.
            (Kind::Delayed { from, .. }, "ready") if from <= self.answered + SLACK => {
                Some(Logged { kind: Kind::Ready, ..*want })
            }
            (Kind::Delayed { from, to }, "delayed") => {
                // time-left is whole seconds, rounded down: the deadline
                // is in (asked + left, answered + left + 1 s].
                let left = Duration::from_secs(self.num("time-left"));
                let fits =
                    self.asked + left < to + SLACK && from < self.answered + left + Duration::from_secs(1) + SLACK;
                fits.then_some(*want)
            }
            _ => None,
        }
    }

    /// The job it fits among `possible` (`None` entries: gone), and whether
    /// it is the first, the state before anything in flight.
    fn settle(&self, possible: &[Option<Logged>]) -> Option<(Logged, bool)> {
        possible.iter().enumerate().find_map(|(i, want)| Some((self.fits(want.as_ref()?)?, i == 0)))
    }

    fn describe(&self) -> String {
        let keys = ["tube", "state", "pri", "delay", "time-left", "ttr", "releases", "buries", "kicks", "file"];
        let fields: Vec<String> = keys.iter().map(|k| format!("{k} {}", self.stats.get(k).unwrap_or("?"))).collect();
        format!("{}; body {}", fields.join(", "), show(&self.body))
    }
}

/// `stats-job` and `peek` of each id, in chunks: `None` for a job not
/// found (by both; one without the other is a failure).
fn look(c: &mut Client, ids: &[u64], failures: &mut Vec<String>) -> Vec<Option<Seen>> {
    let mut seen = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let commands: Vec<u8> =
            chunk.iter().flat_map(|id| format!("stats-job {id}\r\npeek {id}\r\n").into_bytes()).collect();
        let asked = Instant::now();
        let replies = c.pipeline(commands, 2 * chunk.len());
        let answered = Instant::now();
        for (id, pair) in chunk.iter().zip(replies.chunks(2)) {
            let (stats, peek) = (&pair[0], &pair[1]);
            seen.push(match (stats.as_slice(), found(peek)) {
                (b"NOT_FOUND\r\n", None) => None,
                (_, Some((_, body))) if stats.starts_with(b"OK ") => {
                    Some(Seen { stats: Stats::parse(stats), body, asked, answered })
                }
                _ => {
                    failures.push(format!("job {id}: stats-job {} but peek {}", show(stats), show(peek)));
                    None
                }
            });
        }
    }
    seen
}

/// What one check found.
pub struct Checked {
    /// The probe's id: every id handed out before this restart is below.
    pub probe: u64,
    pub jobs: usize,
    pub deleted: usize,
    pub failures: Vec<String>,
}

/// Checks the server `c` is connected to against the ledger, after the
/// server that the ledger's last epoch talked to died at `died`. `floor`
/// is the probe id of that epoch's start.
pub fn after_restart(shared: &Shared, c: &mut Client, died: Instant, floor: u64, restart: u64) -> Checked {
    let mut failures = Vec::new();
    let probe = probe(c);
    let mut ledger = shared.ledger();
    let ledger = &mut *ledger;
    ledger.deleted.insert(probe, 0);
    ledger.deleted_order.push(probe);

    let jobs = check_jobs(shared, c, ledger, died, &mut failures);
    let deleted = check_deletes(shared, c, ledger, &mut failures);
    check_unknown(shared, c, ledger, died, floor..probe, &mut failures);
    for token in ledger.intents.keys().copied().collect::<Vec<_>>() {
        // Its put never came back and its job is not here: not done.
        if ledger.drop_intent(token) {
            Counts::add(&shared.counts.uncertain_not_done, 1);
        }
    }
    ledger.bulk_kick = None;
    check_totals(c, ledger, &mut failures);
    for failure in &mut failures {
        *failure = format!("restart {restart}: {failure}");
    }
    Counts::add(&shared.counts.checks, 1);
    Checked { probe, jobs, deleted, failures }
}

/// Puts and deletes a job in a tube of its own: its id is above every id
/// handed out before.
pub fn probe(c: &mut Client) -> u64 {
    c.exchange(format!("use {PROBE_TUBE}\r\n"), format!("USING {PROBE_TUBE}\r\n"));
    let reply = c.request(crate::support::put_command(0, 0, 60, b"probe"));
    let id = inserted_id(&reply).unwrap_or_else(|| panic!("probe put: {}", show(&reply)));
    c.exchange(format!("delete {id}\r\n"), "DELETED\r\n");
    id
}

fn check_jobs(
    shared: &Shared,
    c: &mut Client,
    ledger: &mut Ledger,
    died: Instant,
    failures: &mut Vec<String>,
) -> usize {
    let mut ids: Vec<u64> = ledger.jobs.keys().copied().collect();
    ids.sort_unstable();
    let seen = look(c, &ids, failures);
    for (id, seen) in ids.iter().copied().zip(seen) {
        let job = &ledger.jobs[&id];
        let possible = job.possible(ledger.bulk_kick == Some(job.tube), died);
        let unsure = possible.len() > 1;
        let Some(seen) = seen else {
            if possible.contains(&None) {
                Counts::add(&shared.counts.uncertain_done, 1);
                ledger.settle_deleted(id);
            } else {
                failures.push(format!("LOST: job {id} {}", described(shared, job, &possible)));
            }
            continue;
        };
        if let Some(problem) = identity(shared, job, &seen) {
            failures.push(format!("job {id}: {problem}; {}", seen.describe()));
            continue;
        }
        match seen.settle(&possible) {
            Some((state, first)) => {
                if unsure {
                    let counter = if first { &shared.counts.uncertain_not_done } else { &shared.counts.uncertain_done };
                    Counts::add(counter, 1);
                }
                ledger.settle(id, state);
            }
            None => failures.push(format!(
                "MISMATCH: job {id} is {}, but {}",
                seen.describe(),
                described(shared, job, &possible)
            )),
        }
    }
    ids.len()
}

/// What is wrong with the body, tube or TTR of `seen`, the job `job`.
fn identity(shared: &Shared, job: &Job, seen: &Seen) -> Option<String> {
    match body::token(&seen.body) {
        Some(token) if token == job.token && seen.body.len() == job.len => {}
        _ => return Some(format!("the body is not that of token {:x} ({} bytes)", job.token, job.len)),
    }
    if seen.stats["tube"] != shared.cfg.tube_name(job.tube) {
        return Some(format!("tube {} is not {}", seen.stats["tube"], shared.cfg.tube_name(job.tube)));
    }
    (seen.num("ttr") != u64::from(job.ttr)).then(|| format!("ttr is not {}", job.ttr))
}

fn described(shared: &Shared, job: &Job, possible: &[Option<Logged>]) -> String {
    let states: Vec<String> = possible.iter().map(|p| p.map_or("deleted".to_string(), |l| format!("{l:?}"))).collect();
    format!(
        "(token {:x}, tube {}, {} bytes) must be one of: {}; in flight: {:?}",
        job.token,
        shared.cfg.tube_name(job.tube),
        job.len,
        states.join(" | "),
        job.inflight.iter().map(|f| f.op).collect::<Vec<_>>()
    )
}

/// Deletes acknowledged since the last check, and a sample of the older
/// ones: none may be found.
fn check_deletes(shared: &Shared, c: &mut Client, ledger: &mut Ledger, failures: &mut Vec<String>) -> usize {
    let mut rng = shared.rng(ledger.deleted_order.len() as u64);
    let older = ledger.deletes_checked;
    let mut ids: Vec<u64> = ledger.deleted_order[older..].to_vec();
    if older <= shared.cfg.deleted_sample {
        ids.extend_from_slice(&ledger.deleted_order[..older]);
    } else {
        ids.extend((0..shared.cfg.deleted_sample).map(|_| ledger.deleted_order[rng.index(older)]));
    }
    ledger.deletes_checked = ledger.deleted_order.len();
    for chunk in ids.chunks(CHUNK) {
        let commands: Vec<u8> = chunk.iter().flat_map(|id| format!("peek {id}\r\n").into_bytes()).collect();
        for (id, reply) in chunk.iter().zip(c.pipeline(commands, chunk.len())) {
            if let Some((_, body)) = found(&reply) {
                failures.push(format!(
                    "RESURRECTED: job {id} (token {:x}) is back after its delete was acknowledged: body {}",
                    ledger.deleted[id],
                    show(&body)
                ));
            }
        }
    }
    ids.len()
}

/// Ids in `range` (handed out since the last check) that the ledger does
/// not know: a job found there must be a put whose reply never came.
fn check_unknown(
    shared: &Shared,
    c: &mut Client,
    ledger: &mut Ledger,
    died: Instant,
    range: std::ops::Range<u64>,
    failures: &mut Vec<String>,
) {
    let ids: Vec<u64> = range.filter(|id| !ledger.jobs.contains_key(id) && !ledger.deleted.contains_key(id)).collect();
    let seen = look(c, &ids, failures);
    let mut claimed = HashSet::new();
    for (id, seen) in ids.into_iter().zip(seen) {
        let Some(seen) = seen else { continue };
        let intent = body::token(&seen.body).and_then(|t| Some((t, *ledger.intents.get(&t)?)));
        let Some((token, intent)) = intent.filter(|(t, _)| claimed.insert(*t)) else {
            failures.push(format!("PHANTOM: job {id}, which no put in flight explains: {}", seen.describe()));
            continue;
        };
        let mut ops = Vec::new();
        if ledger.bulk_kick == Some(intent.tube) {
            ops.push((Op::Kick, died));
        }
        let possible = possible_after(&[intent.logged(died)], &ops, died);
        let right_place =
            seen.stats["tube"] == shared.cfg.tube_name(intent.tube) && seen.num("ttr") == u64::from(intent.ttr);
        match seen.settle(&possible).filter(|_| right_place) {
            Some((state, _)) => {
                Counts::add(&shared.counts.uncertain_done, 1);
                ledger.settle_found(token, id, state);
            }
            None => failures.push(format!(
                "MISMATCH: job {id} of a put in flight ({intent:?}) is {}, but must be one of {possible:?}",
                seen.describe()
            )),
        }
    }
}

/// The server's counts are the ledger's.
fn check_totals(c: &mut Client, ledger: &Ledger, failures: &mut Vec<String>) {
    let stats = c.stats();
    let count = |key: &str| stats.num(&format!("current-jobs-{key}"));
    let total = count("ready") + count("reserved") + count("delayed") + count("buried");
    let buried = ledger.jobs.values().filter(|j| j.alts[0].kind == Kind::Buried).count() as u64;
    if total != ledger.jobs.len() as u64 || count("reserved") != 0 || count("buried") != buried {
        failures.push(format!(
            "COUNT: the server holds {total} jobs ({} reserved, {} buried), the ledger {} ({buried} buried)",
            count("reserved"),
            count("buried"),
            ledger.jobs.len()
        ));
    }
}
