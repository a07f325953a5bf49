//! A child process owned by a test, and commands run to their end.
//!
//! A [`Process`] is killed and reaped when dropped, also when the test
//! panics, so a failing test leaves nothing running; and when it is dropped
//! during a panic its captured stderr is printed, so the failure shows what
//! the server said.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::Duration;

use tempfile::NamedTempFile;

use super::spawn;

/// Where a process's stderr goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stderr {
    /// Into a file, readable with [`Process::stderr_text`].
    Capture,
    /// To the test's own stderr.
    Inherit,
}

/// How much of a captured stderr a failing test prints.
const STDERR_TAIL: usize = 4000;

pub struct Process {
    child: Child,
    /// The command, for messages.
    what: String,
    stderr: Option<NamedTempFile>,
}

impl Process {
    /// Spawns `cmd` (under the spawn lock) with stdin and stdout on
    /// /dev/null.
    pub fn spawn(cmd: &mut Command, stderr: Stderr) -> Process {
        spawn::locked(|| Process::spawn_unlocked(cmd, stderr))
    }

    /// [`Process::spawn`] for a caller that holds the spawn lock already.
    pub(super) fn spawn_unlocked(cmd: &mut Command, stderr: Stderr) -> Process {
        let what = format!("{cmd:?}");
        let file = (stderr == Stderr::Capture).then(|| NamedTempFile::new().expect("a file for stderr"));
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        match &file {
            Some(file) => cmd.stderr(file.reopen().expect("reopen the stderr file")),
            None => cmd.stderr(Stdio::inherit()),
        };
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Process { child, what, stderr: file }
    }

    /// Spawns the command `make` builds for a loopback port no one listens
    /// on, picked under the same spawn lock as the fork, so no other test's
    /// server takes the port in between (for programs that cannot listen on
    /// port 0 and say which port they got).
    pub fn spawn_on_free_port(make: impl FnOnce(u16) -> Command, stderr: Stderr) -> (Process, u16) {
        spawn::locked(|| {
            let port = spawn::pick_port(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
            (Process::spawn_unlocked(&mut make(port), stderr), port)
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has exited (it is then reaped), or
    /// `None` while it runs. Never waits.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap_or_else(|e| panic!("try_wait on {}: {e}", self.what))
    }

    /// The exit status, if the process exits within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        super::wait_until(timeout, || {
            status = self.exit_status();
            status.is_some()
        });
        status
    }

    /// Sends `sig`, unless the process has exited: once reaped, its pid may
    /// already name another process. (Until we reap it, an exited child
    /// stays a zombie and keeps its pid, so the check cannot go stale.)
    pub fn signal(&mut self, sig: i32) {
        if self.exit_status().is_some() {
            return;
        }
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
        // SAFETY: kill takes two integers and touches no memory of ours; the
        // pid is our unreaped child (checked above), so no other process.
        let sent = unsafe { libc::kill(pid, sig) };
        assert_eq!(sent, 0, "kill({pid}, {sig}): {}", std::io::Error::last_os_error());
    }

    /// SIGTERM, and the exit status; panics unless it exits within 10 s.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit(Duration::from_secs(10));
        status.unwrap_or_else(|| panic!("{} did not exit within 10 s of SIGTERM", self.what))
    }

    /// SIGKILL, and waits until the process is gone (reaped: its locks and
    /// ports are free). Panics if it had exited on its own before.
    pub fn kill9(&mut self) -> ExitStatus {
        self.signal(libc::SIGKILL);
        let status =
            self.wait_exit(Duration::from_secs(30)).unwrap_or_else(|| panic!("{} survived SIGKILL", self.what));
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "{} exited ({status}) before it was killed; stderr:\n{}",
            self.what,
            self.stderr_text()
        );
        status
    }

    /// What the process wrote to stderr so far (empty when inherited).
    pub fn stderr_text(&self) -> String {
        let Some(file) = &self.stderr else { return String::new() };
        String::from_utf8_lossy(&std::fs::read(file.path()).unwrap_or_default()).into_owned()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Child::kill does nothing to a child already reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() && self.stderr.is_some() {
            let text = self.stderr_text();
            let tail = &text[text.floor_char_boundary(text.len().saturating_sub(STDERR_TAIL))..];
            eprintln!("--- stderr of {} (last {} bytes) ---\n{tail}", self.what, tail.len());
        }
    }
}

/// Runs `cmd` to its end (under the spawn lock, stdin on /dev/null) and
/// returns its output; `Err` with what it wrote so far if it did not exit
/// within `timeout` (it is then killed).
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output, Output> {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = spawn::locked(|| cmd.spawn()).unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    // Drained on threads, so a chatty command never blocks on a full pipe.
    fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    }
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let mut finished = None;
    super::wait_until(timeout, || {
        finished = child.try_wait().unwrap_or_else(|e| panic!("try_wait on {what}: {e}"));
        finished.is_some()
    });
    let timed_out = finished.is_none();
    if timed_out {
        let _ = child.kill();
    }
    let status = child.wait().unwrap_or_else(|e| panic!("wait for {what}: {e}"));
    let output = Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() };
    if timed_out { Err(output) } else { Ok(output) }
}
