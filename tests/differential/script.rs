//! The script language (see README.md): parsing a `.script` text into the
//! steps the player runs.

use std::time::Duration;

/// A piece of bytes to send: literal bytes or a symbolic job id (`$n`).
#[derive(Debug, Clone)]
pub(crate) enum Piece {
    Bytes(Vec<u8>),
    Id(usize),
}

#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// Send bytes on a connection, then read `replies` framed replies.
    Send {
        conn: String,
        data: Vec<Piece>,
        replies: usize,
    },
    /// Read framed replies.
    Recv {
        conn: String,
        count: usize,
    },
    /// Expect nothing to arrive for a while.
    Silent {
        conn: String,
    },
    /// Expect the server to close the connection.
    Closed {
        conn: String,
    },
    /// Close our end of the connection.
    Close {
        conn: String,
    },
    /// Half-close: shut down our writing side.
    Shutdown {
        conn: String,
    },
    Sleep(Duration),
    /// Sleep until this long after the script's first step.
    SleepUntil(Duration),
    Signal(i32),
    /// Stop the server (SIGKILL, or SIGTERM and wait for its exit when
    /// `clean`), wait `down`, and start it again with the same flags and the
    /// same `$TMP` directory on a fresh port. Every connection is forgotten.
    Restart {
        clean: bool,
        down: Duration,
    },
}

/// A deliberate departure at one step: what beanstalkd must answer and what
/// sprout must answer instead (see `differ` in the README). Both servers are
/// checked against their own expectation, then the value is replaced by the
/// same marker in both transcripts so the rest of the reply is compared.
#[derive(Debug, Clone)]
pub(crate) enum Departure {
    /// The value of one YAML key (`differ KEY: B | S`).
    Field { key: String, beanstalkd: String, sprout: String },
    /// The whole normalised reply, escaped as in transcripts (`differ reply: B | S`).
    Reply { beanstalkd: String, sprout: String },
}

#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) line: usize,
    pub(crate) source: String,
    pub(crate) action: Action,
    pub(crate) departures: Vec<Departure>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Script {
    pub(crate) name: String,
    pub(crate) server_args: Vec<String>,
    /// Show job ids as the server sent them instead of mapping them.
    pub(crate) raw_ids: bool,
    /// Mask the binlog counters and stats-job `file` (see `MASKED_BINLOG`).
    pub(crate) mask_binlog: bool,
    pub(crate) steps: Vec<Step>,
    /// How long a reply may take (`REPLY_TIMEOUT` when `None`): the random
    /// scripts' shrinker waits less for a reply that will not come.
    pub(crate) reply_timeout: Option<Duration>,
}

