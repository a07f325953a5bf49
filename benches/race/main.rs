//! `race`: sprout against beanstalkd, side by side, on this machine.
//!
//! ```text
//! cargo build --release
//! cargo bench --bench race -- [--scenarios put,put-binlog,...] [--rounds 3] [--duration 5] ...
//! ```
//!
//! Each measurement starts a fresh server on a free loopback port (and a
//! fresh binlog directory where one is used), runs the load, and kills it.
//! Rounds alternate beanstalkd, sprout, beanstalkd, sprout, ...; the table
//! gives each server's median and the ratio sprout/beanstalkd. Every reply
//! is checked; an unexpected one aborts the run. See BENCHMARKS.md.
//!
//! Opt-in, `--scenarios instructions` counts each server's instructions per
//! operation under valgrind's callgrind instead (`instructions.rs`): a
//! figure the machine's noise does not move, so `--rounds 1` is enough.

mod blocking;
mod buried;
mod client;
mod do_nothing;
mod do_nothing_log;
mod floor;
mod instructions;
mod metrics;
mod scenarios;
mod server;
mod stalls;
mod takeover;
mod tubes;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clap::Parser;

use scenarios::{FixtureEnv, Metric, Variant};
use server::{Binary, Kind};

const ALL_SCENARIOS: &str =
    "put,put-binlog,recovery,takeover,buried,reserve-delete,reserve-delete-binlog,mixed,idle,delayed,big,tubes,metrics";

/// Scenarios run only when asked for by name: `instructions` needs
/// valgrind; `stalls` measures one thing about the binlog (issue 15).
const OPT_IN_SCENARIOS: &str = "instructions,stalls";

#[derive(Parser, Debug, Clone)]
#[command(name = "race", about = "Race sprout against beanstalkd on loopback.")]
pub struct Opts {
    /// Scenarios to run, comma-separated: put, put-binlog, recovery, takeover, buried, reserve-delete,
    /// reserve-delete-binlog, mixed, idle, delayed, big, tubes, metrics; and, only when named,
    /// instructions (instructions per operation under valgrind's callgrind) and stalls (a probe's put
    /// round trip while the binlog compacts and retires files under load)
    #[arg(long, value_delimiter = ',', default_value = ALL_SCENARIOS)]
    pub scenarios: Vec<String>,

    /// Rounds per server (alternating beanstalkd, sprout, ...); medians are reported
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,

    /// Seconds measured per timed run (after the warm-up)
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,

    /// Seconds of warm-up before measuring (not counted)
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,

    /// Run throughput scenarios (put, put-binlog, big) for this many operations instead of a duration
    #[arg(long)]
    pub count: Option<u64>,

    /// Connection shapes CxD (C connections, D requests in flight each), comma-separated;
    /// replaces the scenario's default shapes (put: 1x100,1x1000,50x16,50x1; put-binlog and
    /// reserve-delete-binlog: 50x1,1x100; reserve-delete: 1x100,1x1000,50x1)
    #[arg(long, value_delimiter = ',', value_parser = parse_shape)]
    pub shapes: Vec<(usize, usize)>,

    /// Shorthand for a single shape: connections (with --depth)
    #[arg(long)]
    pub conns: Option<usize>,

    /// Shorthand for a single shape: requests in flight per connection (with --conns)
    #[arg(long)]
    pub depth: Option<usize>,

    /// Job body size in bytes (put, put-binlog, reserve-delete, idle, mixed, delayed)
    #[arg(long, default_value_t = 100)]
    pub body: usize,

    /// Client threads (each drives its share of the connections with epoll)
    #[arg(long, default_value_t = 1)]
    pub threads: usize,

    /// Extra flags for both servers, e.g. --server-flags="-z 131072" (after the scenario's own)
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    pub server_flags: String,

    /// Fsync policies for put-binlog and reserve-delete-binlog, comma-separated: none (no -b, for comparison), default, f0 (-f 0), F (-F), or fN (-f N)
    #[arg(long, value_delimiter = ',', default_value = "none,default,f0,F")]
    pub policies: Vec<String>,

