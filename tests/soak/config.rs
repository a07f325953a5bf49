//! What a run does, and the bounds it holds the server to, stated before it
//! starts.

use std::time::Duration;

use crate::ledger::log_bytes;

const MIB: u64 = 1 << 20;

/// How the server is made to die.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` under load.
    Kill9,
    /// SIGTERM under load; it must exit 0.
    Term,
    /// `kill -9` under load, then `kill -9` again a few milliseconds into
    /// the restart, while it replays the log (or before it even listens).
    Kill9Twice,
}

/// Which faults, in what order.
#[derive(Clone, Debug)]
pub enum Faults {
    /// Chosen at random: mostly `kill -9`, some SIGTERM, some double kills.
    Random,
    /// These, in turn.
    Cycle(Vec<Fault>),
}

/// The fsync policy of each start, in turn: what survives a killed
/// process is the same under every one (protocol.md: a turn's records are
/// written before its replies go out), so the soak checks it under each.
pub const FSYNC_POLICIES: [&[&str]; 4] = [&[], &["-f", "0"], &[], &["-F"]];

#[derive(Clone, Debug)]
pub struct Config {
    /// How long the load runs (the last fault and its check come after).
    pub duration: Duration,
    /// The time under load before each fault, at random in this range.
    pub fault_every: (Duration, Duration),
    pub faults: Faults,
    /// `-s`: small files, so that they rotate and compaction runs.
    pub file_size: u64,
    /// Tubes `soak-00`..; the last `cold_tubes` are watched by one slow
    /// worker only, so their jobs live long and pin old files.
    pub tubes: usize,
    pub cold_tubes: usize,
    pub producers: usize,
    /// Workers on the hot tubes (one more works the cold ones).
    pub workers: usize,
    /// Producers stop while the live jobs (and puts in flight) reach
    /// either cap; cold tubes get at most half of each.
    pub live_jobs_cap: usize,
    pub live_bytes_cap: u64,
    /// The largest body; 1 in 100 bodies is between 8 KB and this.
    pub max_body: usize,
    /// A producer's pause between puts, in ms (at random in the range).
    pub put_pause_ms: (u64, u64),
    /// A worker's "work" on a job, in ms.
    pub work_ms: (u64, u64),
    /// The kicker's pause between commands, in ms.
    pub kick_pause_ms: (u64, u64),
    /// Deleted ids checked at each restart besides those deleted since the
    /// last one (all of them when there are fewer).
    pub deleted_sample: usize,
    pub progress_every: Duration,
    pub seed: u64,
}

impl Config {
    /// The soak proper: `SPROUT_SOAK_SECS` (default 60) of load, a fault
    /// every 5 to 30 s.
    pub fn soak(duration: Duration, seed: u64) -> Config {
        Config {
            duration,
            fault_every: (Duration::from_secs(5), Duration::from_secs(30)),
            faults: Faults::Random,
            file_size: 256 * 1024,
            tubes: 32,
            cold_tubes: 6,
            producers: 3,
            workers: 4,
            live_jobs_cap: 4000,
            live_bytes_cap: 6 * MIB,
            max_body: 60_000,
            put_pause_ms: (4, 14),
            work_ms: (1, 6),
            kick_pause_ms: (5, 30),
            deleted_sample: 2000,
            progress_every: if duration >= Duration::from_secs(600) {
                Duration::from_secs(30)
            } else {
                Duration::from_secs(10)
            },
            seed,
        }
    }

    /// A few seconds and one fault of each kind, for every `cargo test`:
    /// the soak's own code cannot rot. Small caps and files.
    pub fn smoke(seed: u64) -> Config {
        Config {
            duration: Duration::from_millis(4500),
            fault_every: (Duration::from_millis(1000), Duration::from_millis(1500)),
            faults: Faults::Cycle(vec![Fault::Kill9, Fault::Term, Fault::Kill9Twice]),
            file_size: 64 * 1024,
            tubes: 8,
            cold_tubes: 2,
            producers: 2,
            workers: 2,
            live_jobs_cap: 400,
            live_bytes_cap: MIB / 2,
            max_body: 20_000,
            put_pause_ms: (2, 8),
            work_ms: (0, 3),
            kick_pause_ms: (5, 20),
            deleted_sample: usize::MAX,
            progress_every: Duration::from_secs(60),
            seed,
        }
    }

