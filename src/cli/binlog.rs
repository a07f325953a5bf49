//! `sprout binlog ...`: the binlog tool, for a directory no server runs on
//! (or, for `inspect`, one a server is using: it only reads).
//!
//! - `sprout binlog export --beanstalkd SRC DEST`: sprout's live jobs in SRC
//!   as beanstalkd version-7 files in DEST, the way back to beanstalkd.
//! - `sprout binlog inspect DIR [--json]`: what DIR holds (sprout's files or
//!   beanstalkd's), and any damage, in the exit status too.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::binlog::export::{self, ExportConfig};
use crate::binlog::inspect;
use crate::protocol::DEFAULT_MAX_JOB_SIZE;
use crate::settings::DEFAULT_BINLOG_SIZE;

/// Exit status of a tool run that failed (a damaged log, a refusal).
const EXIT_FAILED: u8 = 1;

/// Exit status for bad usage, as most tools use: 1 stays "the log is
/// damaged" or "the export did not happen", for cron and monitoring checks.
const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(name = "sprout binlog", about = "Look into a binlog directory, or take sprout's jobs back to beanstalkd.")]
struct BinlogArgs {
    #[command(subcommand)]
    command: BinlogCommand,
}

#[derive(Subcommand, Debug)]
enum BinlogCommand {
    /// Write the live jobs of sprout's binlog in SRC as beanstalkd version-7 binlog files in DEST (new or
    /// empty), which beanstalkd replays when started with -b DEST. Stop sprout first.
    Export {
        /// The format to write: beanstalkd's (the only one)
        #[arg(long, required = true)]
        beanstalkd: bool,
        /// sprout's binlog directory (its -b)
        src: PathBuf,
        /// Where to write beanstalkd's files
        dest: PathBuf,
        /// The -z beanstalkd will run with (default is 65535): a job larger than it minus 2 would be
        /// dropped by beanstalkd at replay, so each is written to a file of its own and named
        #[arg(short = 'z', long = "max-job-size", value_name = "BYTES", default_value_t = DEFAULT_MAX_JOB_SIZE, hide_default_value = true)]
        max_job_size: u32,
        /// The size of each file written (default is 10485760), as beanstalkd's -s
        #[arg(short = 's', long = "binlog-size", value_name = "BYTES", default_value_t = DEFAULT_BINLOG_SIZE, hide_default_value = true)]
        file_size: u64,
        /// Export what can be read of a damaged log, dropping what cannot (each dropped job is logged)
        #[arg(long = "skip-damaged-records")]
        skip_damaged_records: bool,
    },
    /// Report what a binlog directory holds (sprout's files or beanstalkd's), and any damage
    ///
    /// Each file and its records, the live jobs per tube and state, the bytes compaction could give back, the
    /// next job id, and any damage with file and offset. Safe on the directory of a running server: it only
    /// reads (no lock, no repair).
    #[command(after_long_help = INSPECT_HELP)]
    Inspect {
        /// The binlog directory (a server's -b)
        dir: PathBuf,
        /// Print the report as one JSON document (fields below, under --help)
        #[arg(long)]
        json: bool,
    },
}

/// `sprout binlog inspect --help`, after the flags.
const INSPECT_HELP: &str = "\
Exit status:
  0  no damage (a torn tail of the newest file with records is no damage: a write in progress, or a crash
     in the middle of one, never acknowledged; it is noted)
  1  damage: a bad record with valid data after it (in its file or, for sprout's files, in a later one), a
     bad file header, a file of neither format, or both formats in one directory; sprout would refuse to
     start (or take over) without --skip-damaged-records
  2  bad usage, or the directory or a file in it cannot be read

Live jobs are those a start would bring back (for beanstalkd's files: a takeover), by the same rules;
with damage, those --skip-damaged-records would keep. A job logged reserved comes back ready (its worker
is gone): it counts as ready, and as reserved too.

Space: the files take Y bytes (their sizes added up); a log holding only the live jobs would need X bytes
of records (a file header, and one full record per live job, in the directory's format: what compaction
writes); a server keeps one file of headroom, H (the size of the newest file). Compaction could give back
about Y - X - H bytes (0 if that is negative).

JSON (--json), field names as shown; \"schema\" changes if a field changes meaning or goes:
  schema       1
  dir          the directory, as given
  format       \"sprout\", \"beanstalkd\", \"mixed\" or \"none\"
  clean        true when the exit status is 0
  files        one object per binlog.N, by N:
    name, seq      binlog.N, and N
    format         \"sprout_v1\", \"spare\" (a header, no record yet), \"beanstalkd_v7\", \"beanstalkd_v5\",
                   \"empty\" (zeros), \"unknown\"
    size           bytes
    records        by kind: sprout's {job, state, delete, padding}; beanstalkd's {full, short, delete}; else {}
    records_end    the offset where the valid records end
    torn_tail      null, or {offset, reason}: no damage
    damage         [{offset, reason}]
  live         {total, ready, delayed, buried, reserved, tubes: {NAME: {total, ready, delayed, buried,
               reserved}}}
  next_id      the first job id sprout would hand out
  space        {files_bytes, live_records_bytes, headroom_bytes, reclaimable_bytes}
  damage       [{file, offset, reason}], file and offset null for the directory as a whole
  notes        [text]: what is no damage but worth knowing (a file gone while read, a file of zeros, a
               takeover's directories)";

/// Runs `sprout binlog ARGS...` (`args` starts with `binlog`). Warnings
/// (a torn tail, a dropped record) go to stderr; `RUST_LOG` can say more.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let _ = env_logger::Builder::new().filter_level(log::LevelFilter::Warn).parse_default_env().try_init();
    let args: Vec<OsString> =
        std::iter::once(OsString::from("sprout binlog")).chain(args.into_iter().skip(1)).collect();
    let args = match BinlogArgs::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(EXIT_USAGE),
            };
        }
    };
    match args.command {
        BinlogCommand::Export { beanstalkd: _, src, dest, max_job_size, file_size, skip_damaged_records } => {
            let config = ExportConfig { src, dest, max_job_size, file_size, skip_damaged: skip_damaged_records };
            match export::to_beanstalkd(&config) {
                Ok(summary) => {
                    println!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sprout binlog export: {e}");
                    ExitCode::from(EXIT_FAILED)
                }
            }
        }
        BinlogCommand::Inspect { dir, json } => run_inspect(&dir, json),
    }
}

/// `sprout binlog inspect DIR [--json]`: the report on stdout, the exit
/// status from what it found.
fn run_inspect(dir: &std::path::Path, json: bool) -> ExitCode {
    let report = match inspect::inspect(dir) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("sprout binlog inspect: {e}");
            return ExitCode::from(inspect::EXIT_UNREADABLE);
        }
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("sprout binlog inspect: cannot write the report as JSON: {e}");
                return ExitCode::from(inspect::EXIT_UNREADABLE);
            }
        }
    } else {
        print!("{report}");
    }
    ExitCode::from(report.exit_status())
}
