//! Playing a script against one server: starting it (and restarting it),
//! the script's connections, and the transcript of what was observed.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::compare::verbose;
use crate::normalise::{FieldCheck, IdMap, Norm, escape, normalise};
use crate::script::{Action, Departure, Piece, Script};
use crate::support::client::Silence;
use crate::support::{Binary, Client, ReadError, Server};

/// How long a server may take to send a reply the script waits for. Scripts
/// never wait for more than ~3 s, so this only matters when a reply is missing.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(6);
/// No reply within this long counts as silence.
pub(crate) const SILENCE: Duration = Duration::from_millis(150);
/// How long to wait for the server to close a connection.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause after closing a connection or sending a signal, so the server has
/// handled it before the next step (beanstalkd handles both asynchronously).
pub(crate) const SETTLE: Duration = Duration::from_millis(100);
/// A symbolic id that no server handed out (used only after a divergence).
pub(crate) const UNKNOWN_ID: &str = "999999999";

/// One observation: a reply (or silence, or a close) seen at some step.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) step: usize,
    pub(crate) line: usize,
    pub(crate) source: String,
    /// What this connection sent since its previous observation (escaped).
    pub(crate) sent: String,
    /// The normalised observation (escaped).
    pub(crate) outcome: String,
}

#[derive(Debug, Default)]
pub(crate) struct Transcript {
    pub(crate) server: String,
    pub(crate) entries: Vec<Entry>,
    /// Symbolic ids the script used before the server handed them out.
    pub(crate) script_errors: Vec<String>,
    /// `differ` steps where this server did not answer what was expected.
    pub(crate) departure_failures: Vec<String>,
}

impl Transcript {
    pub(crate) fn outcomes(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.outcome.as_str()).collect()
    }
}

/// A script's connection: the kit's client, and what was sent on it since
/// the last observation (for the transcript).
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) sent: Vec<u8>,
}

impl Conn {
    pub(crate) fn new(client: Client) -> Conn {
        Conn { client, sent: Vec::new() }
    }

    /// One framed reply, or what happened instead, as a transcript outcome.
    fn read_reply(&mut self, timeout: Duration) -> Result<Vec<u8>, String> {
        self.client.try_read_reply(timeout).map_err(|e| match e {
            ReadError::Closed { partial } if partial.is_empty() => "<closed>".into(),
            ReadError::Closed { partial } => format!("<closed after partial reply \"{}\">", escape(&partial)),
            ReadError::TimedOut { partial } if partial.is_empty() => "<no reply>".into(),
            ReadError::TimedOut { partial } => format!("<incomplete reply \"{}\">", escape(&partial)),
        })
    }
}

/// A started server that answered a first command. Its observer connection
/// stays open (and idle) for the whole script, so every run has the same
/// connections: the kit's start-up probe, the observer, the script's.
pub(crate) struct Started {
    pub(crate) server: Server,
    pub(crate) _observer: Conn,
    /// The directory substituted for `$TMP` in the server flags; it lives as
    /// long as the run, so a restarted server finds its binlog again.
    pub(crate) tmp: Rc<tempfile::TempDir>,
    /// What was started, with which flags (before `$TMP` substitution), to
    /// start it again after a `restart` step.
    pub(crate) binary: Binary,
    pub(crate) args: Vec<String>,
}

/// How long a `restart clean` waits for the server to exit after SIGTERM.
pub(crate) const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn start(binary: &Binary, args: &[&str]) -> Started {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    start_in(binary.clone(), args, Rc::new(tempfile::tempdir().unwrap()))
}

/// Starts a server with `$TMP` standing for `tmp` (a fresh directory for a
/// first start, the same one again after a restart), and opens the observer
/// connection with `reserve-job 0` (a command with no effect on any stats
/// field).
pub(crate) fn start_in(binary: Binary, args: Vec<String>, tmp: Rc<tempfile::TempDir>) -> Started {
    let dir = tmp.path().to_str().unwrap();
    let server = binary.server().args(args.iter().map(|a| a.replace("$TMP", dir))).start();
    let mut observer = Conn::new(server.connect());
    observer.client.send("reserve-job 0\r\n");
    let answer = observer.read_reply(REPLY_TIMEOUT);
    assert_eq!(answer, Ok(b"NOT_FOUND\r\n".to_vec()), "{} did not answer `reserve-job 0`", server.name);
    Started { server, _observer: observer, tmp, binary, args }
}

