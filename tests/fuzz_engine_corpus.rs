//! The engine's fuzz target without afl: the corpus and every regression
//! input replayed, and the engine held to the model on a few thousand
//! inputs from a seeded generator, so that CI runs the comparison on every
//! commit. The target is included as source (it uses sprout's public API
//! and std only); `fuzz/` is the package afl runs it from.

#[path = "../fuzz/targets/mod.rs"]
#[allow(dead_code)]
mod targets;

#[path = "support/rng.rs"]
mod rng;

use std::path::Path;

/// Every file of `fuzz/<dir>`, by name.
fn inputs(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files.into_iter().map(|path| (path.display().to_string(), std::fs::read(&path).unwrap())).collect()
}

/// Runs one input; a panic names it (and the panic message says which step
/// differed).
fn replay(name: &str, data: &[u8]) {
    if std::panic::catch_unwind(|| targets::engine::run(data)).is_err() {
        panic!("engine target failed on {name}");
    }
}

#[test]
fn engine_corpus_and_regressions_replay() {
    let mut n = 0;
    for dir in ["corpus/engine", "regressions/engine"] {
        for (name, data) in inputs(dir) {
            replay(&name, &data);
            n += 1;
        }
    }
    assert!(n > 0, "no inputs in fuzz/corpus/engine");
}

/// Random inputs of up to 480 bytes: steps, each a byte or a few. A failing
/// one is printed as hex, to be saved under fuzz/regressions/engine/.
#[test]
fn engine_matches_model_on_seeded_inputs() {
    let mut rng = rng::Rng(0x5eed_f022_e1d1_e5e5);
    for i in 0..2500 {
        let len = rng.index(480);
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
        replay(&format!("seeded input {i} (hex {hex})"), &data);
    }
}

/// `FUZZ_INPUT=path cargo test --test fuzz_engine_corpus -- --ignored
/// --nocapture`: one input (a crash afl found), with the steps and the
/// difference if there is one, else the steps and the model's state.
#[test]
#[ignore]
fn engine_replay_one() {
    let path = std::env::var("FUZZ_INPUT").expect("FUZZ_INPUT names an input file");
    println!("{}", targets::engine::trace(&std::fs::read(path).unwrap()));
}
