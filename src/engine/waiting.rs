//! Connections blocked in a reserve, and handing them jobs.

use super::session::Wait;
use super::timers::Timer;
use super::tubes::TubeId;
use super::{ConnId, Engine, JobId, Journal, Nanos, SECOND, secs};

impl<J: Journal> Engine<J> {
    /// The best ready job in the unpaused tubes `conn` watches.
    pub(super) fn best_reservable(&self, conn: ConnId) -> Option<JobId> {
        let session = self.session(conn);
        session.watched.iter().filter_map(|&t| self.tubes[t].reservable()).min().map(|(_, id)| id)
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
