//! Every answer the server sends, and its exact bytes.

use std::rc::Rc;

use super::TubeName;

/// One reply. A job's body is a `B` ([`JobBody`]): by default its own
/// shared allocation; on its way from the engine to a connection's output,
/// the bytes where the engine keeps them ([`BodyBytes`]), so that a reserve
/// copies its body once, into the output, and allocates nothing for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply<B = Rc<[u8]>> {
    Inserted(u64),
    /// A put or release that could not be queued (beanstalkd buries on OOM).
    BuriedId(u64),
    Buried,
    ExpectedCrlf,
    JobTooBig,
    Draining,
    Using(TubeName),
    Reserved {
        id: u64,
        body: B,
    },
    DeadlineSoon,
    TimedOut,
    Deleted,
    NotFound,
    Released,
    Touched,
    Watching(usize),
    NotIgnored,
    Found {
        id: u64,
        body: B,
    },
    Kicked(u32),
    /// `kick-job`'s answer, which carries no count.
    KickedOne,
    /// A YAML document (stats, lists), without its trailing CRLF.
    Ok(Vec<u8>),
    Paused,
    OutOfMemory,
    InternalError,
    BadFormat,
    UnknownCommand,
}

/// Where a reply's bytes go. A job's body is offered apart, as the job's
/// own shared allocation, so that a sink may send it from there (with
/// `writev`) instead of copying it.
pub trait ReplySink {
    fn extend_from_slice(&mut self, bytes: &[u8]);

    /// A job's body, in its place among the reply's bytes.
    fn push_body(&mut self, body: &Rc<[u8]>) {
        self.extend_from_slice(body);
    }
}

impl ReplySink for Vec<u8> {
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        Vec::extend_from_slice(self, bytes);
    }
}

/// What a reply's job body must offer to be written.
pub trait JobBody {
    fn byte_len(&self) -> usize;

    /// Appends the body's bytes to `out`, in their place among the reply's.
    fn push_to(&self, out: &mut impl ReplySink);
}

impl JobBody for Rc<[u8]> {
    fn byte_len(&self) -> usize {
        self.len()
    }

    fn push_to(&self, out: &mut impl ReplySink) {
        out.push_body(self);
    }
}

/// A job's body lent for a moment: the bytes themselves, or a shared
/// allocation. A reply lends its body from the engine's store until it is
/// written (a small one as the bytes, a large one as its allocation, which
/// a sink may send from instead of copying); a put lends its body from the
/// read buffer until the engine stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyBytes<'a> {
    Borrowed(&'a [u8]),
    Shared(Rc<[u8]>),
}

impl BodyBytes<'_> {
    /// The body's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            BodyBytes::Borrowed(bytes) => bytes,
            BodyBytes::Shared(body) => body,
        }
    }

    /// The body as a shared allocation of its own: a borrowed one copied.
    pub fn into_shared(self) -> Rc<[u8]> {
        match self {
            BodyBytes::Borrowed(bytes) => Rc::from(bytes),
            BodyBytes::Shared(body) => body,
        }
    }
}

impl JobBody for BodyBytes<'_> {
    fn byte_len(&self) -> usize {
        match self {
            BodyBytes::Borrowed(bytes) => bytes.len(),
            BodyBytes::Shared(body) => body.len(),
        }
    }

    fn push_to(&self, out: &mut impl ReplySink) {
        match self {
            BodyBytes::Borrowed(bytes) => out.extend_from_slice(bytes),
            BodyBytes::Shared(body) => out.push_body(body),
        }
    }
}

impl<B> Reply<B> {
    /// The same reply with its job body, if it has one, turned into a `C`.
    /// Inlined: on the server's path every reply goes through it, and most
    /// have no body (out of line, it took 1.5% of a put's time).
    #[inline]
    pub fn map_body<C>(self, f: impl FnOnce(B) -> C) -> Reply<C> {
        match self {
            Reply::Reserved { id, body } => Reply::Reserved { id, body: f(body) },
            Reply::Found { id, body } => Reply::Found { id, body: f(body) },
            Reply::Inserted(id) => Reply::Inserted(id),
            Reply::BuriedId(id) => Reply::BuriedId(id),
            Reply::Buried => Reply::Buried,
            Reply::ExpectedCrlf => Reply::ExpectedCrlf,
            Reply::JobTooBig => Reply::JobTooBig,
            Reply::Draining => Reply::Draining,
            Reply::Using(tube) => Reply::Using(tube),
            Reply::DeadlineSoon => Reply::DeadlineSoon,
            Reply::TimedOut => Reply::TimedOut,
            Reply::Deleted => Reply::Deleted,
            Reply::NotFound => Reply::NotFound,
            Reply::Released => Reply::Released,
            Reply::Touched => Reply::Touched,
            Reply::Watching(n) => Reply::Watching(n),
            Reply::NotIgnored => Reply::NotIgnored,
            Reply::Kicked(n) => Reply::Kicked(n),
            Reply::KickedOne => Reply::KickedOne,
            Reply::Ok(yaml) => Reply::Ok(yaml),
            Reply::Paused => Reply::Paused,
            Reply::OutOfMemory => Reply::OutOfMemory,
            Reply::InternalError => Reply::InternalError,
            Reply::BadFormat => Reply::BadFormat,
            Reply::UnknownCommand => Reply::UnknownCommand,
        }
    }
}

