//! The generator: from a seed, a random conversation of 2 to 4 clients at a
//! time with a server started with a small `-z`.
//!
//! Every command of the protocol is written, valid or mangled: numbers
//! missing, negative, past 2^32 and 2^64, with leading zeros and extra
//! spaces; tube names of 200 and 201 characters, with bad characters or a
//! leading `-`; ids that exist, existed, or never will; bodies up to `-z`
//! and past it, and bodies that do not end in CRLF; unknown commands and
//! lines at and past the 224-byte limit; commands pipelined in one write,
//! lines and bodies sent in two parts with other clients' commands in
//! between; reserves that wait until another client's command hands them a
//! job, with commands queued behind them; connections watching more than 8
//! tubes; quits, closes and half-closes; drain mode (SIGUSR1); sometimes a
//! binlog (`-b`).
//!
//! What a line does is read with beanstalkd's own rules ([`grammar`]) and
//! played on the [`Model`], which keeps the script free of timing: no delay,
//! pause or TTR that could run out while the script runs (so 0 or at least
//! 1000 s; a job with a shorter TTR is never reserved), and a reserve waits
//! only when the script means it to.
//!
//! The known differences that are being fixed or documented are left out
//! unless [`Allow`] lets them in; see the module doc of `random`.

use std::collections::HashMap;

use super::grammar::{self, LINE_MAX, Line};
use super::model::{ConnId, JobKey, Model, State};
use super::ops::{self, Kind, Op, Part};
use crate::support::Rng;

/// Classes of script that once showed a difference (`SPROUT_DIFF_ALLOW`,
/// see the module doc of `random`). `waiters`, `close-order`, `unpause` and
/// `broad` were fixed and are written by default ([`Allow::MATCHED`]); four
/// are departures protocol.md documents and tests: those are left out
/// unless asked. (The notes on each class say what differed.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Allow {
    /// Fixed (was open): several connections waiting in `reserve` at a time. sprout
    /// serves a tube's waiters in beanstalkd's order (its `ms.c` cursor),
    /// but a reserve that gets a job at once does not move the cursor as
    /// beanstalkd's does (it joins the tube's list and is taken from it).
    /// Even allowed, a connection watching more than 8 tubes never waits
    /// beside another (departure 10).
    pub(crate) waiters: bool,
    /// Departure 4: commands after one that woke a waiting connection, in
    /// the same write.
    pub(crate) ahead: bool,
    /// Departure 11: an id command (`peek`, `stats-job`, ...) naming a job
    /// whose body is still arriving.
    pub(crate) arriving: bool,
    /// Departure 12: commands after `quit` in the same write.
    pub(crate) after_quit: bool,
    /// Fixed (was open): a connection holding two jobs or more closes while another
    /// waits. beanstalkd gives them back in the order they were reserved,
    /// each to a waiting connection at once; sprout in TTR deadline order.
    pub(crate) close_order: bool,
    /// Fixed (was open): a `pause-tube` of 0 s followed by more commands in the same
    /// write. The pause lasts an instant: beanstalkd ends it before the
    /// next command (its loop ticks between a connection's commands, each
    /// reply needing a turn to be written); sprout at its next tick, after
    /// the whole write, so a `reserve-with-timeout 0` there times out.
    pub(crate) unpause: bool,
    /// Departure 4: a connection waiting in a reserve, with commands queued
    /// behind it, closes (the script then half-closes it instead). Both
    /// servers answer `TIMED_OUT` to the end of its input and go on with
    /// the queued commands; beanstalkd runs one (writing its reply fails,
    /// the peer having reset), sprout runs them all.
    pub(crate) close_queued: bool,
    /// Fixed (was open): a connection watching more than 8 tubes waits in a
    /// reserve, alone. When it gets a job of tube T, beanstalkd's take moves
    /// T's cursor (every waiter sits in the list of every tube it watches);
    /// sprout keeps such a waiter outside the tubes' lists (departure 10)
    /// and moved no cursor, so when two narrow waiters then waited on T, the
    /// next job went to the other one. Never beside other waiters
    /// (departure 10).
    pub(crate) broad: bool,
}

impl Allow {
    /// The classes where sprout now matches beanstalkd: written unless
    /// `SPROUT_DIFF_ALLOW` says otherwise.
    pub(crate) const MATCHED: &'static str = "waiters,close-order,unpause,broad";

    pub(crate) const NAMES: [&'static str; 8] =
        ["waiters", "ahead", "arriving", "after-quit", "close-order", "unpause", "close-queued", "broad"];

    /// `waiters,ahead,...` (or `all`, or empty for none).
    pub(crate) fn parse(spec: &str) -> Result<Allow, String> {
        let mut allow = Allow::default();
        for word in spec.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "all" => {
                    allow = Allow {
                        waiters: true,
                        ahead: true,
                        arriving: true,
                        after_quit: true,
                        close_order: true,
                        unpause: true,
                        close_queued: true,
                        broad: true,
                    };
                }
                "waiters" => allow.waiters = true,
                "ahead" => allow.ahead = true,
                "arriving" => allow.arriving = true,
                "after-quit" => allow.after_quit = true,
                "close-order" => allow.close_order = true,
                "unpause" => allow.unpause = true,
                "close-queued" => allow.close_queued = true,
                "broad" => allow.broad = true,
                _ => return Err(format!("unknown class {word:?} (known: all, {})", Allow::NAMES.join(", "))),
            }
        }
        Ok(allow)
    }

    pub(crate) fn describe(&self) -> String {
        let on = [
            self.waiters,
            self.ahead,
            self.arriving,
            self.after_quit,
            self.close_order,
            self.unpause,
            self.close_queued,
            self.broad,
        ];
        let names: Vec<&str> = Allow::NAMES.iter().zip(on).filter(|(_, on)| *on).map(|(n, _)| *n).collect();
        if names.is_empty() { "none".into() } else { names.join(",") }
    }
}

