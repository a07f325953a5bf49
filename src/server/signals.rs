//! The signals sprout acts on, as beanstalkd does: SIGUSR1 enters drain
//! mode; SIGTERM and SIGINT stop the server cleanly.

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};

use super::{Server, systemd};

impl Server {
    /// Acts on the signals that arrived since the last call.
    pub(super) fn handle_signals(&mut self) {
        for signal in self.signals.pending() {
            match signal {
                SIGUSR1 => {
                    log::info!("SIGUSR1: entering drain mode");
                    self.engine.set_draining();
                }
                SIGTERM | SIGINT => {
                    log::info!("signal {signal}: shutting down");
                    // systemd wants to hear this when shutdown starts.
                    systemd::notify("STOPPING=1");
                    self.stopping = true;
                }
                _ => {}
            }
        }
    }
}
