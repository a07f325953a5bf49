//! Servers started by tests: which binary, how it is started, and the check
//! that the server answering is the one we started.
//!
//! ```ignore
//! let server = Server::sprout().args(["-z", "10"]).binlog(dir).start();
//! let mut c = server.connect();
//! let refused = Server::sprout().binlog(dir).try_start().unwrap_err(); // exit status + stderr
//! let script = Server::command("sprout-start", |port| start_script(port)).start();
//! ```
//!
//! A server listens on a free loopback port picked by the kit (or on a UNIX
//! socket). Tests run in parallel, in this process and in others on the
//! same machine, so a port that was free may be taken by the time the
//! server binds it. A start is therefore done only when the server that
//! answers `stats` at the address reports our child's pid; a server that
//! could not bind, or another server answering there, means another port
//! (five attempts).

use std::ffi::OsString;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::{Deref, DerefMut};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use super::client::{Addr, Client, Stats};
use super::process::{Process, Stderr};
use super::{procfs, run, spawn};

/// beanstalkd's (and sprout's) exit status when it cannot listen.
pub const EXIT_LISTEN: i32 = 111;

/// How long a server may take to serve: recovering a binlog on a busy
/// machine takes a while.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How many ports a start tries.
const ATTEMPTS: usize = 5;

/// A server binary: sprout as built for this test run, or the reference
/// beanstalkd 1.12.
#[derive(Clone, Debug)]
pub struct Binary {
    pub path: PathBuf,
    /// `"sprout"` or `"beanstalkd"`, for messages and for the few places a
    /// test expects the two to differ.
    pub name: &'static str,
}

impl Binary {
    pub fn sprout() -> Binary {
        Binary { path: PathBuf::from(env!("CARGO_BIN_EXE_sprout")), name: "sprout" }
    }

    /// The reference server, if installed (Debian's `beanstalkd` package).
    pub fn beanstalkd() -> Option<Binary> {
        let candidates = ["/usr/bin/beanstalkd", "/usr/sbin/beanstalkd", "/usr/local/bin/beanstalkd"];
        let path = candidates.iter().map(PathBuf::from).find(|p| p.exists())?;
        Some(Binary { path, name: "beanstalkd" })
    }

    /// The reference server, or `None` after saying why `test` is skipped
    /// (in CI a missing beanstalkd fails the test instead).
    pub fn beanstalkd_or_skip(test: &str) -> Option<Binary> {
        let found = Binary::beanstalkd();
        if found.is_none() {
            super::skip(test, "beanstalkd is not installed (apt-get install -y beanstalkd)");
        }
        found
    }

    pub fn is_sprout(&self) -> bool {
        self.name == "sprout"
    }

    /// A server of this binary, to configure and start.
    pub fn server(&self) -> ServerBuilder<'static> {
        ServerBuilder::new(self.name, Program::Binary(self.path.clone()))
    }

    /// Runs the binary with `args` to its end (`-h`, `-v`, a command line
    /// that must fail); panics if it is still running after 10 s.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.path);
        cmd.args(args);
        run(&mut cmd, Duration::from_secs(10)).unwrap_or_else(|out| {
            panic!("{} {args:?} did not exit within 10 s; stderr: {}", self.name, String::from_utf8_lossy(&out.stderr))
        })
    }
}

