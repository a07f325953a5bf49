//! The command line: beanstalkd's flags, names and defaults, plus long
//! forms, turned into [`Config`]; and `sprout binlog ...`, the binlog tool
//! ([`binlog`]). The only module that knows about `clap`.

pub mod binlog;

use std::path::PathBuf;

use clap::{ArgAction, Parser};

use crate::metrics::DEFAULT_TUBE_CAP;
use crate::protocol::{DEFAULT_MAX_JOB_SIZE, MAX_JOB_SIZE_LIMIT};
use crate::settings::{Config, DEFAULT_BINLOG_SIZE, DEFAULT_FSYNC_MS, DEFAULT_PORT, FsyncPolicy, ListenAddr};

/// The flags as given. Help texts say each default in beanstalkd's words
/// ("(default is ...)"), so clap's own `[default: ...]` is hidden.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "sprout",
    about = "A drop-in replacement for beanstalkd: same protocol, same flags.",
    disable_help_flag = true,
    disable_version_flag = true,
    // As with beanstalkd's getopt, a repeated flag's last value wins.
    args_override_self = true
)]
pub struct Args {
    /// Write-ahead log directory
    #[arg(short = 'b', long = "binlog-dir", value_name = "DIR")]
    pub binlog_dir: Option<PathBuf>,

    /// fsync at most once every MS milliseconds (default is 50ms); use -f0 for "always fsync"
    #[arg(short = 'f', long = "fsync-ms", value_name = "MS", value_parser = parse_size, overrides_with = "never_fsync")]
    pub fsync_ms: Option<u64>,

    /// Never fsync
    #[arg(short = 'F', long = "never-fsync", overrides_with = "fsync_ms")]
    pub never_fsync: bool,

    /// Listen on address (default is 0.0.0.0); unix:PATH for a UNIX socket
    #[arg(short = 'l', long = "listen", value_name = "ADDR", default_value = "0.0.0.0", hide_default_value = true)]
    pub listen: String,

    /// Listen on port (default is 11300)
    #[arg(short = 'p', long = "port", value_name = "PORT", default_value_t = DEFAULT_PORT, hide_default_value = true)]
    pub port: u16,

    /// On startup, drop binlog records that fail their checksum (each dropped
    /// job is logged) instead of refusing to start
    #[arg(long = "skip-damaged-records")]
    pub skip_damaged_records: bool,

    /// Become user and group
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,

    /// Set the maximum job size in bytes (default is 65535); max allowed is 1073741824 bytes
    #[arg(short = 'z', long = "max-job-size", value_name = "BYTES", value_parser = parse_size, default_value_t = u64::from(DEFAULT_MAX_JOB_SIZE), hide_default_value = true)]
    pub max_job_size: u64,

    /// Set the size of each write-ahead log file (default is 10485760); will be rounded up to a multiple of 4096 bytes
    #[arg(short = 's', long = "binlog-size", value_name = "BYTES", value_parser = parse_size, default_value_t = DEFAULT_BINLOG_SIZE, hide_default_value = true)]
    pub binlog_size: u64,

    /// Removed in beanstalkd (the binlog is always compacted); accepted and ignored
    #[arg(short = 'c', hide = true, action = ArgAction::SetTrue)]
    pub removed_c: bool,

    /// Removed in beanstalkd (the binlog is always compacted); accepted and ignored
    #[arg(short = 'n', hide = true, action = ArgAction::SetTrue)]
    pub removed_n: bool,

    /// Serve metrics over HTTP at ADDR:PORT (GET /metrics, Prometheus text format; a status page at GET /); off by default
    #[arg(long = "metrics", value_name = "ADDR:PORT", value_parser = parse_metrics_addr)]
    pub metrics: Option<ListenAddr>,

    /// Tubes with metrics series of their own; the others are counted together as tube="[other]" (default is 100)
    #[arg(long = "metrics-tubes", value_name = "N", value_parser = parse_size, default_value_t = DEFAULT_TUBE_CAP as u64, hide_default_value = true)]
    pub metrics_tubes: u64,

