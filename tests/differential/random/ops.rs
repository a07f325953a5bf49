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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::{Piece, parse_data};
    use crate::support::Rng;

    fn send(conn: &str, data: Vec<Part>, names: Vec<JobKey>, needs: Vec<usize>) -> Op {
        Op { conn: conn.into(), kind: Kind::Send { data, replies: 1 }, names, needs, commands: 1 }
    }

    fn bytes(s: &str) -> Part {
        Part::Bytes(s.as_bytes().to_vec())
    }

    #[test]
    fn escaped_bytes_read_back_the_same() {
        let mut rng = Rng(7);
        for _ in 0..500 {
            let len = rng.below(40) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| b" }{$\\\r\n\0a*x\xff9"[rng.index(13)]).collect();
            // Runs, to be written `{X*N}`.
            let run = data.first().copied().unwrap_or(b'}');
            data.extend(std::iter::repeat_n(run, rng.below(20) as usize));
            let text = escape(&data);
            let back = parse_data(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            let back: Vec<u8> = back
                .into_iter()
                .flat_map(|p| match p {
                    Piece::Bytes(b) => b,
                    Piece::Id(n) => panic!("{text:?} read as holding ${n}"),
                })
                .collect();
            assert_eq!(back, data, "{text:?}");
        }
    }

    #[test]
    fn dropping_a_put_renumbers_the_jobs_after_it_and_drops_what_names_it() {
        let ops = vec![
            send("c1", vec![bytes("put 0 0 1000 1\r\na\r\n")], vec![10], vec![]),
            send("c1", vec![bytes("put 0 0 1000 1\r\nb\r\n")], vec![11], vec![]),
            send("c2", vec![bytes("delete "), Part::Job(10), bytes("\r\n")], vec![], vec![]),
            send("c2", vec![bytes("peek "), Part::Job(11), bytes("0\r\n")], vec![], vec![]),
            Op { conn: "c2".into(), kind: Kind::Read(2), names: vec![], needs: vec![2], commands: 0 },
        ];
        let all = closure(&ops, &[true; 5]);
        assert_eq!(
            render(&ops, &all),
            ["c1: put 0 0 1000 1\\r\\na", "c1: put 0 0 1000 1\\r\\nb", "c2: delete $1", "c2: peek {$2*1}0", "c2< 2"]
        );
        let played = closure(&ops, &[false, true, true, true, true]);
        assert_eq!(played, [false, true, false, true, false]);
        assert_eq!(render(&ops, &played), ["c1: put 0 0 1000 1\\r\\nb", "c2: peek {$1*1}0"]);
    }

    #[test]
    fn a_trailing_space_is_written_as_an_escape() {
        let ops = vec![send("c1", vec![bytes("stats \r\n")], vec![], vec![])];
        assert_eq!(render(&ops, &[true]), ["c1: stats\\s"]);
        let ops = vec![send("c1", vec![bytes("\r\n")], vec![], vec![])];
        assert_eq!(render(&ops, &[true]), ["c1:"]);
    }
}