/// A generated script.
pub(crate) struct Generated {
    pub(crate) seed: u64,
    /// `-z`, or `None` for the default (65535).
    pub(crate) max_job_size: Option<u32>,
    /// With a binlog (`-b`): every change is logged before its reply.
    pub(crate) binlog: bool,
    pub(crate) ops: Vec<Op>,
}

impl Generated {
    /// The script, in the script language, of the operations `played`.
    pub(crate) fn script(&self, played: &[bool], title: &str) -> String {
        let mut out = format!("# {title}\n");
        let mut flags = Vec::new();
        if let Some(z) = self.max_job_size {
            flags.push(format!("-z {z}"));
        }
        if self.binlog {
            // Small files, quick to preallocate; the two logs' layouts and
            // counters differ by design (see normalise.rs).
            flags.push("-b $TMP -s 1000000".into());
        }
        if !flags.is_empty() {
            out.push_str(&format!("server {}\n", flags.join(" ")));
        }
        if self.binlog {
            out.push_str("option mask-binlog\n");
        }
        for line in ops::render(&self.ops, played) {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// How many commands the operations `played` send.
    pub(crate) fn commands(&self, played: &[bool]) -> usize {
        self.ops.iter().zip(played).filter(|(_, p)| **p).map(|(op, _)| op.commands).sum()
    }
}

/// The script for `seed`.
pub(crate) fn generate(seed: u64, allow: Allow) -> Generated {
    let mut rng = Rng(splitmix(seed));
    let z_choices: [Option<u32>; 8] = [Some(0), Some(1), Some(5), Some(10), Some(10), Some(20), Some(100), None];
    let max_job_size = z_choices[rng.index(z_choices.len())];
    let binlog = rng.below(100) < 12;
    let max_open = 2 + rng.index(3);
    let length = 15 + rng.index(50);
    let mut g = Gen {
        rng,
        allow,
        model: Model::new(),
        z: max_job_size.unwrap_or(65535),
        ops: Vec::new(),
        wait_op: HashMap::new(),
        pending: HashMap::new(),
        max_open,
        name_limit: None,
    };
    while g.ops.len() < length {
        g.step();
    }
    Generated { seed, max_job_size, binlog, ops: g.ops }
}

/// Spreads a small seed over the generator's 64 bits (and never 0).
fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

/// The second half of something a connection sent in two parts.
struct Pending {
    /// The operation that sent the first half.
    op: usize,
    what: Half,
}

enum Half {
    /// A command line: the whole line, and how many of its bytes were sent.
    Line { line: Vec<Part>, sent: usize },
    /// A put's body: the rest of it with its ending, and what it does.
    Body { rest: Vec<u8>, job: JobKey, delay: u32, ok: bool },
}

/// One command, ready to send, already played on the model.
struct Cmd {
    /// Its bytes: the line, CRLF, and a put's body.
    data: Vec<Part>,
    replies: usize,
    /// The jobs whose `INSERTED` it returns.
    names: Vec<JobKey>,
    /// Handed a job to a waiting connection.
    woke: bool,
    quits: bool,
    /// Waits for a job (a reserve sent on its own).
    waits: bool,
    /// A pause of 0 s, which ends at once.
    unpauses: bool,
}

/// Where a command goes: alone, in a batch with others, or as the end of a
/// line sent in two parts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Alone,
    Batch,
    Finish,
}

struct Gen {
    rng: Rng,
    allow: Allow,
    model: Model,
    z: u32,
    ops: Vec<Op>,
    /// The operation that sent each waiting connection's reserve.
    wait_op: HashMap<ConnId, usize>,
    pending: HashMap<ConnId, Pending>,
    max_open: usize,
    /// While a batch is written: the `$N` named before it.
    name_limit: Option<usize>,
}

const PRIORITIES: [&str; 9] = ["0", "1", "512", "1023", "1024", "65535", "2147483648", "4294967294", "4294967295"];
const DELAYS: [&str; 5] = ["1000", "1001", "3600", "86400", "4294967295"];
const TTRS: [&str; 5] = ["1000", "1001", "3600", "86400", "4294967295"];
const SHORT_TTRS: [&str; 4] = ["0", "1", "2", "999"];
/// Commands that change nothing, to queue behind a reserve that waits.
const QUEUED: [&str; 7] =
    ["stats-tube default", "stats-tube t1", "list-tubes", "stats", "peek-ready", "list-tubes-watched", "stats-job 0"];
/// Numbers beanstalkd refuses where it reads an unsigned 32-bit one (some
/// are fine for `kick` and `reserve-with-timeout`, which read numbers as C
/// does).
const BAD_NUMBERS: [&str; 14] = [
    "-1",
    "+1",
    "4294967296",
    "18446744073709551616",
    "99999999999999999999999",
    "1x",
    "x",
    "",
    "0x10",
    "1.5",
    "1e3",
    "\t1",
    "-0",
    "١",
];
/// Ids that no job has.
const NO_SUCH_IDS: [&str; 5] = ["0", "999999", "4294967296", "18446744073709551615", "0000000000000000000000000"];
const BAD_IDS: [&str; 8] = ["-1", "18446744073709551616", "x", "", "1x", "+1", "0x1", "1 2"];
const TIMEOUTS: [&str; 19] = [
    "0",
    "00",
    " 0",
    "abc",
    "",
    "-0",
    "+0",
    "0x",
    "4294967296",
    "\t0",
    "1000",
    "-1",
    "4294967295",
    "2147483648",
    "99999999999999999999",
    "-9223372036854775808",
    "1",
    "5",
    " 1000 x",
];
const KICK_BOUNDS: [&str; 19] = [
    "0",
    "1",
    "2",
    "3",
    "10",
    "-1",
    "4294967296",
    "4294967297",
    "5x",
    "  2",
    "\t1",
    "+2",
    "18446744073709551615",
    "18446744073709551616",
    "-18446744073709551615",
    "x",
    "",
    "-",
    "0x3",
];
const JUNK: [&str; 44] = [
    "foo",
    "PUT 0 0 1000 1",
    "Stats",
    "peek",
    "peekx 1",
    "peek-readyx",
    "peek-ready ",
    "peek-delayed x",
    "peek-buried\t",
    "reserve-jobs 1",
    "reservex",
    "reserve ",
    "reserve-with-timeout",
    "delete",
    "deletex 1",
    "kick",
    "kickx",
    "kick-jobx 1",
    "touch",
    "bury",
    "release",
    "stats ",
    "statsx",
    "stats-jobx 1",
    "stats-tube",
    "use",
    "watch",
    "ignore",
    "list-tubesx",
    "list-tube-usedx",
    "list-tubes-watched ",
    "pause-tube",
    "pause-tubex",
    " stats",
    "",
    "\tstats",
    "stats\0",
    "use default\0",
    "list-tubes\x7f",
    "\u{ff}\u{fe}",
    "re",
    "s",
    "-",
    "\x1b[A",
];

impl Gen {
    fn chance(&mut self, percent: u64) -> bool {
        self.rng.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.rng.index(items.len())]
    }

