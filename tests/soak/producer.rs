//! Producers: puts into random tubes, with priorities, delays, TTRs and
//! bodies of every size, while the live jobs are under the caps.

use std::convert::Infallible;
use std::time::Instant;

use crate::body;
use crate::control::{Conn, End, show};
use crate::ledger::Intent;
use crate::shared::{Counts, Shared, between, pause};
use crate::support::{Addr, Rng, inserted_id, put_command};

/// Priorities, some more often than others (1024 is the usual default).
const PRIORITIES: [u32; 11] = [0, 1, 10, 100, 1024, 1024, 1024, 4096, 65535, 1 << 31, u32::MAX];

pub fn run(shared: &Shared, n: usize) {
    let mut rng = shared.rng(100 + n as u64);
    shared.run_actor(&format!("producer {n}"), |epoch, addr| {
        let Err(end) = session(shared, &mut rng, epoch, addr);
        end
    });
}

fn session(shared: &Shared, rng: &mut Rng, epoch: u64, addr: &Addr) -> Result<Infallible, End> {
    let mut conn = Conn::open(&shared.control, epoch, addr)?;
    let mut using = None;
    loop {
        conn.still_up()?;
        pause(between(rng, shared.cfg.put_pause_ms));
        let Some(tube) = choose_tube(shared, rng) else {
            // The caps are reached: wait for the workers.
            pause(20);
            continue;
        };
        if using != Some(tube) {
            let name = shared.cfg.tube_name(tube);
            conn.expect(format!("use {name}\r\n").as_bytes(), format!("USING {name}\r\n").as_bytes())?;
            using = Some(tube);
        }
        put(shared, &mut conn, rng, tube)?;
    }
}

/// A tube with room for one more job (a cold one now and then), or `None`
/// while the caps are reached.
pub fn choose_tube(shared: &Shared, rng: &mut Rng) -> Option<usize> {
    let cfg = &shared.cfg;
    let ledger = shared.ledger();
    if ledger.live >= cfg.live_jobs_cap || ledger.live_bytes >= cfg.live_bytes_cap {
        return None;
    }
    let cold_live: usize = cfg.cold_tubes().map(|t| ledger.live_per_tube[t]).sum();
    let pick = |range: std::ops::Range<usize>, rng: &mut Rng| range.start + rng.index(range.len());
    if rng.below(100) < 25 && cold_live < cfg.live_jobs_cap / 2 {
        Some(pick(cfg.cold_tubes(), rng))
    } else {
        Some(pick(cfg.hot_tubes(), rng))
    }
}

/// Puts one job into the tube in use, `tube`, and enters it in the ledger.
pub fn put(shared: &Shared, conn: &mut Conn, rng: &mut Rng, tube: usize) -> Result<(), End> {
    let len = body_len(rng, shared.cfg.max_body);
    let pri = PRIORITIES[rng.index(PRIORITIES.len())];
    let delay = match rng.below(200) {
        0..110 => 0,
        110..198 => 1 + rng.below(3) as u32,
        // Long delays: jobs that stay delayed across restarts.
        _ => 30 + rng.below(271) as u32,
    };
    let ttr = 30 + rng.below(91) as u32;
    let token = shared.token();
    let job = body::make(token, len);
    shared.ledger().intend(token, Intent::new(tube, pri, delay, ttr, len, Instant::now()));
    // If the connection breaks now, the put stays in flight for the check.
    let reply = conn.ask(&put_command(pri, delay, ttr, &job))?;
    let Some(id) = inserted_id(&reply) else {
        shared.ledger().drop_intent(token);
        return Err(End::Failed(format!("put of {len} bytes answered {}", show(&reply))));
    };
    shared.ledger().inserted(token, id, Instant::now()).map_err(End::Failed)?;
    Counts::add(&shared.counts.puts, 1);
    Ok(())
}

/// Mostly small bodies, some of a few KB (sent from their own allocation
/// by the server), a few large.
fn body_len(rng: &mut Rng, max: usize) -> usize {
    let (low, high) = match rng.below(100) {
        0..60 => (body::MIN_LEN, 200),
        60..90 => (200, 2000),
        90..99 => (2000, 8000),
        _ => (8000, max),
    };
    low + rng.index(high - low + 1)
}
