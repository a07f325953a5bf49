//! The engine driven by arbitrary steps, and held to the model (model.rs).
//!
//! The input is read a byte at a time into steps, as the server would
//! drive the engine: a command from one of [`CONNS`] connections (a put's
//! line announced first), a put whose body never ends in CRLF, a client
//! that hangs up or reconnects, or the clock moving on, with a tick at
//! each deadline it passes and one at the end (the server ticks every
//! turn). Every call gets a time of its own, a nanosecond after the one
//! before if the clock did not move, as the server's clock gives it.
//!
//! After each step the engine's invariants are checked, its replies must be
//! the model's (per connection, in order; of stats documents only the keys
//! the model knows), and its next deadline must be the model's.
//!
//! The encoding: a step's first byte picks the connection (its low two
//! bits) and the kind of step (the rest); the kind reads zero to three more
//! bytes (0 when the input ran out). Values come from small tables that
//! hold the edges (priority 1023 against 1024, a TTR of 1 second, a delay
//! of 0), job ids are recent ones or ones the connection holds, and tubes
//! are five names, so that a connection watches at most 5 tubes and waits
//! in each of them (the engine treats more than 8 as a different case).

use std::fmt::Write as _;

use sprout::engine::{ConnId, Engine, EngineConfig, JobId, Nanos, SECOND};
use sprout::host::HostInfo;
use sprout::protocol::command::NewJob;
use sprout::protocol::{Command, Reply, TubeName};

use super::model::{Expect, Model};

/// Connections, always connected (a reconnect is one step).
pub const CONNS: usize = 4;

const TUBES: [&str; 5] = ["default", "a", "b", "c", "d"];
const PRIS: [u32; 8] = [0, 1, 2, 1023, 1024, 10, u32::MAX, 1];
const DELAYS: [u32; 8] = [0, 0, 0, 0, 1, 2, 3, 1];
const TTRS: [u32; 4] = [1, 2, 5, 0];
const TIMEOUTS: [Option<u32>; 4] = [None, Some(0), Some(1), Some(2)];
const KICKS: [u32; 4] = [1, 2, 0, u32::MAX];
const PAUSES: [u32; 4] = [0, 1, 2, 5];

/// One thing that happens to the engine.
#[derive(Clone, Debug)]
pub enum Step {
    Command(ConnId, Command),
    /// A put's line, whose body then does not end in CRLF.
    AbandonedPut(ConnId),
    HangUp(ConnId),
    Reconnect(ConnId),
    /// The clock moves on by this much.
    Advance(Nanos),
    /// The clock moves to the next deadline, plus this (which wraps below it).
    ToDeadline(i64),
}

/// The engine and the model side by side.
struct Pair {
    engine: Engine,
    model: Model,
    /// The clock's reading.
    now: Nanos,
    /// The time of the latest call, which the next one must pass.
    last: Nanos,
    steps: Vec<Step>,
}

/// Runs the steps `data` decodes into; panics on the first difference.
pub fn run(data: &[u8]) {
    drive(data);
}

/// Runs `data` as [`run`] does, and tells the steps it took and the state
/// the model ended in (to read what an input does).
pub fn trace(data: &[u8]) -> String {
    let pair = drive(data);
    format!("{}the model now:\n{}", pair.log(), pair.model.dump())
}

fn drive(data: &[u8]) -> Pair {
    let mut pair = Pair::new();
    // Half the inputs run with metrics on (two tubes with figures of their
    // own, the rest counted together): they must change no reply, keep the
    // meter's invariants, and add up to the stats' figures.
    if data.first().is_some_and(|b| b & 0x80 != 0) {
        pair.engine.enable_metrics(2);
    }
    let mut input = data.iter().copied();
    while let Some(first) = input.next() {
        let mut byte = || input.next().unwrap_or(0);
        let Some(step) = decode(first, &mut byte, &pair.model) else { continue };
        pair.steps.push(step.clone());
        pair.step(step);
    }
    pair
}

