//! Connections come and go: accepting them, and closing them. Out of file
//! descriptors, the server keeps serving the connections it has and tries
//! to accept again every [`ACCEPT_RETRY`], or as soon as one of them closes.

use std::io;
use std::time::Duration;

use mio::{Interest, Token};

use super::Server;
use super::connection::Connection;
use crate::engine::ConnId;

/// How often to retry `accept` after running out of file descriptors.
pub(super) const ACCEPT_RETRY: Duration = Duration::from_millis(100);

impl Server {
    /// Accepts on every listener (after a pause, or once a descriptor was
    /// freed).
    pub(super) fn accept_on_every_listener(&mut self) {
        for i in 0..self.listeners.len() {
            self.accept_all(i);
        }
        self.accept_http_on_every_listener();
    }

    /// Accepts every connection waiting on listener `listener`.
    pub(super) fn accept_all(&mut self, listener: usize) {
        loop {
            match self.listeners[listener].accept() {
                Ok(mut stream) => {
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if let Err(e) =
                        self.poll.registry().register(&mut stream, Token(key), Interest::READABLE | Interest::WRITABLE)
                    {
                        log::warn!("cannot watch a new connection: {e}");
                        continue;
                    }
                    entry.insert(Connection::new(stream, self.max_job_size));
                    self.engine.connect(key);
                    self.accept_paused = false;
                    log::info!("accept {key}");
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_out_of_descriptors(&e) => {
                    if !self.accept_paused {
                        log::warn!("accept failed: {e}; serving the open connections and retrying");
                    }
                    self.accept_paused = true;
                    return;
                }
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }
}

impl Server {
    /// Closes connection `key`: its reserved jobs go back to ready (and may
    /// be handed to waiting workers at once), and its slot may be reused.
    pub(super) fn close(&mut self, key: ConnId) {
        let mut conn = self.conns.remove(key);
        conn.give_back_room(&mut self.body_allowance);
        let _ = self.poll.registry().deregister(conn.stream_mut());
        let now = self.clock.now();
        self.engine.disconnect(now, key);
        self.deliver_replies();
        log::info!("close {key}");
        if self.accept_paused {
            self.accept_on_every_listener();
        }
    }
}

pub(super) fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}