    fn open_conns(&self) -> Vec<ConnId> {
        (0..self.model.conns.len()).filter(|&c| self.model.conns[c].open).collect()
    }

    fn push(&mut self, op: Op) -> usize {
        self.ops.push(op);
        self.ops.len() - 1
    }

    /// One operation (or a few: a command and the reads of the connections
    /// it woke).
    fn step(&mut self) {
        let open = self.open_conns();
        if open.is_empty() || (open.len() < self.max_open && self.chance(8)) {
            let name = format!("c{}", self.model.conns.len() + 1);
            let c = self.model.connect(name);
            self.alone(c);
            return;
        }
        let mut c = open[self.rng.index(open.len())];
        // Connections holding jobs more often, to release, bury, touch them.
        let holders: Vec<ConnId> = open
            .iter()
            .copied()
            .filter(|&h| !self.model.conns[h].waiting && self.model.jobs.iter().any(|j| j.state == State::Reserved(h)))
            .collect();
        if !holders.is_empty() && self.chance(35) {
            c = holders[self.rng.index(holders.len())];
        }
        if self.model.conns[c].waiting {
            // A close costs the script a pause (see `play.rs`): few of them.
            if self.chance(5) {
                self.close(c);
            }
            return;
        }
        if self.pending.contains_key(&c) {
            if self.chance(94) {
                self.finish(c);
            } else {
                self.close(c);
            }
            return;
        }
        match self.rng.below(1000) {
            // SIGUSR1: drain mode, puts refused from then on.
            0..=2 if !self.model.draining => {
                self.model.draining = true;
                self.push(Op {
                    conn: String::new(),
                    kind: Kind::Drain,
                    names: Vec::new(),
                    needs: Vec::new(),
                    commands: 0,
                });
            }
            0..=99 => self.batch(c),
            100..=149 => self.start_half(c),
            150..=159 => self.close(c),
            160..=174 => self.quit(c),
            _ => self.alone(c),
        }
    }

    /// One command on its own: `c: ...`, or `c> ...` for a reserve that waits.
    fn alone(&mut self, c: ConnId) {
        for _ in 0..20 {
            let line = self.line(c);
            if let Some(cmd) = self.commit(c, &line, Context::Alone) {
                let (mut data, mut replies, mut commands) = (cmd.data, cmd.replies, 1);
                if cmd.quits {
                    // `c: quit` reads the close.
                    replies = 1;
                }
                if cmd.waits {
                    data.insert(0, self.fence());
                    (replies, commands) = (1, 2);
                    // Commands queued behind the reserve, run once it has
                    // its job: ones that change nothing.
                    if self.chance(30) {
                        let queued = 1 + self.rng.index(2);
                        for _ in 0..queued {
                            let line = self.pick(&QUEUED);
                            data.push(Part::Bytes(format!("{line}\r\n").into_bytes()));
                        }
                        self.model.conns[c].queued = queued;
                        commands += queued;
                    }
                }
                let op = self.push(Op {
                    conn: self.name(c),
                    kind: Kind::Send { data, replies },
                    names: cmd.names,
                    needs: Vec::new(),
                    commands,
                });
                if cmd.waits {
                    self.wait_op.insert(c, op);
                }
                self.read_woken();
                return;
            }
        }
    }

