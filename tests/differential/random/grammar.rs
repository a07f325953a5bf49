//! How beanstalkd 1.12 reads a command line (`prot.c`: `which_cmd`,
//! `dispatch_cmd`, `read_u32`, `read_u64`, `read_tube_name`,
//! `is_valid_tube`, and the C library's `strtol`/`strtoul` for
//! `reserve-with-timeout` and `kick`), so the generator knows what a line
//! it made up, valid or mangled, will do.
//!
//! Only what changes the server's state, or the shape of the conversation
//! (a put's body, a reserve that may wait, a quit), is told apart; every
//! other command is [`Line::Inert`]. The model acts on the result; the
//! replies themselves are compared between the two servers, never
//! predicted.

/// A command line's longest length, CRLF included.
pub(crate) const LINE_MAX: usize = 224;

/// The longest tube name.
pub(crate) const NAME_MAX: usize = 200;

/// What a line (without its CRLF) does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// Answered without touching any job, tube or connection state (an
    /// error, a peek, a stats command, a list).
    Inert,
    /// A put whose body follows.
    Put {
        pri: u32,
        delay: u32,
        ttr: u32,
        size: u32,
    },
    /// A put whose body (`size` bytes and 2 more) is read and thrown away.
    TooBig {
        size: u32,
    },
    /// `reserve`, or `reserve-with-timeout` with this timeout (negative:
    /// forever).
    Reserve {
        timeout: Option<i32>,
    },
    ReserveJob(u64),
    Delete(u64),
    Release {
        id: u64,
        pri: u32,
        delay: u32,
    },
    Bury {
        id: u64,
        pri: u32,
    },
    Kick(u32),
    KickJob(u64),
    /// `peek <id>` or `stats-job <id>`: changes nothing, but shows the job.
    Look(u64),
    /// Restarts a reserved job's TTR (changes no state the model keeps,
    /// but reads the clock).
    Touch(u64),
    Use(String),
    Watch(String),
    Ignore(String),
    Pause {
        tube: String,
        seconds: u32,
    },
    Quit,
}

const NAME_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-+/;.$_()";

/// True if beanstalkd accepts `name` as a tube name.
pub(crate) fn is_valid_tube(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= NAME_MAX && name.iter().all(|b| NAME_CHARS.contains(b)) && name[0] != b'-'
}

