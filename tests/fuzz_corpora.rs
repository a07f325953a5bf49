//! Replays the fuzz targets' corpora and regressions (fuzz/README.md): every
//! file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through
//! its target, as the fuzz binaries run it, under the same allocation
//! guard. No fuzzer needed: it takes seconds, and a regression that comes
//! back fails here. A target without a corpus, or a corpus or regressions
//! directory that names no target, fails too.

#[path = "../fuzz/targets/mod.rs"]
#[allow(dead_code)] // the engine target's trace(), for tests/engine_model.rs
mod targets;

use std::collections::BTreeSet;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The subdirectories of `dir` (none if it does not exist).
fn subdirs(dir: &Path) -> BTreeSet<String> {
    let Ok(entries) = fs::read_dir(dir) else { return BTreeSet::new() };
    entries
        .map(|e| e.expect("a directory entry"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The files of `dir`, sorted (none if it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_has_a_corpus_and_every_corpus_a_target() {
    let names: BTreeSet<String> = targets::TARGETS.iter().map(|(name, _)| name.to_string()).collect();
    let corpora = subdirs(&fuzz_dir().join("corpus"));
    assert_eq!(corpora, names, "fuzz/corpus/ has one directory per target in the registry, and no other");
    for name in &names {
        assert!(!files(&fuzz_dir().join("corpus").join(name)).is_empty(), "fuzz/corpus/{name}/ is empty");
    }
    let regressions = subdirs(&fuzz_dir().join("regressions"));
    let strays: Vec<_> = regressions.difference(&names).collect();
    assert!(strays.is_empty(), "fuzz/regressions/ has directories that name no target: {strays:?}");
}

#[test]
fn corpora_and_regressions_replay_cleanly() {
    let mut failures = Vec::new();
    let mut replayed = 0;
    for &(name, run) in targets::TARGETS {
        for kind in ["corpus", "regressions"] {
            for path in files(&fuzz_dir().join(kind).join(name)) {
                let data = fs::read(&path).expect("a readable input");
                replayed += 1;
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(&data))) {
                    let why = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("(no message)");
                    failures.push(format!("{name}: {}: {why}", path.display()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {replayed} inputs failed:\n{}", failures.len(), failures.join("\n"));
    eprintln!("{replayed} inputs replayed");
}

#[test]
fn the_allocation_guard_is_installed() {
    let big = catch_unwind(|| targets::alloc_guard::within(1024, "a test", || vec![1u8; 4096].len()));
    assert!(big.is_err(), "an allocation over the bound went unnoticed");
    let small = targets::alloc_guard::within(1024, "a test", || vec![1u8; 1000].len());
    assert_eq!(small, 1000);
}
