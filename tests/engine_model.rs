//! The engine's fuzz target without afl: the engine held to its model
//! (fuzz/targets/model.rs) on a few thousand inputs from a seeded
//! generator, so that CI runs the comparison on every commit beyond the
//! corpus (which tests/fuzz_corpora.rs replays with every target's), and
//! one input traced step by step on demand. The target is included as
//! source (it uses sprout's public API and std only); `fuzz/` is the
//! package afl runs it from.

#[path = "../fuzz/targets/mod.rs"]
#[allow(dead_code)]
mod targets;

#[path = "support/rng.rs"]
mod rng;

/// Runs one input; a panic names it (and the panic message says which step
/// differed).
fn replay(name: &str, data: &[u8]) {
    if std::panic::catch_unwind(|| targets::engine::run(data)).is_err() {
        panic!("engine target failed on {name}");
    }
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

/// `FUZZ_INPUT=path cargo test --test engine_model -- --ignored
/// --nocapture`: one input (a crash afl found), with the steps and the
/// difference if there is one, else the steps and the model's state.
#[test]
#[ignore]
fn engine_replay_one() {
    let path = std::env::var("FUZZ_INPUT").expect("FUZZ_INPUT names an input file");
    println!("{}", targets::engine::trace(&std::fs::read(path).unwrap()));
}
