//! One command line to one [`Line`], with beanstalkd 1.12's grammar.
//!
//! The grammar is the C server's, quirks included, because clients in the
//! wild depend on what it accepts:
//! - commands are matched by case-sensitive prefix, in beanstalkd's order, so
//!   `quitx` quits and `reservex` is a malformed `reserve`;
//! - most numbers are "spaces, then decimal digits" and must fit the field
//!   (`u32` for priorities and durations, `u64` for ids); the last number of
//!   a line must end it;
//! - `reserve-with-timeout` reads its timeout like C's `strtol` and `kick` its
//!   bound like `strtoul`, leniently, as 1.12 does.

use nom::IResult;
use nom::Parser;
use nom::bytes::complete::take_while;
use nom::character::complete::digit1;

use super::command::{Command, Op, TubeName, is_name_byte};
use super::reply::Reply;

/// What a command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete command.
    Command(Command),
    /// A valid `put` line; `bytes` of body and a CRLF follow.
    PutHeader { pri: u32, delay: u32, ttr: u32, bytes: u32 },
    /// A `put` larger than the job size limit: `bytes` + 2 bytes follow and
    /// must be discarded before answering `JOB_TOO_BIG`.
    PutTooBig { bytes: u32 },
    /// `quit`: close the connection without a reply.
    Quit,
    /// A line answered at once, without touching the queues.
    Reject(Reply),
    /// A line beanstalkd counts under `op` in the `cmd-*` stats and then
    /// answers `BAD_FORMAT` (a put with trailing garbage, a pause-tube name
    /// starting with `-`): it checks these after counting the command.
    CountedBadFormat(Op),
}

/// Parses one line, CRLF already removed.
#[inline]
pub fn parse_line(line: &[u8], max_job_size: u32) -> Line {
    match parse_common(line, max_job_size) {
        Some(parsed) => parsed,
        None => parse_any(line, max_job_size),
    }
}

/// The lines a busy server reads most, `put`, `reserve` and `delete`, in
/// the one form clients send them (single spaces, plain digits short
/// enough that no field can overflow), read without the general grammar:
/// in a pipelined put the line's parse cost about as much as the engine's
/// work. `None` for anything else, which [`parse_any`] reads; for a line
/// this does read, the answer is the one `parse_any` gives (a test holds
/// them together).
#[inline]
fn parse_common(line: &[u8], max_job_size: u32) -> Option<Line> {
    if let Some(mut rest) = line.strip_prefix(b"put ") {
        let mut fields = [0u32; 4];
        for (i, field) in fields.iter_mut().enumerate() {
            // Nine digits always fit a u32.
            let (value, len) = short_decimal(rest, 9)?;
            *field = value as u32;
            rest = &rest[len..];
            if i < 3 {
                rest = rest.strip_prefix(b" ")?;
            }
        }
        if !rest.is_empty() {
            return None;
        }
        let [pri, delay, ttr, bytes] = fields;
        return Some(if bytes > max_job_size {
            Line::PutTooBig { bytes }
        } else {
            Line::PutHeader { pri, delay, ttr, bytes }
        });
    }
    if line == b"reserve" {
        return Some(Line::Command(Command::Reserve));
    }
    if let Some(rest) = line.strip_prefix(b"delete ") {
        // Nineteen digits always fit a u64.
        let (id, len) = short_decimal(rest, 19)?;
        return (len == rest.len()).then_some(Line::Command(Command::Delete(id)));
    }
    None
}

/// The value and length of the run of 1 to `max` ASCII digits at the
/// start of `input`; `None` if there is none or it is longer.
#[inline]
fn short_decimal(input: &[u8], max: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    let mut len = 0;
    for &b in input {
        if !b.is_ascii_digit() {
            break;
        }
        if len == max {
            return None;
        }
        value = value * 10 + u64::from(b - b'0');
        len += 1;
    }
    (len > 0).then_some((value, len))
}

/// Parses any line with the whole grammar.
fn parse_any(line: &[u8], max_job_size: u32) -> Line {
    if line.contains(&0) {
        return Line::Reject(Reply::BadFormat);
    }
    match split_verb(line) {
        Some((verb, args)) => parse_verb(verb, args, max_job_size).unwrap_or(Line::Reject(Reply::BadFormat)),
        None => Line::Reject(Reply::UnknownCommand),
    }
}

