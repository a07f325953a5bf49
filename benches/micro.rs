//! Micro-benchmarks of sprout's hot paths, with a small std-only harness
//! (no criterion: it would add a long dependency tree to every test build).
//!
//! ```text
//! cargo bench --bench micro                # all
//! cargo bench --bench micro -- parse       # names containing "parse"
//! ```
//!
//! Each benchmark is calibrated to about 50 ms per sample; 11 samples are
//! taken and the median, min and max time per iteration are printed. The
//! machine is noisy: compare numbers from one run only.

use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sprout::engine::{Engine, EngineConfig};
use sprout::host::HostInfo;
use sprout::protocol::command::NewJob;
use sprout::protocol::parse::parse_line;
use sprout::protocol::yaml::{ServerStats, server_stats};
use sprout::protocol::{Command, Decoder};

const SAMPLES: usize = 11;
const SAMPLE_TIME: Duration = Duration::from_millis(50);

/// Times `f(iters)` (which must run its body `iters` times) and prints ns/iter.
fn bench(filter: &[String], name: &str, per_iter: u64, mut f: impl FnMut(u64)) {
    if !filter.is_empty() && !filter.iter().any(|p| name.contains(p.as_str())) {
        return;
    }
    // Calibrate: double until one batch takes at least a tenth of a sample.
    let mut iters = 1u64;
    loop {
        let t = Instant::now();
        f(iters);
        let took = t.elapsed();
        if took >= SAMPLE_TIME / 10 || iters >= 1 << 40 {
            let scale = SAMPLE_TIME.as_secs_f64() / took.as_secs_f64().max(1e-9);
            iters = ((iters as f64 * scale) as u64).max(1);
            break;
        }
        iters *= 2;
    }
    let mut ns: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            f(iters);
            t.elapsed().as_nanos() as f64 / (iters * per_iter) as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    let unit = if per_iter > 1 { "ns/op" } else { "ns/iter" };
    println!(
        "{name:<52} {:>10.1} {unit}  (min {:.1}, max {:.1}; {SAMPLES} x {iters} iters{})",
        ns[SAMPLES / 2],
        ns[0],
        ns[SAMPLES - 1],
        if per_iter > 1 { format!(" of {per_iter} ops") } else { String::new() }
    );
}

fn engine() -> Engine {
    Engine::new(EngineConfig { max_job_size: 65535, binlog_max_size: 10485760, host: HostInfo::fake() }, 0)
}

/// An engine with metrics on (`--metrics`) if `metrics`.
fn engine_with(metrics: bool) -> Engine {
    let mut e = engine();
    if metrics {
        e.enable_metrics(sprout::metrics::DEFAULT_TUBE_CAP);
    }
    e
}

