//! A random script as the generator writes it: a list of operations, each
//! one or two lines of the script language, that knows which jobs it names
//! and which earlier operations it needs. So the shrinker can drop any
//! operations and still print a script that runs: the `$N` of the jobs
//! left are renumbered, and whatever needed a dropped operation goes too.

use super::model::JobKey;

/// A piece of what an operation sends.
#[derive(Clone, Debug)]
pub(crate) enum Part {
    Bytes(Vec<u8>),
    /// A job, written `$N` with its number in the script being printed.
    Job(JobKey),
}

#[derive(Clone, Debug)]
pub(crate) enum Kind {
    /// Sends these bytes, then reads `replies` replies: `c: TEXT` when it
    /// is one line and one reply, else `c> TEXT` and `c< N`.
    Send { data: Vec<Part>, replies: usize },
    /// Reads replies the server wrote earlier (a reserve that waited).
    Read(usize),
    /// The script closes the connection.
    Close,
    /// The script shuts down its sending side of the connection.
    Shutdown,
    /// The server must close the connection (after a `quit` in a batch).
    Closed,
    /// SIGUSR1 to the server: drain mode (the operation's connection is
    /// none).
    Drain,
}

#[derive(Clone, Debug)]
pub(crate) struct Op {
    pub(crate) conn: String,
    pub(crate) kind: Kind,
    /// The jobs whose `INSERTED` this operation reads, in order: they
    /// become the script's next `$N`.
    pub(crate) names: Vec<JobKey>,
    /// Earlier operations this one makes no sense without (the first half
    /// of a line, the reserve whose reply it reads).
    pub(crate) needs: Vec<usize>,
    /// How many commands it sends (for the counts).
    pub(crate) commands: usize,
}

/// Which operations are played when `keep` are kept: those kept whose
/// needs and named jobs are played too.
pub(crate) fn closure(ops: &[Op], keep: &[bool]) -> Vec<bool> {
    let mut played = vec![false; ops.len()];
    let mut named = std::collections::HashSet::new();
    for (i, op) in ops.iter().enumerate() {
        let jobs_named = data(op).iter().all(|p| match p {
            Part::Job(k) => named.contains(k),
            Part::Bytes(_) => true,
        });
        played[i] = keep[i] && jobs_named && op.needs.iter().all(|&n| played[n]);
        if played[i] {
            named.extend(op.names.iter().copied());
        }
    }
    played
}

fn data(op: &Op) -> &[Part] {
    match &op.kind {
        Kind::Send { data, .. } => data,
        _ => &[],
    }
}

/// The script language's lines for the operations `played`.
pub(crate) fn render(ops: &[Op], played: &[bool]) -> Vec<String> {
    let mut number = std::collections::HashMap::new();
    let mut lines = Vec::new();
    for (op, _) in ops.iter().zip(played).filter(|(_, p)| **p) {
        let c = &op.conn;
        match &op.kind {
            Kind::Send { data, replies } => {
                let text = |data: &[Part]| {
                    let mut out = String::new();
                    for (i, part) in data.iter().enumerate() {
                        match part {
                            Part::Bytes(b) => out.push_str(&escape(b)),
                            // `$2` before a digit would read as a longer
                            // number: `{$2*1}` ends it.
                            Part::Job(k) => match data.get(i + 1) {
                                Some(Part::Bytes(b)) if b.first().is_some_and(u8::is_ascii_digit) => {
                                    out.push_str(&format!("{{${}*1}}", number[k]))
                                }
                                _ => out.push_str(&format!("${}", number[k])),
                            },
                        }
                    }
                    // Trailing white space is an error in a script.
                    if out.ends_with(' ') {
                        out.pop();
                        out.push_str("\\s");
                    }
                    out
                };
                // One reply to bytes that end in CRLF: `c: TEXT` (the
                // language adds the CRLF).
                if let (1, Some((Part::Bytes(last), init))) = (*replies, data.split_last())
                    && let Some(head) = last.strip_suffix(b"\r\n")
                {
                    let mut line = init.to_vec();
                    line.push(Part::Bytes(head.to_vec()));
                    let text = text(&line);
                    lines.push(if text.is_empty() { format!("{c}:") } else { format!("{c}: {text}") });
                } else {
                    lines.push(format!("{c}> {}", text(data)));
                    match replies {
                        0 => {}
                        1 => lines.push(format!("{c}<")),
                        n => lines.push(format!("{c}< {n}")),
                    }
                }
            }
            Kind::Read(1) => lines.push(format!("{c}<")),
            Kind::Read(n) => lines.push(format!("{c}< {n}")),
            Kind::Close => lines.push(format!("{c} close")),
            Kind::Shutdown => lines.push(format!("{c} shutdown")),
            Kind::Closed => lines.push(format!("{c} closed")),
            Kind::Drain => lines.push("signal USR1".into()),
        }
        for &k in &op.names {
            let n = number.len() + 1;
            number.insert(k, n);
        }
    }
    lines
}

/// Bytes as the script language writes them: printable ASCII and single
/// spaces as is (`\`, `$`, `{`, `}` escaped), `\r \n \t \0` and `\xHH`
/// for the rest, and a run of 8 or more of one byte as `{X*N}`. (A space
/// that ends a step's text must be written `\s`: see `render`.)
pub(crate) fn escape(bytes: &[u8]) -> String {
    let one = |b: u8| -> String {
        match b {
            b'\r' => "\\r".into(),
            b'\n' => "\\n".into(),
            b'\t' => "\\t".into(),
            0 => "\\0".into(),
            b' ' => "\\s".into(),
            b'\\' | b'$' | b'{' | b'}' => format!("\\{}", b as char),
            0x21..=0x7e => (b as char).to_string(),
            _ => format!("\\x{b:02x}"),
        }
    };
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let run = bytes[i..].iter().take_while(|&&x| x == b).count();
        if run >= 8 {
            // `}` ends the repeated text: write it as `\x7d` there.
            let unit = if b == b'}' { "\\x7d".to_string() } else { one(b) };
            out.push_str(&format!("{{{unit}*{run}}}"));
        } else {
            let unit = if b == b' ' { " ".to_string() } else { one(b) };
            out.push_str(&unit.repeat(run));
        }
        i += run;
    }
    out
}