    pub fn tube_name(&self, tube: usize) -> String {
        format!("soak-{tube:02}")
    }

    pub fn hot_tubes(&self) -> std::ops::Range<usize> {
        0..self.tubes - self.cold_tubes
    }

    pub fn cold_tubes(&self) -> std::ops::Range<usize> {
        self.tubes - self.cold_tubes..self.tubes
    }

    /// Clients that put (producers, and the visitor now and then): each has
    /// at most one put in flight, which the caps do not hold back.
    fn putters(&self) -> u64 {
        self.producers as u64 + 1
    }

    /// The most log bytes the live jobs take: the cap, and the puts in
    /// flight when it is reached, each as large as a body can be.
    pub fn live_bytes_max(&self) -> u64 {
        self.live_bytes_cap + self.putters() * log_bytes(self.max_body)
    }

    pub fn bounds(&self) -> Bounds {
        Bounds::for_config(self)
    }
}

/// What the server may take, fixed before the run from its caps.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub rss: u64,
    pub disk: u64,
}

/// Records a loaded server writes while the sync thread (`-f 50`) is
/// behind: a file goes only once the sync covering the records that freed
/// it is done (docs/binlog-format.md, "Retiring files"), and nothing in the
/// design bounds how far behind a slow disk puts that thread. This load
/// writes about 0.5 MiB/s, so this is some 15 s of it.
const SYNC_LAG: u64 = 8 * MIB;

/// What sprout takes with no jobs: its code and libraries, the stacks of
/// the loop and the sync thread, the allocator's arenas, the logger, the
/// tables' first blocks. An idle sprout with `-b` holds under 4 MiB.
const RSS_BASE: u64 = 8 * MIB;

/// Buffers of the soak's connections: the read buffer (128 KiB, shared),
/// and each connection's input (what one read left, up to 64 KiB more
/// than a command needs) and output. The slow reader's output stops at the
/// high-water mark (256 KiB) plus one turn's replies to it (at most 64
/// commands' worth read at once, each answered with at most one body).
/// About 20 connections.
const RSS_CONNECTIONS: u64 = 6 * MIB;

impl Bounds {
    /// With `L` the most log bytes of live jobs ([`Config::live_bytes_max`])
    /// and `S` the file size:
    ///
    /// - disk: `3L + 5S + SYNC_LAG`. Compaction starts once the files take
    ///   more than twice the live data plus three files
    ///   (docs/binlog-format.md, "Compaction"): `2L + 3S`; a pass then
    ///   writes every live job again before the files it empties can go:
    ///   `+ L`; the current file's tail that a record did not fit in, and
    ///   the spare file made ahead: `+ 2S`; and what is written while the
    ///   sync thread is behind ([`SYNC_LAG`]).
    /// - RSS: `RSS_BASE + 2L + RSS_CONNECTIONS`. A job in memory is its
    ///   body and some 150 to 220 bytes (tests/memory.rs), under its log
    ///   bytes plus 150; the allocator rounds blocks up and keeps what was
    ///   freed for reuse, and the tables grow by doubling: twice the live
    ///   data covers them. A restart reads one file at a time.
    fn for_config(cfg: &Config) -> Bounds {
        let live = cfg.live_bytes_max();
        let file = cfg.file_size;
        Bounds { rss: RSS_BASE + 2 * live + RSS_CONNECTIONS, disk: 3 * live + 5 * file + SYNC_LAG }
    }
}

/// Bytes as MiB, for reports.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}
