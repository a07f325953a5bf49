//! The `instructions` scenario: the server's instructions per operation,
//! counted by valgrind's callgrind over a fixed load.
//!
//! Rates on a shared, noisy machine drift; an instruction count does not:
//! the same build gives the same count to about 0.1%, whatever else runs.
//! Each run starts the server under `valgrind --tool=callgrind`, sends a
//! warm-up, zeroes the counters (`callgrind_control -z`), sends the fixed
//! load, dumps them (`callgrind_control -d`) and reads the total `Ir`
//! (instructions executed, every thread of the server counted) from the
//! dump. Opt-in (`--scenarios instructions`): valgrind may be missing, and
//! it runs the server about 50 times slower.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Opts;
use crate::client::{self, Reply};
use crate::scenarios::{Env, Metric, Unit, Variant};
use crate::server::{self, Server};

/// The fixed loads.
#[derive(Clone, Copy)]
enum Load {
    /// `conns` connections each writing `depth` pipelined puts, then reading their replies.
    Put { conns: usize, depth: usize },
    /// One connection: 1,000 pipelined reserves, then the 1,000 deletes of the jobs reserved.
    ReserveDelete,
}

/// Reserves (and deletes) in one write of [`Load::ReserveDelete`].
const RESERVE_DEPTH: usize = 1_000;

/// `None` if valgrind and callgrind_control run, else why not.
fn callgrind_missing() -> Option<String> {
    for tool in ["valgrind", "callgrind_control"] {
        let ran = Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if !ran.is_ok_and(|s| s.success()) {
            return Some(format!("{tool} does not run (apt-get install valgrind)"));
        }
    }
    None
}

/// The scenario's variants; none (with a message) without valgrind.
pub fn variants(opts: &Opts) -> Vec<Variant> {
    if let Some(why) = callgrind_missing() {
        eprintln!("race: skipping the instructions scenario: {why}");
        return Vec::new();
    }
    let body = client::pattern(opts.body);
    let put_1x1000 = Load::Put { conns: 1, depth: 1_000 };
    // Label, load, whether with `-b DIR`, flags before it.
    let loads: [(&str, Load, bool, &[&str]); 7] = [
        ("put 1x1000", put_1x1000, false, &[]),
        ("put 50x16", Load::Put { conns: 50, depth: 16 }, false, &[]),
        ("reserve+delete 1x1000", Load::ReserveDelete, false, &[]),
        ("put 1x1000 -b -F", put_1x1000, true, &["-F"]),
        ("put 1x1000 -b", put_1x1000, true, &[]),
        ("reserve+delete 1x1000 -b -F", Load::ReserveDelete, true, &["-F"]),
        ("reserve+delete 1x1000 -b", Load::ReserveDelete, true, &[]),
    ];
    let mut out: Vec<Variant> = loads
        .into_iter()
        .map(|(label, load, binlog, flags)| {
            let body = body.clone();
            Variant {
                scenario: "instructions",
                label: label.to_string(),
                flags: flags.iter().map(|f| f.to_string()).collect(),
                binlog,
                fixture: None,
                run: Box::new(move |env| count(env, load, &body)),
            }
        })
        .collect();
    out.push(Variant {
        scenario: "instructions",
        label: format!("restart -b, {} jobs", opts.instr_jobs),
        flags: vec![],
        binlog: true,
        fixture: None,
        run: Box::new(move |env| restart(env, &body)),
    });
    out
}

/// Where a run's callgrind writes its dumps, and the command line that
/// runs the server under it.
struct Callgrind {
    out: PathBuf,
    wrapper: Vec<String>,
}

impl Callgrind {
    fn for_run(env: &Env) -> Callgrind {
        let out = env.log.with_extension("callgrind");
        let wrapper =
            vec!["valgrind".to_string(), "--tool=callgrind".into(), format!("--callgrind-out-file={}", out.display())];
        Callgrind { out, wrapper }
    }

    /// Spawns the run's server under callgrind, its stderr (valgrind's
    /// too) to `log`; does not wait for it to listen.
    fn spawn(&self, env: &Env, log: &Path) -> Server {
        Server::spawn_under(&self.wrapper, env.binary, &env.flags, log, &[])
    }
}

