//! The metrics endpoint (`--metrics`): a scrape read by the real
//! Prometheus parsers (Python's `prometheus_client`, text and OpenMetrics)
//! agrees with `stats` and `stats-tube` taken at the same moment; what
//! beanstalkd cannot tell (the oldest ready job, waits, holds); the cap on
//! tubes with series of their own; and the HTTP side's bounds: malformed
//! requests, huge headers, slow and many clients get clean answers and
//! cost bounded memory, and the queue's port is never held up.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::http::{self, get, metrics_port, parse_with_prometheus_client};
use support::{Client, Server, ServerBuilder, procfs, wait_until};

/// sprout with metrics on a port of its choosing, logged (`-V`).
fn sprout_with_metrics() -> ServerBuilder<'static> {
    Server::sprout().args(["-V", "--metrics", "127.0.0.1:0"])
}

/// A scrape's samples, parsed by prometheus_client (`None`: skipped).
fn scrape(test: &str, port: u16, openmetrics: bool) -> Option<BTreeMap<String, f64>> {
    let accept = if openmetrics { "Accept: application/openmetrics-text; version=1.0.0\r\n" } else { "" };
    let response = get(port, "/metrics", accept);
    assert_eq!(response.status, 200);
    let want = if openmetrics { "application/openmetrics-text" } else { "text/plain; version=0.0.4" };
    assert!(response.header("content-type").unwrap().starts_with(want), "{:?}", response.headers);
    parse_with_prometheus_client(test, &response.text(), openmetrics)
}

fn sample(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples.get(key).unwrap_or_else(|| panic!("no sample {key} among {:#?}", samples.keys().collect::<Vec<_>>()))
}

/// Some of everything: jobs in every state in two tubes, a paused tube,
/// a waiting worker.
fn busy_queue(server: &Server) -> Vec<Client> {
    let mut producer = server.connect();
    producer.exchange("use emails\r\n", "USING emails\r\n");
    for i in 0..5 {
        producer.put(i * 600, 0, 60, format!("email {i}"));
    }
    producer.put(0, 100, 60, "later");
    let mut worker = server.connect();
    worker.exchange("watch emails\r\n", "WATCHING 2\r\n");
    let reserved: Vec<u64> =
        (0..3).map(|_| support::found(&worker.request("reserve\r\n")[..]).map(|(id, _)| id).unwrap()).collect();
    worker.exchange(format!("delete {}\r\n", reserved[0]), "DELETED\r\n");
    worker.exchange(format!("bury {} 0\r\n", reserved[1]), "BURIED\r\n");
    producer.exchange("use reports\r\n", "USING reports\r\n");
    producer.put(0, 0, 60, "report");
    producer.exchange("pause-tube reports 100\r\n", "PAUSED\r\n");
    let mut waiter = server.connect();
    waiter.exchange("watch idle\r\n", "WATCHING 2\r\n");
    waiter.exchange("ignore default\r\n", "WATCHING 1\r\n");
    waiter.send("reserve\r\n");
    assert!(wait_until(Duration::from_secs(10), || producer.stats().num("current-waiting") == 1));
    vec![producer, worker, waiter]
}

