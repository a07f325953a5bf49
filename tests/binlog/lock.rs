//! One server per directory.

use tempfile::TempDir;

use crate::support::{Binary, Exited};
use crate::{launch, start};

/// A second server on a directory in use exits 10 (as beanstalkd does),
/// naming the directory and the first server's pid; the first keeps
/// serving, and once it is gone the directory is free again.
#[test]
fn a_second_server_on_the_same_directory_exits_10() {
    let dir = TempDir::new().unwrap();
    let mut first = start(dir.path(), &[]);
    first.connect().put(0, 0, 60, b"held");
    match launch(dir.path(), &[]) {
        Ok(second) => panic!("a second sprout started on a locked -b dir (pid {})", second.pid()),
        Err(Exited { status, stderr }) => {
            assert_eq!(status.code(), Some(10), "exit status of the second sprout; stderr:\n{stderr}");
            let dir_name = dir.path().display().to_string();
            assert!(stderr.contains(&dir_name), "stderr does not name the directory {dir_name}:\n{stderr}");
            let pid = first.pid().to_string();
            assert!(
                stderr.split(|c: char| !c.is_ascii_digit()).any(|w| w == pid),
                "stderr does not name the first server's pid {pid}:\n{stderr}"
            );
        }
    }
    // The first still serves, and once it is gone a new one starts.
    assert!(first.connect().peek(1).is_some());
    first.kill9();
    let third = start(dir.path(), &[]);
    let mut c = third.connect();
    assert_eq!(c.peek(1).as_deref(), Some(&b"held"[..]));
    assert_eq!(c.put(0, 0, 60, b"after"), 2);
}

/// sprout and beanstalkd never share a directory, whichever starts first:
/// sprout takes beanstalkd's kind of lock as well as its own, so a running
/// beanstalkd makes sprout exit 10 naming it (no takeover of a live log),
/// and a beanstalkd started on sprout's directory exits 10 too.
#[test]
fn sprout_and_beanstalkd_never_share_a_directory() {
    let Some(beanstalkd) = Binary::beanstalkd_or_skip("sprout_and_beanstalkd_never_share_a_directory") else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let running = beanstalkd.server().binlog(dir.path()).start();
    running.connect().put(0, 0, 60, b"beanstalkd's");
    match launch(dir.path(), &[]) {
        Ok(sprout) => panic!("sprout started on a running beanstalkd's -b dir (pid {})", sprout.pid()),
        Err(Exited { status, stderr }) => {
            assert_eq!(status.code(), Some(10), "sprout's exit status; stderr:\n{stderr}");
            let named = format!("process {} (beanstalkd)", running.pid());
            assert!(stderr.contains(&named), "stderr does not say {named:?}:\n{stderr}");
        }
    }
    drop(running);

    let dir = TempDir::new().unwrap();
    let sprout = start(dir.path(), &[]);
    match beanstalkd.server().binlog(dir.path()).try_start() {
        Ok(b) => panic!("beanstalkd started on a running sprout's -b dir (pid {})", b.pid()),
        Err(Exited { status, stderr }) => assert_eq!(status.code(), Some(10), "beanstalkd; stderr:\n{stderr}"),
    }
    assert_eq!(sprout.connect().put(0, 0, 60, b"still sprout's"), 1);
}
