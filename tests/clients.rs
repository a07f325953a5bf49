//! Real client libraries against the server: a producer/worker flow through
//! greenstalk (Python, PyPI) and through beaneater (Ruby, Debian's
//! ruby-beaneater). Each flow is a script under tests/clients/ that asserts
//! every step itself and exits non-zero with a message on the first failure.
//!
//! Every flow runs against sprout and, to prove the script itself right,
//! against the reference beanstalkd. A missing interpreter or library skips
//! the test locally (with the reason printed) and fails it in CI.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Binary, Server, on_both, run};

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
    support::skip(test, &format!("{reason} ({})", flow.install_hint));
    false
}

/// Runs the flow script against the server and fails the test, with the
/// script's whole output, unless it exits 0 within the timeout. Against
/// beanstalkd the script is told it talks to the reference 1.12 (see the
/// scripts' --reference note about its lost TTR ticks).
fn run_flow(flow: &Flow, test: &str, server: &Server) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(flow.script);
    let mut cmd = Command::new(flow.interpreter);
    cmd.arg(&script).arg(server.port().to_string());
    if server.name == "beanstalkd" {
        cmd.arg("--reference");
    }
    let (status, out) = match run(&mut cmd, FLOW_TIMEOUT) {
        Ok(out) => (Some(out.status), out),
        Err(out) => (None, out),
    };
    let report = format!(
        "{test}: {} flow against {} on port {}\n--- script stdout ---\n{}--- script stderr ---\n{}",
        flow.name,
        server.name,
        server.port(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
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

/// The flow against a server of `bin`, unless its library is missing.
fn flow_against(flow: &Flow, bin: &Binary) {
    let test = format!("{}_flow::{}", flow.name, bin.name);
    if !available(flow, &test) {
        return;
    }
    let server = bin.server().start();
    run_flow(flow, &test, &server);
}

fn greenstalk_flow(bin: &Binary) {
    flow_against(&GREENSTALK, bin);
}
on_both!(greenstalk_flow);

fn beaneater_flow(bin: &Binary) {
    flow_against(&BEANEATER, bin);
}
on_both!(beaneater_flow);