    /// Two to five commands in one write, their replies read together.
    fn batch(&mut self, c: ConnId) {
        if self.chance(8) {
            return self.watch_many(c);
        }
        let want = 2 + self.rng.index(4);
        let (mut data, mut replies, mut names, mut commands, mut quits) = (Vec::new(), 0, Vec::new(), 0, false);
        let mut tries = 0;
        self.name_limit = Some(self.model.named);
        while commands < want && tries < 30 {
            tries += 1;
            let line = self.line(c);
            let Some(cmd) = self.commit(c, &line, Context::Batch) else { continue };
            data.extend(cmd.data);
            replies += cmd.replies;
            names.extend(cmd.names);
            commands += 1;
            if cmd.quits {
                quits = true;
                if self.allow.after_quit {
                    // Sent, never run: the server closed before reading them.
                    data.push(Part::Bytes(b"stats\r\nput 0 0 1000 1\r\nx\r\n".to_vec()));
                    commands += 2;
                }
                break;
            }
            if (cmd.woke && !self.allow.ahead) || (cmd.unpauses && !self.allow.unpause) {
                break;
            }
        }
        self.name_limit = None;
        if commands == 0 {
            return;
        }
        let conn = self.name(c);
        self.push(Op { conn: conn.clone(), kind: Kind::Send { data, replies }, names, needs: Vec::new(), commands });
        if quits {
            self.push(Op { conn, kind: Kind::Closed, names: Vec::new(), needs: Vec::new(), commands: 0 });
        }
        self.read_woken();
    }

    /// Watches 6 to 11 of the tubes w0 to w11 in one write, so that the
    /// connection may watch more than 8 tubes.
    fn watch_many(&mut self, c: ConnId) {
        let count = 6 + self.rng.index(6);
        let mut data = Vec::new();
        for _ in 0..count {
            let line = format!("watch w{}", self.rng.below(12));
            let cmd = self.commit(c, &[Part::Bytes(line.into_bytes())], Context::Batch).expect("watch is safe");
            data.extend(cmd.data);
        }
        let op = Op {
            conn: self.name(c),
            kind: Kind::Send { data, replies: count },
            names: Vec::new(),
            needs: Vec::new(),
            commands: count,
        };
        self.push(op);
    }

    /// The first part of a line, or a put line and the first part of its
    /// body; the rest comes in a later operation ([`Gen::finish`]).
    fn start_half(&mut self, c: ConnId) {
        if self.chance(50) {
            // A put whose body arrives in two parts.
            if self.z == 0 {
                return;
            }
            let size = 1 + self.rng.below(u64::from(self.z.min(12))) as u32;
            let pri = self.rng.below(4);
            let ttr = self.pick(&TTRS);
            let delay = if self.chance(80) { "0".to_string() } else { self.pick(&DELAYS).to_string() };
            let line = format!("put {pri} {delay} {ttr} {size}");
            let Line::Put { pri, delay, ttr, size } = grammar::parse(line.as_bytes(), self.z) else {
                unreachable!("{line}")
            };
            let body = self.body(size);
            let ok = self.chance(85);
            let mut rest = body.clone();
            rest.extend_from_slice(if ok { b"\r\n" } else { self.bad_ending() });
            let first = self.rng.index(size as usize);
            let mut sent = format!("{line}\r\n").into_bytes();
            sent.extend_from_slice(&rest[..first]);
            self.model.tick();
            let job = self.model.put_line(c, pri, ttr);
            let fence = self.fence();
            let op = self.push(Op {
                conn: self.name(c),
                kind: Kind::Send { data: vec![fence, Part::Bytes(sent)], replies: 1 },
                names: Vec::new(),
                needs: Vec::new(),
                commands: 1,
            });
            let what = Half::Body { rest: rest[first..].to_vec(), job, delay, ok };
            self.pending.insert(c, Pending { op, what });
        } else {
            // A line in two parts: not a reserve or a quit, whose effect
            // would come at the second part whatever the state then.
            let line = self.line(c);
            let bytes = self.bytes(&line);
            let units = units(&line);
            // Not a CR inside (the line could end elsewhere), nor a length
            // at which the second part, or that part spoilt by a NUL (see
            // `finish`), would be refused.
            let total = bytes.len() + 2;
            let awkward = |n: usize| n > LINE_MAX && n % LINE_MAX == 1;
            if matches!(grammar::parse(&bytes, self.z), Line::Reserve { .. } | Line::Quit)
                || units < 2
                || bytes.contains(&b'\r')
                || awkward(total)
                || awkward(total + 1)
            {
                return;
            }
            let sent = 1 + self.rng.index(units - 1);
            let (first, _) = split(&line, sent);
            let op = self.push(Op {
                conn: self.name(c),
                kind: Kind::Send { data: first, replies: 0 },
                names: Vec::new(),
                needs: Vec::new(),
                commands: 0,
            });
            self.model.conns[c].partial_line = true;
            self.pending.insert(c, Pending { op, what: Half::Line { line, sent } });
        }
    }