#[test]
fn a_scrape_agrees_with_stats_taken_at_the_same_moment() {
    let test = "a_scrape_agrees_with_stats_taken_at_the_same_moment";
    let server = sprout_with_metrics().start();
    let port = metrics_port(&server);
    let _clients = busy_queue(&server);
    let mut c = server.connect();
    for openmetrics in [false, true] {
        // Nothing changes between the two but the stats and scrape counts.
        let stats = c.stats();
        let Some(m) = scrape(test, port, openmetrics) else { return };
        for state in ["ready", "reserved", "delayed", "buried"] {
            let key = format!("sprout_current_jobs{{state=\"{state}\"}}");
            assert_eq!(sample(&m, &key), stats.num(&format!("current-jobs-{state}")) as f64, "{key}");
        }
        for (stat, metric) in [
            ("current-jobs-urgent", "sprout_current_jobs_urgent{}".to_string()),
            ("job-timeouts", "sprout_job_timeouts_total{}".into()),
            ("total-jobs", "sprout_jobs_total{}".into()),
            ("max-job-size", "sprout_max_job_size_bytes{}".into()),
            ("current-tubes", "sprout_current_tubes{}".into()),
            ("current-connections", "sprout_current_connections{}".into()),
            ("current-producers", "sprout_current_connections_by_kind{kind=\"producer\"}".into()),
            ("current-workers", "sprout_current_connections_by_kind{kind=\"worker\"}".into()),
            ("current-waiting", "sprout_current_connections_by_kind{kind=\"waiting\"}".into()),
            ("total-connections", "sprout_connections_total{}".into()),
            ("binlog-records-written", "sprout_binlog_records_written_total{}".into()),
            ("binlog-max-size", "sprout_binlog_max_size_bytes{}".into()),
            ("draining", "sprout_draining{}".into()),
        ] {
            let want = if stat == "draining" { 0.0 } else { stats.num(stat) as f64 };
            assert_eq!(sample(&m, &metric), want, "{metric} against stats {stat}");
        }
        for (key, value) in
            [("put", "cmd-put"), ("reserve", "cmd-reserve"), ("delete", "cmd-delete"), ("use", "cmd-use")]
        {
            let metric = format!("sprout_commands_total{{command=\"{key}\"}}");
            assert_eq!(sample(&m, &metric), stats.num(value) as f64, "{metric}");
        }
        // The scrape came after stats: one more stats command, none after.
        assert_eq!(sample(&m, "sprout_commands_total{command=\"stats\"}"), stats.num("cmd-stats") as f64);
        let info = m.keys().find(|k| k.starts_with("sprout_server_info{")).expect("sprout_server_info");
        assert!(info.contains(&format!("pid=\"{}\"", stats["pid"])), "{info}");
        assert!(info.contains(&format!("id=\"{}\"", stats["id"])), "{info}");
        let uptime = sample(&m, "sprout_uptime_seconds{}");
        assert!(uptime >= stats.num("uptime") as f64, "{uptime}");

        for tube in ["default", "emails", "reports", "idle"] {
            let t = c.yaml(&format!("stats-tube {tube}"));
            for state in ["ready", "reserved", "delayed", "buried"] {
                let key = format!("sprout_tube_current_jobs{{state=\"{state}\",tube=\"{tube}\"}}");
                assert_eq!(sample(&m, &key), t.num(&format!("current-jobs-{state}")) as f64, "{key}");
            }
            for (stat, metric) in [
                ("current-jobs-urgent", "sprout_tube_current_jobs_urgent"),
                ("current-using", "sprout_tube_current_using"),
                ("current-watching", "sprout_tube_current_watching"),
                ("current-waiting", "sprout_tube_current_waiting"),
                ("total-jobs", "sprout_tube_jobs_total"),
                ("cmd-delete", "sprout_tube_deletes_total"),
                ("cmd-pause-tube", "sprout_tube_pauses_total"),
            ] {
                let key = format!("{metric}{{tube=\"{tube}\"}}");
                assert_eq!(sample(&m, &key), t.num(stat) as f64, "{key} against stats-tube {tube} {stat}");
            }
            let paused = sample(&m, &format!("sprout_tube_paused{{tube=\"{tube}\"}}"));
            assert_eq!(paused, if t.num("pause") > 0 { 1.0 } else { 0.0 }, "{tube} paused");
        }
        // What stats cannot say: two reserves took jobs of emails, one
        // delete and one bury ended holds, emails has ready jobs waiting.
        assert_eq!(sample(&m, "sprout_tube_ready_wait_seconds_count{tube=\"emails\"}"), 3.0);
        assert_eq!(sample(&m, "sprout_tube_hold_seconds_count{tube=\"emails\"}"), 2.0);
        assert_eq!(sample(&m, "sprout_tube_ready_wait_seconds_bucket{le=\"+Inf\",tube=\"emails\"}"), 3.0);
        assert!(sample(&m, "sprout_tube_oldest_ready_age_seconds{tube=\"emails\"}") > 0.0);
        assert_eq!(sample(&m, "sprout_tube_oldest_ready_age_seconds{tube=\"idle\"}"), 0.0);
        assert_eq!(sample(&m, "sprout_metrics_tubes{series=\"other\"}"), 0.0);
        assert!(!m.keys().any(|k| k.starts_with("sprout_binlog_fsync")), "no binlog figures without -b");
    }
}

