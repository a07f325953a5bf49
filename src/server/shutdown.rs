//! A clean stop (SIGTERM, SIGINT): the replies already made go out, slow
//! clients get a moment to take them, and the binlog is flushed and synced.

use std::time::{Duration, Instant};

use mio::Events;

use super::Server;

/// How long a shutdown waits for clients to take their last replies.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

impl Server {
    /// Stops accepting and reading, logs and sends the replies already
    /// made, waits briefly for slow clients to take them, and closes the log.
    pub(super) fn shut_down(&mut self) {
        for listener in &mut self.listeners {
            let _ = self.poll.registry().deregister(listener);
        }
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.list_for_flush(key);
        }
        self.end_turn();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut events = Events::with_capacity(1024);
        while self.conns.iter().any(|(_, c)| c.has_unsent_output()) && Instant::now() < deadline {
            let _ = self.poll.poll(&mut events, Some(deadline.saturating_duration_since(Instant::now())));
            for (_, conn) in self.conns.iter_mut() {
                conn.flush();
            }
        }
        if let Some(binlog) = self.engine.journal_mut() {
            match binlog.close() {
                Ok(()) => log::info!("binlog: flushed and synced"),
                Err(e) => log::error!("binlog: final sync failed: {e}"),
            }
        }
    }
}
