//! What the engine knows about one client connection.

use super::held::HeldJobs;
use super::ids::{JobId, TubeId};
use super::time::Nanos;
use super::watchlist::WatchList;

/// A connection blocked in `reserve` or `reserve-with-timeout`.
#[derive(Clone, Copy, Debug)]
pub struct Wait {
    /// Arrival order among all waiting connections.
    pub seq: u64,
    /// When `reserve-with-timeout` gives up, if it does.
    pub timeout_at: Option<Nanos>,
    /// When the connection must be told `DEADLINE_SOON`, if it holds jobs.
    pub deadline_soon_at: Option<Nanos>,
}

/// One connection's part of the engine's state, from `connect` to
/// `disconnect`.
#[derive(Debug)]
pub struct Session {
    /// The tube its puts go to (`use`).
    pub used: TubeId,
    /// Watched tubes, in beanstalkd's order (ignore swaps the last one into
    /// the hole, which `list-tubes-watched` shows).
    pub watched: WatchList,
    /// Jobs this connection has reserved, by (TTR deadline, id).
    pub reserved: HeldJobs,
    /// Its TTR timer ([`Timer::TtrEnds`](super::timers::Timer::TtrEnds)),
    /// while set: at or before its soonest held job's deadline.
    pub ttr_timer: Option<(Nanos, JobId)>,
    /// The ids it reserved, in the order it reserved them (a touch does not
    /// move one), for [`Session::in_reservation_order`]. Ids it no longer
    /// holds are dropped lazily ([`Session::note_reservation`]).
    reservation_order: Vec<JobId>,
    /// Whether it ever sent a put (`current-producers` counts it).
    pub is_producer: bool,
    /// Whether it ever sent a reserve (`current-workers` counts it).
    pub is_worker: bool,
    /// While it is blocked in a reserve.
    pub wait: Option<Wait>,
    /// The put whose line was accepted and whose body is still arriving.
    pub pending_put: Option<PendingPut>,
}

/// A put between its line and its body's end. beanstalkd makes the job
/// when it reads the line: its id and its creation time (`age`) are the
/// line's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingPut {
    pub id: JobId,
    /// When the line was read; `None`: at the put's own time (callers that
    /// hand the engine line and body at once).
    pub line_at: Option<Nanos>,
}

impl Session {
    /// A new connection, using and watching `default_tube` only.
    pub fn new(default_tube: TubeId) -> Session {
        Session {
            used: default_tube,
            watched: WatchList::new(default_tube),
            reserved: HeldJobs::default(),
            ttr_timer: None,
            reservation_order: Vec::new(),
            is_producer: false,
            is_worker: false,
            wait: None,
            pending_put: None,
        }
    }

    /// The connection reserved `id`. `holds` says whether it still holds a
    /// job: ids it let go of are dropped once they outnumber the jobs it
    /// holds, so the list stays within twice those (plus a few).
    pub fn note_reservation(&mut self, id: JobId, holds: impl Fn(JobId) -> bool) {
        self.reservation_order.push(id);
        if self.reservation_order.len() > 2 * self.reserved.len() + 16 {
            self.reservation_order = self.in_reservation_order(holds);
        }
    }

    /// How many ids the reservation list holds (tests check its bound).
    #[cfg(test)]
    pub fn reservation_order_len(&self) -> usize {
        self.reservation_order.len()
    }

    /// The jobs it holds (`holds`), in the order it reserved them: a job it
    /// reserved twice is where its latest reservation put it. This is the
    /// order beanstalkd keeps a connection's reserved jobs in, and gives
    /// them back in when it hangs up.
    pub fn in_reservation_order(&self, holds: impl Fn(JobId) -> bool) -> Vec<JobId> {
        let mut seen = std::collections::HashSet::new();
        let mut latest_first: Vec<JobId> =
            self.reservation_order.iter().rev().copied().filter(|&id| holds(id) && seen.insert(id)).collect();
        latest_first.reverse();
        latest_first
    }
}