/// The command names, in the order beanstalkd tries them as prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    Put,
    Peek,
    PeekReady,
    PeekDelayed,
    PeekBuried,
    ReserveWithTimeout,
    ReserveJob,
    Reserve,
    Delete,
    Release,
    Bury,
    Kick,
    KickJob,
    Touch,
    StatsJob,
    StatsTube,
    Stats,
    Use,
    Watch,
    Ignore,
    ListTubesWatched,
    ListTubeUsed,
    ListTubes,
    Quit,
    PauseTube,
}

const VERBS: [(&[u8], Verb); 25] = [
    (b"put ", Verb::Put),
    (b"peek ", Verb::Peek),
    (b"peek-ready", Verb::PeekReady),
    (b"peek-delayed", Verb::PeekDelayed),
    (b"peek-buried", Verb::PeekBuried),
    (b"reserve-with-timeout ", Verb::ReserveWithTimeout),
    (b"reserve-job ", Verb::ReserveJob),
    (b"reserve", Verb::Reserve),
    (b"delete ", Verb::Delete),
    (b"release ", Verb::Release),
    (b"bury ", Verb::Bury),
    (b"kick ", Verb::Kick),
    (b"kick-job ", Verb::KickJob),
    (b"touch ", Verb::Touch),
    (b"stats-job ", Verb::StatsJob),
    (b"stats-tube ", Verb::StatsTube),
    (b"stats", Verb::Stats),
    (b"use ", Verb::Use),
    (b"watch ", Verb::Watch),
    (b"ignore ", Verb::Ignore),
    (b"list-tubes-watched", Verb::ListTubesWatched),
    (b"list-tube-used", Verb::ListTubeUsed),
    (b"list-tubes", Verb::ListTubes),
    (b"quit", Verb::Quit),
    (b"pause-tube", Verb::PauseTube),
];

fn split_verb(line: &[u8]) -> Option<(Verb, &[u8])> {
    VERBS.iter().find(|(prefix, _)| line.starts_with(prefix)).map(|&(prefix, verb)| (verb, &line[prefix.len()..]))
}

/// `None` means `BAD_FORMAT`.
fn parse_verb(verb: Verb, args: &[u8], max_job_size: u32) -> Option<Line> {
    use Command as C;
    let command = match verb {
        Verb::Put => return parse_put(args, max_job_size),
        Verb::Quit => return Some(Line::Quit),
        Verb::Peek => C::Peek(only(u64_arg(args))?),
        Verb::ReserveJob => C::ReserveJob(only(u64_arg(args))?),
        Verb::Delete => C::Delete(only(u64_arg(args))?),
        Verb::KickJob => C::KickJob(only(u64_arg(args))?),
        Verb::Touch => C::Touch(only(u64_arg(args))?),
        Verb::StatsJob => C::StatsJob(only(u64_arg(args))?),
        Verb::Release => {
            let (rest, id) = u64_arg(args).ok()?;
            let (rest, pri) = u32_arg(rest).ok()?;
            let delay = only(u32_arg(rest))?;
            C::Release { id, pri, delay }
        }
        Verb::Bury => {
            let (rest, id) = u64_arg(args).ok()?;
            let pri = only(u32_arg(rest))?;
            C::Bury { id, pri }
        }
        Verb::ReserveWithTimeout => C::ReserveWithTimeout(reserve_timeout(args)?),
        Verb::Kick => C::Kick(kick_bound(args)?),
        Verb::Use => C::Use(TubeName::new(args)?),
        Verb::Watch => C::Watch(TubeName::new(args)?),
        Verb::Ignore => C::Ignore(TubeName::new(args)?),
        Verb::StatsTube => C::StatsTube(TubeName::new(args)?),
        Verb::PauseTube => return parse_pause_tube(args),
        Verb::PeekReady => exact(args, C::PeekReady)?,
        Verb::PeekDelayed => exact(args, C::PeekDelayed)?,
        Verb::PeekBuried => exact(args, C::PeekBuried)?,
        Verb::Reserve => exact(args, C::Reserve)?,
        Verb::Stats => exact(args, C::Stats)?,
        Verb::ListTubes => exact(args, C::ListTubes)?,
        Verb::ListTubeUsed => exact(args, C::ListTubeUsed)?,
        Verb::ListTubesWatched => exact(args, C::ListTubesWatched)?,
    };
    Some(Line::Command(command))
}

/// Commands without arguments must be the whole line.
fn exact(args: &[u8], command: Command) -> Option<Command> {
    args.is_empty().then_some(command)
}