#[test]
fn the_oldest_ready_job_ages_and_waits_are_measured() {
    let test = "the_oldest_ready_job_ages_and_waits_are_measured";
    let server = sprout_with_metrics().start();
    let port = metrics_port(&server);
    let mut c = server.connect();
    let low = c.put(2000, 0, 60, "low priority");
    let started = Instant::now();
    // Jobs come and go ahead of it; it keeps waiting.
    while started.elapsed() < Duration::from_millis(1100) {
        let id = c.put(0, 0, 60, "urgent");
        c.exchange("reserve\r\n", format!("RESERVED {id} 6\r\nurgent\r\n"));
        c.exchange(format!("delete {id}\r\n"), "DELETED\r\n");
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(m) = scrape(test, port, false) else { return };
    let age = sample(&m, "sprout_tube_oldest_ready_age_seconds{tube=\"default\"}");
    assert!((1.1..600.0).contains(&age), "the low-priority job has waited since its put: {age}");
    c.exchange("reserve\r\n", format!("RESERVED {low} 12\r\nlow priority\r\n"));
    let Some(m) = scrape(test, port, false) else { return };
    assert_eq!(sample(&m, "sprout_tube_oldest_ready_age_seconds{tube=\"default\"}"), 0.0);
    let waited = sample(&m, "sprout_tube_ready_wait_seconds_count{tube=\"default\"}");
    let under_a_second = sample(&m, "sprout_tube_ready_wait_seconds_bucket{le=\"1\",tube=\"default\"}");
    assert_eq!(waited - under_a_second, 1.0, "only the low-priority job waited over a second");
    assert!(sample(&m, "sprout_tube_ready_wait_seconds_sum{tube=\"default\"}") >= 1.1);
}

#[test]
fn tubes_beyond_the_cap_are_counted_as_other() {
    let test = "tubes_beyond_the_cap_are_counted_as_other";
    let server = sprout_with_metrics().args(["--metrics-tubes", "3"]).start();
    let port = metrics_port(&server);
    let mut c = server.connect();
    for i in 0..10 {
        c.exchange(format!("use t{i}\r\n"), format!("USING t{i}\r\n"));
        c.put(0, 0, 60, "x");
    }
    let Some(m) = scrape(test, port, false) else { return };
    let tubes: Vec<&str> = m
        .keys()
        .filter_map(|k| k.strip_prefix("sprout_tube_current_jobs_urgent{tube=\""))
        .map(|t| t.trim_end_matches("\"}"))
        .collect();
    assert_eq!(tubes, ["[other]", "default", "t0", "t1"], "the first three tubes created, and the rest together");
    assert_eq!(sample(&m, "sprout_tube_current_jobs{state=\"ready\",tube=\"[other]\"}"), 8.0);
    assert_eq!(sample(&m, "sprout_tube_jobs_total{tube=\"[other]\"}"), 8.0);
    assert_eq!(sample(&m, "sprout_metrics_tubes{series=\"other\"}"), 8.0);
    assert_eq!(sample(&m, "sprout_metrics_tube_cap{}"), 3.0);
}

#[test]
fn with_a_binlog_its_writes_and_fsyncs_are_reported() {
    let test = "with_a_binlog_its_writes_and_fsyncs_are_reported";
    let dir = tempfile::tempdir().unwrap();
    let server = sprout_with_metrics().binlog(dir.path()).args(["-f", "0"]).start();
    let port = metrics_port(&server);
    let mut c = server.connect();
    for _ in 0..10 {
        c.put(0, 0, 60, "durable");
    }
    let stats = c.stats();
    let Some(m) = scrape(test, port, false) else { return };
    assert_eq!(sample(&m, "sprout_binlog_records_written_total{}"), stats.num("binlog-records-written") as f64);
    assert!(sample(&m, "sprout_binlog_written_bytes_total{}") > 10.0 * 7.0);
    assert!(sample(&m, "sprout_binlog_fsync_seconds_count{}") >= 10.0, "-f 0 syncs every put");
    assert!(sample(&m, "sprout_binlog_files{}") >= 1.0);
    assert!(sample(&m, "sprout_binlog_live_bytes{}") > 0.0);
    assert_eq!(sample(&m, "sprout_binlog_write_failed{}"), 0.0);
    assert_eq!(sample(&m, "sprout_binlog_allocation_failed{}"), 0.0);
    assert_eq!(sample(&m, "sprout_binlog_refused_total{}"), 0.0);
}

#[test]
fn without_the_flag_there_is_no_metrics_socket() {
    let server = Server::sprout().args(["-V"]).start();
    let mut c = server.connect();
    c.put(0, 0, 60, "x");
    assert!(!server.stderr_text().contains("metrics"), "{}", server.stderr_text());
    assert_eq!(listening_sockets(server.pid()), 1, "only the queue's port");
    let with = sprout_with_metrics().start();
    assert_eq!(listening_sockets(with.pid()), 2);
}

/// How many TCP sockets the process listens on.
fn listening_sockets(pid: u32) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_string))
        .collect();
    let tables = std::fs::read_to_string("/proc/net/tcp").unwrap()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    tables
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]))
        .count()
}

