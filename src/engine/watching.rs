//! A connection starting or stopping to watch a tube: its watch list
//! (watchlist.rs), the tube's watcher count, the broad registrations that
//! let the tube find it when it waits (waiters.rs), and the tube's life.
//!
//! Watching, ignoring and hanging up cost O(1) (plus the log of the tube's
//! watcher count), except when a list crosses [`BROAD`], which registers or
//! unregisters it with each of its [`BROAD`]+1 tubes once.

use super::Engine;
use super::ids::{ConnId, TubeId};
use super::journal::Journal;
use super::watchlist::BROAD;

impl<J: Journal> Engine<J> {
    /// `conn` watches `tube` too, if it did not already. Never called while
    /// `conn` waits (a waiting connection sends no commands).
    pub(super) fn start_watching(&mut self, conn: ConnId, tube: TubeId) {
        let watched = &mut self.sessions[conn].as_mut().expect("unknown connection").watched;
        if watched.contains(tube) {
            return;
        }
        watched.push(tube);
        self.tubes[tube].watching += 1;
        let Some(mark) = watched.mark() else { return };
        if watched.len() == BROAD + 1 {
            // It just became broad: its tubes learn of it.
            for &t in watched.iter() {
                self.tubes[t].waiters.add_broad(conn, mark.clone());
            }
        } else {
            self.tubes[tube].waiters.add_broad(conn, mark.clone());
        }
    }

    /// `conn` stops watching `tube`, which it watches along with others.
    /// Never called while `conn` waits.
    pub(super) fn stop_watching(&mut self, conn: ConnId, tube: TubeId) {
        let watched = &mut self.sessions[conn].as_mut().expect("unknown connection").watched;
        watched.remove(tube);
        if watched.len() == BROAD {
            // It just stopped being broad: its tubes forget it.
            for &t in watched.iter() {
                self.tubes[t].waiters.remove_broad(conn);
            }
        }
        self.leave_tube(conn, tube);
    }

    /// The counts and registrations that `conn` watching `tube` held, gone,
    /// and the tube too if nothing else holds it (ignore and hang-up).
    pub(super) fn leave_tube(&mut self, conn: ConnId, tube: TubeId) {
        self.tubes[tube].watching -= 1;
        self.tubes[tube].waiters.remove_broad(conn);
        self.drop_tube_if_unused(tube);
    }
}
