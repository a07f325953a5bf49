//! One server per directory.

use tempfile::TempDir;

use crate::support::Exited;
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
