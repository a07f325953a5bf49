//! The `sprout` binary: flags, logging, then the server.

use std::process::ExitCode;

use clap::Parser;
use sprout::cli::Args;

/// beanstalkd's exit status for bad usage.
const EXIT_USAGE: u8 = 5;
/// beanstalkd's exit status when it cannot listen.
const EXIT_LISTEN: u8 = 111;
/// beanstalkd's exit status when it cannot become the `-u` user.
const EXIT_USER: u8 = 32;

fn main() -> ExitCode {
    // `sprout binlog ...` is the binlog tool; anything else is the server,
    // with beanstalkd's flags (none of which is a bare word).
    if std::env::args_os().nth(1).is_some_and(|first| first == "binlog") {
        return sprout::cli::binlog::run(std::env::args_os().skip(1));
    }
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            if let Some(flag) = Args::short_flag_in(&e) {
                eprintln!("sprout: bad flag {flag}");
            }
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(EXIT_USAGE),
            };
        }
    };
    if args.version {
        println!("sprout {} (beanstalkd {} protocol)", env!("CARGO_PKG_VERSION"), sprout::host::PROTOCOL_VERSION);
        return ExitCode::SUCCESS;
    }
    let (config, warnings) = args.into_config();
    init_logging(config.verbose);
    for warning in warnings {
        log::warn!("{warning}");
    }
    // beanstalkd's order: bind (perhaps to a privileged port), drop
    // privileges, then open the binlog as that user, so every file in the
    // directory belongs to the user who will write it.
    sprout::host::raise_fd_limit();
    let listeners = match sprout::server::listen(&config) {
        Ok(listeners) => listeners,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(EXIT_LISTEN);
        }
    };
    if let Some(user) = &config.user
        && let Err(reason) = sprout::server::become_user(user)
    {
        log::error!("cannot become user {user}: {reason}");
        return ExitCode::from(EXIT_USER);
    }
    let binlog = match open_binlog(&config) {
        Ok(binlog) => binlog,
        Err((message, code)) => {
            log::error!("{message}");
            return ExitCode::from(code);
        }
    };
    match sprout::server::run(&config, listeners, sprout::host::host_info(), binlog) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// beanstalkd's exit status when the binlog directory is locked.
const EXIT_LOCKED: u8 = 10;

/// Locks and replays `-b DIR`, if given. Errors carry beanstalkd's exit code.
fn open_binlog(config: &sprout::settings::Config) -> Result<Option<sprout::binlog::Opened>, (String, u8)> {
    let Some(dir) = &config.binlog_dir else { return Ok(None) };
    let binlog_config = sprout::binlog::BinlogConfig {
        dir: dir.clone(),
        file_size: config.binlog_size.next_multiple_of(4096),
        fsync: config.fsync,
        skip_damaged: config.skip_damaged_records,
    };
    sprout::binlog::Binlog::open(&binlog_config).map(Some).map_err(|e| {
        let code = match e {
            sprout::binlog::OpenError::Locked(_) => EXIT_LOCKED,
            _ => 1,
        };
        (e.to_string(), code)
    })
}

/// `-V` raises the level; `RUST_LOG` overrides it.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        2 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    env_logger::Builder::new().filter_level(level).parse_default_env().init();
}