    /// The sprout binary (or set SPROUT_BIN) [default: the one cargo bench just built, else target/release/sprout]
    #[arg(long)]
    pub sprout: Option<PathBuf>,

    /// The beanstalkd binary (or set BEANSTALKD_BIN) [default: /usr/bin/beanstalkd]
    #[arg(long)]
    pub beanstalkd: Option<PathBuf>,

    /// Run only these servers, comma-separated: sprout, beanstalkd, do-nothing (the ceiling: put,
    /// put-binlog and reserve-delete only), baseline (with --baseline)
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,

    /// Another sprout build (e.g. main's) raced in the same rounds, with a column and a ratio
    /// sprout/baseline of its own: a change measured against the same noise
    #[arg(long)]
    pub baseline: Option<PathBuf>,

    /// Where binlog directories and server logs go (must be a real disk, not tmpfs) [default: /tmp]
    #[arg(long)]
    pub tmp_dir: Option<PathBuf>,

    /// Jobs loaded for the recovery, takeover and buried scenarios
    #[arg(long, default_value_t = 1_000_000)]
    pub recovery_jobs: u64,

    /// Body size for the recovery, takeover and buried scenarios
    #[arg(long, default_value_t = 100)]
    pub recovery_body: usize,

    /// Jobs preloaded for reserve-delete (each run drains them all)
    #[arg(long, default_value_t = 200_000)]
    pub preload: u64,

    /// mixed: total put rates of the paced variants (jobs/s), comma-separated; an unpaced variant always runs too
    #[arg(long, value_delimiter = ',', default_value = "2000,10000")]
    pub rates: Vec<f64>,

    /// delayed: total put rate (jobs/s), each with delay 1
    #[arg(long, default_value_t = 2_000.0)]
    pub delayed_rate: f64,

    /// idle: idle connections held open
    #[arg(long, default_value_t = 10_000)]
    pub idle_conns: usize,

    /// big: body size
    #[arg(long, default_value_t = 65_536)]
    pub big_body: usize,

    /// tubes: the numbers of tubes (and of waiting reserves) to run at, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "10,1000,10000")]
    pub tubes_n: Vec<usize>,

    /// tubes: jobs put and reserved per run (waiters: rounded up to whole rounds of N)
    #[arg(long, default_value_t = 5_000)]
    pub tubes_jobs: usize,

    /// tubes: times the worker watching all N tubes is woken from a blocked reserve per run
    #[arg(long, default_value_t = 1_000)]
    pub tubes_wakes: usize,

    /// instructions: writes of the fixed load counted (each 1,000 puts on one connection, 16 on
    /// each of 50, or 1,000 reserves and their deletes)
    #[arg(long, default_value_t = 100)]
    pub instr_writes: usize,

    /// instructions: jobs put (natively) before the restart counted under callgrind
    #[arg(long, default_value_t = 100_000)]
    pub instr_jobs: usize,

    /// Also write the result table (markdown) to this file
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Passed by `cargo bench`; ignored
    #[arg(long, hide = true)]
    pub bench: bool,
}

fn parse_shape(s: &str) -> Result<(usize, usize), String> {
    let (c, d) = s.split_once('x').ok_or_else(|| format!("shape {s:?}: expected CxD, e.g. 50x16"))?;
    let c: usize = c.parse().map_err(|_| format!("shape {s:?}: bad connection count"))?;
    let d: usize = d.parse().map_err(|_| format!("shape {s:?}: bad depth"))?;
    if c == 0 || d == 0 {
        return Err(format!("shape {s:?}: both numbers must be positive"));
    }
    Ok((c, d))
}

/// The sprout binary: --sprout/SPROUT_BIN, else the one `cargo bench` built
/// alongside this runner, else target/release/sprout.
fn sprout_path(opts: &Opts) -> PathBuf {
    if let Some(path) = &opts.sprout {
        return path.clone();
    }
    if let Some(path) = std::env::var_os("SPROUT_BIN") {
        return PathBuf::from(path);
    }
    if let Some(path) = option_env!("CARGO_BIN_EXE_sprout") {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/sprout")
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() { newest_mtime(&path) } else { entry.metadata().ok()?.modified().ok() };
        newest = newest.max(t);
    }
    newest
}