    /// The second part of what [`Gen::start_half`] began.
    fn finish(&mut self, c: ConnId) {
        let Pending { op: first, what } = self.pending.remove(&c).unwrap();
        let (data, names, replies) = match what {
            Half::Body { rest, job, delay, ok } => {
                let ok = ok && !self.model.draining;
                if ok {
                    self.model.put_body(job, delay);
                    self.model.name_job(job);
                } else {
                    self.model.put_refused(job);
                }
                (vec![Part::Bytes(rest)], if ok { vec![job] } else { Vec::new() }, 1)
            }
            Half::Line { line, sent } => {
                self.model.conns[c].partial_line = false;
                let (_, rest) = split(&line, sent);
                match self.commit(c, &line, Context::Finish) {
                    Some(cmd) => {
                        // The command's bytes without the part already sent.
                        let (_, tail) = split(&cmd.data, sent);
                        (tail, cmd.names, cmd.replies)
                    }
                    None => {
                        // Not safe now: spoil the line (a NUL makes it BAD_FORMAT).
                        let mut rest = rest;
                        rest.push(Part::Bytes(b"\0\r\n".to_vec()));
                        (rest, Vec::new(), 1)
                    }
                }
            }
        };
        self.push(Op {
            conn: self.name(c),
            kind: Kind::Send { data, replies },
            names,
            needs: vec![first],
            commands: 1,
        });
        self.read_woken();
    }

    /// Closes the connection, or half-closes it (shuts down its sending
    /// side: a waiting reserve answers `TIMED_OUT`, then the server closes).
    fn close(&mut self, c: ConnId) {
        if !self.allow.close_order && self.model.close_order_matters(c) {
            return;
        }
        self.pending.remove(&c);
        let wait = self.wait_op.remove(&c);
        let name = self.name(c);
        // A full close behind queued commands: how many of them run.
        let queued = self.model.conns[c].queued > 0 && !self.allow.close_queued;
        if queued || self.chance(40) {
            let op = self.push(Op {
                conn: name.clone(),
                kind: Kind::Shutdown,
                names: Vec::new(),
                needs: Vec::new(),
                commands: 0,
            });
            if let Some(wait) = wait {
                // TIMED_OUT, and the replies of the commands queued behind.
                let replies = 1 + std::mem::take(&mut self.model.conns[c].queued);
                self.push(Op {
                    conn: name,
                    kind: Kind::Read(replies),
                    names: Vec::new(),
                    needs: vec![wait, op],
                    commands: 0,
                });
            }
        } else {
            self.push(Op { conn: name, kind: Kind::Close, names: Vec::new(), needs: Vec::new(), commands: 0 });
        }
        self.model.close(c);
        self.read_woken();
    }

    fn quit(&mut self, c: ConnId) {
        let line = self.pick(&["quit", "quit", "quitx", "quit now"]);
        let Some(cmd) = self.commit(c, &[Part::Bytes(line.as_bytes().to_vec())], Context::Alone) else { return };
        self.push(Op {
            conn: self.name(c),
            kind: Kind::Send { data: cmd.data, replies: 1 },
            names: Vec::new(),
            needs: Vec::new(),
            commands: 1,
        });
        self.read_woken();
    }

    /// A command that changes nothing, sent in the same write before one
    /// whose reply does not come at once (a reserve that waits, a put line
    /// whose body is still to come): once its reply is read, both servers
    /// have run the other command too (beanstalkd runs a connection's next
    /// command right after writing a reply, before it serves any other
    /// connection; sprout runs every command of a write at once), so the
    /// next step, on another connection, cannot overtake it.
    fn fence(&mut self) -> Part {
        let fence = self.pick(&["list-tube-used", "list-tubes-watched", "peek-ready", "stats-job 0"]);
        Part::Bytes(format!("{fence}\r\n").into_bytes())
    }

    /// Reads the replies the model says a command handed to waiting
    /// connections.
    fn read_woken(&mut self) {
        for c in 0..self.model.conns.len() {
            let unread = self.model.conns[c].unread;
            if unread > 0 {
                self.model.conns[c].unread = 0;
                let needs = self.wait_op.remove(&c).into_iter().collect();
                self.push(Op { conn: self.name(c), kind: Kind::Read(unread), names: Vec::new(), needs, commands: 0 });
            }
        }
    }

    fn name(&self, c: ConnId) -> String {
        self.model.conns[c].name.clone()
    }

