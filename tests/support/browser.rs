//! A real headless browser for the status page's tests: Debian's
//! `chromium`, run once per page load (`--dump-dom` prints the document
//! after its scripts ran; `--screenshot` writes a PNG).
//!
//! Each run gets a throwaway profile (`--user-data-dir` in a temporary
//! directory) and its own process group, which is killed when the run ends
//! or the test fails (chromium starts helper processes: killing the first
//! one alone could leave them running).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use super::{skip, spawn, wait_until};

/// How long one chromium run may take before it counts as hung: far
/// beyond the second or two it takes, CPU hog or not.
const HUNG: Duration = Duration::from_secs(90);

/// Where chromium is.
pub struct Browser {
    program: PathBuf,
}

impl Browser {
    /// Debian's `chromium` (`CHROMIUM` names another), or `None` after
    /// saying why the test is skipped; in CI, a failure.
    pub fn find_or_skip(test: &str) -> Option<Browser> {
        let program = std::env::var_os("CHROMIUM").map(PathBuf::from).or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path).map(|dir| dir.join("chromium")).find(|p| p.is_file())
        });
        match program {
            Some(program) => Some(Browser { program }),
            None => {
                skip(test, "no chromium found (apt-get install chromium) to test the status page in a browser");
                None
            }
        }
    }

    /// The document at `url` once its scripts ran (`virtual_ms` of page
    /// time: timers fire early, fetches are waited for), as HTML.
    pub fn dump_dom(&self, url: &str, virtual_ms: u32) -> String {
        let out = self.run(&["--dump-dom".to_string(), format!("--virtual-time-budget={virtual_ms}"), url.to_string()]);
        String::from_utf8(out).expect("chromium prints UTF-8")
    }

    /// A PNG of the page at `url`, `width` by `height`, into `png`.
    pub fn screenshot(&self, url: &str, virtual_ms: u32, (width, height): (u32, u32), png: &Path) {
        self.run(&[
            format!("--screenshot={}", png.display()),
            format!("--window-size={width},{height}"),
            "--hide-scrollbars".to_string(),
            format!("--virtual-time-budget={virtual_ms}"),
            url.to_string(),
        ]);
        assert!(png.is_file(), "chromium wrote no screenshot at {}", png.display());
    }

    /// Runs chromium headless with `args`; its standard output.
    fn run(&self, args: &[String]) -> Vec<u8> {
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut cmd = Command::new(&self.program);
        cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions"])
            .arg("--disable-dev-shm-usage")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let child = spawn::locked(|| cmd.spawn()).unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let mut run = Group(child);
        let stdout = drain(run.0.stdout.take().expect("piped stdout"));
        let stderr = drain(run.0.stderr.take().expect("piped stderr"));
        let exited = wait_until(HUNG, || run.has_exited());
        let status = run.end();
        let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
        let stderr = String::from_utf8_lossy(&stderr);
        assert!(exited, "chromium hung for {HUNG:?} on {args:?}; it said:\n{stderr}");
        assert!(status.success(), "chromium failed ({status}) on {args:?}:\n{stderr}");
        stdout
    }
}

/// A chromium run's process group, led by the child: killed (all of it)
/// before the child is reaped, so the group's id cannot have been reused.
struct Group(Child);

impl Group {
    /// Whether the leader exited (it is left unreaped).
    fn has_exited(&self) -> bool {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: waitid writes only into `info`; WNOWAIT leaves the child
        // to be reaped by Child::wait.
        let r = unsafe { libc::waitid(libc::P_PID, self.0.id(), &mut info, flags) };
        // SAFETY: waitid filled `info` in (si_pid 0: not exited yet).
        r == 0 && unsafe { info.si_pid() } != 0
    }

    /// Kills what is left of the group, reaps the leader: its exit status.
    fn end(mut self) -> std::process::ExitStatus {
        self.kill_group();
        let status = self.0.wait().expect("wait for chromium");
        std::mem::forget(self);
        status
    }

    fn kill_group(&self) {
        // SAFETY: kill only sends a signal, to the group the unreaped
        // child leads (process_group(0)): its id is still taken.
        unsafe { libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL) };
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill_group();
        let _ = self.0.wait();
    }
}

/// Reads a pipe to its end on a thread, so chromium never blocks on it.
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}