/// Stops the server (a crash with SIGKILL, or SIGTERM and its exit when
/// `clean`) and starts it again in the same `$TMP`. Err if a clean stop did
/// not end the process in time (it is then killed anyway).
pub(crate) fn restart(started: &mut Started, clean: bool, down: Duration) -> Result<(), String> {
    let mut result = Ok(());
    if clean {
        started.server.signal(libc::SIGTERM);
        if started.server.wait_exit(EXIT_TIMEOUT).is_none() {
            result = Err(format!("<still running {}s after SIGTERM>", EXIT_TIMEOUT.as_secs()));
        }
    }
    // Kill and reap the process before starting the next one: the binlog
    // directory stays locked while it lives.
    if started.server.exit_status().is_none() {
        started.server.kill9();
    }
    std::thread::sleep(down);
    let next = start_in(started.binary.clone(), started.args.clone(), Rc::clone(&started.tmp));
    *started = next;
    result
}

pub(crate) fn run_script(started: &mut Started, script: &Script) -> Transcript {
    let mut transcript = Transcript { server: started.server.name.to_string(), ..Transcript::default() };
    let is_sprout = started.binary.is_sprout();
    let mut conns: Vec<(String, Option<Conn>)> = Vec::new();
    let mut norm = Norm {
        ids: IdMap { raw: script.raw_ids, ..IdMap::default() },
        restarted: false,
        mask_binlog: script.mask_binlog,
    };
    let reply_timeout = script.reply_timeout.unwrap_or(REPLY_TIMEOUT);
    let began = Instant::now();
    for (index, step) in script.steps.iter().enumerate() {
        let conn_name = match &step.action {
            Action::Send { conn, .. }
            | Action::Recv { conn, .. }
            | Action::Silent { conn }
            | Action::Closed { conn }
            | Action::Close { conn }
            | Action::Shutdown { conn } => conn.clone(),
            Action::Sleep(d) => {
                std::thread::sleep(*d);
                continue;
            }
            Action::SleepUntil(at) => {
                let late = Instant::now().saturating_duration_since(began + *at);
                if late > Duration::ZERO {
                    // Not an error in itself, but timing-dependent values
                    // read next may then differ: say why.
                    eprintln!(
                        "{}.script:{}: {} reached `{}` {late:?} late",
                        script.name, step.line, started.server.name, step.source
                    );
                }
                std::thread::sleep((began + *at).saturating_duration_since(Instant::now()));
                continue;
            }
            Action::Signal(sig) => {
                started.server.signal(*sig);
                std::thread::sleep(SETTLE);
                continue;
            }
            Action::Restart { clean, down } => {
                // The connections vanish with the server: anything they
                // still had unread must be reported now.
                check_unread(&mut conns, &mut transcript, index + 1, step.line, "before restart");
                conns.clear();
                let t = Instant::now();
                let result = restart(started, *clean, *down);
                if verbose() {
                    eprintln!("{}: {} restarted in {:?}", script.name, started.server.name, t.elapsed());
                }
                if let Err(outcome) = result {
                    transcript.entries.push(Entry {
                        step: index + 1,
                        line: step.line,
                        source: step.source.clone(),
                        sent: String::new(),
                        outcome,
                    });
                }
                norm.restarted = true;
                continue;
            }
        };
        let server = &started.server;
        // Connections open at their first use and stay closed once closed.
        let slot = match conns.iter().position(|(n, _)| *n == conn_name) {
            Some(i) => i,
            None => {
                let conn = Conn::new(server.connect());
                conns.push((conn_name, Some(conn)));
                conns.len() - 1
            }
        };
        if let Action::Close { .. } = step.action {
            conns[slot].1 = None;
            std::thread::sleep(SETTLE);
            continue;
        }
        let Some(conn) = conns[slot].1.as_mut() else {
            panic!("{}.script:{}: connection used after `close`", script.name, step.line);
        };
        let mut outcomes = Vec::new();
        // The field departures of this step, with this server's expected value.
        let mut checks: Vec<FieldCheck> = step
            .departures
            .iter()
            .filter_map(|d| match d {
                Departure::Field { key, beanstalkd, sprout } => Some(FieldCheck {
                    key: key.clone(),
                    expected: if is_sprout { sprout.clone() } else { beanstalkd.clone() },
                    marker: format!("<differs: beanstalkd {beanstalkd}, sprout {sprout}>"),
                    seen: Vec::new(),
                }),
                Departure::Reply { .. } => None,
            })
            .collect();
        match &step.action {
            Action::Send { data, replies, .. } => {
                let mut bytes = Vec::new();
                for piece in data {
                    match piece {
                        Piece::Bytes(b) => bytes.extend_from_slice(b),
                        Piece::Id(n) => match norm.ids.ids.get(n - 1) {
                            Some(id) => bytes.extend_from_slice(id.as_bytes()),
                            None => {
                                transcript
                                    .script_errors
                                    .push(format!("line {}: ${n} used before the server returned it", step.line));
                                bytes.extend_from_slice(UNKNOWN_ID.as_bytes());
                            }
                        },
                    }
                }
                conn.sent.extend_from_slice(&bytes);
                if let Err(e) = conn.client.try_send(&bytes) {
                    outcomes.push(format!("<send failed: {}>", e.kind()));
                } else {
                    for _ in 0..*replies {
                        outcomes.push(match conn.read_reply(reply_timeout) {
                            Ok(reply) => normalise(&reply, &mut norm, &mut checks),
                            Err(e) => e,
                        });
                    }
                }
            }
            Action::Recv { count, .. } => {
                for _ in 0..*count {
                    outcomes.push(match conn.read_reply(reply_timeout) {
                        Ok(reply) => normalise(&reply, &mut norm, &mut checks),
                        Err(e) => e,
                    });
                }
            }
            Action::Silent { .. } => {
                outcomes.push(match conn.client.silence(SILENCE) {
                    Silence::Spoke(bytes) => format!("<not silent: \"{}\">", escape(&bytes)),
                    Silence::Closed => "<closed>".to_string(),
                    Silence::Silent => "<silent>".to_string(),
                });
            }
            Action::Closed { .. } => {
                let (closed, unread) = conn.client.wait_closed(CLOSE_TIMEOUT);
                outcomes.push(match (closed, unread.is_empty()) {
                    (true, true) => "<closed>".to_string(),
                    (true, false) => format!("<closed after \"{}\">", escape(&unread)),
                    (false, true) => "<open>".to_string(),
                    (false, false) => format!("<open, got \"{}\">", escape(&unread)),
                });
            }
            Action::Shutdown { .. } => {
                let _ = conn.client.shutdown_write();
                std::thread::sleep(SETTLE);
            }
            Action::Close { .. }
            | Action::Sleep(_)
            | Action::SleepUntil(_)
            | Action::Signal(_)
            | Action::Restart { .. } => unreachable!(),
        }
        let who = if is_sprout { "sprout" } else { "beanstalkd" };
        for check in &checks {
            if check.seen.is_empty() {
                transcript
                    .departure_failures
                    .push(format!("line {}: `differ {}`: no reply had that key", step.line, check.key));
            }
            for value in check.seen.iter().filter(|v| **v != check.expected) {
                transcript.departure_failures.push(format!(
                    "line {}: `differ {}`: {who} was expected to answer {:?}, answered {value:?}",
                    step.line, check.key, check.expected
                ));
            }
        }
        for departure in &step.departures {
            let Departure::Reply { beanstalkd, sprout } = departure else { continue };
            let expected = if is_sprout { sprout } else { beanstalkd };
            match outcomes.as_mut_slice() {
                [outcome] if outcome == expected => {
                    *outcome = format!("<differs: beanstalkd \"{beanstalkd}\", sprout \"{sprout}\">");
                }
                _ => transcript.departure_failures.push(format!(
                    "line {}: `differ reply`: {who} was expected to answer \"{expected}\", answered {:?}",
                    step.line, outcomes
                )),
            }
        }
        for outcome in outcomes {
            transcript.entries.push(Entry {
                step: index + 1,
                line: step.line,
                source: step.source.clone(),
                sent: escape(&std::mem::take(&mut conn.sent)),
                outcome,
            });
        }
    }
    // Nothing may be left unread at the end: a reply the script did not
    // expect would otherwise go unnoticed.
    check_unread(&mut conns, &mut transcript, script.steps.len() + 1, 0, "end of script");
    transcript
}

/// Records, as an observation, any bytes that arrived unread on the open
/// connections (called at the end of the script and before a restart).
pub(crate) fn check_unread(
    conns: &mut [(String, Option<Conn>)],
    transcript: &mut Transcript,
    step: usize,
    line: usize,
    when: &str,
) {
    std::thread::sleep(Duration::from_millis(50));
    for (name, conn) in conns.iter_mut() {
        if let Some(conn) = conn {
            let unread = conn.client.unread();
            if !unread.is_empty() {
                transcript.entries.push(Entry {
                    step,
                    line,
                    source: format!("({when}, {name})"),
                    sent: escape(&conn.sent),
                    outcome: format!("<unread bytes \"{}\">", escape(&unread)),
                });
            }
        }
    }
}