/// What a server runs.
enum Program<'a> {
    /// The binary, with `-l HOST -p PORT` (or `-l unix:PATH`) and the flags.
    Binary(PathBuf),
    /// The binary, with the whole command line made from the port.
    CommandLine(PathBuf, Box<dyn Fn(u16) -> Vec<String> + 'a>),
    /// Any command, made from the port: a start script, a socket
    /// activator, a tracer.
    Command(Box<dyn Fn(u16) -> Command + 'a>),
}

/// Where a server listens.
#[derive(Clone)]
enum Listen {
    /// A port of this address picked by the kit, anew on each attempt.
    FreePort(IpAddr),
    /// This very port.
    Port(IpAddr, u16),
    /// `-l unix:PATH`.
    Unix(PathBuf),
}

/// A resource limit [`ServerBuilder`] can set.
#[derive(Clone, Copy, Debug)]
enum Limit {
    /// RLIMIT_NOFILE.
    OpenFiles,
    /// RLIMIT_AS.
    AddressSpace,
}

/// A server to start: the program, its flags, where it listens, and how
/// the process is set up. `'a` is what the command makers borrow.
pub struct ServerBuilder<'a> {
    name: &'static str,
    program: Program<'a>,
    args: Vec<String>,
    listen: Listen,
    env: Vec<(OsString, Option<OsString>)>,
    /// Resource limits set in the child before it runs the program.
    limits: Vec<(Limit, u64)>,
    stderr: Stderr,
    wrapped: bool,
}

/// A server that exited before it served: its status and what it said.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub stderr: String,
}

impl<'a> ServerBuilder<'a> {
    fn new(name: &'static str, program: Program<'a>) -> ServerBuilder<'a> {
        ServerBuilder {
            name,
            program,
            args: Vec::new(),
            listen: Listen::FreePort(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            env: Vec::new(),
            limits: Vec::new(),
            stderr: Stderr::Capture,
            wrapped: false,
        }
    }