    /// Show version information
    #[arg(short = 'v', long = "version", action = ArgAction::SetTrue)]
    pub version: bool,

    /// Increase verbosity (repeatable)
    #[arg(short = 'V', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,

    /// Show this help
    #[arg(short = 'h', long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
}

impl Args {
    /// The short form (`-z`) of the flag a clap error is about, if any, so
    /// messages name flags the way beanstalkd users write them.
    pub fn short_flag_in(error: &clap::Error) -> Option<String> {
        use clap::CommandFactory;
        let clap::error::ContextValue::String(arg) = error.get(clap::error::ContextKind::InvalidArg)? else {
            return None;
        };
        let long = arg.trim_start_matches('-').split([' ', '=']).next()?;
        Args::command()
            .get_arguments()
            .find(|a| a.get_long() == Some(long) || a.get_short().map(String::from).as_deref() == Some(long))
            .and_then(|a| a.get_short())
            .map(|c| format!("-{c}"))
    }

    /// Turns flags into a config, with the warnings beanstalkd would print.
    pub fn into_config(self) -> (Config, Vec<String>) {
        let mut warnings = Vec::new();
        if self.removed_c {
            warnings.push("-c flag was removed. binlog is always compacted.".to_string());
        }
        if self.removed_n {
            warnings.push("-n flag was removed. binlog is always compacted.".to_string());
        }
        let max_job_size = if self.max_job_size > u64::from(MAX_JOB_SIZE_LIMIT) {
            warnings.push(format!("maximum job size was set to {MAX_JOB_SIZE_LIMIT}"));
            MAX_JOB_SIZE_LIMIT
        } else {
            self.max_job_size as u32
        };
        let listen = match self.listen.strip_prefix("unix:") {
            Some(path) => ListenAddr::Unix(PathBuf::from(path)),
            None => ListenAddr::Tcp { host: self.listen.clone(), port: self.port },
        };
        let fsync = match (self.never_fsync, self.fsync_ms) {
            (true, _) => FsyncPolicy::Never,
            (false, ms) => FsyncPolicy::Every { ms: ms.unwrap_or(DEFAULT_FSYNC_MS) },
        };
        let config = Config {
            listen,
            max_job_size,
            binlog_dir: self.binlog_dir,
            binlog_size: self.binlog_size,
            fsync,
            skip_damaged_records: self.skip_damaged_records,
            user: self.user,
            verbose: self.verbose,
            metrics: self.metrics,
            metrics_tubes: usize::try_from(self.metrics_tubes).unwrap_or(usize::MAX),
        };
        (config, warnings)
    }
}