/// The step a first byte and what follows it stand for (`None` when it
/// names a command from a connection that waits in a reserve, and every
/// connection does).
fn decode(first: u8, byte: &mut impl FnMut() -> u8, model: &Model) -> Option<Step> {
    let conn = usize::from(first) % CONNS;
    let kind = first / CONNS as u8;
    let tube = |b: u8| TubeName::new(TUBES[usize::from(b) % TUBES.len()].as_bytes()).unwrap();
    // Ids: the jobs the connection holds (high bit set), or the next id
    // (not given out yet), or one of the last 14 given out, or 0 (never).
    let id = |b: u8, conn: ConnId| {
        let (held, next) = (model.held(conn), model.next_id());
        match JobId::from(b & 0x0f) {
            _ if b & 0x80 != 0 && !held.is_empty() => held[usize::from(b & 0x7f) % held.len()],
            0 => next,
            15 => 0,
            k => (next - 1).saturating_sub(k - 1),
        }
    };
    let command = match kind {
        0..=9 => {
            let (a, b) = (byte(), byte());
            let job = NewJob {
                pri: PRIS[usize::from(a & 7)],
                delay: DELAYS[usize::from(a >> 3 & 7)],
                ttr: TTRS[usize::from(a >> 6)],
                body: vec![b'a' + b % 26; usize::from(b >> 5)].into(),
            };
            Command::Put(job)
        }
        10..=11 => Command::Reserve,
        12..=14 => Command::ReserveWithTimeout(TIMEOUTS[usize::from(byte() & 3)]),
        15 => Command::ReserveJob(id(byte(), conn)),
        16..=18 => Command::Delete(id(byte(), conn)),
        19..=21 => {
            let (b, p) = (byte(), byte());
            Command::Release { id: id(b, conn), pri: PRIS[usize::from(p & 7)], delay: DELAYS[usize::from(p >> 3 & 7)] }
        }
        22..=23 => {
            let (b, p) = (byte(), byte());
            Command::Bury { id: id(b, conn), pri: PRIS[usize::from(p & 7)] }
        }
        24 => Command::Touch(id(byte(), conn)),
        25..=26 => Command::Use(tube(byte())),
        27..=28 => Command::Watch(tube(byte())),
        29..=30 => Command::Ignore(tube(byte())),
        31 => Command::Kick(KICKS[usize::from(byte() & 3)]),
        32 => Command::KickJob(id(byte(), conn)),
        33 => Command::Peek(id(byte(), conn)),
        34 => [Command::PeekReady, Command::PeekDelayed, Command::PeekBuried][usize::from(byte() % 3)].clone(),
        35 => {
            let b = byte();
            Command::PauseTube { tube: tube(b), delay: PAUSES[usize::from(b >> 4 & 3)] }
        }
        36 => Command::StatsJob(id(byte(), conn)),
        37 => Command::StatsTube(tube(byte())),
        38 => Command::Stats,
        39 => [Command::ListTubes, Command::ListTubeUsed, Command::ListTubesWatched][usize::from(byte() % 3)].clone(),
        40 => return Some(Step::Reconnect(conn)),
        41 => return Some(Step::HangUp(conn)),
        42 => return Some(Step::AbandonedPut(conn)).filter(|_| !model.is_waiting(conn)),
        43..=49 => {
            let b = byte();
            let by = [0, 1, 1_000_000, SECOND - 1, SECOND, SECOND + 1, 2 * SECOND, 500_000_000][usize::from(b & 7)];
            return Some(Step::Advance(by));
        }
        50..=55 => return Some(Step::ToDeadline([0, 0, -1, 1][usize::from(byte() & 3)])),
        _ => Command::Reserve,
    };
    // A connection waiting in a reserve sends nothing: the next one that
    // does not wait sends the command.
    let conn = (conn..conn + CONNS).map(|c| c % CONNS).find(|&c| !model.is_waiting(c))?;
    Some(Step::Command(conn, command))
}

impl Pair {
    fn new() -> Pair {
        let config = EngineConfig { max_job_size: 65535, binlog_max_size: 10_485_760, host: HostInfo::fake() };
        let mut pair =
            Pair { engine: Engine::new(config, 0), model: Model::default(), now: SECOND, last: 0, steps: vec![] };
        for conn in 0..CONNS {
            pair.engine.connect(conn);
            pair.model.connect(conn);
        }
        pair
    }