fn parse_put(args: &[u8], max_job_size: u32) -> Option<Line> {
    let (rest, pri) = u32_arg(args).ok()?;
    let (rest, delay) = u32_arg(rest).ok()?;
    let (rest, ttr) = u32_arg(rest).ok()?;
    let (rest, bytes) = u32_arg(rest).ok()?;
    // beanstalkd checks the size before the end of the line, so an oversized
    // put with trailing garbage still has its body skipped.
    if bytes > max_job_size {
        return Some(Line::PutTooBig { bytes });
    }
    if !rest.is_empty() {
        return Some(Line::CountedBadFormat(Op::Put));
    }
    Some(Line::PutHeader { pri, delay, ttr, bytes })
}

/// `pause-tube` has no space in its prefix: spaces, a run of name
/// characters, then the delay ending the line. The name's own rules (length,
/// no leading `-`) are checked after the command is counted, as in 1.12.
fn parse_pause_tube(args: &[u8]) -> Option<Line> {
    let (rest, _) = spaces(args).ok()?;
    let (rest, name) = name_chars(rest).ok()?;
    if name.is_empty() {
        return None;
    }
    let delay = only(u32_arg(rest))?;
    Some(match TubeName::new(name) {
        Some(tube) => Line::Command(Command::PauseTube { tube, delay }),
        None => Line::CountedBadFormat(Op::PauseTube),
    })
}

fn name_chars(input: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while(is_name_byte).parse(input)
}

fn spaces(input: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while(|b| b == b' ').parse(input)
}

/// Spaces, then decimal digits that fit in a `u64`.
fn u64_arg(input: &[u8]) -> IResult<&[u8], u64> {
    let (rest, _) = spaces(input)?;
    let (rest, digits) = digit1(rest)?;
    match decimal(digits) {
        Some(n) => Ok((rest, n)),
        None => Err(nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::TooLarge))),
    }
}

/// Spaces, then decimal digits that fit in a `u32`.
fn u32_arg(input: &[u8]) -> IResult<&[u8], u32> {
    let (rest, n) = u64_arg(input)?;
    match u32::try_from(n) {
        Ok(n) => Ok((rest, n)),
        Err(_) => Err(nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::TooLarge))),
    }
}

/// The value of a parse that must end the line.
fn only<T>(result: IResult<&[u8], T>) -> Option<T> {
    match result {
        Ok((b"", value)) => Some(value),
        _ => None,
    }
}

