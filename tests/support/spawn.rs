//! The one lock under which tests pick free ports and fork.
//!
//! A free port is found by binding a listener to port 0 and closing it. A
//! child forked by another thread at that moment holds a copy of the
//! listener until its `exec` (the descriptor is close-on-exec, but the copy
//! exists in between): the server we then start on that port may fail to
//! bind, or a probe may connect to the copy. The same goes for the start-up
//! probe's connection: copied into a child, it stays open on the server
//! until that child's exec, so the server counts it in
//! `current-connections` after the test began. So every port the kit
//! picks, every process it forks and every start-up probe happens under
//! this lock, one at a time. A
//! fork outside the kit (a plain `Command::output`) cannot take part; what
//! it could cause, a server that does not bind or is not ours, is caught by
//! the start-up check that the server answering is our child, which then
//! retries on another port.
//!
//! Nor may the kernel hand out a port the kit picked a moment ago, for a
//! server that has not bound it yet (about once in 2,500 picks it gives the
//! same port again within 8 picks): two servers would race for it, and the
//! loser's start-up probe, before it tries another port, would have
//! connected to the winner and sent it a `stats`, counted in its
//! `total-connections` and `cmd-stats` (a rare false difference in the
//! differential tests). So the kit remembers the ports it picked last and
//! asks again when the kernel repeats one.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::{Mutex, MutexGuard};

static SPAWN: Mutex<()> = Mutex::new(());

/// The ports picked last, under the spawn lock.
static PICKED: Mutex<VecDeque<u16>> = Mutex::new(VecDeque::new());

/// How many picked ports are remembered: more than servers start at once.
const REMEMBERED: usize = 64;

/// Runs `f` holding the spawn lock (a test that panicked while holding it
/// does not stop the others).
pub fn locked<T>(f: impl FnOnce() -> T) -> T {
    let _guard: MutexGuard<()> = SPAWN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    f()
}

/// A port of `host` that nothing listened on a moment ago. Call it within
/// [`locked`], together with the fork that uses the port.
pub(super) fn pick_port(host: IpAddr) -> u16 {
    let mut picked = PICKED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut port = 0;
    for _ in 0..16 {
        let listener = TcpListener::bind((host, 0)).unwrap_or_else(|e| panic!("cannot bind {host} port 0: {e}"));
        port = listener.local_addr().expect("listener address").port();
        if !picked.contains(&port) {
            break;
        }
    }
    if picked.len() == REMEMBERED {
        picked.pop_front();
    }
    picked.push_back(port);
    port
}

/// A free loopback port, for a test that needs one no server was started
/// on (a decoy, a port that must stay unused).
pub fn free_port() -> u16 {
    locked(|| pick_port(IpAddr::V4(Ipv4Addr::LOCALHOST)))
}
