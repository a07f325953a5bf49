//! Workers: reserve (with a timeout) from a few tubes, touch now and then,
//! "work", then delete, release (with a new priority, maybe a delay) or
//! bury. One worker takes the cold tubes, slowly, so their jobs live long.

use std::convert::Infallible;
use std::time::Instant;

use crate::control::{Conn, End, show};
use crate::ledger::Op;
use crate::shared::{Counts, Shared, between, pause};
use crate::support::{Addr, Rng, found};

/// Hot tubes each worker watches.
const WATCHED: usize = 8;

pub fn run(shared: &Shared, n: usize, cold: bool) {
    let mut rng = shared.rng(200 + n as u64);
    let name = if cold { "cold worker".to_string() } else { format!("worker {n}") };
    shared.run_actor(&name, |epoch, addr| {
        let Err(end) = session(shared, &mut rng, epoch, addr, cold);
        end
    });
}

fn session(shared: &Shared, rng: &mut Rng, epoch: u64, addr: &Addr, cold: bool) -> Result<Infallible, End> {
    let cfg = &shared.cfg;
    let mut conn = Conn::open(&shared.control, epoch, addr)?;
    let tubes: Vec<usize> = if cold {
        cfg.cold_tubes().collect()
    } else {
        let hot = cfg.hot_tubes();
        (0..WATCHED.min(hot.len())).map(|_| hot.start + rng.index(hot.len())).collect()
    };
    let commands = tubes.iter().map(|&t| format!("watch {}\r\n", cfg.tube_name(t)));
    for command in commands.chain(["ignore default\r\n".to_string()]) {
        let reply = conn.ask(command.as_bytes())?;
        if !reply.starts_with(b"WATCHING ") {
            return Err(End::Failed(format!("{} answered {}", command.trim_end(), show(&reply))));
        }
    }
    loop {
        conn.still_up()?;
        let Some(id) = reserve(shared, &mut conn, b"reserve-with-timeout 1\r\n")? else { continue };
        if rng.below(100) < 30 {
            for _ in 0..1 + rng.below(2) {
                if !touch(shared, &mut conn, id)? {
                    break;
                }
            }
        }
        let work = if cold { (20, 60) } else { cfg.work_ms };
        pause(between(rng, work));
        let op = match rng.below(100) {
            0..55 => Op::Delete,
            55..83 => Op::Release { pri: rng.below(5000) as u32, delay: [0, 0, 1, 2, 3][rng.index(5)] },
            _ => Op::Bury { pri: rng.below(5000) as u32 },
        };
        finish(shared, &mut conn, id, op)?;
    }
}

/// Sends `command` (a reserve) and enters what it reserved: its id, or
/// `None` if it timed out.
pub fn reserve(shared: &Shared, conn: &mut Conn, command: &[u8]) -> Result<Option<u64>, End> {
    let reply = conn.ask(command)?;
    if reply == b"TIMED_OUT\r\n" {
        return Ok(None);
    }
    if !reply.starts_with(b"RESERVED ") {
        return Err(End::Failed(format!("{} answered {}", show(command), show(&reply))));
    }
    let (id, body) = found(&reply).expect("RESERVED");
    // A command about the job that the server did before this reservation
    // may not be entered yet (a release whose client has read the reply
    // but not entered it): enter the reservation after it, so the ledger
    // applies each job's changes in the server's order.
    while shared.ledger().in_flight(id) {
        conn.still_up()?;
        pause(1);
    }
    shared.ledger().reserved(id, &body, Instant::now()).map_err(End::Failed)?;
    Counts::add(&shared.counts.reserves, 1);
    Ok(Some(id))
}

/// Touches a job this connection reserved: false if it is no longer
/// reserved (its TTR ran out).
fn touch(shared: &Shared, conn: &mut Conn, id: u64) -> Result<bool, End> {
    let reply = conn.ask(format!("touch {id}\r\n").as_bytes())?;
    match reply.as_slice() {
        b"TOUCHED\r\n" => {
            Counts::add(&shared.counts.touches, 1);
            Ok(true)
        }
        b"NOT_FOUND\r\n" => {
            Counts::add(&shared.counts.lost_reservations, 1);
            Ok(false)
        }
        _ => Err(End::Failed(format!("touch {id} answered {}", show(&reply)))),
    }
}

/// Deletes, releases or buries a job this connection reserved, entered in
/// the ledger before it is sent and applied once acknowledged.
pub fn finish(shared: &Shared, conn: &mut Conn, id: u64, op: Op) -> Result<(), End> {
    let (command, want, counter) = match op {
        Op::Delete => (format!("delete {id}\r\n"), "DELETED\r\n", &shared.counts.deletes),
        Op::Release { pri, delay } => {
            (format!("release {id} {pri} {delay}\r\n"), "RELEASED\r\n", &shared.counts.releases)
        }
        Op::Bury { pri } => (format!("bury {id} {pri}\r\n"), "BURIED\r\n", &shared.counts.buries),
        Op::Kick => unreachable!("workers do not kick"),
    };
    let seq = shared.ledger().begin(id, op, Instant::now());
    let Some(seq) = seq else {
        return Err(End::Failed(format!("job {id}, reserved here, is not in the ledger any more")));
    };
    let reply = conn.ask(command.as_bytes())?;
    if reply == want.as_bytes() {
        shared.ledger().ack(id, seq, Instant::now());
        Counts::add(counter, 1);
        Ok(())
    } else if reply == b"NOT_FOUND\r\n" {
        shared.ledger().cancel(id, seq);
        Counts::add(&shared.counts.lost_reservations, 1);
        Ok(())
    } else {
        Err(End::Failed(format!("{} answered {}", command.trim_end(), show(&reply))))
    }
}