/// What beanstalkd does with `line` (the bytes before the CRLF), with `-z
/// max_job_size`.
pub(crate) fn parse(line: &[u8], max_job_size: u32) -> Line {
    if line.len() + 2 > LINE_MAX || line.contains(&0) {
        return Line::Inert;
    }
    let after = |prefix: &str| line.strip_prefix(prefix.as_bytes());
    // which_cmd's order; a prefix that matches decides the command.
    if let Some(rest) = after("put ") {
        return put(rest, max_job_size);
    }
    if let Some(rest) = after("peek ") {
        return id_command(rest, Line::Look);
    }
    for prefix in ["peek-ready", "peek-delayed", "peek-buried"] {
        if after(prefix).is_some() {
            return Line::Inert;
        }
    }
    if let Some(rest) = after("reserve-with-timeout ") {
        return match strtol(rest) {
            Some(timeout) => Line::Reserve { timeout: Some(timeout as i32) },
            None => Line::Inert,
        };
    }
    if let Some(rest) = after("reserve-job ") {
        return id_command(rest, Line::ReserveJob);
    }
    if after("reserve").is_some() {
        return if line == b"reserve" { Line::Reserve { timeout: None } } else { Line::Inert };
    }
    if let Some(rest) = after("delete ") {
        return id_command(rest, Line::Delete);
    }
    if let Some(rest) = after("release ") {
        return (|| {
            let (id, rest) = read_u64(rest)?;
            let (pri, rest) = read_u32(rest)?;
            let (delay, rest) = read_u32(rest)?;
            rest.is_empty().then_some(Line::Release { id, pri, delay })
        })()
        .unwrap_or(Line::Inert);
    }
    if let Some(rest) = after("bury ") {
        return (|| {
            let (id, rest) = read_u64(rest)?;
            let (pri, rest) = read_u32(rest)?;
            rest.is_empty().then_some(Line::Bury { id, pri })
        })()
        .unwrap_or(Line::Inert);
    }
    if let Some(rest) = after("kick ") {
        return match strtoul(rest) {
            Some(bound) => Line::Kick(bound as u32),
            None => Line::Inert,
        };
    }
    if let Some(rest) = after("kick-job ") {
        return id_command(rest, Line::KickJob);
    }
    if let Some(rest) = after("touch ") {
        return id_command(rest, Line::Touch);
    }
    if let Some(rest) = after("stats-job ") {
        return id_command(rest, Line::Look);
    }
    for prefix in ["stats-tube ", "stats"] {
        if after(prefix).is_some() {
            return Line::Inert;
        }
    }
    type Make = fn(String) -> Line;
    for (prefix, make) in [("use ", Line::Use as Make), ("watch ", Line::Watch), ("ignore ", Line::Ignore)] {
        if let Some(name) = after(prefix) {
            return if is_valid_tube(name) { make(String::from_utf8_lossy(name).into_owned()) } else { Line::Inert };
        }
    }
    for prefix in ["list-tubes-watched", "list-tube-used", "list-tubes"] {
        if after(prefix).is_some() {
            return Line::Inert;
        }
    }
    if after("quit").is_some() {
        return Line::Quit;
    }
    if let Some(rest) = after("pause-tube") {
        let rest = skip_spaces(rest);
        let len = rest.iter().take_while(|b| NAME_CHARS.contains(b)).count();
        if len == 0 {
            return Line::Inert;
        }
        let (name, rest) = rest.split_at(len);
        return match read_u32(rest) {
            Some((seconds, [])) if is_valid_tube(name) => {
                Line::Pause { tube: String::from_utf8_lossy(name).into_owned(), seconds }
            }
            _ => Line::Inert,
        };
    }
    Line::Inert
}

fn put(rest: &[u8], max_job_size: u32) -> Line {
    let Some((pri, rest)) = read_u32(rest) else { return Line::Inert };
    let Some((delay, rest)) = read_u32(rest) else { return Line::Inert };
    let Some((ttr, rest)) = read_u32(rest) else { return Line::Inert };
    let Some((size, rest)) = read_u32(rest) else { return Line::Inert };
    if size > max_job_size {
        return Line::TooBig { size };
    }
    if !rest.is_empty() {
        return Line::Inert;
    }
    Line::Put { pri, delay, ttr, size }
}

