//! Real client libraries against the server: a producer/worker flow through
//! greenstalk (Python, PyPI) and through beaneater (Ruby, Debian's
//! ruby-beaneater). Each flow is a script under tests/clients/ that asserts
//! every step itself and exits non-zero with a message on the first failure.
//!
//! Every flow runs against sprout and, to prove the script itself right,
//! against the reference beanstalkd. A missing interpreter or library skips
//! the test locally (with the reason printed) and fails it in CI.

mod support;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Server;

/// Longest a flow may run; the scripts take a few seconds each.
const FLOW_TIMEOUT: Duration = Duration::from_secs(90);

/// Exit code the scripts use when their client library cannot be loaded.
const EXIT_LIBRARY_MISSING: i32 = 3;

struct Flow {
    name: &'static str,
    interpreter: &'static str,
    script: &'static str,
    /// Arguments that make the interpreter exit 0 only if the library loads.
    probe: &'static [&'static str],
    install_hint: &'static str,
}

const GREENSTALK: Flow = Flow {
    name: "greenstalk",
    interpreter: "python3",
    script: "tests/clients/greenstalk_flow.py",
    probe: &["-c", "import greenstalk"],
    install_hint: "python3 -m pip install greenstalk pyyaml",
};

const BEANEATER: Flow = Flow {
    name: "beaneater",
    interpreter: "ruby",
    script: "tests/clients/beaneater_flow.rb",
    probe: &["-e", "require 'beaneater'"],
    install_hint: "apt-get install -y ruby ruby-beaneater",
};

/// True if the flow can run here; otherwise skips (locally) or panics (CI).
fn available(flow: &Flow, test: &str) -> bool {
    let probe = Command::new(flow.interpreter)
        .args(flow.probe)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let reason = match probe {
        Ok(status) if status.success() => return true,
        Ok(_) => format!("the {} library does not load in {}", flow.name, flow.interpreter),
        Err(e) => format!("cannot run {}: {e}", flow.interpreter),
    };
    if support::in_ci() {
        panic!("{test}: {reason} ({}), and CI must not skip", flow.install_hint);
    }
    eprintln!("{test}: skipped, {reason} ({})", flow.install_hint);
    false
}

/// Runs the flow script against 127.0.0.1:`port` and fails the test, with
/// the script's whole output, unless it exits 0 within the timeout.
/// `reference` tells the script the server is beanstalkd 1.12 (see the
/// scripts' --reference note about its lost TTR ticks).
fn run_flow(flow: &Flow, test: &str, server: &Server, reference: bool) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(flow.script);
    let mut cmd = Command::new(flow.interpreter);
    cmd.arg(&script).arg(server.port.to_string());
    if reference {
        cmd.arg("--reference");
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{test}: cannot start {}: {e}", flow.interpreter));

    // Drain both pipes on threads so a chatty script never blocks.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let deadline = Instant::now() + FLOW_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the flow script") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out.join().unwrap();
    let err = err.join().unwrap();
    let report = format!(
        "{test}: {} flow against {} on port {}\n--- script stdout ---\n{out}--- script stderr ---\n{err}",
        flow.name, server.name, server.port
    );
    match status {
        None => panic!("{report}\nthe script did not finish within {FLOW_TIMEOUT:?}"),
        Some(s) if s.code() == Some(EXIT_LIBRARY_MISSING) => {
            panic!("{report}\nthe script could not load {} ({})", flow.name, flow.install_hint)
        }
        Some(s) if !s.success() => panic!("{report}\nthe script failed: {s}"),
        Some(_) => println!("{report}"),
    }
}

fn flow_against_sprout(flow: &Flow, test: &str) {
    if !available(flow, test) {
        return;
    }
    let server = Server::sprout(&[]);
    run_flow(flow, test, &server, false);
}

fn flow_against_beanstalkd(flow: &Flow, test: &str) {
    let Some(bin) = support::beanstalkd_or_skip(test) else {
        return;
    };
    if !available(flow, test) {
        return;
    }
    let server = Server::beanstalkd(&bin, &[]);
    run_flow(flow, test, &server, true);
}

#[test]
fn greenstalk_flow_against_sprout() {
    flow_against_sprout(&GREENSTALK, "greenstalk_flow_against_sprout");
}

#[test]
fn greenstalk_flow_against_beanstalkd() {
    flow_against_beanstalkd(&GREENSTALK, "greenstalk_flow_against_beanstalkd");
}

#[test]
fn beaneater_flow_against_sprout() {
    flow_against_sprout(&BEANEATER, "beaneater_flow_against_sprout");
}

#[test]
fn beaneater_flow_against_beanstalkd() {
    flow_against_beanstalkd(&BEANEATER, "beaneater_flow_against_beanstalkd");
}
