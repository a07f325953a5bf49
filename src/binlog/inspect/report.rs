//! What `sprout binlog inspect` found: the facts, which the text report
//! (`text`) and the JSON document (`--json`, serde) both show.
//!
//! The JSON document is this module's types as they are, field names
//! snake_case; [`SCHEMA`] changes when a field changes meaning or goes
//! (new fields may come without it).

use std::collections::BTreeMap;

use serde::Serialize;

/// The version of the JSON document's shape (its `schema` field).
pub const SCHEMA: u32 = 1;

/// Everything `inspect` found in one directory.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The directory, as given.
    pub dir: String,
    /// Whose files it holds.
    pub format: DirFormat,
    /// No damage: what the exit status 0 says (a torn tail of the newest
    /// file is no damage).
    pub clean: bool,
    /// Every `binlog.N` read, by N.
    pub files: Vec<FileReport>,
    /// The jobs a server would bring back from the files.
    pub live: Live,
    /// The first job id sprout would hand out after reading the directory
    /// (for beanstalkd's files: after taking them over). No id below it is
    /// handed out again.
    pub next_id: u64,
    /// Disk use, and what compaction could give back.
    pub space: Space,
    /// Every damage found, in any file or in the directory as a whole.
    pub damage: Vec<Damage>,
    /// What is worth knowing and is no damage: files gone while read,
    /// files of zeros, a takeover's directories. (A torn tail is in its
    /// file's `torn_tail`.)
    pub notes: Vec<String>,
}

/// Whose files a directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DirFormat {
    /// sprout's files (spares included) and no beanstalkd file.
    Sprout,
    /// beanstalkd's files and no sprout file: `sprout -b DIR` takes them
    /// over.
    Beanstalkd,
    /// Both: no server starts on it (damage).
    Mixed,
    /// No file of either: empty, or only files of zeros or unknown ones.
    None,
}

/// One `binlog.N`.
#[derive(Clone, Debug, Serialize)]
pub struct FileReport {
    /// `binlog.N`.
    pub name: String,
    /// N.
    pub seq: u64,
    /// What the file is.
    pub format: FileFormat,
    /// Its length in bytes, as read.
    pub size: u64,
    /// Its valid records, by kind: `job`, `state`, `delete`, `padding` in
    /// sprout's files; `full`, `short`, `delete` in beanstalkd's (a short
    /// record saying deleted is a `delete`); no key in other files.
    pub records: RecordCounts,
    /// Where the valid records end: the offset a server would append at,
    /// or the offset of a torn tail, or of the first bad record after which
    /// nothing valid follows.
    pub records_end: u64,
    /// A torn record at the end of the file's records: no damage.
    pub torn_tail: Option<Spot>,
    /// The file's damage, by offset.
    pub damage: Vec<Spot>,
}

/// What a `binlog.N` is, from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// sprout's format, version 1 (magic `SPROUTWL`), with records (or a
    /// damaged header), written by sprout before format 2.
    SproutV1,
    /// sprout's format, version 2, with records.
    SproutV2,
    /// A sprout file with a header and no record yet: made ahead by a
    /// server, which writes into it when the current file fills.
    Spare,
    /// beanstalkd 1.5 to 1.12.
    BeanstalkdV7,
    /// beanstalkd before 1.5.
    BeanstalkdV5,
    /// Zeros, or no bytes: a file whose making a crash cut short (or one a
    /// server is making right now).
    Empty,
    /// Neither format: damage.
    Unknown,
}

impl FileFormat {
    /// A short name for the text report.
    pub fn describe(self) -> &'static str {
        match self {
            FileFormat::SproutV1 => "sprout v1",
            FileFormat::SproutV2 => "sprout v2",
            FileFormat::Spare => "spare",
            FileFormat::BeanstalkdV7 => "beanstalkd v7",
            FileFormat::BeanstalkdV5 => "beanstalkd v5",
            FileFormat::Empty => "empty",
            FileFormat::Unknown => "unknown",
        }
    }
}