impl<B: JobBody> Reply<B> {
    /// Appends the reply's bytes, CRLFs included, to `out`.
    pub fn write_to(&self, out: &mut impl ReplySink) {
        let word: &[u8] = match self {
            Reply::Inserted(id) => return write_line(out, b"INSERTED", &[*id]),
            Reply::BuriedId(id) => return write_line(out, b"BURIED", &[*id]),
            Reply::Watching(n) => return write_line(out, b"WATCHING", &[*n as u64]),
            Reply::Kicked(n) => return write_line(out, b"KICKED", &[u64::from(*n)]),
            Reply::Reserved { id, body } => return write_job(out, b"RESERVED", *id, body),
            Reply::Found { id, body } => return write_job(out, b"FOUND", *id, body),
            Reply::Using(tube) => {
                out.extend_from_slice(b"USING ");
                out.extend_from_slice(tube.as_str().as_bytes());
                out.extend_from_slice(b"\r\n");
                return;
            }
            Reply::Ok(yaml) => {
                write_line(out, b"OK", &[yaml.len() as u64]);
                out.extend_from_slice(yaml);
                out.extend_from_slice(b"\r\n");
                return;
            }
            Reply::Buried => b"BURIED",
            Reply::ExpectedCrlf => b"EXPECTED_CRLF",
            Reply::JobTooBig => b"JOB_TOO_BIG",
            Reply::Draining => b"DRAINING",
            Reply::DeadlineSoon => b"DEADLINE_SOON",
            Reply::TimedOut => b"TIMED_OUT",
            Reply::Deleted => b"DELETED",
            Reply::NotFound => b"NOT_FOUND",
            Reply::Released => b"RELEASED",
            Reply::Touched => b"TOUCHED",
            Reply::NotIgnored => b"NOT_IGNORED",
            Reply::KickedOne => b"KICKED",
            Reply::Paused => b"PAUSED",
            Reply::OutOfMemory => b"OUT_OF_MEMORY",
            Reply::InternalError => b"INTERNAL_ERROR",
            Reply::BadFormat => b"BAD_FORMAT",
            Reply::UnknownCommand => b"UNKNOWN_COMMAND",
        };
        out.extend_from_slice(word);
        out.extend_from_slice(b"\r\n");
    }
}

impl Reply {
    /// The reply as bytes (tests and logs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

/// `WORD n1 n2...` and CRLF, assembled on the stack and appended at once.
/// Numbers are formatted by hand: `write!` costs more than the rest of an
/// `INSERTED` reply, and most replies are those. Inlined, so that each
/// reply's word is a constant: out of line, copying the word and clearing
/// the rest of the line were two calls into libc for every reply.
#[inline]
fn write_line(out: &mut impl ReplySink, word: &[u8], numbers: &[u64]) {
    // Room for the longest word and two 20-digit numbers.
    let mut line = [0u8; 64];
    let mut len = word.len();
    line[..len].copy_from_slice(word);
    for &n in numbers {
        line[len] = b' ';
        len += 1 + write_decimal(&mut line[len + 1..], n);
    }
    line[len..len + 2].copy_from_slice(b"\r\n");
    out.extend_from_slice(&line[..len + 2]);
}

fn write_job(out: &mut impl ReplySink, word: &[u8], id: u64, body: &impl JobBody) {
    write_line(out, word, &[id, body.byte_len() as u64]);
    body.push_to(out);
    out.extend_from_slice(b"\r\n");
}

/// "00" to "99", for [`write_decimal`].
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes `n` in decimal at the start of `buf` and returns its length. Two
/// digits at a time, from the right: half the divisions of one at a time.
fn write_decimal(buf: &mut [u8], mut n: u64) -> usize {
    let len = n.checked_ilog10().unwrap_or(0) as usize + 1;
    let mut end = len;
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        buf[end - 2..end].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        end -= 2;
    }
    if n >= 10 {
        let pair = n as usize * 2;
        buf[end - 2..end].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        buf[end - 1] = b'0' + n as u8;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_as_format_writes_them() {
        let powers = (0..20).map(|e| 10u64.pow(e));
        let edges = powers.flat_map(|p| [p - 1, p, p + 1]).chain([u64::MAX, 12_345_678_901, 1_000_007]);
        for n in edges {
            let mut buf = [0; 20];
            let len = write_decimal(&mut buf, n);
            assert_eq!(&buf[..len], n.to_string().as_bytes(), "{n}");
        }
    }

    #[test]
    fn bytes() {
        assert_eq!(Reply::Inserted(7).to_bytes(), b"INSERTED 7\r\n");
        assert_eq!(Reply::KickedOne.to_bytes(), b"KICKED\r\n");
        assert_eq!(Reply::Kicked(3).to_bytes(), b"KICKED 3\r\n");
        let body: Rc<[u8]> = Rc::from(&b"hi"[..]);
        assert_eq!(Reply::Reserved { id: 1, body }.to_bytes(), b"RESERVED 1 2\r\nhi\r\n");
        let mut lent = Vec::new();
        Reply::Found { id: 1, body: BodyBytes::Borrowed(b"hi") }.write_to(&mut lent);
        assert_eq!(lent, b"FOUND 1 2\r\nhi\r\n");
        assert_eq!(Reply::Ok(b"---\n- default\n".to_vec()).to_bytes(), b"OK 14\r\n---\n- default\n\r\n");
        assert_eq!(Reply::Using(TubeName::new(b"a-b").unwrap()).to_bytes(), b"USING a-b\r\n");
        assert_eq!(Reply::Watching(12).to_bytes(), b"WATCHING 12\r\n");
    }

    #[test]
    fn numbers_as_write_formats_them() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
            assert_eq!(Reply::Inserted(n).to_bytes(), format!("INSERTED {n}\r\n").into_bytes());
            assert_eq!(Reply::BuriedId(n).to_bytes(), format!("BURIED {n}\r\n").into_bytes());
        }
    }
}