    /// The time for the next call: the clock's reading, or a nanosecond
    /// after the previous call's (server/clock.rs).
    fn stamp(&mut self, read: Nanos) -> Nanos {
        self.last = read.max(self.last + 1);
        self.last
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Command(c, command) => {
                if matches!(command, Command::Put(_)) {
                    self.engine.begin_put(c);
                    self.model.begin_put(c);
                }
                let t = self.stamp(self.now);
                self.model.apply(t, c, &command);
                self.engine.apply(t, c, command);
            }
            Step::AbandonedPut(c) => {
                self.engine.begin_put(c);
                self.model.begin_put(c);
                self.engine.abandon_put(c);
                self.model.abandon_put(c);
            }
            Step::HangUp(c) => {
                self.engine.hang_up(c);
                self.model.hang_up(c);
            }
            Step::Reconnect(c) => {
                let t = self.stamp(self.now);
                self.engine.disconnect(t, c);
                self.model.disconnect(t, c);
                self.compare();
                self.engine.connect(c);
                self.model.connect(c);
            }
            Step::Advance(by) => self.advance(self.now + by),
            Step::ToDeadline(off) => {
                if let Some(at) = self.engine.next_deadline() {
                    self.advance(at.saturating_add_signed(off).max(self.now));
                }
            }
        }
        self.compare();
    }

    /// The clock moves to `to`: the engine ticks at each deadline on the
    /// way, as the server's timer wakes it, and once at `to`.
    fn advance(&mut self, to: Nanos) {
        while let Some(at) = self.engine.next_deadline().filter(|&at| at <= to) {
            self.now = self.now.max(at);
            self.tick();
        }
        self.now = to;
        self.tick();
    }

    fn tick(&mut self) {
        let t = self.stamp(self.now);
        self.engine.tick(t);
        self.model.tick(t);
        self.compare();
    }

    /// With metrics on, a scrape's tubes (their own and the others
    /// together) add up to what `stats` counts.
    fn compare_figures(&mut self) {
        let f = self.engine.figures(self.last);
        let tubes = f.tubes.iter().map(|t| &t.stats).chain([&f.other.stats]);
        let sums = tubes.fold([0u64; 5], |mut s, t| {
            for (sum, n) in s.iter_mut().zip([t.ready, t.reserved, t.delayed, t.buried, t.urgent]) {
                *sum += n;
            }
            s
        });
        let server = [f.server.ready, f.server.reserved, f.server.delayed, f.server.buried, f.server.urgent];
        if sums != server {
            self.fail(&format!("the tubes' figures add up to {sums:?} (ready, reserved, delayed, buried, urgent), stats says {server:?}"));
        }
        if f.tubes.len() as u64 + f.other_tubes != f.server.tubes as u64 {
            self.fail(&format!(
                "{} tubes with figures and {} others, {} tubes",
                f.tubes.len(),
                f.other_tubes,
                f.server.tubes
            ));
        }
    }

    /// The engine's invariants hold, and it said and scheduled what the
    /// model did.
    fn compare(&mut self) {
        self.engine.check_invariants();
        if self.engine.metrics_enabled() {
            self.compare_figures();
        }
        let actual: Vec<(ConnId, Reply)> = self.engine.take_replies().collect();
        let expected = self.model.take_replies();
        for conn in 0..CONNS {
            let a: Vec<&Reply> = actual.iter().filter(|(c, _)| *c == conn).map(|(_, r)| r).collect();
            let e: Vec<&Expect> = expected.iter().filter(|(c, _)| *c == conn).map(|(_, r)| r).collect();
            if a.len() != e.len() || !a.iter().zip(&e).all(|(a, e)| matches(a, e)) {
                let a: Vec<String> = a.iter().map(|r| String::from_utf8_lossy(&r.to_bytes()).into_owned()).collect();
                self.fail(&format!("connection {conn} got {a:?}\nthe model expected {e:?}"));
            }
        }
        let (actual, expected) = (self.engine.next_deadline(), self.model.next_deadline());
        if actual != expected {
            self.fail(&format!("next deadline {actual:?}, the model's {expected:?}"));
        }
    }

    fn log(&self) -> String {
        let mut log = String::new();
        for (i, step) in self.steps.iter().enumerate() {
            let _ = writeln!(log, "{i:4}: {step:?}");
        }
        log
    }

    fn fail(&self, what: &str) -> ! {
        let (log, model) = (self.log(), self.model.dump());
        panic!("engine and model differ after these steps (time {}):\n{log}the model now:\n{model}{what}", self.last);
    }
}

/// Whether a reply is what the model expected.
fn matches(actual: &Reply, expected: &Expect) -> bool {
    match (expected, actual) {
        (Expect::Exactly(e), a) => a == e,
        (Expect::Yaml(keys), Reply::Ok(yaml)) => {
            let yaml = String::from_utf8_lossy(yaml);
            let value = |key: &str| {
                let prefix = format!("{key}: ");
                yaml.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.trim_matches('"').to_string())
            };
            keys.iter().all(|(k, v)| value(k).as_ref() == Some(v))
        }
        (Expect::List(names), Reply::Ok(yaml)) => {
            let yaml = String::from_utf8_lossy(yaml);
            let listed: Vec<&str> = yaml.lines().skip(1).map(|l| l.trim_start_matches("- ")).collect();
            yaml.starts_with("---\n") && listed == *names
        }
        _ => false,
    }
}
