//! sprout's fuzz targets, one module each, and the registry that names
//! them. Each target is `fn(&[u8])`: it panics on a finding. The fuzz
//! binaries (`src/bin/<name>.rs`, under cargo afl) and the root's tests
//! (`tests/fuzz_corpora.rs` replays `corpus/<name>/` and
//! `regressions/<name>/` of every target; `tests/engine_model.rs`
//! also runs the engine against its model on seeded inputs) both reach the
//! targets through [`TARGETS`], so adding a target is its module, its line
//! there, its binary and its corpus. Targets use only sprout's public API,
//! std, tempfile and libc (the root's dev-dependencies), because the root
//! tests compile them too.
//!
//! - [`decoder`]: the decoder fed as a connection feeds it, in any reads.
//! - [`binlog`]: a start on arbitrary sprout binlog files.
//! - [`beanstalkd_binlog`]: beanstalkd's files read, replayed, taken over.
//! - [`engine`]: the engine driven by arbitrary steps (commands,
//!   connections coming and going, the clock), its invariants checked after
//!   every step and its replies compared with [`model`]'s.

pub mod alloc_guard;
pub mod beanstalkd_binlog;
pub mod binlog;
pub mod binlog_dir;
pub mod decoder;
pub mod engine;
pub mod model;

/// A target: panics on a finding.
pub type Target = fn(&[u8]);

/// Every target, by the name of its binary and corpus directory. One line
/// a target, so that adding one is a one-line change (hence no rustfmt).
#[rustfmt::skip]
pub const TARGETS: &[(&str, Target)] = &[
    ("decoder", decoder::run),
    ("binlog", binlog::run),
    ("beanstalkd_binlog", beanstalkd_binlog::run),
    ("engine", engine::run),
];