#[test]
fn other_paths_methods_and_malformed_requests_get_clean_answers() {
    let server = sprout_with_metrics().start();
    let port = metrics_port(&server);
    // (`/` is the status page: tests/status_page.rs.)
    let r = get(port, "/favicon.ico", "");
    assert_eq!((r.status, r.text()), (404, "404 Not Found\n".to_string()));
    let r = http::exchange(port, b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(r.header("connection"), Some("close"), "a request with a body closes the connection");
    let r = http::exchange(port, b"HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r.header("content-length").unwrap().parse::<usize>().unwrap() > 1000);
    let r = get(port, "/metrics?x=1", "");
    assert_eq!(r.status, 200, "a query string is ignored");
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /metrics HTTP/9.9\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
    ] {
        let r = http::exchange(port, garbage);
        assert_eq!(r.status, 400, "{garbage:?}");
        assert_eq!(r.header("connection"), Some("close"));
    }
    // Headers over 8 KiB, or too many: 431, and the connection closes
    // cleanly although the client was still sending.
    let big = format!("GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(100_000));
    let mut s = http::connect(port);
    let _ = s.write_all(big.as_bytes());
    let r = http::read_response(&mut s, false).expect("431 before the close");
    assert_eq!(r.status, 431);
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = http::exchange(port, format!("GET /metrics HTTP/1.1\r\n{many}\r\n").as_bytes());
    assert_eq!(r.status, 431);
    // Keep-alive: two requests, pipelined, on one connection; then an
    // HTTP/1.0 request, which closes it.
    let mut s = http::connect(port);
    s.write_all(
        b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET /metrics HTTP/1.0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(http::read_response(&mut s, false).unwrap().status, 200);
    assert_eq!(http::read_response(&mut s, false).unwrap().status, 404);
    let last = http::read_response(&mut s, false).unwrap();
    assert_eq!((last.status, last.header("connection")), (200, Some("close")));
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"", "closed after the HTTP/1.0 response");
    // The queue never noticed.
    server.connect().exchange("list-tubes\r\n", "OK 14\r\n---\n- default\n\r\n");
}

#[test]
fn slow_and_many_clients_are_bounded_and_the_queue_goes_on() {
    let server = sprout_with_metrics().start();
    let port = metrics_port(&server);
    let pid = server.pid();
    let before = procfs::resident_kb(pid);
    // 200 connections, each sending the start of a request and stalling:
    // at most 32 are kept (the oldest closed for newer ones).
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = http::connect(port);
            s.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ").unwrap();
            s
        })
        .collect();
    let mut c = server.connect();
    c.put(0, 0, 60, "still served");
    // A scraper still gets its scrape.
    assert_eq!(get(port, "/metrics", "").status, 200);
    let open = slow.iter_mut().map(|s| !is_closed(s)).filter(|&open| open).count();
    assert!(open <= 32, "{open} stalled connections kept");
    let grown = procfs::resident_kb(pid).saturating_sub(before);
    assert!(grown < 16 * 1024, "200 stalled clients cost {grown} KiB");
    // A client trickling a byte at a time makes no progress: it is told
    // 408 and closed once its time is up, however it trickles.
    let mut trickle = http::connect(port);
    trickle.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    let closed = wait_until(Duration::from_secs(40), || {
        let _ = trickle.write_all(b"X");
        std::thread::sleep(Duration::from_millis(200));
        is_closed(&mut trickle)
    });
    assert!(closed, "a trickling client was never timed out");
}

/// Whether the server closed the connection (reads what it sent first).
fn is_closed(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).unwrap();
    closed
}

#[test]
fn a_scraper_that_does_not_read_never_holds_up_the_queue() {
    let test = "a_scraper_that_does_not_read_never_holds_up_the_queue";
    // Many tubes with series of their own make a scrape of megabytes, which
    // the scraper does not read (with a small receive buffer): it waits in
    // the server while the queue goes on.
    let server = sprout_with_metrics().args(["--metrics-tubes", "100000"]).start();
    let port = metrics_port(&server);
    let mut c = server.connect();
    let mut commands = Vec::new();
    for i in 0..2000 {
        commands.extend(format!("use tube-{i}\r\n").bytes());
        commands.extend(support::put_command(0, 0, 60, "x"));
    }
    c.pipeline(commands, 4000);
    let mut stuck = http::connect(port);
    shrink_receive_buffer(&stuck);
    stuck.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    // Not reading: the scrape fills the socket and waits in the server.
    for _ in 0..100 {
        c.put(0, 0, 60, "go on");
    }
    let mut w = server.connect();
    w.exchange("watch tube-1\r\n", "WATCHING 2\r\n");
    assert!(w.call("reserve-with-timeout 5\r\n").starts_with("RESERVED"));
    // Now read it: whole, and readable by Prometheus.
    let response = http::read_response(&mut stuck, false).unwrap();
    assert!(response.body.len() > 2_000_000, "{} bytes", response.body.len());
    let Some(m) = parse_with_prometheus_client(test, &response.text(), false) else { return };
    assert_eq!(sample(&m, "sprout_tube_current_jobs{state=\"ready\",tube=\"tube-0\"}"), 1.0);
}

/// Makes the kernel hold little of what the server sends the client, so
/// that most of a large scrape waits in the server.
fn shrink_receive_buffer(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 64 * 1024;
    // SAFETY: setsockopt reads `size` (an int, as SO_RCVBUF takes) for the
    // duration of the call, on a descriptor the stream keeps open.
    let r = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt SO_RCVBUF: {}", std::io::Error::last_os_error());
}
