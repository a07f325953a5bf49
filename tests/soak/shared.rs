//! What the coordinator and the actors share: the run's settings, the
//! phases, the ledger, the counters and the failures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::config::Config;
use crate::control::{Control, End};
use crate::ledger::Ledger;
use crate::monitor::Gauges;
use crate::support::Rng;

/// Counters for the report: what the load did and the faults were.
#[derive(Default)]
pub struct Counts {
    pub puts: AtomicU64,
    pub deletes: AtomicU64,
    pub releases: AtomicU64,
    pub buries: AtomicU64,
    pub kick_jobs: AtomicU64,
    /// `kick N` commands, and the jobs they kicked.
    pub bulk_kicks: AtomicU64,
    pub bulk_kicked: AtomicU64,
    pub touches: AtomicU64,
    pub reserves: AtomicU64,
    /// Connections the visitor opened, and puts it left half sent.
    pub visits: AtomicU64,
    pub torn_puts: AtomicU64,
    /// Bytes the slow reader sent and never read the replies of.
    pub unread_bytes: AtomicU64,
    /// Commands of a worker on a job it had reserved that found it no
    /// longer reserved (its TTR ran out): not expected with TTRs of 30 s
    /// and more.
    pub lost_reservations: AtomicU64,
    /// Checks done, and what they settled that was in flight.
    pub checks: AtomicU64,
    pub uncertain_done: AtomicU64,
    pub uncertain_not_done: AtomicU64,
    pub peeks_of_deleted: AtomicU64,
    /// Jobs compaction moved (`binlog-records-migrated`, summed over the
    /// servers), and the highest `binlog-current-index`: files made.
    pub migrated: AtomicU64,
    pub files_made: AtomicU64,
}

impl Counts {
    /// Replies the actors read: it must go up while the server is up,
    /// slow reader or not.
    pub fn progress(&self) -> u64 {
        [&self.puts, &self.reserves, &self.deletes, &self.releases, &self.buries, &self.kick_jobs, &self.visits]
            .iter()
            .map(|c| Counts::get(c))
            .sum()
    }
}

impl Counts {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

pub struct Shared {
    pub cfg: Config,
    pub control: Control,
    ledger: Mutex<Ledger>,
    pub counts: Counts,
    pub gauges: Gauges,
    failures: Mutex<Vec<String>>,
    tokens: AtomicU64,
}

impl Shared {
    pub fn new(cfg: Config) -> Shared {
        Shared {
            ledger: Mutex::new(Ledger::new(cfg.tubes)),
            cfg,
            control: Control::new(),
            counts: Counts::default(),
            gauges: Gauges::default(),
            failures: Mutex::new(Vec::new()),
            tokens: AtomicU64::new(1),
        }
    }

    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a failure; the run stops at its next look.
    pub fn fail(&self, what: String) {
        eprintln!("soak FAILURE: {what}");
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(what);
    }

    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub fn failed(&self) -> bool {
        !self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_empty()
    }

    /// A token no other body of the run has.
    pub fn token(&self) -> u64 {
        self.tokens.fetch_add(1, Ordering::Relaxed)
    }

    /// The generator of actor `salt`.
    pub fn rng(&self, salt: u64) -> Rng {
        Rng((self.cfg.seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    /// Runs an actor: a session per epoch, each until the server goes down
    /// (or fails, which is recorded), until the run ends.
    pub fn run_actor(&self, name: &str, mut session: impl FnMut(u64, &crate::support::Addr) -> End) {
        let mut epoch = 0;
        while let Some((open, addr)) = self.control.next(epoch) {
            epoch = open;
            if let End::Failed(what) = session(epoch, &addr) {
                self.fail(format!("{name}, epoch {epoch}: {what}"));
            }
        }
    }
}

/// A number in `range` (inclusive), at random.
pub fn between(rng: &mut Rng, (low, high): (u64, u64)) -> u64 {
    low + rng.below(high - low + 1)
}

/// Sleeps `ms` milliseconds.
pub fn pause(ms: u64) {
    std::thread::sleep(std::time::Duration::from_millis(ms));
}