/// A file's valid records, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RecordCounts {
    /// In sprout's format.
    Sprout {
        /// Job records (put, or compaction's rewrites).
        job: u64,
        /// State records (release, bury, kick, reserve-job).
        state: u64,
        /// Deletes.
        delete: u64,
        /// Padding written over skipped damage.
        padding: u64,
    },
    /// In beanstalkd's format.
    Beanstalkd {
        /// Full records: name, job record and body (put, compaction).
        full: u64,
        /// Short records that change a job's state.
        short: u64,
        /// Short records that delete a job.
        delete: u64,
    },
    /// Not a format with records.
    None {},
}

impl RecordCounts {
    /// Records of every kind.
    pub fn total(&self) -> u64 {
        match *self {
            RecordCounts::Sprout { job, state, delete, padding } => job + state + delete + padding,
            RecordCounts::Beanstalkd { full, short, delete } => full + short + delete,
            RecordCounts::None {} => 0,
        }
    }
}

/// A place in a file, and what is there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Spot {
    /// Bytes from the start of the file.
    pub offset: u64,
    /// What is wrong there, or what it probably is.
    pub reason: String,
}

/// Damage: what makes the exit status 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Damage {
    /// `binlog.N`, or `None` for the directory as a whole.
    pub file: Option<String>,
    /// Where in the file.
    pub offset: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

/// Jobs by state. A job logged reserved comes back ready (its worker is
/// gone): it counts in `ready`, and in `reserved` too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    /// Every job.
    pub total: u64,
    /// Ready, logged reserved ones included.
    pub ready: u64,
    /// Delayed (a delay that ran out while no server ran makes it ready at
    /// the start).
    pub delayed: u64,
    /// Buried.
    pub buried: u64,
    /// Of the ready ones, those whose last record says reserved.
    pub reserved: u64,
}

/// A job's state as `inspect` counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Ready; `reserved` if logged reserved.
    Ready {
        /// The last record said reserved.
        reserved: bool,
    },
    /// Delayed.
    Delayed,
    /// Buried.
    Buried,
}

impl StateCounts {
    fn add(&mut self, state: JobState) {
        self.total += 1;
        match state {
            JobState::Ready { reserved } => {
                self.ready += 1;
                self.reserved += u64::from(reserved);
            }
            JobState::Delayed => self.delayed += 1,
            JobState::Buried => self.buried += 1,
        }
    }
}

/// The live jobs: in all, and per tube.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Live {
    /// Every live job, by state.
    #[serde(flatten)]
    pub all: StateCounts,
    /// Per tube, by name.
    pub tubes: BTreeMap<String, StateCounts>,
}

impl Live {
    /// Counts one job.
    pub fn add(&mut self, tube: &str, state: JobState) {
        self.all.add(state);
        match self.tubes.get_mut(tube) {
            Some(counts) => counts.add(state),
            None => {
                let mut counts = StateCounts::default();
                counts.add(state);
                self.tubes.insert(tube.to_string(), counts);
            }
        }
    }
}

/// Disk use and what compaction could give back, in bytes:
/// `reclaimable_bytes = files_bytes - live_records_bytes - headroom_bytes`,
/// at least 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Space {
    /// The `binlog.N` files' sizes, added up.
    pub files_bytes: u64,
    /// What a log holding only the live jobs would need: one file header,
    /// and one full record per live job in its format (what compaction
    /// writes).
    pub live_records_bytes: u64,
    /// One file of room a server keeps ahead (its spare): the size of the
    /// newest file of either format.
    pub headroom_bytes: u64,
    /// What compaction could give back, about.
    pub reclaimable_bytes: u64,
}

impl Space {
    /// The figures, `reclaimable_bytes` computed.
    pub fn new(files_bytes: u64, live_records_bytes: u64, headroom_bytes: u64) -> Space {
        let reclaimable_bytes = files_bytes.saturating_sub(live_records_bytes + headroom_bytes);
        Space { files_bytes, live_records_bytes, headroom_bytes, reclaimable_bytes }
    }
}
