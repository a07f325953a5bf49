//! Playing a script against both servers and comparing the transcripts.

use crate::play::{Entry, Transcript, run_script, start};
use crate::script::{Script, parse_script};
use crate::support::Binary;

pub(crate) fn self_test() -> bool {
    std::env::var("SPROUT_DIFF_SELF").is_ok_and(|v| !v.is_empty() && v != "0")
}

pub(crate) fn verbose() -> bool {
    std::env::var("SPROUT_DIFF_VERBOSE").is_ok_and(|v| !v.is_empty() && v != "0")
}

pub(crate) fn print_transcript(name: &str, t: &Transcript) {
    let mut out = format!("=== {name}: transcript of {}\n", t.server);
    for e in &t.entries {
        out.push_str(&format!("  {:>3} l{:<3} {:<40} => {}\n", e.step, e.line, e.source, e.outcome));
    }
    eprint!("{out}");
}

/// Plays a scenario against beanstalkd and sprout (or beanstalkd twice in
/// self-test mode) and fails with a readable diff if the replies differ.
pub(crate) fn differential(name: &str, text: &str) {
    let Some(beanstalkd) = Binary::beanstalkd_or_skip(name) else {
        return;
    };
    let script = parse_script(name, text);
    let (reference, candidate) = play_both(&beanstalkd, &script);
    if verbose() {
        print_transcript(name, &reference);
        print_transcript(name, &candidate);
    }
    assert!(
        reference.script_errors.is_empty(),
        "scenario `{name}`: script error against beanstalkd: {:?}",
        reference.script_errors
    );
    let mut report = diff(name, &reference, &candidate).unwrap_or_default();
    for t in [&reference, &candidate] {
        if !t.departure_failures.is_empty() {
            report.push_str(&format!(
                "scenario `{name}`: {} did not answer as a `differ` step expected:\n  {}\n",
                t.server,
                t.departure_failures.join("\n  ")
            ));
        }
    }
    assert!(report.is_empty(), "{report}");
}

/// Plays `script` against beanstalkd and against sprout (beanstalkd again
/// in self-test mode), each on a server of its own started for it, at the
/// same time: the reference's transcript first.
pub(crate) fn play_both(beanstalkd: &Binary, script: &Script) -> (Transcript, Transcript) {
    let args: Vec<&str> = script.server_args.iter().map(String::as_str).collect();
    std::thread::scope(|s| {
        let reference = s.spawn(|| {
            let mut server = start(beanstalkd, &args);
            run_script(&mut server, script)
        });
        let candidate = s.spawn(|| {
            let candidate = if self_test() { beanstalkd.clone() } else { Binary::sprout() };
            let mut server = start(&candidate, &args);
            let mut t = run_script(&mut server, script);
            if self_test() {
                t.server = "beanstalkd (second run)".into();
            }
            t
        });
        (reference.join().unwrap(), candidate.join().unwrap())
    })
}

pub(crate) fn diff(name: &str, a: &Transcript, b: &Transcript) -> Option<String> {
    let mut out = String::new();
    let mut count = 0;
    let n = a.entries.len().max(b.entries.len());
    for i in 0..n {
        let (ea, eb) = (a.entries.get(i), b.entries.get(i));
        let same = match (ea, eb) {
            (Some(x), Some(y)) => x.outcome == y.outcome && x.step == y.step,
            _ => false,
        };
        if same {
            continue;
        }
        count += 1;
        let e = ea.or(eb).unwrap();
        out.push_str(&format!("--- step {} (script line {}): {}\n", e.step, e.line, e.source));
        let show = |t: &Transcript, e: Option<&Entry>| match e {
            Some(e) => format!("    {:<11} sent \"{}\"\n    {:<11} got  \"{}\"\n", t.server, e.sent, "", e.outcome),
            None => format!("    {:<11} (no such observation)\n", t.server),
        };
        out.push_str(&show(a, ea));
        out.push_str(&show(b, eb));
        if let (Some(x), Some(y)) = (ea, eb) {
            out.push_str(&line_diff(&x.outcome, &y.outcome));
        }
    }
    if count == 0 {
        return None;
    }
    Some(format!(
        "scenario `{name}`: {count} difference(s) between {} and {} \
         (replies escaped; job ids mapped to $n; SPROUT_DIFF_VERBOSE=1 prints whole transcripts)\n{out}",
        a.server, b.server
    ))
}

/// For multi-line replies (YAML), the lines that differ, side by side.
pub(crate) fn line_diff(a: &str, b: &str) -> String {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.split("\\n").collect(), b.split("\\n").collect());
    if la.len() < 3 || lb.len() < 3 {
        return String::new();
    }
    let mut out = String::from("    differing lines:\n");
    for i in 0..la.len().max(lb.len()) {
        let (x, y) = (la.get(i).copied().unwrap_or("<none>"), lb.get(i).copied().unwrap_or("<none>"));
        if x != y {
            out.push_str(&format!("      {x:<40} | {y}\n"));
        }
    }
    out
}

/// Plays a script against sprout only (for the deliberate departures) and
/// returns the normalised replies.
pub(crate) fn sprout_only(name: &str, text: &str) -> Vec<String> {
    let script = parse_script(name, text);
    let args: Vec<&str> = script.server_args.iter().map(String::as_str).collect();
    let mut server = start(&Binary::sprout(), &args);
    let t = run_script(&mut server, &script);
    if verbose() {
        print_transcript(name, &t);
    }
    assert!(t.script_errors.is_empty(), "{name}: {:?}", t.script_errors);
    t.outcomes().into_iter().map(String::from).collect()
}
