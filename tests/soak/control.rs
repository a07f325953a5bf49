//! Who may talk to the server when: the coordinator's phases, the actors'
//! sessions, and a connection that tells a planned death of the server
//! from a failure.
//!
//! The server runs in epochs. The coordinator opens one ([`Control::up`])
//! once the restarted server passed its check, and closes it
//! ([`Control::down`]) *before* it kills the server. So an actor whose
//! connection breaks while its epoch is still open has seen a failure of
//! the server (a close or a hang nobody caused); once it is closed, the
//! break is the fault the coordinator injected. Between epochs every actor
//! waits in [`Control::next`], and the coordinator checks the server only
//! once all of them do: nothing is entered in the ledger during a check.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::support::{Addr, Client, ReadError};

/// How long a reply may take while the server is up. Replies come in
/// milliseconds, `reserve-with-timeout 1` in a second; a server that takes
/// this long has hung.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

struct Phase {
    epoch: u64,
    up: bool,
    stop: bool,
    addr: Option<Addr>,
    /// Actors waiting between sessions.
    waiting: usize,
}

pub struct Control {
    phase: Mutex<Phase>,
    changed: Condvar,
}

impl Control {
    pub fn new() -> Control {
        let phase = Phase { epoch: 0, up: false, stop: false, addr: None, waiting: 0 };
        Control { phase: Mutex::new(phase), changed: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens epoch `epoch` on the server at `addr`.
    pub fn up(&self, epoch: u64, addr: Addr) {
        let mut phase = self.lock();
        assert!(epoch > phase.epoch, "epochs go up");
        (phase.epoch, phase.up, phase.addr) = (epoch, true, Some(addr));
        self.changed.notify_all();
    }

    /// Closes the epoch: call it before the server is made to die.
    pub fn down(&self) {
        self.lock().up = false;
    }

    /// Ends the run: every actor leaves at its next look.
    pub fn stop(&self) {
        let mut phase = self.lock();
        (phase.stop, phase.up) = (true, false);
        self.changed.notify_all();
    }

    pub fn stopping(&self) -> bool {
        self.lock().stop
    }

    /// True while epoch `epoch` is open.
    pub fn is_up(&self, epoch: u64) -> bool {
        let phase = self.lock();
        phase.up && phase.epoch == epoch
    }

    /// Waits until an epoch after `after` opens: its number and address,
    /// or `None` when the run ends.
    pub fn next(&self, after: u64) -> Option<(u64, Addr)> {
        let mut phase = self.lock();
        phase.waiting += 1;
        self.changed.notify_all();
        while !(phase.stop || (phase.up && phase.epoch > after)) {
            phase = self.changed.wait(phase).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        phase.waiting -= 1;
        if phase.stop { None } else { Some((phase.epoch, phase.addr.clone().expect("an open epoch's address"))) }
    }

    /// Waits until `actors` actors wait between sessions (true), or
    /// `timeout` passes (false).
    pub fn all_waiting(&self, actors: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut phase = self.lock();
        while phase.waiting < actors {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return false };
            phase = self.changed.wait_timeout(phase, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
        true
    }
}

/// Why a session ended.
pub enum End {
    /// The epoch closed: the coordinator is killing or has killed the
    /// server, or the run is over.
    Down,
    /// Something the server should not have done (the message says what).
    Failed(String),
}

impl End {
    /// A broken connection or a missing reply in `epoch`: the injected
    /// fault if the epoch closed, a failure if it is still open.
    fn broken(control: &Control, epoch: u64, what: String) -> End {
        if control.is_up(epoch) { End::Failed(what) } else { End::Down }
    }
}

/// A client connection in one epoch.
pub struct Conn<'a> {
    pub client: Client,
    control: &'a Control,
    epoch: u64,
}

impl<'a> Conn<'a> {
    pub fn open(control: &'a Control, epoch: u64, addr: &Addr) -> Result<Conn<'a>, End> {
        match Client::try_connect(addr) {
            Ok(client) => Ok(Conn { client, control, epoch }),
            Err(e) => Err(End::broken(control, epoch, format!("connect to {addr}: {e}"))),
        }
    }

    /// `Down` once the epoch closed.
    pub fn still_up(&self) -> Result<(), End> {
        if self.control.is_up(self.epoch) { Ok(()) } else { Err(End::Down) }
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<(), End> {
        self.client.try_send(bytes).map_err(|e| End::broken(self.control, self.epoch, format!("send: {e}")))
    }

    /// Reads one reply.
    pub fn reply(&mut self) -> Result<Vec<u8>, End> {
        self.client.try_read_reply(REPLY_TIMEOUT).map_err(|e| {
            let what = match e {
                ReadError::Closed { partial } => format!("connection closed, partial reply {:?}", show(&partial)),
                ReadError::TimedOut { partial } => {
                    format!("no reply in {REPLY_TIMEOUT:?}, partial reply {:?}", show(&partial))
                }
            };
            End::broken(self.control, self.epoch, what)
        })
    }

    /// Sends `command` and reads its reply.
    pub fn ask(&mut self, command: &[u8]) -> Result<Vec<u8>, End> {
        self.send(command)?;
        self.reply()
    }

    /// Sends `command` and insists on the reply `want`.
    pub fn expect(&mut self, command: &[u8], want: &[u8]) -> Result<(), End> {
        let got = self.ask(command)?;
        if got == want {
            Ok(())
        } else {
            Err(End::Failed(format!("{:?} answered {:?}, expected {:?}", show(command), show(&got), show(want))))
        }
    }
}

/// Bytes shown readably, the first 120 of them.
pub fn show(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(120)];
    format!("{}{}", head.escape_ascii(), if bytes.len() > 120 { "..." } else { "" })
}