/// One run: the server under callgrind, the warm-up, the counted load.
fn count(env: &Env, load: Load, body: &[u8]) -> Result<Vec<Metric>, String> {
    let writes = env.opts.instr_writes;
    let callgrind = Callgrind::for_run(env);
    let put = put_command(body);
    // Valgrind takes a few seconds to start a program.
    let server = Server::wait_listening(callgrind.spawn(env, &env.log), Duration::from_secs(120));
    let (ops, name) = match load {
        Load::Put { conns, depth } => {
            let mut conns: Vec<Conn> = (0..conns).map(|_| Conn::open(server.addr)).collect::<Result<_, _>>()?;
            put_round(&mut conns, &put, depth)?;
            zero(&server)?;
            for _ in 0..writes {
                put_round(&mut conns, &put, depth)?;
            }
            (writes * conns.len() * depth, "instructions per put")
        }
        Load::ReserveDelete => {
            let mut conn = Conn::open(server.addr)?;
            // The warm-up's jobs and the counted ones.
            for _ in 0..=writes {
                put_round(std::slice::from_mut(&mut conn), &put, RESERVE_DEPTH)?;
            }
            reserve_delete_round(&mut conn, body)?;
            zero(&server)?;
            for _ in 0..writes {
                reserve_delete_round(&mut conn, body)?;
            }
            (writes * RESERVE_DEPTH, "instructions per reserve+delete")
        }
    };
    let total = dump(&server, &callgrind.out)?;
    if matches!(load, Load::ReserveDelete) {
        let stats = server::stats(server.addr).map_err(|e| format!("stats after the load: {e}"))?;
        if server::stat(&stats, "current-jobs-ready") != Some(0) {
            return Err("jobs left after reserving and deleting them all".into());
        }
    }
    server.kill();
    Ok(vec![Metric::new(name, total as f64 / ops as f64, Unit::Count)])
}

