//! The engine the server starts with: empty, or holding the jobs the binlog
//! read back, before the first client is served.

use std::time::Instant;

use crate::binlog::{Binlog, Opened};
use crate::engine::{Engine, EngineConfig, Nanos};
use crate::host::HostInfo;
use crate::settings::Config;

/// Builds the engine at `now`, restoring the opened binlog's jobs (and
/// logging how long reading and restoring them took).
/// With `metrics_tubes`, metrics are on (with that cap) from the start, so
/// the restored jobs are measured too.
pub fn engine(
    config: &Config,
    host: HostInfo,
    now: Nanos,
    opened: Option<Opened>,
    metrics_tubes: Option<usize>,
) -> Engine<Option<Binlog>> {
    let engine_config = EngineConfig { max_job_size: config.max_job_size, binlog_max_size: config.binlog_size, host };
    let (binlog, restored) = match opened {
        Some(Opened { binlog, restoration, next_id, read_in }) => (Some(binlog), Some((restoration, next_id, read_in))),
        None => (None, None),
    };
    let mut engine = Engine::with_journal(engine_config, now, binlog);
    if let Some(cap) = metrics_tubes {
        engine.enable_metrics(cap);
    }
    let Some((restoration, next_id, read_in)) = restored else { return engine };
    let count = restoration.len();
    let restoring = Instant::now();
    engine.restore_all(now, restoration);
    engine.raise_next_job_id(next_id);
    // Restored jobs were never handed to a client: nothing to send.
    engine.take_replies().for_each(drop);
    // The lists of jobs to place are gone, freed in bulk: what the heap
    // kept of them would stay resident for good.
    super::memory::give_back_free_memory();
    log::info!(
        "binlog: recovered {count} jobs (read in {} ms, restored in {} ms); next job id {}",
        read_in.as_millis(),
        restoring.elapsed().as_millis(),
        engine.next_job_id()
    );
    engine
}