/// Refuses tmpfs: binlog numbers must come from a real disk.
fn is_tmpfs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: statfs fills the struct it is given from a NUL-terminated path.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type == libc::TMPFS_MAGIC
    }
}

fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "?".into());
    format!("nproc {nproc}, kernel {}, CPU {model}", kernel.trim())
}

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// All measurements of one metric of one variant, by server ([`idx`]).
#[derive(Default)]
struct Row {
    metric: Option<Metric>,
    values: [Vec<f64>; KINDS],
    cpu: [Vec<(f64, f64)>; KINDS],
    /// The server's CPU time per operation, in microseconds, where the
    /// metric is a rate measured with the server's CPU.
    cpu_per_op: [Vec<f64>; KINDS],
}

/// The servers a table can have columns for, in their columns' order.
const KINDS: usize = 4;
const COLUMNS: [Kind; KINDS] = [Kind::Beanstalkd, Kind::Sprout, Kind::DoNothing, Kind::Baseline];

fn idx(kind: Kind) -> usize {
    COLUMNS.iter().position(|&k| k == kind).expect("every kind has a column")
}

/// Short names for the column heads.
fn short(kind: Kind) -> &'static str {
    match kind {
        Kind::Beanstalkd => "bs",
        other => other.name(),
    }
}

fn fmt_cpu(cpu: &[(f64, f64)]) -> String {
    if cpu.is_empty() {
        return String::new();
    }
    let s = median(&cpu.iter().map(|c| c.0).collect::<Vec<_>>());
    let c = median(&cpu.iter().map(|c| c.1).collect::<Vec<_>>());
    format!("{:.0}/{:.0}", s * 100.0, c * 100.0)
}

fn fmt_cpu_per_op(values: &[f64]) -> String {
    if values.is_empty() { String::new() } else { format!("{:.2}", median(values)) }
}

fn ratio(over: f64, under: f64) -> String {
    if over.is_finite() && under.is_finite() && under != 0.0 { format!("{:.2}", over / under) } else { "-".into() }
}

/// The servers of this run that get columns: beanstalkd and sprout always
/// (the table's old shape), the do-nothing server and a baseline build when
/// they run.
fn columns(binaries: &[Binary]) -> Vec<Kind> {
    COLUMNS
        .into_iter()
        .filter(|&k| matches!(k, Kind::Beanstalkd | Kind::Sprout) || binaries.iter().any(|b| b.kind == k))
        .collect()
}

/// The kinds sprout is compared with, each a ratio column.
fn ratio_columns(columns: &[Kind]) -> Vec<Kind> {
    columns.iter().copied().filter(|&k| k != Kind::Sprout).collect()
}

/// One markdown row: scenario, variant, metric, medians, sprout's ratios,
/// rounds, CPU use and CPU per operation, each by server.
fn table_row(scenario: &str, variant: &str, row: &Row, columns: &[Kind]) -> String {
    let metric = row.metric.as_ref().expect("row has a metric");
    let med = |k: Kind| median(&row.values[idx(k)]);
    let rounds = |v: &[f64]| v.iter().map(|x| metric.unit.format(*x)).collect::<Vec<_>>().join(", ");
    let mut cells = vec![scenario.to_string(), variant.to_string(), metric.name.clone()];
    cells.extend(columns.iter().map(|&k| metric.unit.format(med(k))));
    cells.extend(ratio_columns(columns).into_iter().map(|k| format!("**{}**", ratio(med(Kind::Sprout), med(k)))));
    cells.extend(columns.iter().map(|&k| rounds(&row.values[idx(k)])));
    cells.extend(columns.iter().map(|&k| fmt_cpu(&row.cpu[idx(k)])));
    cells.extend(columns.iter().map(|&k| fmt_cpu_per_op(&row.cpu_per_op[idx(k)])));
    format!("| {} |", cells.join(" | "))
}

