//! The kicker: `kick-job` of buried and delayed jobs, `kick N` of a tube,
//! deletes of buried jobs, and `peek`s of deleted jobs, which must stay
//! gone while the server runs too.
//!
//! Buried jobs are the kicker's alone (no worker can reserve one), so what
//! it does to them is certain. A `kick N` does not say which jobs it
//! kicked; the kicker waits until every command that was in flight about
//! the tube's jobs when its reply came is entered, then reads each job's
//! `kicks` count, which only the kicker changes: the jobs whose count went
//! up are the ones kicked.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use crate::control::{Conn, End, show};
use crate::ledger::{Kind, Op};
use crate::shared::{Counts, Shared, between, pause};
use crate::support::{Addr, Rng, Stats, found};

/// Jobs one `kick N` kicks at most.
const BULK: u64 = 50;

pub fn run(shared: &Shared) {
    let mut rng = shared.rng(300);
    shared.run_actor("kicker", |epoch, addr| {
        let Err(end) = session(shared, &mut rng, epoch, addr);
        end
    });
}

fn session(shared: &Shared, rng: &mut Rng, epoch: u64, addr: &Addr) -> Result<Infallible, End> {
    let mut conn = Conn::open(&shared.control, epoch, addr)?;
    loop {
        conn.still_up()?;
        pause(between(rng, shared.cfg.kick_pause_ms));
        match rng.below(100) {
            0..35 => buried(shared, &mut conn, rng, Op::Kick)?,
            35..50 => buried(shared, &mut conn, rng, Op::Delete)?,
            50..62 => kick_delayed(shared, &mut conn, rng)?,
            62..72 => kick_tube(shared, &mut conn, rng)?,
            _ => peek_deleted(shared, &mut conn, rng)?,
        }
    }
}

/// `kick-job` or `delete` of a buried job: both must succeed.
fn buried(shared: &Shared, conn: &mut Conn, rng: &mut Rng, op: Op) -> Result<(), End> {
    let begun = {
        let mut ledger = shared.ledger();
        let id = ledger.pick(rng, |j| j.settled().is_some_and(|l| l.kind == Kind::Buried)).map(|(id, _)| id);
        id.and_then(|id| Some((id, ledger.begin(id, op, Instant::now())?)))
    };
    let Some((id, seq)) = begun else { return Ok(()) };
    let (command, want, counter) = match op {
        Op::Kick => (format!("kick-job {id}\r\n"), "KICKED\r\n", &shared.counts.kick_jobs),
        _ => (format!("delete {id}\r\n"), "DELETED\r\n", &shared.counts.deletes),
    };
    let reply = conn.ask(command.as_bytes())?;
    if reply != want.as_bytes() {
        return Err(End::Failed(format!("{} of a buried job answered {}", command.trim_end(), show(&reply))));
    }
    shared.ledger().ack(id, seq, Instant::now());
    Counts::add(counter, 1);
    Ok(())
}

/// `kick-job` of a delayed job. It may have become ready meanwhile (and
/// `NOT_FOUND`), but not before its earliest deadline.
fn kick_delayed(shared: &Shared, conn: &mut Conn, rng: &mut Rng) -> Result<(), End> {
    let soon = Instant::now() + Duration::from_millis(500);
    let begun = {
        let mut ledger = shared.ledger();
        let delayed = |kind| matches!(kind, Kind::Delayed { from, .. } if from > soon);
        let picked = ledger.pick(rng, |j| j.settled().is_some_and(|l| delayed(l.kind)));
        let picked = picked.map(|(id, j)| (id, j.alts[0].kind));
        picked.and_then(|(id, kind)| Some((id, kind, ledger.begin(id, Op::Kick, Instant::now())?)))
    };
    let Some((id, Kind::Delayed { from, .. }, seq)) = begun else { return Ok(()) };
    let reply = conn.ask(format!("kick-job {id}\r\n").as_bytes())?;
    let answered = Instant::now();
    match reply.as_slice() {
        b"KICKED\r\n" => {
            shared.ledger().ack(id, seq, answered);
            Counts::add(&shared.counts.kick_jobs, 1);
            Ok(())
        }
        b"NOT_FOUND\r\n" if answered >= from => {
            shared.ledger().cancel(id, seq);
            Ok(())
        }
        _ => Err(End::Failed(format!("kick-job {id} of a delayed job answered {}", show(&reply)))),
    }
}