/// `--metrics`: `HOST:PORT` (`[::1]:9100` for an IPv6 address, `:9100`
/// for every address), or `unix:PATH`.
fn parse_metrics_addr(s: &str) -> Result<ListenAddr, String> {
    if let Some(path) = s.strip_prefix("unix:") {
        return if path.is_empty() {
            Err("unix: needs a path".into())
        } else {
            Ok(ListenAddr::Unix(PathBuf::from(path)))
        };
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(|| format!("{s}: expected ADDR:PORT, e.g. 127.0.0.1:9100"))?;
    let port = port.parse::<u16>().map_err(|_| format!("{s}: bad port {port:?}"))?;
    let host = match host {
        "" => "0.0.0.0",
        h => h.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(h),
    };
    Ok(ListenAddr::Tcp { host: host.to_string(), port })
}

/// beanstalkd reads sizes with `%zu` and rejects trailing characters.
fn parse_size(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid size: {s}"));
    }
    s.parse().map_err(|_| format!("invalid size: {s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let args = Args::try_parse_from(std::iter::once("sprout").chain(args.iter().copied())).unwrap();
        args.into_config().0
    }

    #[test]
    fn defaults_are_beanstalkd_s() {
        let c = parse(&[]);
        assert_eq!(c.listen, ListenAddr::Tcp { host: "0.0.0.0".into(), port: 11300 });
        assert_eq!(c.max_job_size, 65535);
        assert_eq!(c.binlog_size, 10_485_760);
        assert_eq!(c.fsync, FsyncPolicy::Every { ms: 50 });
    }

    #[test]
    fn clustered_and_attached_values() {
        let c = parse(&["-Vz100", "-p1234", "-l", "127.0.0.1"]);
        assert_eq!(c.max_job_size, 100);
        assert_eq!(c.verbose, 1);
        assert_eq!(c.listen, ListenAddr::Tcp { host: "127.0.0.1".into(), port: 1234 });
        assert_eq!(parse(&["-VV"]).verbose, 2);
    }

    #[test]
    fn repeated_flags_last_wins() {
        assert_eq!(parse(&["-z", "5", "-z", "300"]).max_job_size, 300);
    }

    #[test]
    fn errors_name_the_short_flag() {
        let e = Args::try_parse_from(["sprout", "-z"]).unwrap_err();
        assert_eq!(Args::short_flag_in(&e).as_deref(), Some("-z"));
        let e = Args::try_parse_from(["sprout", "--port", "x"]).unwrap_err();
        assert_eq!(Args::short_flag_in(&e).as_deref(), Some("-p"));
    }

    #[test]
    fn later_fsync_flag_wins() {
        assert_eq!(parse(&["-f0", "-F"]).fsync, FsyncPolicy::Never);
        assert_eq!(parse(&["-F", "-f", "7"]).fsync, FsyncPolicy::Every { ms: 7 });
    }

    #[test]
    fn max_job_size_is_clamped() {
        let args = Args::try_parse_from(["sprout", "-z", "2000000000"]).unwrap();
        let (c, warnings) = args.into_config();
        assert_eq!(c.max_job_size, MAX_JOB_SIZE_LIMIT);
        assert_eq!(warnings, ["maximum job size was set to 1073741824"]);
    }

    #[test]
    fn unix_socket_and_removed_flags() {
        assert_eq!(parse(&["-l", "unix:/tmp/x.sock"]).listen, ListenAddr::Unix("/tmp/x.sock".into()));
        let args = Args::try_parse_from(["sprout", "-c", "-n"]).unwrap();
        assert_eq!(args.into_config().1.len(), 2);
    }

    #[test]
    fn help_states_each_default_once() {
        use clap::CommandFactory;
        let help = Args::command().render_help().to_string();
        assert!(!help.contains("[default:"), "clap's default notes repeat ours:\n{help}");
        for default in ["(default is 50ms)", "(default is 0.0.0.0)", "(default is 11300)", "(default is 65535)"] {
            assert_eq!(help.matches(default).count(), 1, "{default} in:\n{help}");
        }
    }

    #[test]
    fn metrics_are_off_unless_asked_for() {
        let c = parse(&[]);
        assert_eq!((c.metrics, c.metrics_tubes), (None, 100));
        let c = parse(&["--metrics", "127.0.0.1:9100", "--metrics-tubes", "5"]);
        assert_eq!(c.metrics, Some(ListenAddr::Tcp { host: "127.0.0.1".into(), port: 9100 }));
        assert_eq!(c.metrics_tubes, 5);
        let tcp = |host: &str| Some(ListenAddr::Tcp { host: host.into(), port: 9100 });
        assert_eq!(parse(&["--metrics=[::1]:9100"]).metrics, tcp("::1"));
        assert_eq!(parse(&["--metrics", ":9100"]).metrics, tcp("0.0.0.0"));
        assert_eq!(parse(&["--metrics", "unix:/run/m.sock"]).metrics, Some(ListenAddr::Unix("/run/m.sock".into())));
        for bad in ["9100", "host:", "host:99999", "unix:"] {
            assert!(Args::try_parse_from(["sprout", "--metrics", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_reject_trailing_garbage() {
        assert!(Args::try_parse_from(["sprout", "-z", "10k"]).is_err());
        assert!(Args::try_parse_from(["sprout", "-z", "-1"]).is_err());
    }
}
