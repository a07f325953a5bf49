//! sprout's fuzz targets: each takes arbitrary bytes and panics on a
//! finding. They use sprout's public API and std only, so the root crate's
//! tests can include this directory by `#[path]` and replay the corpora
//! without afl (tests/fuzz_engine_corpus.rs).
//!
//! - [`engine`]: the engine driven by arbitrary steps (commands,
//!   connections coming and going, the clock), its invariants checked after
//!   every step and its replies compared with [`model`]'s.

pub mod engine;
pub mod model;

/// A target: runs one input, panics on a finding.
pub type Target = fn(&[u8]);

/// Every target by name: `fuzz/src/bin/<name>.rs` runs it under afl, and
/// its corpus is `fuzz/corpus/<name>/`.
pub const TARGETS: &[(&str, Target)] = &[("engine", engine::run)];
