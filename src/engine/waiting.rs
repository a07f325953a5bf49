//! Connections blocked in a reserve, and handing them jobs.

use super::session::Wait;
use super::timers::Timer;
use super::tubes::TubeId;
use super::{ConnId, Engine, JobId, Journal, Nanos, SECOND, secs};

/// How a bounded walk through an ordered sequence ended.
enum Walk<T> {
    Found(T),
    /// The sequence ended: nothing in it is wanted.
    Exhausted,
    /// The budget ran out first.
    GaveUp,
}

/// The first item of `ordered` that is `wanted`, looking at `budget` items
/// at most.
fn first_within<T>(mut ordered: impl Iterator<Item = T>, budget: usize, wanted: impl Fn(&T) -> bool) -> Walk<T> {
    for _ in 0..budget {
        match ordered.next() {
            Some(item) if wanted(&item) => return Walk::Found(item),
            Some(_) => {}
            None => return Walk::Exhausted,
        }
    }
    Walk::GaveUp
}

impl<J: Journal> Engine<J> {
    /// The best ready job in the unpaused tubes `conn` watches.
    ///
    /// A narrow connection asks each of its tubes. A broad one takes the
    /// first head (heads.rs) whose tube it watches: O(log n) for a worker
    /// that watches every tube with ready jobs. Past as many heads as it has
    /// tubes, asking each of its tubes is no dearer, so it does that:
    /// O(min(W, 1 + r) log n) for W watched tubes and r better heads in tubes
    /// it does not watch.
    pub(super) fn best_reservable(&self, conn: ConnId) -> Option<JobId> {
        let watched = &self.session(conn).watched;
        let ask_each = || watched.iter().filter_map(|&t| self.tubes[t].reservable()).min().map(|(_, id)| id);
        if !watched.is_broad() {
            return ask_each();
        }
        match first_within(self.tubes.heads().iter(), watched.len(), |&(_, tube)| watched.contains(tube)) {
            Walk::Found(((_, id), _)) => Some(id),
            Walk::Exhausted => None,
            Walk::GaveUp => ask_each(),
        }
    }

    pub(super) fn begin_wait(&mut self, now: Nanos, conn: ConnId, timeout: Option<u32>) {
        let seq = self.next_wait_seq;
        self.next_wait_seq += 1;
        let timeout_at = timeout.map(|t| now + secs(t));
        let deadline_soon_at = self.session(conn).soonest_deadline().map(|d| d.saturating_sub(SECOND));
        for &tube in &self.sessions[conn].as_ref().expect("unknown connection").watched {
            self.tubes[tube].waiters.insert((seq, conn));
        }
        if let Some(at) = timeout_at {
            self.timers.insert(at, Timer::ReserveTimeout(conn));
        }
        if let Some(at) = deadline_soon_at {
            self.timers.insert(at, Timer::DeadlineSoon(conn));
        }
        self.session_mut(conn).wait = Some(Wait { seq, timeout_at, deadline_soon_at });
        self.counts.waiting += 1;
    }

    pub(super) fn end_wait(&mut self, conn: ConnId) {
        let Some(wait) = self.session_mut(conn).wait.take() else { return };
        for &tube in &self.sessions[conn].as_ref().expect("unknown connection").watched {
            self.tubes[tube].waiters.remove(&(wait.seq, conn));
        }
        if let Some(at) = wait.timeout_at {
            self.timers.remove(at, Timer::ReserveTimeout(conn));
        }
        if let Some(at) = wait.deadline_soon_at {
            self.timers.remove(at, Timer::DeadlineSoon(conn));
        }
        self.counts.waiting -= 1;
    }

    /// Hands the tube's ready jobs to its waiters, earliest waiter first.
    pub(super) fn serve_waiters(&mut self, now: Nanos, tube: TubeId) {
        loop {
            let t = &self.tubes[tube];
            let (Some(&(_, conn)), Some((_, id))) = (t.waiters.first(), t.reservable()) else { return };
            self.end_wait(conn);
            let reply = self.hand_out(now, conn, id);
            self.replies.push((conn, reply));
        }
    }
}