fn decimal(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// What C's `strtol`/`strtoul` see: leading white space, an optional sign,
/// then digits. `None` when the magnitude overflows a `u64` (ERANGE).
struct CNumber {
    negative: bool,
    magnitude: u64,
    has_digits: bool,
}

fn c_number(input: &[u8]) -> Option<CNumber> {
    let is_c_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let mut rest = input;
    while let [b, tail @ ..] = rest {
        if !is_c_space(*b) {
            break;
        }
        rest = tail;
    }
    let negative = rest.first() == Some(&b'-');
    if matches!(rest.first(), Some(b'-' | b'+')) {
        rest = &rest[1..];
    }
    let digit_count = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digit_count == 0 {
        return Some(CNumber { negative: false, magnitude: 0, has_digits: false });
    }
    let magnitude = decimal(&rest[..digit_count])?;
    Some(CNumber { negative, magnitude, has_digits: true })
}

/// beanstalkd 1.12 reads the timeout with `strtol` into an `int`: no digits
/// means 0, trailing garbage is ignored, only overflow of a `long` is an
/// error, and the value is then truncated to 32 bits. A negative result
/// waits forever.
fn reserve_timeout(args: &[u8]) -> Option<Option<u32>> {
    let n = c_number(args)?;
    let value: i64 = if n.negative {
        if n.magnitude > 1 << 63 {
            return None;
        }
        (n.magnitude as i64).wrapping_neg()
    } else {
        i64::try_from(n.magnitude).ok()?
    };
    let timeout = value as i32;
    Some((timeout >= 0).then_some(timeout as u32))
}

/// beanstalkd reads the kick bound with `strtoul` into an `unsigned int`:
/// digits are required, a minus sign negates modulo 2^64, trailing garbage
/// is ignored, and the value is truncated to 32 bits.
fn kick_bound(args: &[u8]) -> Option<u32> {
    let n = c_number(args)?;
    if !n.has_digits {
        return None;
    }
    let value = if n.negative { n.magnitude.wrapping_neg() } else { n.magnitude };
    Some(value as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_lines_parse_as_the_whole_grammar_does() {
        let lines = [
            "put 0 0 120 100",
            "put 1024 0 120 100",
            "put 000000001 2 3 4",
            "put 999999999 999999999 999999999 999999999",
            "put 4294967295 0 120 100",
            "put 0 0 120 65535",
            "put 0 0 120 65536",
            "put 0 0 120 70000 ",
            "put 0 0 120 100 ",
            "put 0 0 120 100x",
            "put  0 0 120 100",
            "put 0  0 120 100",
            "put 0 0 120",
            "put 0 0 120 ",
            "put -1 0 120 100",
            "put +1 0 120 100",
            "put 0 0 1\x0020 100",
            "put",
            "put ",
            "reserve",
            "reserve ",
            "reservex",
            "reserve-with-timeout 0",
            "delete 1",
            "delete 0",
            "delete 0000000000000000001",
            "delete 9999999999999999999",
            "delete 18446744073709551615",
            "delete 18446744073709551616",
            "delete 1 ",
            "delete  1",
            "delete ",
            "delete x",
            "deletes 1",
        ];
        for line in lines {
            let line = line.as_bytes();
            let whole = parse_any(line, Z);
            if let Some(common) = parse_common(line, Z) {
                assert_eq!(common, whole, "{:?}", String::from_utf8_lossy(line));
            }
            assert_eq!(parse_line(line, Z), whole, "{:?}", String::from_utf8_lossy(line));
        }
        // The fast path must take the lines it is for.
        for line in ["put 0 0 120 100", "reserve", "delete 12345"] {
            assert!(parse_common(line.as_bytes(), Z).is_some(), "{line}");
        }
    }

    const Z: u32 = 65535;

    fn cmd(line: &str) -> Command {
        match parse_line(line.as_bytes(), Z) {
            Line::Command(c) => c,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    fn bad(line: &str) -> bool {
        parse_line(line.as_bytes(), Z) == Line::Reject(Reply::BadFormat)
    }

    fn unknown(line: &str) -> bool {
        parse_line(line.as_bytes(), Z) == Line::Reject(Reply::UnknownCommand)
    }

    fn tube(name: &str) -> TubeName {
        TubeName::new(name.as_bytes()).unwrap()
    }

    #[test]
    fn put_header() {
        let header = Line::PutHeader { pri: 1, delay: 2, ttr: 3, bytes: 4 };
        assert_eq!(parse_line(b"put 1 2 3 4", Z), header);
        assert_eq!(parse_line(b"put  01  2 3   4", Z), header);
        assert_eq!(
            parse_line(b"put 4294967295 0 1 1", Z),
            Line::PutHeader { pri: u32::MAX, delay: 0, ttr: 1, bytes: 1 }
        );
    }

    #[test]
    fn put_errors() {
        for line in ["put 4294967296 0 1 1", "put -1 0 1 1", "put +1 0 1 1", "put 0x1 0 1 1", "put 1.5 0 1 1"] {
            assert!(bad(line), "{line}");
        }
        assert!(bad("put 0 0 1 99999999999"));
        assert!(bad("put 0\t0 1 1"));
        assert!(bad("put 0 0 1"));
        assert!(unknown("put"));
        assert!(bad("put "));
        assert_eq!(parse_line(b"put 0 0 1 1 ", Z), Line::CountedBadFormat(Op::Put));
        assert_eq!(parse_line(b"put 0 0 1 70000 junk", Z), Line::PutTooBig { bytes: 70000 });
        assert_eq!(parse_line(b"put 0 0 1 65536", Z), Line::PutTooBig { bytes: 65536 });
        assert_eq!(parse_line(b"put 0 0 1 65535", Z), Line::PutHeader { pri: 0, delay: 0, ttr: 1, bytes: 65535 });
    }

    #[test]
    fn ids_are_u64_and_end_the_line() {
        assert_eq!(cmd("delete 18446744073709551615"), Command::Delete(u64::MAX));
        assert!(bad("delete 18446744073709551616"));
        assert!(bad("delete 999 "));
        assert!(bad("delete "));
        assert!(unknown("delete"));
        assert_eq!(cmd("peek   7"), Command::Peek(7));
        assert!(bad("peek 1 2"));
        assert_eq!(cmd("release 1 2 3"), Command::Release { id: 1, pri: 2, delay: 3 });
        assert!(bad("release 999 0"));
        assert!(bad("release 999 0 0 0"));
        assert!(bad("bury 999"));
        assert_eq!(cmd("bury 9 4294967295"), Command::Bury { id: 9, pri: u32::MAX });
        assert!(bad("touch 999 1"));
    }

    #[test]
    fn prefix_matching() {
        assert_eq!(parse_line(b"quitx", Z), Line::Quit);
        assert!(unknown("QUIT"));
        assert!(unknown(""));
        assert!(unknown(" put 0 0 1 1"));
        assert!(bad("reservex"));
        assert!(bad("reserve-job"));
        assert!(bad("reserve-with-timeout"));
        assert!(bad("stats "));
        assert!(bad("stats-job"));
        assert!(bad("peek-readyx"));
        assert!(bad("peek-buried x"));
        assert!(bad("list-tubesx"));
        assert_eq!(cmd("list-tubes-watched"), Command::ListTubesWatched);
        assert_eq!(cmd("list-tube-used"), Command::ListTubeUsed);
        assert_eq!(cmd("list-tubes"), Command::ListTubes);
        assert!(bad("list-tube-used\nlist-tube-used"));
        assert!(bad("use a\0"));
    }

    #[test]
    fn tube_names() {
        assert_eq!(cmd("use a_b-c+d/e;f.g$h(i)"), Command::Use(tube("a_b-c+d/e;f.g$h(i)")));
        for line in ["use -a", "use a*b", "use a b", "use a ", "use  a", "watch ", "ignore \t"] {
            assert!(bad(line), "{line}");
        }
        let long = "x".repeat(200);
        assert_eq!(cmd(&format!("watch {long}")), Command::Watch(tube(&long)));
        assert!(bad(&format!("watch {long}x")));
        assert_eq!(cmd("stats-tube nope"), Command::StatsTube(tube("nope")));
    }

    #[test]
    fn pause_tube() {
        let paused = |delay| Command::PauseTube { tube: tube("default"), delay };
        assert_eq!(cmd("pause-tube default 1"), paused(1));
        assert_eq!(cmd("pause-tubedefault 1"), paused(1));
        assert_eq!(cmd("pause-tube  default  7"), paused(7));
        for line in ["pause-tube default", "pause-tube default x", "pause-tube default 1 ", "pause-tube default -1"] {
            assert!(bad(line), "{line}");
        }
        assert!(bad("pause-tube default 4294967296"));
        assert!(bad("pause-tube default\t1"));
        assert!(bad("pause-tube *x 1"));
        assert_eq!(parse_line(b"pause-tube -x 1", Z), Line::CountedBadFormat(Op::PauseTube));
    }

    #[test]
    fn reserve_with_timeout_is_strtol() {
        let rwt = |line: &str| match cmd(line) {
            Command::ReserveWithTimeout(t) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!(rwt("reserve-with-timeout 5"), Some(5));
        assert_eq!(rwt("reserve-with-timeout abc"), Some(0));
        assert_eq!(rwt("reserve-with-timeout "), Some(0));
        assert_eq!(rwt("reserve-with-timeout 0 garbage"), Some(0));
        assert_eq!(rwt("reserve-with-timeout 1x"), Some(1));
        assert_eq!(rwt("reserve-with-timeout +1"), Some(1));
        assert_eq!(rwt("reserve-with-timeout  1"), Some(1));
        assert_eq!(rwt("reserve-with-timeout -0"), Some(0));
        assert_eq!(rwt("reserve-with-timeout 4294967296"), Some(0));
        assert_eq!(rwt("reserve-with-timeout -1"), None);
        assert_eq!(rwt("reserve-with-timeout 4294967295"), None);
        assert_eq!(rwt("reserve-with-timeout 2147483648"), None);
        assert_eq!(rwt("reserve-with-timeout 9223372036854775807"), None);
        assert!(bad("reserve-with-timeout 99999999999999999999"));
        assert!(bad("reserve-with-timeout 9223372036854775808"));
        assert!(bad("reserve-with-timeout -9223372036854775809"));
        assert_eq!(rwt("reserve-with-timeout -9223372036854775808"), Some(0));
    }

    #[test]
    fn kick_is_strtoul() {
        assert_eq!(cmd("kick 5"), Command::Kick(5));
        assert_eq!(cmd("kick -1"), Command::Kick(u32::MAX));
        assert_eq!(cmd("kick 5abc"), Command::Kick(5));
        assert_eq!(cmd("kick 5 6"), Command::Kick(5));
        assert_eq!(cmd("kick 4294967296"), Command::Kick(0));
        assert_eq!(cmd("kick -18446744073709551615"), Command::Kick(1));
        assert!(bad("kick abc"));
        assert!(bad("kick "));
        assert!(bad("kick 18446744073709551616"));
        assert!(unknown("kick"));
    }
}
