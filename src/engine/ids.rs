//! The handles by which the engine's structures name jobs, tubes and client
//! connections.
//!
//! A leaf, like time.rs: it imports nothing from the engine, so that the
//! structures below [`Engine`](super::Engine) (the ready queue, the heads
//! index, the timers, watch lists) can name a job, a tube or a connection
//! without an edge back into the files that own them. Ids and time are two
//! modules because they are two concepts: time.rs is about the clock the
//! caller supplies, these are names.

/// A job's id: handed out from 1 upwards and never reused, so it also
/// orders jobs by age (ready jobs of equal priority go out oldest first).
pub type JobId = u64;

/// The largest id a job may have: 2^63 - 1. No server hands out one this
/// large (at a million puts a second it takes 292,000 years), so a log that
/// names a larger one, or a next id past it, is damaged: the logs' readers
/// refuse it, and ids, which are read back from logs, never run out
/// (`id + 1` never overflows).
pub const MAX_JOB_ID: JobId = (1 << 63) - 1;

/// The server's handle for a client connection (its slab key).
pub type ConnId = usize;

/// Handle to a live tube, handed out by the tube registry (tubes.rs), which
/// alone makes them: a handle is the slot the tube sits in. Handles are
/// reused after a tube is dropped, so nothing may keep one past the tube's
/// life (the registry's reference counts guarantee that for connections and
/// jobs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TubeId(u32);

impl TubeId {
    /// The handle of the tube in registry slot `slot`. Only the registry
    /// calls this (Rust cannot narrow it to a sibling module, and a leaf
    /// cannot live inside the registry).
    pub(super) fn from_slot(slot: usize) -> TubeId {
        TubeId(u32::try_from(slot).expect("2^32 tubes"))
    }

    /// The registry slot the tube sits in.
    pub(super) fn slot(self) -> usize {
        self.0 as usize
    }
}
