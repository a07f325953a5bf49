//! What a client can ask for, once its line (and body) have been read.

use std::fmt;
use std::rc::Rc;

use super::MAX_TUBE_NAME;

/// A tube name that passed beanstalkd's rules: 1 to 200 characters from
/// `A-Z a-z 0-9 - + / ; . $ _ ( )`, not starting with `-`. Shared, so that
/// a million jobs read back from the binlog hold one copy of their tube's
/// name, and comparing two copies is a pointer comparison.
#[derive(Clone, Eq, PartialOrd, Ord)]
pub struct TubeName(Rc<str>);

impl PartialEq for TubeName {
    fn eq(&self, other: &TubeName) -> bool {
        Rc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

/// Hashes the name, consistent with equality.
impl std::hash::Hash for TubeName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl TubeName {
    /// Validates `bytes` as a whole tube name.
    pub fn new(bytes: &[u8]) -> Option<TubeName> {
        let ok = !bytes.is_empty()
            && bytes.len() <= MAX_TUBE_NAME
            && bytes[0] != b'-'
            && bytes.iter().all(|&b| is_name_byte(b));
        // All name bytes are ASCII, so this cannot fail.
        ok.then(|| TubeName(std::str::from_utf8(bytes).unwrap().into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The characters a tube name may contain.
pub fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-+/;.$_()".contains(&b)
}

impl fmt::Display for TubeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TubeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Commands counted by the `cmd-*` stats, in the order `stats` prints them,
/// followed by the two that beanstalkd counts but never prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Put,
    Peek,
    PeekReady,
    PeekDelayed,
    PeekBuried,
    Reserve,
    ReserveWithTimeout,
    Delete,
    Release,
    Use,
    Watch,
    Ignore,
    Bury,
    Kick,
    Touch,
    Stats,
    StatsJob,
    StatsTube,
    ListTubes,
    ListTubeUsed,
    ListTubesWatched,
    PauseTube,
    ReserveJob,
    KickJob,
}

impl Op {
    pub const COUNT: usize = 24;

    /// The ops `stats` reports, in its order, with their key names.
    pub const REPORTED: [(Op, &'static str); 22] = [
        (Op::Put, "cmd-put"),
        (Op::Peek, "cmd-peek"),
        (Op::PeekReady, "cmd-peek-ready"),
        (Op::PeekDelayed, "cmd-peek-delayed"),
        (Op::PeekBuried, "cmd-peek-buried"),
        (Op::Reserve, "cmd-reserve"),
        (Op::ReserveWithTimeout, "cmd-reserve-with-timeout"),
        (Op::Delete, "cmd-delete"),
        (Op::Release, "cmd-release"),
        (Op::Use, "cmd-use"),
        (Op::Watch, "cmd-watch"),
        (Op::Ignore, "cmd-ignore"),
        (Op::Bury, "cmd-bury"),
        (Op::Kick, "cmd-kick"),
        (Op::Touch, "cmd-touch"),
        (Op::Stats, "cmd-stats"),
        (Op::StatsJob, "cmd-stats-job"),
        (Op::StatsTube, "cmd-stats-tube"),
        (Op::ListTubes, "cmd-list-tubes"),
        (Op::ListTubeUsed, "cmd-list-tube-used"),
        (Op::ListTubesWatched, "cmd-list-tubes-watched"),
        (Op::PauseTube, "cmd-pause-tube"),
    ];
}

/// A job as `put` delivers it. Durations are whole seconds, as on the wire.
/// The body is a `B`: by default its own shared allocation; on the server's
/// path, the bytes where they arrived, when they arrived whole
/// ([`crate::protocol::BodyBytes`], see [`crate::protocol::Event::WholePut`]), so that the
/// engine copies them once, into its store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob<B = Rc<[u8]>> {
    pub pri: u32,
    pub delay: u32,
    pub ttr: u32,
    /// The body without its trailing CRLF.
    pub body: B,
}

impl<B> NewJob<B> {
    /// The same job with its body turned into a `C`.
    pub fn map_body<C>(self, f: impl FnOnce(B) -> C) -> NewJob<C> {
        let NewJob { pri, delay, ttr, body } = self;
        NewJob { pri, delay, ttr, body: f(body) }
    }
}

/// A command of the protocol, whole and well-formed, for the engine: the
/// protocol's command set but `quit`, which only closes the connection.
/// How a command arrives (a `put` line, then its body; a line the engine
/// never sees because it is malformed) is the decoder's business: see
/// [`crate::protocol::Event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A `put` with its whole body. Its line was announced to the engine
    /// first ([`crate::protocol::Event::PutStarted`]), which is when
    /// beanstalkd assigns the job's id.
    Put(NewJob),
    Use(TubeName),
    Reserve,
    /// `None` waits forever, as `reserve` does.
    ReserveWithTimeout(Option<u32>),
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
    Touch(u64),
    Watch(TubeName),
    Ignore(TubeName),
    Peek(u64),
    PeekReady,
    PeekDelayed,
    PeekBuried,
    Kick(u32),
    KickJob(u64),
    Stats,
    StatsJob(u64),
    StatsTube(TubeName),
    ListTubes,
    ListTubeUsed,
    ListTubesWatched,
    PauseTube {
        tube: TubeName,
        delay: u32,
    },
}
