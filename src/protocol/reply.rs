//! Every answer the server sends, and its exact bytes.

use std::rc::Rc;

use super::TubeName;

/// One reply. Bodies are shared with the job they came from, so replying
/// never copies a job until its bytes reach the socket buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
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
        body: Rc<[u8]>,
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
        body: Rc<[u8]>,
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

impl Reply {
    /// Appends the reply's bytes, CRLFs included, to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let word: &[u8] = match self {
            Reply::Inserted(id) => return write_line(out, format_args!("INSERTED {id}")),
            Reply::BuriedId(id) => return write_line(out, format_args!("BURIED {id}")),
            Reply::Using(tube) => return write_line(out, format_args!("USING {tube}")),
            Reply::Watching(n) => return write_line(out, format_args!("WATCHING {n}")),
            Reply::Kicked(n) => return write_line(out, format_args!("KICKED {n}")),
            Reply::Reserved { id, body } => return write_job(out, "RESERVED", *id, body),
            Reply::Found { id, body } => return write_job(out, "FOUND", *id, body),
            Reply::Ok(yaml) => {
                let _ = write!(out, "OK {}\r\n", yaml.len());
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

    /// The reply as bytes (tests and logs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

fn write_line(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = out.write_fmt(args);
    out.extend_from_slice(b"\r\n");
}

fn write_job(out: &mut Vec<u8>, word: &str, id: u64, body: &[u8]) {
    write_line(out, format_args!("{word} {id} {}", body.len()));
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(Reply::Inserted(7).to_bytes(), b"INSERTED 7\r\n");
        assert_eq!(Reply::KickedOne.to_bytes(), b"KICKED\r\n");
        assert_eq!(Reply::Kicked(3).to_bytes(), b"KICKED 3\r\n");
        let body: Rc<[u8]> = Rc::from(&b"hi"[..]);
        assert_eq!(Reply::Reserved { id: 1, body }.to_bytes(), b"RESERVED 1 2\r\nhi\r\n");
        assert_eq!(Reply::Ok(b"---\n- default\n".to_vec()).to_bytes(), b"OK 14\r\n---\n- default\n\r\n");
    }
}
