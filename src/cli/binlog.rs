//! `sprout binlog ...`: the binlog tool, for a directory no server runs on
//! (or, for `inspect`, one a server is using: it only reads).
//!
//! - `sprout binlog export --beanstalkd SRC DEST`: sprout's live jobs in SRC
//!   as beanstalkd version-7 files in DEST, the way back to beanstalkd.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::binlog::export::{self, ExportConfig};
use crate::protocol::DEFAULT_MAX_JOB_SIZE;
use crate::settings::DEFAULT_BINLOG_SIZE;

/// Exit status of a tool run that failed (a damaged log, a refusal).
const EXIT_FAILED: u8 = 1;

/// Exit status for bad usage, as the server's.
const EXIT_USAGE: u8 = 5;

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
}

/// Runs `sprout binlog ARGS...` (`args` starts with `binlog`). Warnings
/// (a torn tail, a dropped record) go to stderr; `RUST_LOG` can say more.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let _ = env_logger::Builder::new().filter_level(log::LevelFilter::Warn).parse_default_env().try_init();
    let args = std::iter::once(OsString::from("sprout binlog")).chain(args.into_iter().skip(1));
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
    }
}