/// Puts `--instr-jobs` jobs with the server run natively, kills it, then
/// counts the whole of its start under callgrind (the program's own start
/// included, a few million instructions) until `stats` counts every job.
fn restart(env: &Env, body: &[u8]) -> Result<Vec<Metric>, String> {
    let jobs = env.opts.instr_jobs;
    let put = &put_command(body);
    let native = Server::start(env.binary, &env.flags, &env.log);
    let mut conn = Conn::open(native.addr)?;
    for _ in 0..jobs / RESERVE_DEPTH {
        put_round(std::slice::from_mut(&mut conn), put, RESERVE_DEPTH)?;
    }
    put_round(std::slice::from_mut(&mut conn), put, jobs % RESERVE_DEPTH)?;
    drop(conn);
    native.kill();

    let log = env.log.with_extension("restart.log");
    let callgrind = Callgrind::for_run(env);
    let mut server = callgrind.spawn(env, &log);
    // One `stats` that the server answers once it has replayed (sprout
    // listens first); a server that listens only after its replay is asked
    // again every 100 ms, each asking counted too.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok(stream) = TcpStream::connect(server.addr) {
            stream.set_read_timeout(Some(Duration::from_secs(600))).map_err(|e| e.to_string())?;
            let stats = server::stats_on(&stream).map_err(|e| format!("stats after the restart: {e}"))?;
            match server::stat(&stats, "current-jobs-ready") {
                Some(ready) if ready == jobs as u64 => break,
                Some(ready) if ready > jobs as u64 => {
                    return Err(format!("after the restart: {ready} jobs ready, {jobs} put"));
                }
                _ => {}
            }
        }
        server.check_alive();
        if Instant::now() > deadline {
            return Err(format!("{jobs} jobs not back 600 s after the restart"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let total = dump(&server, &callgrind.out)?;
    server.kill();
    Ok(vec![Metric::new("instructions per job restored", total as f64 / jobs as f64, Unit::Count)])
}

fn put_command(body: &[u8]) -> Vec<u8> {
    let mut put = format!("put 0 0 60 {}\r\n", body.len()).into_bytes();
    put.extend_from_slice(body);
    put.extend_from_slice(b"\r\n");
    put
}

/// Every connection writes `depth` puts, then each reads its `INSERTED`s.
fn put_round(conns: &mut [Conn], put: &[u8], depth: usize) -> Result<(), String> {
    let batch = put.repeat(depth);
    for conn in conns.iter_mut() {
        conn.send(&batch)?;
    }
    for conn in conns.iter_mut() {
        conn.replies(depth, |reply| match reply {
            Reply::Inserted(_) => Ok(()),
            other => Err(format!("put: expected INSERTED, got {other:?}")),
        })?;
    }
    Ok(())
}

/// [`RESERVE_DEPTH`] reserves, their bodies checked, then their deletes.
fn reserve_delete_round(conn: &mut Conn, body: &[u8]) -> Result<(), String> {
    conn.send(&b"reserve\r\n".repeat(RESERVE_DEPTH))?;
    let mut deletes = Vec::new();
    conn.replies(RESERVE_DEPTH, |reply| match reply {
        Reply::Reserved { id, body: got } if got == body => {
            deletes.extend_from_slice(format!("delete {id}\r\n").as_bytes());
            Ok(())
        }
        other => Err(format!("reserve: expected RESERVED with the body put, got {other:?}")),
    })?;
    conn.send(&deletes)?;
    conn.replies(RESERVE_DEPTH, |reply| match reply {
        Reply::Deleted => Ok(()),
        other => Err(format!("delete: expected DELETED, got {other:?}")),
    })
}

/// `callgrind_control ARG PID`.
fn control(server: &Server, arg: &str) -> Result<(), String> {
    let ran = Command::new("callgrind_control")
        .args([arg, &server.pid().to_string()])
        .output()
        .map_err(|e| format!("callgrind_control {arg}: {e}"))?;
    if !ran.status.success() {
        let said = String::from_utf8_lossy(&ran.stderr);
        return Err(format!("callgrind_control {arg} {}: {}: {said}", server.pid(), ran.status));
    }
    Ok(())
}

fn zero(server: &Server) -> Result<(), String> {
    control(server, "-z")
}

/// Dumps the counters and reads their total: the `totals:` (or
/// `summary:`) line of the dump, the only event counted being `Ir`.
fn dump(server: &Server, out: &Path) -> Result<u64, String> {
    control(server, "-d")?;
    // The dump is `OUT.1` (the first one asked for); wait until it is
    // written through to its totals.
    let path = PathBuf::from(format!("{}.1", out.display()));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let total = text.lines().find_map(|line| {
            let rest = line.strip_prefix("totals:").or_else(|| line.strip_prefix("summary:"))?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        });
        if let Some(total) = total {
            return Ok(total);
        }
        if Instant::now() > deadline {
            return Err(format!("no totals in {} 60 s after callgrind_control -d", path.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A blocking client connection with its unread replies.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Result<Conn, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        // Generous: the server runs under callgrind.
        stream.set_read_timeout(Some(Duration::from_secs(600))).map_err(|e| e.to_string())?;
        Ok(Conn { stream, buf: Vec::new() })
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream.write_all(bytes).map_err(|e| format!("send: {e}"))
    }

    /// Reads `n` replies, each checked by `check`.
    fn replies(&mut self, n: usize, mut check: impl FnMut(Reply) -> Result<(), String>) -> Result<(), String> {
        let mut seen = 0;
        let mut start = 0;
        let mut chunk = vec![0; 1 << 16];
        while seen < n {
            match client::parse_reply(&self.buf[start..])? {
                Some((reply, used)) => {
                    check(reply)?;
                    start += used;
                    seen += 1;
                }
                None => {
                    self.buf.drain(..start);
                    start = 0;
                    let got = loop {
                        // A signal to the race (a server it started exiting)
                        // interrupts a blocked read: read again.
                        match self.stream.read(&mut chunk) {
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            read => break read.map_err(|e| format!("read: {e}"))?,
                        }
                    };
                    if got == 0 {
                        return Err(format!("server closed the connection after {seen} of {n} replies"));
                    }
                    self.buf.extend_from_slice(&chunk[..got]);
                }
            }
        }
        self.buf.drain(..start);
        Ok(())
    }
}