    /// The bytes of `parts`, with each job's id.
    fn bytes(&self, parts: &[Part]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            match part {
                Part::Bytes(b) => out.extend_from_slice(b),
                Part::Job(k) => out.extend_from_slice(self.model.jobs[*k].id.to_string().as_bytes()),
            }
        }
        out
    }

    /// Reads `line` as beanstalkd would and, if what it does keeps the
    /// script free of timing and stalls, plays it on the model and returns
    /// the command to send (with a put's body).
    fn commit(&mut self, c: ConnId, line: &[Part], context: Context) -> Option<Cmd> {
        let bytes = self.bytes(line);
        if bytes.contains(&b'\r') && bytes.len() + 2 <= LINE_MAX {
            // A CR not followed by LF hides the line's end until it is
            // longer than 224 bytes: the server would wait for more.
            return None;
        }
        if bytes.len() + 2 > LINE_MAX && (bytes.len() + 2) % LINE_MAX == 1 {
            // A CR as the last byte of beanstalkd's buffer: a documented
            // departure (protocol.md), tested on its own.
            return None;
        }
        let mut model = self.model.clone();
        model.tick();
        let mut data = line.to_vec();
        data.push(Part::Bytes(b"\r\n".to_vec()));
        let mut cmd =
            Cmd { data, replies: 1, names: Vec::new(), woke: false, quits: false, waits: false, unpauses: false };
        let waiting_before: Vec<usize> = model.conns.iter().map(|c| c.unread).collect();
        let find = |model: &Model, id: u64| model.job_by_id(id);
        let short = |n: u32| (1..1000).contains(&n);
        match grammar::parse(&bytes, self.z) {
            Line::Inert => {
                if bytes.starts_with(b"put ") && self.chance(50) {
                    // Its body is read as a command line.
                    cmd.data.push(Part::Bytes(b"xbody\r\n".to_vec()));
                    cmd.replies = 2;
                }
            }
            Line::Put { pri, delay, ttr, size } => {
                if short(delay) {
                    return None;
                }
                let job = model.put_line(c, pri, ttr);
                let mut body = self.body(size);
                let ok = self.chance(88);
                body.extend_from_slice(if ok { b"\r\n" } else { self.bad_ending() });
                if ok && !model.draining {
                    model.put_body(job, delay);
                    model.name_job(job);
                    cmd.names.push(job);
                } else {
                    // EXPECTED_CRLF or DRAINING: the id is spent.
                    model.put_refused(job);
                }
                cmd.data.push(Part::Bytes(body));
            }
            Line::TooBig { size } => {
                if size > self.z.saturating_add(200) {
                    return None;
                }
                let fill = self.body(size.saturating_add(2));
                cmd.data.push(Part::Bytes(fill));
            }
            Line::Reserve { timeout } => {
                let may_wait = match timeout {
                    Some(0) => false,
                    Some(t) if (1..1000).contains(&t) => {
                        // A short timeout only when a job is there to take.
                        model.reservable(c)?;
                        true
                    }
                    _ => true,
                };
                let waiting = model.waiting_count();
                if !model.reserve(c, may_wait) && may_wait {
                    // Several waiters only when allowed, and never a broad
                    // one beside others (departure 10).
                    let broad =
                        model.conns.iter().enumerate().any(|(i, w)| (i == c || w.waiting) && w.watched.len() > 8);
                    let alone_broad = model.conns[c].watched.len() > 8 && !self.allow.broad;
                    if context != Context::Alone || alone_broad || (waiting > 0 && (!self.allow.waiters || broad)) {
                        return None;
                    }
                    cmd.replies = 0;
                    cmd.waits = true;
                }
            }
            Line::ReserveJob(id) => {
                if let Some(job) = find(&model, id) {
                    model.reserve_job(c, job);
                }
            }
            Line::Delete(id) => {
                if let Some(job) = find(&model, id) {
                    model.delete(c, job);
                }
            }
            Line::Release { id, pri, delay } => {
                if short(delay) {
                    return None;
                }
                if let Some(job) = find(&model, id) {
                    model.release(c, job, pri, delay);
                }
            }
            Line::Bury { id, pri } => {
                if let Some(job) = find(&model, id) {
                    model.bury(c, job, pri);
                }
            }
            Line::Kick(bound) => model.kick(c, bound),
            Line::KickJob(id) => {
                if let Some(job) = find(&model, id) {
                    model.kick_job(job);
                }
            }
            Line::Touch(_) => {}
            Line::Look(id) => {
                // Departure 11, unless allowed (an id command can name a job
                // still arriving by a mangled number too).
                if !self.allow.arriving && find(&model, id).is_some_and(|k| model.jobs[k].state == State::Arriving) {
                    return None;
                }
            }
            Line::Use(name) => model.use_tube(c, &name),
            Line::Watch(name) => model.watch(c, &name),
            Line::Ignore(name) => model.ignore(c, &name),
            Line::Pause { tube, seconds } => {
                if short(seconds) {
                    return None;
                }
                cmd.unpauses = seconds == 0;
                model.pause(&tube, seconds);
            }
            Line::Quit => {
                if context == Context::Finish || (!self.allow.close_order && model.close_order_matters(c)) {
                    return None;
                }
                model.close(c);
                cmd.quits = true;
                cmd.replies = 0;
            }
        }
        if !model.is_safe() {
            return None;
        }
        // Other connections' jobs whose replies the command caused.
        cmd.woke =
            model.conns.iter().zip(&waiting_before).enumerate().any(|(i, (m, before))| i != c && m.unread > *before);
        self.model = model;
        Some(cmd)
    }

    /// A command line (no CRLF) for connection `c`, valid or not.
    fn line(&mut self, c: ConnId) -> Vec<Part> {
        let text = |s: String| vec![Part::Bytes(s.into_bytes())];
        let mut line = match self.rng.below(110) {
            0..=21 => {
                let (pri, delay, ttr, size) = (self.pri(), self.delay(), self.ttr(), self.size());
                let sep = if self.chance(5) { "  " } else { " " };
                text(format!("put {pri}{sep}{delay} {ttr} {size}"))
            }
            22..=25 => self.id_command("peek ", c, Purpose::Any),
            26..=30 => {
                let which = self.pick(&["peek-ready", "peek-delayed", "peek-buried"]);
                text(which.to_string())
            }
            31..=42 => {
                if self.chance(40) {
                    text("reserve".into())
                } else {
                    let timeout = self.pick(&TIMEOUTS);
                    text(format!("reserve-with-timeout {timeout}"))
                }
            }
            43..=45 => self.id_command("reserve-job ", c, Purpose::Take),
            46..=51 => self.id_command("delete ", c, Purpose::Own),
            52..=59 => {
                let mut line = self.id_command("release ", c, Purpose::Own);
                let (pri, delay) = (self.pri(), self.delay());
                line.push(Part::Bytes(format!(" {pri} {delay}").into_bytes()));
                line
            }
            60..=65 => {
                let mut line = self.id_command("bury ", c, Purpose::Own);
                let pri = self.pri();
                line.push(Part::Bytes(format!(" {pri}").into_bytes()));
                line
            }
            66..=68 => self.id_command("touch ", c, Purpose::Own),
            69..=72 => {
                let bound = self.pick(&KICK_BOUNDS);
                text(format!("kick {bound}"))
            }
            73..=75 => self.id_command("kick-job ", c, Purpose::Take),
            76..=80 => self.id_command("stats-job ", c, Purpose::Any),
            81..=83 => {
                let name = self.tube();
                text(format!("stats-tube {name}"))
            }
            84..=85 => text("stats".into()),
            86..=88 => {
                let which = self.pick(&["list-tubes", "list-tube-used", "list-tubes-watched"]);
                text(which.to_string())
            }
            89..=93 => {
                let name = self.tube();
                text(format!("use {name}"))
            }
            94..=98 => {
                let name = self.tube();
                text(format!("watch {name}"))
            }
            99..=102 => {
                let name = if self.chance(60) {
                    let watched = &self.model.conns[c].watched;
                    watched[self.rng.index(watched.len())].clone()
                } else {
                    self.tube()
                };
                text(format!("ignore {name}"))
            }
            103..=105 => {
                let name = self.tube();
                let seconds = self.pick(&["0", "1000", "3600", "4294967295", "10", "x", "", "-1", "4294967296"]);
                let gap = self.pick(&[" ", " ", "", "   "]);
                text(format!("pause-tube{gap}{name} {seconds}"))
            }
            106 => self.long_line(),
            _ => text(self.pick(&JUNK).to_string()),
        };
        if self.chance(6) {
            self.mangle(&mut line);
        }
        line
    }

    /// `prefix` and an id: a job the script named (mostly one that suits
    /// `purpose`), one that does not exist, or not an id at all.
    fn id_command(&mut self, prefix: &str, c: ConnId, purpose: Purpose) -> Vec<Part> {
        let mut line = vec![Part::Bytes(prefix.as_bytes().to_vec())];
        let arriving: Vec<u64> = self.model.jobs.iter().filter(|j| j.state == State::Arriving).map(|j| j.id).collect();
        // A batch names only jobs named before it: `$N` is looked up when
        // the batch is sent, before its own INSERTED replies are read.
        let limit = self.name_limit.unwrap_or(self.model.named);
        let named = self.model.named_in(limit, |_| true);
        let suits = self.model.named_in(limit, |j| match purpose {
            Purpose::Any => j.state != State::Gone,
            Purpose::Own => j.state == State::Reserved(c),
            Purpose::Take => matches!(j.state, State::Ready | State::Delayed | State::Buried),
        });
        let roll = self.rng.below(100);
        if self.allow.arriving && !arriving.is_empty() && roll < 15 {
            let id = arriving[self.rng.index(arriving.len())];
            line.push(Part::Bytes(id.to_string().into_bytes()));
        } else if roll < 80 && !named.is_empty() {
            let pool = if !suits.is_empty() && self.chance(90) { suits } else { named };
            let job = pool[self.rng.index(pool.len())];
            if self.chance(8) {
                line.push(Part::Bytes(self.pick(&["00", " ", "  0"]).as_bytes().to_vec()));
            }
            line.push(Part::Job(job));
        } else if roll < 92 {
            let id = self.pick(&NO_SUCH_IDS);
            line.push(Part::Bytes(id.as_bytes().to_vec()));
        } else {
            let id = self.pick(&BAD_IDS);
            line.push(Part::Bytes(id.as_bytes().to_vec()));
        }
        line
    }

    fn pri(&mut self) -> String {
        match self.rng.below(100) {
            0..=49 => self.rng.below(4).to_string(),
            50..=89 => self.pick(&PRIORITIES).to_string(),
            90..=94 => format!("00{}", self.rng.below(3)),
            _ => self.pick(&BAD_NUMBERS).to_string(),
        }
    }

    fn delay(&mut self) -> String {
        match self.rng.below(100) {
            0..=69 => "0".into(),
            70..=93 => self.pick(&DELAYS).into(),
            _ => self.pick(&BAD_NUMBERS).into(),
        }
    }

    fn ttr(&mut self) -> String {
        match self.rng.below(100) {
            0..=84 => self.pick(&TTRS).into(),
            85..=94 => self.pick(&SHORT_TTRS).into(),
            _ => self.pick(&BAD_NUMBERS).into(),
        }
    }

    fn size(&mut self) -> String {
        let z = u64::from(self.z);
        match self.rng.below(100) {
            0..=59 => self.rng.below(z.min(12) + 1).to_string(),
            60..=79 => z.to_string(),
            80..=89 => (z + 1 + self.rng.below(3)).to_string(),
            _ => self.pick(&BAD_NUMBERS).into(),
        }
    }

    /// A body of `size` bytes: any bytes (CR, LF, NUL, high bytes), or for
    /// a long one mostly one byte repeated, so scripts stay readable.
    fn body(&mut self, size: u32) -> Vec<u8> {
        const BYTES: &[u8] = b"abcxyz XYZ019\r\n\0\xff\x80\\${}#*";
        if size > 40 {
            let fill = BYTES[self.rng.index(BYTES.len())];
            let mut body = vec![fill; size as usize];
            for _ in 0..4 {
                let at = self.rng.index(body.len());
                body[at] = BYTES[self.rng.index(BYTES.len())];
            }
            return body;
        }
        (0..size).map(|_| BYTES[self.rng.index(BYTES.len())]).collect()
    }

    /// Two bytes that are not CRLF, to end a body with.
    fn bad_ending(&mut self) -> &'static [u8] {
        let endings: [&'static [u8]; 6] = [b"XY", b"\n\r", b"\r\r", b"\rX", b"X\n", b"\r\0"];
        endings[self.rng.index(endings.len())]
    }

    /// A tube name: one that exists, a new one, one of 200 characters, or
    /// one beanstalkd refuses (201 characters, a bad character, a leading
    /// `-`, empty, a trailing space).
    fn tube(&mut self) -> String {
        let roll = self.rng.below(100);
        if roll < 45 {
            let names = self.model.tube_names();
            return names[self.rng.index(names.len())].clone();
        }
        if roll < 80 {
            let long = "Q".repeat(200);
            let bracketed = format!("({})", "9".repeat(198));
            let names = ["default", "t1", "t2", "t3", "a-b", "x+y/z;w.v$u_(t)", &long, &bracketed, "w"];
            let name = names[self.rng.index(names.len())];
            // w0 to w11: enough for a connection to watch more than 8
            // tubes (sprout keeps such a watch list another way).
            return if name == "w" { format!("w{}", self.rng.below(12)) } else { name.to_string() };
        }
        let long = "Q".repeat(201);
        let names = [&long[..], "-t1", "t 1", "t*1", "", "t1 ", " t1", "t\u{e9}", "t\t1", "t1\0"];
        names[self.rng.index(names.len())].to_string()
    }

    /// A line around the 224-byte limit (CRLF included): a command padded
    /// with spaces, zeros or letters to 200 to 1000 bytes.
    fn long_line(&mut self) -> Vec<Part> {
        let total = self.pick(&["200", "222", "223", "224", "224", "226", "227", "300", "447", "448", "450", "1000"]);
        let total: usize = total.parse().unwrap();
        let (head, pad, tail) = match self.rng.below(8) {
            // A CR that does not end the line: it ends at the first CRLF
            // past 224 bytes, answered BAD_FORMAT.
            7 => ("stats\rX", b'a', ""),
            0 => ("peek ", b' ', "999999"),
            1 => ("delete ", b'0', "0"),
            2 => ("kick ", b' ', "1"),
            3 => ("use ", b'a', ""),
            4 => ("stats-tube ", b'Q', ""),
            5 => ("put 0 0 1000 ", b' ', "1"),
            _ => ("xyz", b'z', ""),
        };
        let fill = total - 2 - head.len() - tail.len();
        let mut line = head.as_bytes().to_vec();
        line.extend(std::iter::repeat_n(pad, fill));
        line.extend_from_slice(tail.as_bytes());
        vec![Part::Bytes(line)]
    }

    /// Changes one byte-part of a line: a byte dropped, doubled or
    /// replaced, a space added, the case changed.
    fn mangle(&mut self, line: &mut [Part]) {
        let texts: Vec<usize> =
            (0..line.len()).filter(|&i| matches!(&line[i], Part::Bytes(b) if !b.is_empty())).collect();
        if texts.is_empty() {
            return;
        }
        let Part::Bytes(bytes) = &mut line[texts[self.rng.index(texts.len())]] else { unreachable!() };
        let at = self.rng.index(bytes.len());
        match self.rng.below(6) {
            0 => {
                bytes.remove(at);
            }
            1 => {
                let b = bytes[at];
                bytes.insert(at, b);
            }
            2 => bytes[at] = b" x0-\t:\n"[self.rng.index(7)],
            3 => bytes.insert(at, b' '),
            4 => bytes.make_ascii_uppercase(),
            _ => bytes.push(b' '),
        }
    }
}

