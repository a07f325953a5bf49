//! Random differential scripts (`random_scripts`): seeded random client
//! conversations, several connections each, played against beanstalkd 1.12
//! and sprout by the same player and normalisation as the scenarios; on a
//! difference the script is shrunk to a small one that still shows it, and
//! printed in the script language, ready to become a `.script` scenario.
//!
//! Each seed makes one script ([`generate`]) for a fresh pair of servers
//! (so `stats`' global counters need no masking: a pair costs a few tens of
//! ms). The scripts avoid everything that depends on timing (see the
//! generator's doc), so every difference is real.
//!
//! Environment:
//! * `SPROUT_DIFF_SEEDS=N`: play seeds 1 to N (default [`CI_SEEDS`]);
//!   `SPROUT_DIFF_FIRST_SEED=F` starts at F instead;
//! * `SPROUT_DIFF_SEED=S`: play seed S only and print its script (with
//!   `SPROUT_DIFF_VERBOSE=1`, both transcripts too);
//! * `SPROUT_DIFF_SHRINK=N`: shrink at most N differing scripts (default 3;
//!   the others are listed by seed and kind);
//! * `SPROUT_DIFF_ALLOW=ties,waiters,ahead,arriving,after-quit,close-order`
//!   (or `all`):
//!   also write what the known differences need, which are otherwise left
//!   out: several deadlines set in one write (`ties`), several connections
//!   waiting at once (`waiters`), commands after one that wakes a waiting
//!   connection in the same write (`ahead`), a peek or stats-job of a job
//!   whose body is still arriving (`arriving`), commands after `quit` in the
//!   same write (`after-quit`), a connection holding several jobs closing
//!   while another waits (`close-order`);
//! * `SPROUT_DIFF_SELF=1` plays beanstalkd against itself, as for the
//!   scenarios (no difference may show: checks that the scripts do not
//!   depend on timing).
//!
//! `cargo test --test differential random_scripts` runs the CI seeds; a
//! long campaign is `SPROUT_DIFF_SEEDS=5000 cargo test --release --test
//! differential random_scripts -- --nocapture`.

mod generate;
mod grammar;
mod model;
mod ops;
mod shrink;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::compare::{diff, play_both, print_transcript, verbose};
use crate::play::Transcript;
use crate::script::parse_script;
use crate::support::Binary;
use generate::{Allow, Generated, generate};

/// The seeds CI plays: about 40 s on a busy 2-core machine.
const CI_SEEDS: u64 = 300;

/// A script that takes longer than this is named in the summary (it
/// waited for something: a reply that did not come, or a server).
const SLOW: Duration = Duration::from_secs(2);

/// How long the shrinker waits for a reply (candidates that stall are
/// thrown away, and there are many of them).
const SHRINK_REPLY_TIMEOUT: Duration = Duration::from_millis(500);

/// What playing one script against both servers showed.
pub(crate) struct Outcome {
    /// The readable diff, if the servers answered differently.
    pub(crate) difference: Option<String>,
    /// The first difference in short: the command and both servers' first
    /// words, to group differences by.
    pub(crate) kind: String,
    /// Replies beanstalkd did not send in time (`<no reply>`): the model
    /// expected a reply that did not come.
    pub(crate) stalls: usize,
    /// `$N` used before beanstalkd handed it out: the model's ids are off.
    pub(crate) script_errors: Vec<String>,
    /// Observations compared.
    pub(crate) observations: usize,
    /// Steps of the script.
    pub(crate) steps: usize,
    /// How often beanstalkd answered with each word (`INSERTED`,
    /// `NOT_FOUND`, `<closed>`, ...): what the scripts reach.
    pub(crate) words: BTreeMap<String, usize>,
}

impl Outcome {
    /// The script did not run as the generator meant (its model of
    /// beanstalkd is wrong somewhere), whatever sprout did.
    pub(crate) fn generator_fault(&self) -> bool {
        self.stalls > 0 || !self.script_errors.is_empty()
    }
}

/// Plays the operations `played` of a generated script against both
/// servers; `shrinking` waits less for replies.
pub(crate) fn play(beanstalkd: &Binary, generated: &Generated, played: &[bool], shrinking: bool) -> Outcome {
    let name = format!("seed {}", generated.seed);
    let mut script = parse_script(&name, &generated.script(played, &name));
    if shrinking {
        script.reply_timeout = Some(SHRINK_REPLY_TIMEOUT);
    }
    let (reference, candidate) = play_both(beanstalkd, &script);
    if verbose() && !shrinking {
        print_transcript(&name, &reference);
        print_transcript(&name, &candidate);
    }
    let mut words = BTreeMap::new();
    for e in &reference.entries {
        let word = e.outcome.split([' ', '\\']).next().unwrap_or_default();
        *words.entry(word.to_string()).or_insert(0) += 1;
    }
    Outcome {
        words,
        difference: diff(&name, &reference, &candidate),
        kind: kind(&reference, &candidate),
        stalls: reference.entries.iter().filter(|e| e.outcome.starts_with("<no reply")).count(),
        script_errors: reference.script_errors.clone(),
        observations: reference.entries.len(),
        steps: script.steps.len(),
    }
}

/// The first difference as `command: beanstalkd's first word | sprout's`.
fn kind(a: &Transcript, b: &Transcript) -> String {
    let first_word = |s: &str| s.split([' ', '\\']).next().unwrap_or_default().to_string();
    for i in 0..a.entries.len().max(b.entries.len()) {
        match (a.entries.get(i), b.entries.get(i)) {
            (Some(x), Some(y)) if x.outcome == y.outcome && x.step == y.step => continue,
            (Some(x), Some(y)) => {
                let sent = x.sent.rsplit("\\r\\n").find(|c| !c.is_empty()).unwrap_or(&x.source);
                let command = sent.split([' ', '\\']).next().unwrap_or_default();
                return format!("{command}: {} | {}", first_word(&x.outcome), first_word(&y.outcome));
            }
            _ => return "observation count".into(),
        }
    }
    String::new()
}

fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{key}={v:?} is not a number")))
}

#[derive(Default)]
struct Totals {
    scripts: usize,
    ops: usize,
    steps: usize,
    commands: usize,
    observations: usize,
    words: BTreeMap<String, usize>,
}

#[test]
fn random_scripts() {
    let Some(beanstalkd) = Binary::beanstalkd_or_skip("random_scripts") else {
        return;
    };
    let allow = Allow::parse(&std::env::var("SPROUT_DIFF_ALLOW").unwrap_or_default()).unwrap();
    let single = env_u64("SPROUT_DIFF_SEED");
    let seeds = match single {
        Some(seed) => seed..seed + 1,
        None => {
            let first = env_u64("SPROUT_DIFF_FIRST_SEED").unwrap_or(1);
            first..first + env_u64("SPROUT_DIFF_SEEDS").unwrap_or(CI_SEEDS)
        }
    };
    let mut shrinks_left = env_u64("SPROUT_DIFF_SHRINK").unwrap_or(3);
    let began = Instant::now();
    let mut totals = Totals::default();
    let mut kinds: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut reports = Vec::new();
    let mut slow = Vec::new();
    for seed in seeds.clone() {
        let generated = generate(seed, allow);
        let all = vec![true; generated.ops.len()];
        if single.is_some() {
            eprintln!("{}", generated.script(&all, &format!("seed {seed}")));
        }
        let started = Instant::now();
        let outcome = play(&beanstalkd, &generated, &all, false);
        if started.elapsed() > SLOW {
            slow.push(format!("{seed} ({:.1} s)", started.elapsed().as_secs_f64()));
        }
        totals.scripts += 1;
        totals.ops += generated.ops.len();
        totals.steps += outcome.steps;
        totals.commands += generated.commands(&all);
        totals.observations += outcome.observations;
        for (word, n) in &outcome.words {
            *totals.words.entry(word.clone()).or_insert(0) += n;
        }
        if outcome.generator_fault() {
            kinds.entry("generator fault".into()).or_default().push(seed);
            reports.push(format!(
                "seed {seed}: the generator's model of beanstalkd is off ({} stalls, script errors {:?}); \
                 the script:\n{}\n{}",
                outcome.stalls,
                outcome.script_errors,
                generated.script(&all, &format!("seed {seed}")),
                outcome.difference.as_deref().unwrap_or("(no difference)"),
            ));
            continue;
        }
        let Some(difference) = &outcome.difference else { continue };
        kinds.entry(outcome.kind.clone()).or_default().push(seed);
        if shrinks_left == 0 {
            continue;
        }
        shrinks_left -= 1;
        reports.push(report(&beanstalkd, &generated, outcome.kind.clone(), difference.clone(), outcome));
    }
    let differing: usize = kinds.values().map(Vec::len).sum();
    let mut summary = format!(
        "random_scripts: seeds {}..{} (allow {}): {} scripts, {} operations, {} steps, {} commands, \
         {} observations compared, {} differing, in {:.1} s",
        seeds.start,
        seeds.end - 1,
        allow.describe(),
        totals.scripts,
        totals.ops,
        totals.steps,
        totals.commands,
        totals.observations,
        differing,
        began.elapsed().as_secs_f64()
    );
    let words: Vec<String> = totals.words.iter().map(|(w, n)| format!("{w} {n}")).collect();
    summary.push_str(&format!("\n  beanstalkd answered: {}", words.join(", ")));
    if !slow.is_empty() {
        summary.push_str(&format!("\n  slow seeds: {}", slow.join(", ")));
    }
    for (kind, seeds) in &kinds {
        let shown: Vec<String> = seeds.iter().take(12).map(u64::to_string).collect();
        summary.push_str(&format!("\n  {} x {kind} (seeds {})", seeds.len(), shown.join(" ")));
    }
    eprintln!("{summary}");
    assert!(reports.is_empty() && differing == 0, "{}\n\n{summary}", reports.join("\n\n"));
}

/// Checks that a difference comes back when the script is played again,
/// shrinks it, saves the small script, and says all that.
fn report(beanstalkd: &Binary, generated: &Generated, kind: String, difference: String, outcome: Outcome) -> String {
    let seed = generated.seed;
    let all = vec![true; generated.ops.len()];
    let again = play(beanstalkd, generated, &all, false);
    if again.difference.is_none() {
        return format!(
            "seed {seed}: a difference ({kind}) that did not come back when played again (timing?):\n{difference}"
        );
    }
    let began = Instant::now();
    let shrunk = shrink::shrink(beanstalkd, generated, outcome);
    let title = format!("seed {seed} ({kind}), shrunk");
    let script = generated.script(&shrunk.played, &title);
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("random_seed_{seed}.script"));
    let saved = match std::fs::write(&path, &script) {
        Ok(()) => format!("saved as {}", path.display()),
        Err(e) => format!("not saved ({e})"),
    };
    format!(
        "seed {seed}: {kind}; shrunk from {} to {} operations in {} runs ({:.1} s), {saved}:\n{script}\n{}",
        generated.ops.len(),
        shrunk.played.iter().filter(|p| **p).count(),
        shrunk.runs,
        began.elapsed().as_secs_f64(),
        shrunk.outcome.difference.unwrap_or_default()
    )
}