/// A bench's name, marked when metrics are on.
fn named(name: &str, metrics: bool) -> String {
    if metrics { format!("{name} (metrics on)") } else { name.to_string() }
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();

    for (name, line) in [
        ("parse_line put", &b"put 1024 0 120 100"[..]),
        ("parse_line reserve", b"reserve"),
        ("parse_line reserve-with-timeout", b"reserve-with-timeout 5"),
        ("parse_line delete", b"delete 18446744073709551615"),
        ("parse_line delete 123456", b"delete 123456"),
        ("parse_line use", b"use some-tube.name_(1)"),
        ("parse_line unknown", b"frobnicate 1 2 3"),
    ] {
        bench(&filter, name, 1, |n| {
            for _ in 0..n {
                black_box(parse_line(black_box(line), 65535));
            }
        });
    }

    // 100 pipelined puts of 100 bytes, framed by the decoder.
    let mut input = Vec::new();
    for _ in 0..100 {
        input.extend_from_slice(b"put 0 0 120 100\r\n");
        input.extend_from_slice(&[b'x'; 100]);
        input.extend_from_slice(b"\r\n");
    }
    bench(&filter, "decoder 100 pipelined puts (per put)", 100, |n| {
        for _ in 0..n {
            let mut decoder = Decoder::new(65535);
            let mut rest = &input[..];
            let mut events = 0;
            while !rest.is_empty() {
                let step = decoder.decode(rest);
                assert!(!step.is_stalled(), "decoder stalled on complete input");
                events += usize::from(step.event.is_some());
                rest = &rest[step.consumed..];
            }
            black_box(events);
        }
    });

    let stats = ServerStats::default();
    bench(&filter, "yaml::server_stats(default)", 1, |n| {
        for _ in 0..n {
            black_box(server_stats(black_box(&stats)));
        }
    });

    let body: Rc<[u8]> = Rc::from(&[b'x'; 100][..]);
    let put = || Command::Put(NewJob { pri: 0, delay: 0, ttr: 120, body: Rc::clone(&body) });

    bench(&filter, "engine put (100 B, growing queue)", 1, |n| {
        let mut e = engine();
        e.connect(0);
        for i in 0..n {
            e.begin_put(0);
            e.apply(i, 0, put());
            black_box(e.take_replies().count());
        }
    });

    for metrics in [false, true] {
        bench(&filter, &named("engine put + reserve + delete", metrics), 1, |n| {
            let mut e = engine_with(metrics);
            e.connect(0);
            let mut ids = Vec::with_capacity(1);
            for i in 0..n {
                e.begin_put(0);
                e.apply(i, 0, put());
                e.take_replies().for_each(drop);
                e.apply(i, 0, Command::Reserve);
                ids.clear();
                ids.extend(e.take_replies().filter_map(|(_, reply)| match reply {
                    sprout::protocol::Reply::Reserved { id, .. } => Some(id),
                    _ => None,
                }));
                let id = ids.first().copied().expect("reserve after put must succeed");
                e.apply(i, 0, Command::Delete(id));
                black_box(e.take_replies().count());
            }
        });

        // 50 workers blocked in a reserve on one tube; each put is handed to
        // one, which deletes the job and waits again: the waiting path
        // (begin_wait, serve_waiters, end_wait) that a busy pool of workers runs.
        bench(&filter, &named("engine put to one of 50 waiting workers + delete + wait", metrics), 1, |n| {
            const WORKERS: usize = 50;
            let mut e = engine_with(metrics);
            for conn in 0..=WORKERS {
                e.connect(conn);
            }
            for worker in 1..=WORKERS {
                e.apply(0, worker, Command::Reserve);
            }
            for i in 0..n {
                e.begin_put(0);
                e.apply(i, 0, put());
                let (worker, id) = e
                    .take_replies()
                    .find_map(|(to, reply)| match reply {
                        sprout::protocol::Reply::Reserved { id, .. } => Some((to, id)),
                        _ => None,
                    })
                    .expect("a waiting worker takes the job");
                e.apply(i, worker, Command::Delete(id));
                e.apply(i, worker, Command::Reserve);
                black_box(e.take_replies().count());
            }
        });

        bench(&filter, &named("engine 10k puts, then 10k reserve+delete (per job)", metrics), 10_000, |n| {
            for _ in 0..n {
                let mut e = engine_with(metrics);
                e.connect(0);
                for i in 0..10_000 {
                    e.begin_put(0);
                    e.apply(i, 0, put());
                }
                e.take_replies().for_each(drop);
                for i in 0..10_000 {
                    e.apply(i, 0, Command::Reserve);
                    let id = e
                        .take_replies()
                        .find_map(|(_, reply)| match reply {
                            sprout::protocol::Reply::Reserved { id, .. } => Some(id),
                            _ => None,
                        })
                        .expect("a preloaded job");
                    e.apply(i, 0, Command::Delete(id));
                    e.take_replies().for_each(drop);
                }
                black_box(&e);
            }
        });
    }

    // A scrape's two halves with 10,000 tubes, each holding a ready job:
    // the engine's figures (a walk over every tube, the first 100 with
    // figures of their own) and their encoding.
    let mut e = engine_with(true);
    e.connect(0);
    for t in 0..10_000u64 {
        e.apply(t, 0, Command::Use(sprout::protocol::TubeName::new(format!("t{t}").as_bytes()).unwrap()));
        e.begin_put(0);
        e.apply(t, 0, put());
    }
    e.take_replies().for_each(drop);
    bench(&filter, "metrics: engine figures, 10,000 tubes", 1, |n| {
        for i in 0..n {
            black_box(e.figures(20_000 + i));
        }
    });
    let figures = e.figures(20_000);
    bench(&filter, "metrics: encode 100 tubes + [other] (Prometheus text)", 1, |n| {
        for _ in 0..n {
            black_box(sprout::metrics::encode(figures.clone(), sprout::metrics::Format::Prometheus));
        }
    });
    status_page(&filter, &mut e, "100 rows + [other]");
    let mut all = engine();
    all.enable_metrics(100_000);
    all.connect(0);
    for t in 0..10_000u64 {
        all.apply(t, 0, Command::Use(sprout::protocol::TubeName::new(format!("t{t}").as_bytes()).unwrap()));
        all.begin_put(0);
        all.apply(t, 0, put());
    }
    all.take_replies().for_each(drop);
    bench(&filter, "metrics: engine figures, 10,000 tubes, all with series", 1, |n| {
        for i in 0..n {
            black_box(all.figures(20_000 + i));
        }
    });
    let figures = all.figures(20_000);
    bench(&filter, "metrics: encode 10,000 tubes (Prometheus text)", 1, |n| {
        for _ in 0..n {
            black_box(sprout::metrics::encode(figures.clone(), sprout::metrics::Format::Prometheus));
        }
    });
    status_page(&filter, &mut all, "10,000 rows");
}

/// The status page's costs with `e`'s 10,000 tubes (`rows` says how many
/// have rows and rates of their own): a sample of the rates (the engine's
/// figures, then a ring entry per row), and `status.json` with full rings.
fn status_page(filter: &[String], e: &mut Engine, rows: &str) {
    use sprout::status::{RateHistory, SAMPLE_INTERVAL, SAMPLES, StatusDocument, sampled};
    let mut history = RateHistory::new();
    let mut at = 30_000;
    for _ in 0..SAMPLES {
        at += SAMPLE_INTERVAL;
        history.sample(at, sampled(&e.figures(at)));
    }
    bench(filter, &format!("status: sample rates, 10,000 tubes, {rows}"), 1, |n| {
        for _ in 0..n {
            at += SAMPLE_INTERVAL;
            let figures = e.figures(at);
            history.sample(at, sampled(&figures));
        }
    });
    let figures = e.figures(at);
    let len = StatusDocument::new(&figures, &history).to_json().len();
    bench(filter, &format!("status: status.json, 10,000 tubes, {rows} ({} KiB)", len / 1024), 1, |n| {
        for _ in 0..n {
            black_box(StatusDocument::new(&figures, &history).to_json());
        }
    });
}