/// `kick 50` in a tube (the one with most buried jobs, or any), then which
/// jobs it kicked, by their `kicks` counts.
fn kick_tube(shared: &Shared, conn: &mut Conn, rng: &mut Rng) -> Result<(), End> {
    let cfg = &shared.cfg;
    let (tube, before) = {
        let mut ledger = shared.ledger();
        let tube = if rng.below(2) == 0 {
            let mut buried = vec![0; cfg.tubes];
            for job in ledger.jobs.values().filter(|j| j.alts[0].kind == Kind::Buried) {
                buried[job.tube] += 1;
            }
            (0..cfg.tubes).max_by_key(|&t| buried[t]).expect("tubes")
        } else {
            rng.index(cfg.tubes)
        };
        ledger.bulk_kick = Some(tube);
        (tube, ledger.in_tube(tube).into_iter().collect::<HashMap<u64, u64>>())
    };
    let name = cfg.tube_name(tube);
    conn.expect(format!("use {name}\r\n").as_bytes(), format!("USING {name}\r\n").as_bytes())?;
    let reply = conn.ask(format!("kick {BULK}\r\n").as_bytes())?;
    let kicked: u64 =
        match std::str::from_utf8(&reply).ok().and_then(|r| r.strip_prefix("KICKED ")?.trim_end().parse().ok()) {
            Some(n) => n,
            None => return Err(End::Failed(format!("kick {BULK} answered {}", show(&reply)))),
        };
    Counts::add(&shared.counts.bulk_kicks, 1);
    if kicked > 0 {
        let found = which_kicked(shared, conn, tube, &before)?;
        if found > kicked {
            return Err(End::Failed(format!("kick {BULK} in {name} answered KICKED {kicked}, but {found} jobs were")));
        }
        Counts::add(&shared.counts.bulk_kicked, found);
    }
    shared.ledger().bulk_kick = None;
    Ok(())
}

/// Enters the jobs of `tube` that the kick just answered kicked (`before`:
/// each job's version when the kick was sent); returns how many.
fn which_kicked(shared: &Shared, conn: &mut Conn, tube: usize, before: &HashMap<u64, u64>) -> Result<u64, End> {
    // Whatever was done before the kick was in flight or entered when its
    // reply came: wait until it is all entered.
    let (seqs, tokens) = shared.ledger().pending_in_tube(tube);
    while shared.ledger().any_pending(&seqs, &tokens) {
        conn.still_up()?;
        pause(1);
    }
    let ids: Vec<u64> = shared.ledger().in_tube(tube).into_iter().map(|(id, _)| id).collect();
    let commands: Vec<u8> = ids.iter().flat_map(|id| format!("stats-job {id}\r\n").into_bytes()).collect();
    conn.send(&commands)?;
    let mut kicked = 0;
    for id in ids {
        let reply = conn.reply()?;
        if reply == b"NOT_FOUND\r\n" {
            // Deleted since by the worker that reserved it.
            continue;
        }
        if !reply.starts_with(b"OK ") {
            return Err(End::Failed(format!("stats-job {id} answered {}", show(&reply))));
        }
        let seen = Stats::parse(&reply).num("kicks");
        let mut ledger = shared.ledger();
        let Some(job) = ledger.jobs.get(&id) else { continue };
        let counted = u64::from(job.alts[0].kicks);
        if job.alts.iter().any(|a| u64::from(a.kicks) != counted) || !(counted..=counted + 1).contains(&seen) {
            return Err(End::Failed(format!("job {id} has kicks {seen}, the ledger {:?}", job.alts)));
        }
        if seen == counted + 1 {
            ledger.bulk_kicked(id, before.get(&id).copied());
            kicked += 1;
        }
    }
    Ok(kicked)
}

/// `peek` of a job whose delete was acknowledged: `NOT_FOUND`.
fn peek_deleted(shared: &Shared, conn: &mut Conn, rng: &mut Rng) -> Result<(), End> {
    let Some(id) = shared.ledger().pick_deleted(rng) else { return Ok(()) };
    let reply = conn.ask(format!("peek {id}\r\n").as_bytes())?;
    if reply.starts_with(b"FOUND ") {
        let body = found(&reply).map(|(_, b)| b).unwrap_or_default();
        return Err(End::Failed(format!("RESURRECTED: job {id}, deleted, is found while running: {}", show(&body))));
    }
    if reply != b"NOT_FOUND\r\n" {
        return Err(End::Failed(format!("peek {id} answered {}", show(&reply))));
    }
    Counts::add(&shared.counts.peeks_of_deleted, 1);
    Ok(())
}
