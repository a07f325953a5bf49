//! Starting, watching and killing the servers under test.
//!
//! Every server started here is registered in [`LIVE`], so a Ctrl-C (or a
//! panic hook) can kill them all; each is also started with
//! `PR_SET_PDEATHSIG`, so the kernel kills it if the runner dies without a
//! chance to clean up. Servers must be started from the main thread (the
//! death signal follows the thread that forked).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// PIDs of the servers alive right now.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// The run's scratch directory, removed on Ctrl-C (which skips destructors).
static SCRATCH: Mutex<Option<PathBuf>> = Mutex::new(None);

pub fn set_scratch(dir: &Path) {
    *SCRATCH.lock().unwrap_or_else(|p| p.into_inner()) = Some(dir.to_path_buf());
}

/// Kills every registered server (used on Ctrl-C and on panic).
pub fn kill_all() {
    let pids = match LIVE.lock() {
        Ok(mut live) => std::mem::take(&mut *live),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    for pid in pids {
        // SAFETY: kill(2) with a PID this process started and has not reaped.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

/// Ctrl-C and SIGTERM kill the servers and exit; so does a panic anywhere.
pub fn install_cleanup() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_all();
        default_hook(info);
    }));
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    kill_all();
                    if let Some(dir) = SCRATCH.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        let _ = fs::remove_dir_all(dir);
                    }
                    eprintln!("\nrace: interrupted (signal {signal}); killed the servers");
                    std::process::exit(130);
                }
            });
        }
        Err(e) => eprintln!("race: cannot catch Ctrl-C ({e}); servers die with the runner anyway"),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Beanstalkd,
    Sprout,
    /// The ceiling (`do_nothing.rs`): the race's own executable.
    DoNothing,
    /// Another sprout build (`--baseline`), raced as sprout is.
    Baseline,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Beanstalkd => "beanstalkd",
            Kind::Sprout => "sprout",
            Kind::DoNothing => "do-nothing",
            Kind::Baseline => "baseline",
        }
    }

    /// Whether the server is a sprout build (sprout or the baseline).
    pub fn is_sprout(self) -> bool {
        matches!(self, Kind::Sprout | Kind::Baseline)
    }
}

/// How to start one kind of server.
#[derive(Clone, Debug)]
pub struct Binary {
    pub kind: Kind,
    pub path: PathBuf,
}

/// A running server; killed when dropped.
pub struct Server {
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Child,
    log: PathBuf,
}

/// A port that was free a moment ago (bind to port 0, read it back, close).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

impl Server {
    /// Spawns the server on a fresh port with `flags` (after `-l -p`); does not
    /// wait for it to listen. `log` receives its stderr.
    pub fn spawn(binary: &Binary, flags: &[String], log: &Path) -> Server {
        Server::spawn_env(binary, flags, log, &[])
    }

    /// [`Server::spawn`] with these variables added to its environment.
    pub fn spawn_env(binary: &Binary, flags: &[String], log: &Path, env: &[(&str, &str)]) -> Server {
        Server::spawn_under(&[], binary, flags, log, env)
    }