    /// Flags, after the listening address.
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> ServerBuilder<'a> {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// `-b DIR`.
    pub fn binlog(self, dir: &Path) -> ServerBuilder<'a> {
        let dir = dir.to_str().expect("a UTF-8 binlog path").to_string();
        self.args(["-b".to_string(), dir])
    }

    /// Listens on a free port of `host` (default: 127.0.0.1).
    pub fn listen_on(mut self, host: IpAddr) -> ServerBuilder<'a> {
        self.listen = Listen::FreePort(host);
        self
    }

    /// Listens on this port of 127.0.0.1, not a free one picked by the kit
    /// (an instance named after its port, restarted on it).
    pub fn port(mut self, port: u16) -> ServerBuilder<'a> {
        self.listen = Listen::Port(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        self
    }

    /// Listens on a UNIX socket at `path` (`-l unix:PATH`).
    pub fn unix_socket(mut self, path: &Path) -> ServerBuilder<'a> {
        self.listen = Listen::Unix(path.to_path_buf());
        self
    }

    /// The whole command line, made from the port (flags in forms the
    /// builder would not write: `-p{port}`, `-Vp {port}`, `--port={port}`).
    pub fn command_line(mut self, make: impl Fn(u16) -> Vec<String> + 'a) -> ServerBuilder<'a> {
        let path = match self.program {
            Program::Binary(path) | Program::CommandLine(path, _) => path,
            Program::Command(_) => panic!("command_line is for a server binary, not a command"),
        };
        self.program = Program::CommandLine(path, Box::new(make));
        self
    }

    /// Sets an environment variable of the server.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> ServerBuilder<'a> {
        self.env.push((key.into(), Some(value.into())));
        self
    }

    /// Removes an environment variable from the server's environment.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> ServerBuilder<'a> {
        self.env.push((key.into(), None));
        self
    }

    /// Starts the server with RLIMIT_NOFILE (soft and hard) set to `limit`.
    pub fn nofile_limit(mut self, limit: u64) -> ServerBuilder<'a> {
        self.limits.push((Limit::OpenFiles, limit));
        self
    }

    /// Starts the server with RLIMIT_AS (soft and hard) set to `bytes`: an
    /// allocation that would take its address space past them fails.
    pub fn address_space_limit(mut self, bytes: u64) -> ServerBuilder<'a> {
        self.limits.push((Limit::AddressSpace, bytes));
        self
    }

    /// Lets the server's stderr through to the test's, instead of keeping
    /// it in a file for [`Process::stderr_text`].
    pub fn inherit_stderr(mut self) -> ServerBuilder<'a> {
        self.stderr = Stderr::Inherit;
        self
    }

    /// The command is a wrapper (strace) that runs the server as its child:
    /// the server answering must be our process's child.
    pub fn wrapped(mut self) -> ServerBuilder<'a> {
        self.wrapped = true;
        self
    }

    /// Starts the server and waits until it serves; panics with its exit
    /// status and stderr if it exits first.
    pub fn start(self) -> Server {
        let what = format!("{} {:?}", self.name, self.args);
        self.try_start().unwrap_or_else(|e| panic!("{what} exited at startup with {}; stderr:\n{}", e.status, e.stderr))
    }

    /// Starts the server and waits until it serves, or until it exits (for
    /// a start that may be refused: a locked directory, a damaged binlog).
    pub fn try_start(self) -> Result<Server, Exited> {
        for attempt in 1..=ATTEMPTS {
            let mut server = self.spawn();
            let last = attempt == ATTEMPTS;
            match server.wait_until_serving(self.wrapped) {
                Startup::Serving => return Ok(server),
                Startup::Exited(exited) if !last && self.may_retry(&exited) => {}
                Startup::Exited(exited) => return Err(exited),
                Startup::Other(_) if !last && matches!(self.listen, Listen::FreePort(_)) => {}
                Startup::Other(pid) => panic!("another server (pid {pid}) answers at {}", server.addr),
            }
            // Dropping `server` kills our child; try another port.
        }
        unreachable!("the last attempt returns")
    }

    /// Starts the process and returns at once, not waiting for it to serve
    /// (for a test that waits in its own way: READY=1 on NOTIFY_SOCKET).
    pub fn spawn(&self) -> Server {
        spawn::locked(|| {
            let (addr, port) = match &self.listen {
                Listen::FreePort(host) => {
                    let port = spawn::pick_port(*host);
                    (Addr::Tcp(SocketAddr::new(*host, port)), port)
                }
                Listen::Port(host, port) => (Addr::Tcp(SocketAddr::new(*host, *port)), *port),
                Listen::Unix(path) => (Addr::Unix(path.clone()), 0),
            };
            let mut cmd = self.command(port);
            let process = Process::spawn_unlocked(&mut cmd, self.stderr);
            Server { process, addr, name: self.name }
        })
    }

    /// The command for one attempt, on `port` (0 for a UNIX socket).
    fn command(&self, port: u16) -> Command {
        let mut cmd = match &self.program {
            Program::Binary(path) => {
                let mut cmd = Command::new(path);
                match &self.listen {
                    Listen::FreePort(host) | Listen::Port(host, _) => {
                        cmd.args(["-l", &host.to_string(), "-p", &port.to_string()])
                    }
                    Listen::Unix(path) => cmd.arg("-l").arg(format!("unix:{}", path.display())),
                };
                cmd
            }
            Program::CommandLine(path, make) => {
                let mut cmd = Command::new(path);
                cmd.args(make(port));
                cmd
            }
            Program::Command(make) => make(port),
        };
        cmd.args(&self.args);
        for (key, value) in &self.env {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        if !self.limits.is_empty() {
            let limits = self.limits.clone();
            let set_limits = move || -> io::Result<()> {
                for &(which, limit) in &limits {
                    let limit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                    // SAFETY: setrlimit only reads the struct passed, which
                    // lives on this stack frame.
                    let set = unsafe {
                        match which {
                            Limit::OpenFiles => libc::setrlimit(libc::RLIMIT_NOFILE, &limit),
                            Limit::AddressSpace => libc::setrlimit(libc::RLIMIT_AS, &limit),
                        }
                    };
                    if set != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            };
            // SAFETY: `set_limits` runs in the child between fork and exec.
            // The parent has other threads, which do not exist in the child:
            // a lock one of them held (the allocator's, say) stays locked
            // forever there, so only async-signal-safe work is allowed. The
            // closure allocates nothing and takes no lock: its list was
            // built before the fork and is only read, glibc's setrlimit is a
            // bare system call (prlimit64), and `last_os_error` only reads
            // errno into an `io::Error` without allocating. It touches no
            // memory shared with the parent, so nothing it does is seen
            // there.
            unsafe { cmd.pre_exec(set_limits) };
        }
        cmd
    }

    /// True if an exit at startup means the port was taken (by a process
    /// that is no test server of ours): another free port may work.
    fn may_retry(&self, exited: &Exited) -> bool {
        matches!(self.listen, Listen::FreePort(_))
            && (exited.status.code() == Some(EXIT_LISTEN) || exited.stderr.contains("Address already in use"))
    }
}

/// How a start ended.
enum Startup {
    /// Our process answers.
    Serving,
    /// It exited before it answered.
    Exited(Exited),
    /// Another process (this pid) answers at the address.
    Other(u32),
}

/// A server process owned by a test, and where it listens. It is a
/// [`Process`] (signals, `wait_exit`, `kill9`, stderr), killed and reaped
/// when dropped.
pub struct Server {
    process: Process,
    addr: Addr,
    pub name: &'static str,
}

impl Server {
    /// sprout, to configure and start.
    pub fn sprout() -> ServerBuilder<'static> {
        Binary::sprout().server()
    }

    /// A server started by any command made from the port (`name` is for
    /// messages): the start script, systemd's socket activator, strace.
    pub fn command<'a>(name: &'static str, make: impl Fn(u16) -> Command + 'a) -> ServerBuilder<'a> {
        ServerBuilder::new(name, Program::Command(Box::new(make)))
    }

    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// The TCP port; panics for a server on a UNIX socket.
    pub fn port(&self) -> u16 {
        match &self.addr {
            Addr::Tcp(addr) => addr.port(),
            Addr::Unix(path) => panic!("{} listens on {}, not on a port", self.name, path.display()),
        }
    }

    /// A new connection.
    pub fn connect(&self) -> Client {
        Client::connect(&self.addr)
    }

    /// Waits until the server that answers `stats` at our address is this
    /// process (or, `wrapped`, its child), it exits, or another answers.
    fn wait_until_serving(&mut self, wrapped: bool) -> Startup {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.process.exit_status() {
                return Startup::Exited(Exited { status, stderr: self.process.stderr_text() });
            }
            // A server may accept before it serves (sprout listens, then
            // replays its binlog): the probe's `stats` is answered after.
            // The probe holds the spawn lock: a fork meanwhile would copy
            // its connection into the child, and the server would see it
            // close only at the child's exec, after the test began counting
            // connections.
            if let Some(pid) = spawn::locked(|| answering_pid(&self.addr)) {
                let ours = self.process.pid();
                let is_ours = pid == ours || (wrapped && procfs::parent_pid(pid) == Some(ours));
                return if is_ours { Startup::Serving } else { Startup::Other(pid) };
            }
            assert!(
                Instant::now() < deadline,
                "{} is not serving at {} after {START_TIMEOUT:?}; stderr:\n{}",
                self.name,
                self.addr,
                self.process.stderr_text()
            );
            // Often: starting servers is most of what some tests do.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// The pid reported by `stats` at `addr`, if a server answers there. One
/// connection, when the server accepts at once: tests that count
/// connections see exactly one from a start.
fn answering_pid(addr: &Addr) -> Option<u32> {
    let mut probe = Client::try_connect(addr).ok()?;
    if probe.is_connected_to_itself() {
        return None;
    }
    probe.try_send("stats\r\n").ok()?;
    let reply = probe.try_read_reply(Duration::from_secs(10)).ok()?;
    if !reply.starts_with(b"OK ") {
        return None;
    }
    Stats::parse(&reply).get("pid")?.parse().ok()
}

impl Deref for Server {
    type Target = Process;

    fn deref(&self) -> &Process {
        &self.process
    }
}

impl DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}