/// The table's head for these columns.
fn table_head(columns: &[Kind]) -> String {
    let mut heads = vec!["scenario".to_string(), "variant".into(), "metric".into()];
    let mut align = vec!["---"; 3];
    heads.extend(columns.iter().map(|k| k.name().to_string()));
    let ratios = ratio_columns(columns);
    heads.extend(ratios.iter().map(|&k| format!("sprout/{}", short(k))));
    align.extend(std::iter::repeat_n("---:", columns.len() + ratios.len()));
    heads.extend(columns.iter().map(|&k| format!("rounds {}", short(k))));
    align.extend(std::iter::repeat_n("---", columns.len()));
    heads.extend(columns.iter().map(|&k| format!("CPU% {} srv/cli", short(k))));
    heads.extend(columns.iter().map(|&k| format!("srv µs/op {}", short(k))));
    align.extend(std::iter::repeat_n("---:", 2 * columns.len()));
    format!("| {} |\n|{}|", heads.join(" | "), align.join("|"))
}

/// The metrics of one run on one line.
fn summary(metrics: &[Metric]) -> String {
    let summary: Vec<String> = metrics
        .iter()
        .map(|m| {
            let cpu =
                m.cpu.map_or(String::new(), |(s, c)| format!(" (cpu srv {:.0}% cli {:.0}%)", s * 100.0, c * 100.0));
            format!("{} {}{cpu}", m.name, m.unit.format(m.value))
        })
        .collect();
    summary.join(", ")
}

/// A directory removed when dropped (a round's fixture, even on failure).
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The variant's fixture for this round: a fresh directory that the
/// variant's fixture step fills with beanstalkd (started with `-b` on it).
fn make_fixture(
    variant: &Variant,
    beanstalkd: &Binary,
    round: usize,
    opts: &Opts,
    extra: &[String],
    work: &Path,
) -> Result<Option<(Removed, Vec<Metric>)>, String> {
    let Some(make) = &variant.fixture else { return Ok(None) };
    let tag = format!("fixture-{}-r{round}", variant.scenario);
    let dir = Removed(work.join(format!("binlog-{tag}-{}", variant.label.replace([' ', '/'], "_"))));
    std::fs::create_dir_all(&dir.0).map_err(|e| format!("create {}: {e}", dir.0.display()))?;
    let mut flags = variant.flags.clone();
    flags.extend(["-b".into(), dir.0.display().to_string()]);
    flags.extend(extra.iter().cloned());
    let env = FixtureEnv { beanstalkd, dir: dir.0.clone(), flags, log: work.join(format!("{tag}.log")), opts };
    let metrics = make(&env)?;
    print_round(variant, round, opts, "fixture", &metrics);
    Ok(Some((dir, metrics)))
}

/// One line on stderr for a finished run: scenario, variant, round, who
/// ran it (a server, or the fixture), what it measured.
fn print_round(variant: &Variant, round: usize, opts: &Opts, who: &str, metrics: &[Metric]) {
    let (scenario, label, rounds) = (variant.scenario, &variant.label, opts.rounds);
    eprintln!("  {scenario} {label} round {}/{rounds} {who:>10}: {}", round + 1, summary(metrics));
}

/// One measurement: a fresh server (and binlog directory), the variant's load, kill.
fn run_one(
    variant: &Variant,
    binary: &Binary,
    round: usize,
    opts: &Opts,
    extra: &[String],
    work: &Path,
    fixture: Option<&Path>,
) -> Result<Vec<Metric>, String> {
    let tag = format!("{}-{}-r{round}", binary.kind.name(), variant.scenario);
    let binlog_dir = variant.binlog.then(|| {
        let dir = work.join(format!("binlog-{tag}-{}", variant.label.replace([' ', '/'], "_")));
        std::fs::create_dir_all(&dir).expect("create binlog dir");
        dir
    });
    let mut flags = variant.flags.clone();
    if let Some(dir) = &binlog_dir {
        flags.push("-b".into());
        flags.push(dir.display().to_string());
    }
    flags.extend(extra.iter().cloned());
    let env = scenarios::Env { binary, flags, log: work.join(format!("{tag}.log")), opts, fixture };
    let result = (variant.run)(&env);
    if let Some(dir) = &binlog_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let metrics = result?;
    print_round(variant, round, opts, binary.kind.name(), &metrics);
    Ok(metrics)
}

