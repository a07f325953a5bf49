//! The visitor: connections that come and go. Each connects, does a few
//! things (stats, a peek, a put, a reservation it may walk away with, a
//! bad command) and closes; some close in the middle of a put's body.

use std::convert::Infallible;

use crate::body;
use crate::control::{Conn, End, show};
use crate::ledger::Op;
use crate::shared::{Counts, Shared, between, pause};
use crate::support::{Addr, Rng, found, put_command};
use crate::{producer, worker};

pub fn run(shared: &Shared) {
    let mut rng = shared.rng(400);
    shared.run_actor("visitor", |epoch, addr| {
        let Err(end) = session(shared, &mut rng, epoch, addr);
        end
    });
}

fn session(shared: &Shared, rng: &mut Rng, epoch: u64, addr: &Addr) -> Result<Infallible, End> {
    loop {
        pause(between(rng, (5, 40)));
        let mut conn = Conn::open(&shared.control, epoch, addr)?;
        conn.still_up()?;
        Counts::add(&shared.counts.visits, 1);
        for _ in 0..between(rng, (1, 6)) {
            if !visit(shared, &mut conn, rng)? {
                break;
            }
        }
        if rng.below(100) < 15 {
            // A put cut off in its body: the server must drop it.
            let mut torn = put_command(0, 0, 60, body::make(shared.token(), 500));
            torn.truncate(40 + rng.index(300));
            conn.send(&torn)?;
            Counts::add(&shared.counts.torn_puts, 1);
        }
    }
}

/// One thing; false once the connection was left holding a reservation
/// (it is then closed, and the job goes back to ready).
fn visit(shared: &Shared, conn: &mut Conn, rng: &mut Rng) -> Result<bool, End> {
    let cfg = &shared.cfg;
    let tube = cfg.tube_name(rng.index(cfg.tubes));
    let want_ok = |conn: &mut Conn, command: String| -> Result<(), End> {
        let reply = conn.ask(command.as_bytes())?;
        if reply.starts_with(b"OK ") {
            Ok(())
        } else {
            Err(End::Failed(format!("{command:?} answered {}", show(&reply))))
        }
    };
    match rng.below(100) {
        0..15 => want_ok(conn, "stats\r\n".into())?,
        15..25 => want_ok(conn, "list-tubes\r\n".into())?,
        25..35 => {
            let reply = conn.ask(format!("stats-tube {tube}\r\n").as_bytes())?;
            if !reply.starts_with(b"OK ") && reply != b"NOT_FOUND\r\n" {
                return Err(End::Failed(format!("stats-tube {tube} answered {}", show(&reply))));
            }
        }
        35..55 => {
            conn.expect(format!("use {tube}\r\n").as_bytes(), format!("USING {tube}\r\n").as_bytes())?;
            let peek = ["peek-ready", "peek-delayed", "peek-buried"][rng.index(3)];
            let reply = conn.ask(format!("{peek}\r\n").as_bytes())?;
            if reply != b"NOT_FOUND\r\n" {
                let whole = reply.starts_with(b"FOUND ") && body::token(&found(&reply).expect("FOUND").1).is_some();
                if !whole {
                    return Err(End::Failed(format!("{peek} in {tube} answered {}", show(&reply))));
                }
            }
        }
        55..70 => {
            if let Some(tube) = producer::choose_tube(shared, rng) {
                let name = cfg.tube_name(tube);
                conn.expect(format!("use {name}\r\n").as_bytes(), format!("USING {name}\r\n").as_bytes())?;
                producer::put(shared, conn, rng, tube)?;
            }
        }
        70..90 => {
            let reply = conn.ask(format!("watch {tube}\r\n").as_bytes())?;
            if !reply.starts_with(b"WATCHING ") {
                return Err(End::Failed(format!("watch {tube} answered {}", show(&reply))));
            }
            if let Some(id) = worker::reserve(shared, conn, b"reserve-with-timeout 0\r\n")? {
                if rng.below(2) == 0 {
                    return Ok(false);
                }
                worker::finish(shared, conn, id, Op::Release { pri: rng.below(100) as u32, delay: 0 })?;
            }
        }
        _ => conn.expect(b"frobnicate\r\n", b"UNKNOWN_COMMAND\r\n")?,
    }
    Ok(true)
}
