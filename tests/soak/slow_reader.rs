//! The slow reader: one connection that sends `peek`s of live jobs (large
//! bodies among them) and `stats` as fast as the server takes them, and
//! never reads a reply. The server must stop reading it once its replies
//! pile up, hold no more for it, and keep serving everyone else (the
//! memory bound and the other actors' progress say whether it does).

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::control::End;
use crate::shared::{Counts, Shared, pause};
use crate::support::{Addr, Rng};

/// Commands sent in one write.
const BATCH: usize = 200;

pub fn run(shared: &Shared) {
    let mut rng = shared.rng(500);
    shared.run_actor("slow reader", |epoch, addr| session(shared, &mut rng, epoch, addr));
}

fn session(shared: &Shared, rng: &mut Rng, epoch: u64, addr: &Addr) -> End {
    let Addr::Tcp(addr) = addr else { panic!("the soak's server listens on TCP") };
    let mut stream = match TcpStream::connect(addr) {
        Ok(stream) => stream,
        Err(e) if shared.control.is_up(epoch) => return End::Failed(format!("connect: {e}")),
        Err(_) => return End::Down,
    };
    stream.set_write_timeout(Some(Duration::from_millis(200))).expect("a write timeout");
    loop {
        if !shared.control.is_up(epoch) {
            return End::Down;
        }
        let batch = commands(shared, rng);
        let mut sent = 0;
        while sent < batch.len() {
            match stream.write(&batch[sent..]) {
                Ok(n) => sent += n,
                // Full: the server stopped reading us, as it should.
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if !shared.control.is_up(epoch) {
                        return End::Down;
                    }
                    pause(300);
                }
                Err(e) if shared.control.is_up(epoch) => return End::Failed(format!("write: {e}")),
                Err(_) => return End::Down,
            }
        }
        Counts::add(&shared.counts.unread_bytes, sent as u64);
    }
}

/// `peek`s of live jobs, with a `stats` and a `list-tubes` now and then.
fn commands(shared: &Shared, rng: &mut Rng) -> Vec<u8> {
    let ids: Vec<u64> = {
        let ledger = shared.ledger();
        (0..8).filter_map(|_| ledger.pick(rng, |_| true).map(|(id, _)| id)).collect()
    };
    let mut out = Vec::new();
    for i in 0..BATCH {
        let command = match (i % 50, ids.is_empty()) {
            (0, _) => "stats\r\n".to_string(),
            (25, _) => "list-tubes\r\n".to_string(),
            (_, true) => "peek-ready\r\n".to_string(),
            (_, false) => format!("peek {}\r\n", ids[i % ids.len()]),
        };
        out.extend_from_slice(command.as_bytes());
    }
    out
}
