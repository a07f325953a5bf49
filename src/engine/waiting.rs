//! Connections blocked in a reserve, and handing them jobs.
//!
//! Where a waiter is registered depends on how many tubes it watches (its
//! watch list, watchlist.rs):
//!
//! - A *narrow* waiter, watching at most [`BROAD`](super::watchlist::BROAD)
//!   (8) tubes, sits in each of their
//!   [`TubeWaiters`](super::waiters::TubeWaiters) sets, by arrival:
//!   O(log n) per tube to start or end a wait, and a job that becomes ready
//!   in a tube finds the tube's earliest narrow waiter in O(log n), however
//!   many wait there.
//! - A *broad* waiter goes into one engine-wide queue by arrival, and sets
//!   the [`WaitMark`](super::waiters::WaitMark) its watch list shares with each tube it watches: O(log
//!   n) to start or end a wait, however many tubes it watches. A job that
//!   becomes ready in tube T finds the earliest broad waiter watching T by
//!   walking that queue from the front until one watches T, or, if the walk
//!   gets longer than T's list of broad watchers, by reading their marks:
//!   O(min(k, b) log n) for k broad waiters ahead that do not watch T and b
//!   broad connections that watch T. A pool of workers that all watch the
//!   same tubes costs O(log n) (the first broad waiter watches T), and so
//!   does a tube that no broad connection watches (nothing to walk).
//!
//! A tube's narrow waiters are served in beanstalkd 1.12's order, a cursor
//! going round a list ([`NarrowWaiters`](super::waiters::NarrowWaiters));
//! broad waiters in arrival order (arrival numbers are engine-wide). A ready
//! job goes to whichever of the narrow waiter under the tube's cursor and
//! the earliest broad waiter watching the tube came first (protocol.md,
//! departure 10).

use super::Engine;
use super::ids::{ConnId, JobId, TubeId};
use super::journal::Journal;
use super::session::Wait;
use super::time::{Nanos, secs};
use super::timers::Timer;

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
        let deadline_soon_at = self.deadline_soon_at(conn);
        let watched = &self.sessions[conn].as_ref().expect("unknown connection").watched;
        match watched.mark() {
            Some(mark) => {
                mark.set(Some(seq));
                self.broad_waiters.insert((seq, conn));
            }
            None => {
                for &tube in watched {
                    self.tubes[tube].waiters.narrow.push(seq, conn);
                }
            }
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
        // The watch list is the one begin_wait saw: a waiting connection
        // sends no commands.
        let watched = &self.sessions[conn].as_ref().expect("unknown connection").watched;
        match watched.mark() {
            Some(mark) => {
                mark.set(None);
                self.broad_waiters.remove(&(wait.seq, conn));
            }
            None => {
                for &tube in watched {
                    self.tubes[tube].waiters.narrow.remove(conn);
                }
            }
        }
        if let Some(at) = wait.timeout_at {
            self.timers.remove(at, Timer::ReserveTimeout(conn));
        }
        if let Some(at) = wait.deadline_soon_at {
            self.timers.remove(at, Timer::DeadlineSoon(conn));
        }
        self.counts.waiting -= 1;
    }

    /// Hands the tube's ready jobs to the waiters that watch it, in the
    /// order [`Engine::first_waiter`] gives.
    pub(super) fn serve_waiters(&mut self, now: Nanos, tube: TubeId) {
        self.serve_waiters_of(now, &[tube]);
    }

    /// Hands the ready jobs of `tubes` to the waiters that watch them, the
    /// best job of them all first, as beanstalkd's process_queue does. By
    /// the reservation invariant only one tube at a time can have both,
    /// except for tubes that resume at one instant (`tick`).
    pub(super) fn serve_waiters_of(&mut self, now: Nanos, tubes: &[TubeId]) {
        // Most puts find nobody waiting: no tube's head need be looked at.
        if self.counts.waiting == 0 {
            return;
        }
        loop {
            let servable = |t: TubeId| Some((self.tubes[t].reservable()?, t, self.first_waiter(t)?));
            let Some(((_, id), tube, conn)) = tubes.iter().filter_map(|&t| servable(t)).min() else { return };
            let narrow = &mut self.tubes[tube].waiters.narrow;
            if narrow.next().is_some_and(|(_, next)| next == conn) {
                // Moves the tube's cursor, as beanstalkd's take does.
                narrow.take_next();
            } else if narrow.is_empty() {
                // A broad waiter served where no narrow one waits: in
                // beanstalkd's list it waited alone (or among broad ones),
                // and the take moved the cursor to 1 all the same.
                narrow.served_at_once();
            }
            self.end_wait(conn);
            let reply = self.hand_out(now, conn, id);
            self.replies.push(conn, reply);
        }
    }

    /// The waiting connection that watching `tube` gets its next job: the
    /// narrow waiter under the tube's cursor (beanstalkd's order, see
    /// [`NarrowWaiters`](super::waiters::NarrowWaiters)), unless a broad
    /// waiter watching the tube arrived before that one.
    pub(super) fn first_waiter(&self, tube: TubeId) -> Option<ConnId> {
        let waiters = &self.tubes[tube].waiters;
        let narrow = waiters.narrow.next();
        if waiters.broad.is_empty() {
            return narrow.map(|(_, conn)| conn);
        }
        // Broad waiters that came after the narrow one cannot win.
        let before = narrow.map_or(u64::MAX, |(seq, _)| seq);
        let queue = self.broad_waiters.iter().copied().take_while(|&(seq, _)| seq < before);
        let broad = match first_within(queue, waiters.broad.len(), |(_, conn)| waiters.broad.contains_key(conn)) {
            Walk::Found(waiter) => Some(waiter),
            Walk::Exhausted => None,
            Walk::GaveUp => waiters.broad.iter().filter_map(|(&conn, mark)| Some((mark.get()?, conn))).min(),
        };
        narrow.into_iter().chain(broad).min().map(|(_, conn)| conn)
    }
}