pub(crate) fn parse_script(name: &str, text: &str) -> Script {
    let mut script = Script { name: name.to_string(), ..Script::default() };
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let fail = |msg: &str| -> ! { panic!("{name}.script:{line}: {msg}: {raw:?}") };
        if raw.ends_with([' ', '\t']) {
            fail("trailing whitespace (write \\s for a significant space)");
        }
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (word, rest) = match trimmed.find([':', '>', '<', ' ']) {
            Some(i) => (&trimmed[..i], &trimmed[i..]),
            None => (trimmed, ""),
        };
        let arg = rest.strip_prefix(' ').unwrap_or("");
        let action = match word {
            "server" if rest.starts_with(' ') => {
                if !script.steps.is_empty() {
                    fail("`server` must come before the first step");
                }
                script.server_args = arg.split_whitespace().map(String::from).collect();
                continue;
            }
            "option" if rest.starts_with(' ') => {
                match arg {
                    "raw-ids" => script.raw_ids = true,
                    "mask-binlog" => script.mask_binlog = true,
                    _ => fail("unknown option"),
                }
                continue;
            }
            "sleep" if rest.starts_with(' ') => match arg.strip_prefix("until ") {
                Some(at) => {
                    let secs: f64 = at.parse().unwrap_or_else(|_| fail("bad time"));
                    Action::SleepUntil(Duration::from_secs_f64(secs))
                }
                None => {
                    let secs: f64 = arg.parse().unwrap_or_else(|_| fail("bad duration"));
                    Action::Sleep(Duration::from_secs_f64(secs))
                }
            },
            "signal" if rest.starts_with(' ') => Action::Signal(match arg {
                "USR1" => libc::SIGUSR1,
                _ => fail("unknown signal"),
            }),
            "restart" => {
                let mut words = arg.split_whitespace().peekable();
                let clean = words.next_if_eq(&"clean").is_some();
                let down = match (words.next(), words.next()) {
                    (None, _) => Duration::ZERO,
                    (Some("down"), Some(secs)) => {
                        Duration::from_secs_f64(secs.parse().unwrap_or_else(|_| fail("bad duration")))
                    }
                    _ => fail("expected `restart [clean] [down SECS]`"),
                };
                if words.next().is_some() {
                    fail("expected `restart [clean] [down SECS]`");
                }
                Action::Restart { clean, down }
            }
            "differ" if rest.starts_with(' ') => {
                let Some(step) = script.steps.last_mut() else { fail("`differ` must follow a step") };
                if !matches!(step.action, Action::Send { .. } | Action::Recv { .. }) {
                    fail("`differ` must follow a step that reads replies");
                }
                let Some((key, values)) = arg.split_once(": ") else { fail("expected `differ KEY: B | S`") };
                let Some((beanstalkd, sprout)) = values.split_once(" | ") else { fail("expected `differ KEY: B | S`") };
                if values.matches(" | ").count() != 1 || beanstalkd == sprout {
                    fail("expected `differ KEY: B | S` with one ` | ` and B != S");
                }
                let (beanstalkd, sprout) = (beanstalkd.to_string(), sprout.to_string());
                step.departures.push(if key == "reply" {
                    Departure::Reply { beanstalkd, sprout }
                } else {
                    Departure::Field { key: key.to_string(), beanstalkd, sprout }
                });
                continue;
            }
            conn => {
                if conn.is_empty() || !conn.chars().all(|c| c.is_ascii_alphanumeric()) {
                    fail("expected a connection name like c1");
                }
                let conn = conn.to_string();
                let mut chars = rest.chars();
                match chars.next() {
                    Some(':') => {
                        let body = chars.as_str();
                        let body = body.strip_prefix(' ').unwrap_or(body);
                        let mut data = parse_data(body).unwrap_or_else(|e| fail(&e));
                        data.push(Piece::Bytes(b"\r\n".to_vec()));
                        Action::Send { conn, data, replies: 1 }
                    }
                    Some('>') => {
                        let body = chars.as_str();
                        let body = body.strip_prefix(' ').unwrap_or(body);
                        let data = parse_data(body).unwrap_or_else(|e| fail(&e));
                        Action::Send { conn, data, replies: 0 }
                    }
                    Some('<') => {
                        let n = chars.as_str().trim();
                        let count =
                            if n.is_empty() { 1 } else { n.parse().unwrap_or_else(|_| fail("bad reply count")) };
                        Action::Recv { conn, count }
                    }
                    Some(' ') => match arg {
                        "silent" => Action::Silent { conn },
                        "closed" => Action::Closed { conn },
                        "close" => Action::Close { conn },
                        "shutdown" => Action::Shutdown { conn },
                        _ => fail("unknown connection action"),
                    },
                    _ => fail("unknown step"),
                }
            }
        };
        script.steps.push(Step { line, source: trimmed.to_string(), action, departures: Vec::new() });
    }
    script
}

/// Parses the data of a send step: escapes `\r \n \t \0 \s \\ \$ \{ \xHH`,
/// symbolic ids `$n`, and repetitions `{text*count}` (text may hold escapes).
pub(crate) fn parse_data(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut bytes = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let c = *chars.get(i + 1).ok_or("dangling backslash")?;
                i += 2;
                match c {
                    'r' => bytes.push(b'\r'),
                    'n' => bytes.push(b'\n'),
                    't' => bytes.push(b'\t'),
                    '0' => bytes.push(0),
                    's' => bytes.push(b' '),
                    '\\' | '$' | '{' | '}' => bytes.push(c as u8),
                    'x' => {
                        let hex: String = chars.get(i..i + 2).ok_or("short \\x escape")?.iter().collect();
                        bytes.push(u8::from_str_radix(&hex, 16).map_err(|_| "bad \\x escape")?);
                        i += 2;
                    }
                    _ => return Err(format!("unknown escape \\{c}")),
                }
            }
            '$' => {
                let digits: String = chars[i + 1..].iter().take_while(|c| c.is_ascii_digit()).collect();
                if digits.is_empty() {
                    return Err("`$` must be followed by an id number (write \\$ for a dollar)".into());
                }
                i += 1 + digits.len();
                flush(&mut pieces, &mut bytes);
                let n: usize = digits.parse().map_err(|_| "bad id number")?;
                if n == 0 {
                    return Err("ids count from $1".into());
                }
                pieces.push(Piece::Id(n));
            }
            '{' => {
                let close = chars[i..].iter().position(|&c| c == '}').ok_or("unclosed `{`")? + i;
                let inner: String = chars[i + 1..close].iter().collect();
                let star = inner.rfind('*').ok_or("`{...}` needs `*count`")?;
                let count: usize = inner[star + 1..].parse().map_err(|_| "bad repeat count")?;
                let unit = parse_data(&inner[..star])?;
                flush(&mut pieces, &mut bytes);
                for _ in 0..count {
                    pieces.extend(unit.iter().cloned());
                }
                i = close + 1;
            }
            c => {
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 1;
            }
        }
    }
    flush(&mut pieces, &mut bytes);
    Ok(pieces)
}

pub(crate) fn flush(pieces: &mut Vec<Piece>, bytes: &mut Vec<u8>) {
    if !bytes.is_empty() {
        pieces.push(Piece::Bytes(std::mem::take(bytes)));
    }
}