    /// [`Server::spawn_env`] with the server's command line run by
    /// `wrapper` (e.g. `valgrind --tool=callgrind`), which must exec it in
    /// the same process so that [`Server::pid`] is the server's.
    pub fn spawn_under(
        wrapper: &[String],
        binary: &Binary,
        flags: &[String],
        log: &Path,
        env: &[(&str, &str)],
    ) -> Server {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let stderr = fs::File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&binary.path);
                command
            }
            None => Command::new(&binary.path),
        };
        if binary.kind == Kind::DoNothing {
            command.arg(crate::do_nothing::FLAG);
        }
        command
            .args(["-l", "127.0.0.1", "-p", &port.to_string()])
            .args(flags)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.path.display()));
        live.push(child.id());
        Server { kind: binary.kind, addr, child, log: log.to_path_buf() }
    }

    /// Spawns and waits (up to 10 s) until it accepts connections.
    pub fn start(binary: &Binary, flags: &[String], log: &Path) -> Server {
        Server::wait_listening(Server::spawn(binary, flags, log), Duration::from_secs(10))
    }

    /// Waits (up to `patience`) until the spawned server accepts connections.
    pub fn wait_listening(mut server: Server, patience: Duration) -> Server {
        let deadline = Instant::now() + patience;
        loop {
            if TcpStream::connect(server.addr).is_ok() {
                return server;
            }
            server.check_alive();
            if Instant::now() > deadline {
                panic!(
                    "{} did not listen on {} within {patience:?}; its stderr:\n{}",
                    server.kind.name(),
                    server.addr,
                    server.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics (with its stderr) if the server has exited.
    pub fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}); its stderr:\n{}", self.kind.name(), self.stderr());
        }
    }

    pub fn stderr(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// A field of /proc/PID/status in bytes (VmRSS, VmHWM, ...).
    pub fn status_bytes(&self, field: &str) -> u64 {
        let text = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        text.lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// User + system CPU seconds the server has used so far: every
    /// thread's run time from the scheduler (nanoseconds), or, where
    /// schedstat is missing, the clock ticks of /proc/PID/stat (10 ms
    /// each: a 0.1 s count run of a fast server would be read to +-10%).
    pub fn cpu_seconds(&self) -> f64 {
        let pid = self.pid();
        let scheduled = fs::read_dir(format!("/proc/{pid}/task")).ok().and_then(|tasks| {
            tasks
                .flatten()
                .map(|task| {
                    let text = fs::read_to_string(task.path().join("schedstat")).ok()?;
                    text.split_whitespace().next()?.parse::<u64>().ok()
                })
                .sum::<Option<u64>>()
        });
        match scheduled {
            Some(nanos) => nanos as f64 / 1e9,
            None => proc_cpu_seconds(&format!("/proc/{pid}/stat")),
        }
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pid = self.child.id();
        LIVE.lock().unwrap_or_else(|p| p.into_inner()).retain(|&p| p != pid);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// utime + stime from a /proc/.../stat file, in seconds.
pub fn proc_cpu_seconds(path: &str) -> f64 {
    let text = fs::read_to_string(path).unwrap_or_default();
    // Fields after the parenthesised command name: state is first, utime 12th, stime 13th.
    let Some(rest) = text.rfind(')').map(|i| &text[i + 1..]) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11..13).map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// One `stats` round trip on a fresh connection: the YAML as key/value pairs.
pub fn stats(addr: SocketAddr) -> std::io::Result<Vec<(String, String)>> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stats_on(&stream)
}

/// `stats` on an open connection.
pub fn stats_on(stream: &TcpStream) -> std::io::Result<Vec<(String, String)>> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    (&*stream).write_all(b"stats\r\n")?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let size: usize = line
        .strip_prefix("OK ")
        .and_then(|s| s.strip_suffix("\r\n"))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("unexpected reply to stats: {line:?}")))?;
    let mut body = vec![0; size + 2];
    reader.read_exact(&mut body)?;
    if !body.ends_with(b"\r\n") {
        return Err(bad("stats body not followed by CRLF".into()));
    }
    let text = String::from_utf8_lossy(&body[..size]);
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// `peek-ready` or `peek <id>` (`cmd`, without CRLF) on an open
/// connection: the job's id and body, or `None` on `NOT_FOUND`.
pub fn peek_on(stream: &TcpStream, cmd: &str) -> std::io::Result<Option<(u64, Vec<u8>)>> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    (&*stream).write_all(format!("{cmd}\r\n").as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line == "NOT_FOUND\r\n" {
        return Ok(None);
    }
    let (id, size) = line
        .strip_prefix("FOUND ")
        .and_then(|s| s.strip_suffix("\r\n"))
        .and_then(|s| s.split_once(' '))
        .and_then(|(id, size)| Some((id.parse::<u64>().ok()?, size.parse::<usize>().ok()?)))
        .ok_or_else(|| bad(format!("unexpected reply to {cmd}: {line:?}")))?;
    let mut body = vec![0; size + 2];
    reader.read_exact(&mut body)?;
    if !body.ends_with(b"\r\n") {
        return Err(bad(format!("{cmd}: body not followed by CRLF")));
    }
    body.truncate(size);
    Ok(Some((id, body)))
}

/// One numeric field of a `stats` answer.
pub fn stat(stats: &[(String, String)], key: &str) -> Option<u64> {
    stats.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.parse().ok())
}
