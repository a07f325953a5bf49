//! The end of a turn: log what changed, send what was answered, then make
//! the binlog's next file if it needs one, so that no command waits for it.
//!
//! Replies go out only after the changes they acknowledge were written
//! (and with `-f 0`, synced): one write and one fsync for all clients.
//! Connections answered on behalf of others (a job handed to a waiting
//! worker) are written first, in the order they were answered, so the job
//! goes out before the `INSERTED` of the put that brought it; then the
//! others, in key order. (Writing every connection in the order of its
//! first reply cut 64 KiB bodies from ~14k to ~9k jobs/s in
//! `cargo bench --bench race -- --scenarios big`.)

use std::time::Instant;

use super::Server;
use crate::engine::ConnId;

impl Server {
    /// Lists connection `key` for the flush at the end of the turn.
    pub(super) fn list_for_flush(&mut self, key: ConnId) {
        if let Some(conn) = self.conns.get_mut(key)
            && conn.list_for_flush()
        {
            self.dirty.push(key);
        }
    }

    /// Commits the turn's changes to the binlog, then writes every listed
    /// connection's replies, and closes or wakes each as it needs.
    pub(super) fn end_turn(&mut self) {
        if self.engine.journal().is_some() {
            // Compaction's rewrites go out in the same write as the turn's
            // changes.
            self.engine.maintain_journal();
        }
        if let Some(binlog) = self.engine.journal_mut() {
            let _ = binlog.commit(Instant::now());
        }
        let mut listed = std::mem::take(&mut self.handed);
        let mut driven = std::mem::take(&mut self.dirty);
        driven.sort_unstable();
        listed.append(&mut driven);
        for key in listed.drain(..) {
            let Some(conn) = self.conns.get_mut(key) else { continue };
            if !conn.take_flush_listing() {
                // Listed for a connection that closed; a new one took its key.
                continue;
            }
            conn.flush();
            let waiting = self.engine.is_waiting(key);
            if conn.is_finished(waiting) {
                self.close(key);
            } else if conn.has_work_left(waiting) {
                // Output drained with commands still buffered or unread.
                self.woken.push(key);
            }
        }
        // Closing a connection can hand its jobs to other clients; their
        // replies were queued meanwhile and go out next turn.
        std::mem::swap(&mut self.dirty, &mut driven);
        self.dirty.append(&mut driven);
        if let Some(binlog) = self.engine.journal_mut() {
            // After the replies, so that they do not wait for it either:
            // the next turn's commands find the room they need made.
            binlog.prepare_ahead(Instant::now());
        }
    }
}
