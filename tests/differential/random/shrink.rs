//! Shrinking a random script that shows a difference to a small one that
//! still does: operations are dropped in halves, quarters, ... and then one
//! at a time, each candidate played again against both servers, for as
//! long as the two keep answering differently (delta debugging). Dropping
//! an operation drops what needs it (see `ops::closure`), and the `$N` of
//! the jobs left are renumbered when the script is printed.

use super::generate::Generated;
use super::ops::closure;
use super::{Outcome, play};
use crate::support::Binary;

/// At most this many candidate scripts are played.
const MAX_RUNS: usize = 400;

/// The operations to keep (as `ops::closure` plays them) of a script that
/// still shows a difference, and that difference; `runs` counts the
/// scripts played.
pub(crate) struct Shrunk {
    pub(crate) played: Vec<bool>,
    pub(crate) outcome: Outcome,
    pub(crate) runs: usize,
}

/// Shrinks `generated`, whose whole script showed `original`.
pub(crate) fn shrink(beanstalkd: &Binary, generated: &Generated, original: Outcome) -> Shrunk {
    let n = generated.ops.len();
    let mut best = Shrunk { played: vec![true; n], outcome: original, runs: 0 };
    // A candidate must show the same kind of difference (not another one
    // its dropped operations made, such as a reply left unread, which is
    // compared unnormalised), and must not stall more than the original
    // did (a reserve that now waits for nothing is a broken script, not a
    // finding).
    let stalls = best.outcome.stalls;
    let kind = best.outcome.kind.clone();
    let try_keep = |best: &mut Shrunk, keep: &[bool]| -> bool {
        let played = closure(&generated.ops, keep);
        if played == best.played || best.runs >= MAX_RUNS {
            return false;
        }
        best.runs += 1;
        let outcome = play(beanstalkd, generated, &played, true);
        if outcome.difference.is_some()
            && outcome.kind == kind
            && !outcome.generator_fault()
            && outcome.stalls <= stalls
        {
            best.played = played;
            best.outcome = outcome;
            return true;
        }
        false
    };
    let mut chunk = n.div_ceil(2).max(1);
    loop {
        let mut start = 0;
        let mut changed = false;
        loop {
            let live: Vec<usize> = (0..n).filter(|&i| best.played[i]).collect();
            if start >= live.len() || best.runs >= MAX_RUNS {
                break;
            }
            let mut keep = best.played.clone();
            for &i in live.iter().skip(start).take(chunk) {
                keep[i] = false;
            }
            if try_keep(&mut best, &keep) {
                changed = true;
            } else {
                start += chunk;
            }
        }
        if best.runs >= MAX_RUNS || (chunk == 1 && !changed) {
            break;
        }
        chunk = (chunk / 2).max(1);
    }
    best
}
