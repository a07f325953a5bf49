//! The machine's own floor for timed wake-ups: a bare timerfd, armed for
//! absolute instants at the delayed scenario's rate, in a thread of its own
//! while a server is measured. A delayed job cannot come reliably sooner
//! than this thread wakes: on a shared virtual machine both wait for the
//! same (v)CPUs.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sprout::timerfd::{Reads, TimerFd, monotonic_now};

/// Starts the probe: it wakes every `period` for `span`, then returns how
/// late each wake-up was (nanoseconds after the instant it was armed for).
pub fn start(period: Duration, span: Duration) -> JoinHandle<Vec<i64>> {
    std::thread::spawn(move || {
        let Ok(timer) = TimerFd::new(Reads::Block) else { return Vec::new() };
        let end = Instant::now() + span;
        let period = period.as_nanos() as u64;
        let mut at = monotonic_now() + period;
        let mut late = Vec::new();
        while Instant::now() < end {
            if timer.set_at(at).and_then(|()| timer.take_expiry()).is_err() {
                break;
            }
            late.push(monotonic_now().saturating_sub(at) as i64);
            at += period;
        }
        late.sort_unstable();
        late
    })
}