fn id_command(rest: &[u8], make: fn(u64) -> Line) -> Line {
    match read_u64(rest) {
        Some((id, [])) => make(id),
        _ => Line::Inert,
    }
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

/// `read_u64`: spaces, then at least one digit; the number and the rest.
fn read_u64(s: &[u8]) -> Option<(u64, &[u8])> {
    let s = skip_spaces(s);
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut value: u64 = 0;
    for &b in &s[..digits] {
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some((value, &s[digits..]))
}

fn read_u32(s: &[u8]) -> Option<(u32, &[u8])> {
    let (value, rest) = read_u64(s)?;
    Some((u32::try_from(value).ok()?, rest))
}

/// C's `isspace`.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Sign and digits as `strtol`/`strtoul` read them: (negative, magnitude,
/// digits seen); `None` when the magnitude overflows 64 bits.
fn c_number(s: &[u8]) -> Option<(bool, u128, bool)> {
    let start = s.iter().take_while(|&&b| is_c_space(b)).count();
    let mut s = &s[start..];
    let negative = s.first() == Some(&b'-');
    if matches!(s.first(), Some(b'-' | b'+')) {
        s = &s[1..];
    }
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut value: u128 = 0;
    for &b in &s[..digits] {
        value = value * 10 + u128::from(b - b'0');
        if value > u128::from(u64::MAX) + 1 {
            return None;
        }
    }
    Some((negative, value, digits > 0))
}

/// `strtol(s, _, 10)` where only `errno` is checked: no digits is 0, and
/// the value must fit a signed 64-bit long.
fn strtol(s: &[u8]) -> Option<i64> {
    let (negative, value, _) = c_number(s)?;
    if negative { (value <= 1 << 63).then(|| (value as i128).wrapping_neg() as i64) } else { i64::try_from(value).ok() }
}

/// `strtoul(s, &end, 10)` where no digits and `errno` are errors: a minus
/// sign negates modulo 2^64.
fn strtoul(s: &[u8]) -> Option<u64> {
    let (negative, value, digits) = c_number(s)?;
    if !digits || value > u128::from(u64::MAX) {
        return None;
    }
    let value = value as u64;
    Some(if negative { value.wrapping_neg() } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_beanstalkd_does() {
        let p = |s: &str| parse(s.as_bytes(), 10);
        assert_eq!(p("put 1 2 3 4"), Line::Put { pri: 1, delay: 2, ttr: 3, size: 4 });
        assert_eq!(p("put  01 2 3 4"), Line::Put { pri: 1, delay: 2, ttr: 3, size: 4 });
        assert_eq!(p("put 1 2 3 4 "), Line::Inert);
        assert_eq!(p("put 1 2 3 11 x"), Line::TooBig { size: 11 });
        assert_eq!(p("put 4294967296 2 3 4"), Line::Inert);
        assert_eq!(p("reserve-with-timeout abc"), Line::Reserve { timeout: Some(0) });
        assert_eq!(p("reserve-with-timeout 4294967295"), Line::Reserve { timeout: Some(-1) });
        assert_eq!(p("reserve-with-timeout 4294967296"), Line::Reserve { timeout: Some(0) });
        assert_eq!(p("reserve-with-timeout 99999999999999999999"), Line::Inert);
        assert_eq!(p("reserve-with-timeout -9223372036854775808"), Line::Reserve { timeout: Some(0) });
        assert_eq!(p("reserve "), Line::Inert);
        assert_eq!(p("reserve-jobs 1"), Line::Inert);
        assert_eq!(p("kick -1"), Line::Kick(u32::MAX));
        assert_eq!(p("kick 4294967297x"), Line::Kick(1));
        assert_eq!(p("kick -18446744073709551615"), Line::Kick(1));
        assert_eq!(p("kick 18446744073709551616"), Line::Inert);
        assert_eq!(p("kick x"), Line::Inert);
        assert_eq!(p("kick \t3"), Line::Kick(3));
        assert_eq!(p("delete  007"), Line::Delete(7));
        assert_eq!(p("delete 7 "), Line::Inert);
        assert_eq!(p("release 1 2 3"), Line::Release { id: 1, pri: 2, delay: 3 });
        assert_eq!(p("release 1 2"), Line::Inert);
        assert_eq!(p("use a b"), Line::Inert);
        assert_eq!(p(&format!("use {}", "a".repeat(200))), Line::Use("a".repeat(200)));
        assert_eq!(p(&format!("use {}", "a".repeat(201))), Line::Inert);
        assert_eq!(p("watch -a"), Line::Inert);
        assert_eq!(p("pause-tubefoo 5"), Line::Pause { tube: "foo".into(), seconds: 5 });
        assert_eq!(p("pause-tube   foo   5"), Line::Pause { tube: "foo".into(), seconds: 5 });
        assert_eq!(p("pause-tube -foo 5"), Line::Inert);
        assert_eq!(p("quitx"), Line::Quit);
        assert_eq!(p("stats\0"), Line::Inert);
        assert_eq!(p("peek  01"), Line::Look(1));
        assert_eq!(p("stats-job 1 "), Line::Inert);
    }
}