fn add_metrics(rows: &mut Vec<Row>, kind: Kind, metrics: Vec<Metric>) {
    for (i, m) in metrics.into_iter().enumerate() {
        if rows.len() <= i {
            rows.push(Row::default());
        }
        let row = &mut rows[i];
        row.values[idx(kind)].push(m.value);
        if let Some(cpu) = m.cpu {
            row.cpu[idx(kind)].push(cpu);
            if matches!(m.unit, scenarios::Unit::PerSec) && m.value > 0.0 {
                row.cpu_per_op[idx(kind)].push(cpu.0 / m.value * 1e6);
            }
        }
        row.metric.get_or_insert(m);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == do_nothing::FLAG) {
        do_nothing::serve(&args[2..]);
    }
    let opts = Opts::parse();
    let beanstalkd = opts
        .beanstalkd
        .clone()
        .or_else(|| std::env::var_os("BEANSTALKD_BIN").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/usr/bin/beanstalkd"));
    server::install_cleanup();
    sprout::host::raise_fd_limit();

    let sprout = sprout_path(&opts);
    if !sprout.exists() {
        eprintln!(
            "race: sprout binary {} is missing: build it first with `cargo build --release` \
             (or point --sprout / SPROUT_BIN at it)",
            sprout.display()
        );
        std::process::exit(2);
    }
    let built = std::fs::metadata(&sprout).and_then(|m| m.modified()).ok();
    let src = newest_mtime(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    if let (Some(built), Some(src)) = (built, src)
        && src > built
    {
        eprintln!("race: warning: {} is older than src/: rebuild with `cargo build --release`", sprout.display());
    }
    if !beanstalkd.exists() {
        eprintln!("race: beanstalkd not found at {} (apt-get install beanstalkd)", beanstalkd.display());
        std::process::exit(2);
    }
    let tmp_base = opts.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
    if is_tmpfs(&tmp_base) {
        eprintln!("race: {} is tmpfs; pass --tmp-dir on a real disk", tmp_base.display());
        std::process::exit(2);
    }
    let work = tempfile::Builder::new()
        .prefix("sprout-race-")
        .tempdir_in(&tmp_base)
        .unwrap_or_else(|e| panic!("temp dir in {}: {e}", tmp_base.display()));
    server::set_scratch(work.path());

    // Fixtures are beanstalkd's, whatever --only says.
    let reference = Binary { kind: Kind::Beanstalkd, path: beanstalkd.clone() };
    let this = std::env::current_exe().expect("the race's own executable (the do-nothing server)");
    let mut binaries = vec![
        reference.clone(),
        Binary { kind: Kind::Sprout, path: sprout.clone() },
        Binary { kind: Kind::DoNothing, path: this },
    ];
    if let Some(path) = &opts.baseline {
        binaries.push(Binary { kind: Kind::Baseline, path: path.clone() });
    }
    if !opts.only.is_empty() {
        binaries.retain(|b| opts.only.iter().any(|o| o == b.kind.name()));
        if binaries.len() != opts.only.len() {
            eprintln!("race: --only takes sprout, beanstalkd, do-nothing and baseline, comma-separated");
            std::process::exit(2);
        }
    }

    let known: Vec<&str> = ALL_SCENARIOS.split(',').chain(OPT_IN_SCENARIOS.split(',')).collect();
    for s in &opts.scenarios {
        if !known.contains(&s.as_str()) {
            eprintln!("race: unknown scenario {s:?}; known: {ALL_SCENARIOS},{OPT_IN_SCENARIOS}");
            std::process::exit(2);
        }
    }
    let variants = scenarios::variants(&opts);
    // The instructions scenario runs fixed loads, so a duration would not
    // describe it.
    let timing = if opts.scenarios.iter().all(|s| s == "instructions") {
        "fixed loads".to_string()
    } else {
        format!("duration {} s + warm-up {} s", opts.duration, opts.warmup)
    };
    let header = format!(
        "machine: {}\nsprout: {}\nbeanstalkd: {}\nrounds: {}, {timing}, client threads {}, body {} B\ncommand: {}\n",
        machine(),
        sprout.display(),
        beanstalkd.display(),
        opts.rounds,
        opts.threads,
        opts.body,
        std::env::args().collect::<Vec<_>>().join(" "),
    );
    eprint!("{header}");

    let extra: Vec<String> = opts.server_flags.split_whitespace().map(String::from).collect();
    let mut table = String::new();
    let mut results: BTreeMap<(String, String, String), [f64; 3]> = BTreeMap::new();
    let columns = columns(&binaries);
    let mut failed = None;
    // Within a scenario, rounds are the outer loop: round 1 of every variant
    // (each beanstalkd then sprout), then round 2, ... so a burst of noise
    // from elsewhere on the machine hits all variants alike.
    let mut groups: Vec<Vec<&Variant>> = Vec::new();
    for variant in &variants {
        match groups.last_mut() {
            Some(group) if group[0].scenario == variant.scenario => group.push(variant),
            _ => groups.push(vec![variant]),
        }
    }
    'groups: for group in &groups {
        let mut rows: Vec<Vec<Row>> = group.iter().map(|_| Vec::new()).collect();
        let mut fixture_rows: Vec<Vec<Row>> = group.iter().map(|_| Vec::new()).collect();
        for round in 0..opts.rounds {
            for (v, variant) in group.iter().enumerate() {
                let fixture = match make_fixture(variant, &reference, round, &opts, &extra, work.path()) {
                    Ok(Some((dir, metrics))) => {
                        add_metrics(&mut fixture_rows[v], Kind::Beanstalkd, metrics);
                        Some(dir)
                    }
                    Ok(None) => None,
                    Err(e) => {
                        let what =
                            format!("{} {} round {}, making the fixture", variant.scenario, variant.label, round + 1);
                        eprintln!("race: {what}: {e}");
                        failed = Some(format!("{what}: {e}"));
                        break 'groups;
                    }
                };
                // Each round starts with the next server: a run leaves the
                // machine's memory in a state (pages just freed, pages never
                // used) that the run after it pays for, so no server may
                // always follow the same one.
                let servers: Vec<&Binary> =
                    binaries.iter().filter(|b| b.kind != Kind::DoNothing || variant.do_nothing_answers()).collect();
                let first = round % servers.len().max(1);
                for &binary in servers[first..].iter().chain(&servers[..first]) {
                    let fixture = fixture.as_ref().map(|f| f.0.as_path());
                    match run_one(variant, binary, round, &opts, &extra, work.path(), fixture) {
                        Ok(metrics) => add_metrics(&mut rows[v], binary.kind, metrics),
                        Err(e) => {
                            let what = format!(
                                "{} {} round {} on {}",
                                variant.scenario,
                                variant.label,
                                round + 1,
                                binary.kind.name()
                            );
                            eprintln!("race: {what}: {e}");
                            failed = Some(format!("{what}: {e}"));
                            break 'groups;
                        }
                    }
                }
            }
        }
        for (variant, (fixture_rows, rows)) in group.iter().zip(fixture_rows.iter().zip(&rows)) {
            for row in fixture_rows.iter().chain(rows) {
                let line = table_row(variant.scenario, &variant.label, row, &columns);
                println!("{line}");
                let _ = writeln!(table, "{line}");
                let metric = row.metric.as_ref().unwrap();
                results.insert(
                    (variant.scenario.to_string(), variant.label.clone(), metric.name.clone()),
                    [0, 1, 2].map(|i| median(&row.values[i])),
                );
            }
        }
    }

    let targets = scenarios::targets(&results);
    let mut report = format!("{header}\n{}\n{table}", table_head(&columns));
    if !targets.is_empty() {
        let _ = write!(report, "\nTargets (medians from this run):\n{targets}");
    }
    println!("\n{report}");
    if let Some(path) = &opts.out {
        std::fs::write(path, &report).unwrap_or_else(|e| eprintln!("race: write {}: {e}", path.display()));
    }
    drop(work);
    if let Some(e) = failed {
        eprintln!("race: FAILED: {e}");
        std::process::exit(1);
    }
}