/// What a command's id is for: any job, one the connection has reserved,
/// or one it could take (ready, delayed or buried).
#[derive(Clone, Copy)]
enum Purpose {
    Any,
    Own,
    Take,
}

/// The length of `parts` as [`split`] counts it.
fn units(parts: &[Part]) -> usize {
    parts.iter().map(|p| if let Part::Bytes(b) = p { b.len() } else { 1 }).sum()
}

/// `parts` cut after `at` bytes (ids count as one byte each: a cut never
/// falls inside one).
fn split(parts: &[Part], at: usize) -> (Vec<Part>, Vec<Part>) {
    let (mut first, mut rest) = (Vec::new(), Vec::new());
    let mut left = at;
    for part in parts {
        match part {
            _ if left == 0 => rest.push(part.clone()),
            Part::Job(_) => {
                first.push(part.clone());
                left -= 1;
            }
            Part::Bytes(b) if b.len() <= left => {
                first.push(part.clone());
                left -= b.len();
            }
            Part::Bytes(b) => {
                first.push(Part::Bytes(b[..left].to_vec()));
                rest.push(Part::Bytes(b[left..].to_vec()));
                left = 0;
            }
        }
    }
    (first, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::parse_script;

    /// A seed makes the same script every time, and every script parses.
    #[test]
    fn scripts_are_reproducible_and_parse() {
        for seed in 1..=200 {
            let a = generate(seed, Allow::default());
            let b = generate(seed, Allow::default());
            let all = vec![true; a.ops.len()];
            let text = a.script(&all, "test");
            assert_eq!(text, b.script(&all, "test"), "seed {seed}");
            assert_eq!(ops::closure(&a.ops, &all), all, "seed {seed}: an operation needs one that is not there");
            let script = parse_script(&format!("seed {seed}"), &text);
            assert!(!script.steps.is_empty());
        }
    }
}
