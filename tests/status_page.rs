//! The status page (`GET /` on the `--metrics` listener) and its document
//! (`GET /status.json`): served from the binary, read-only; the document
//! agrees with `stats` and `stats-tube` taken at the same moment; and a
//! real headless browser (Debian's chromium) that loads the page against a
//! server with known jobs shows those numbers, sorted by backlog.

mod support;

use std::collections::BTreeMap;

use serde_json::Value;
use support::browser::Browser;
use support::http::{exchange, get, metrics_port};
use support::{Client, Server, ServerBuilder, wait_until};

/// sprout with metrics on a port of its choosing, logged (`-V`).
fn sprout_with_metrics() -> ServerBuilder<'static> {
    Server::sprout().args(["-V", "--metrics", "127.0.0.1:0"])
}

/// A tube name with every punctuation a name may hold.
const ODD: &str = "a+b/c;d.$_(x)-y";

/// Known jobs: `alpha` 3 ready (2 urgent), 1 buried, 2 delayed; `beta` 5
/// ready, 1 reserved; ODD 1 ready, paused; a worker waiting on `idle`.
/// The clients are returned: they hold the reservation and the wait.
fn known_jobs(server: &Server) -> Vec<Client> {
    let mut producer = server.connect();
    producer.exchange("use alpha\r\n", "USING alpha\r\n");
    let buried = producer.put(0, 0, 60, "to bury");
    producer.put(0, 0, 60, "a1");
    producer.put(100, 0, 60, "a2");
    producer.put(5000, 0, 60, "a3");
    producer.put(0, 100, 60, "later 1");
    producer.put(0, 200, 60, "later 2");
    let mut worker = server.connect();
    worker.exchange("watch alpha\r\n", "WATCHING 2\r\n");
    worker.exchange("reserve\r\n", format!("RESERVED {buried} 7\r\nto bury\r\n"));
    worker.exchange(format!("bury {buried} 0\r\n"), "BURIED\r\n");
    worker.exchange("ignore alpha\r\n", "WATCHING 1\r\n");
    producer.exchange("use beta\r\n", "USING beta\r\n");
    let held = producer.put(0, 0, 60, "held");
    for i in 0..5 {
        producer.put(10, 0, 60, format!("b{i}"));
    }
    worker.exchange("watch beta\r\n", "WATCHING 2\r\n");
    worker.exchange("reserve\r\n", format!("RESERVED {held} 4\r\nheld\r\n"));
    producer.exchange(format!("use {ODD}\r\n"), format!("USING {ODD}\r\n"));
    producer.put(0, 0, 60, "odd");
    producer.exchange(format!("pause-tube {ODD} 600\r\n"), "PAUSED\r\n");
    let mut waiter = server.connect();
    waiter.exchange("watch idle\r\n", "WATCHING 2\r\n");
    waiter.exchange("ignore default\r\n", "WATCHING 1\r\n");
    waiter.send("reserve\r\n");
    assert!(wait_until(std::time::Duration::from_secs(10), || producer.stats().num("current-waiting") == 1));
    vec![producer, worker, waiter]
}

fn status_json(port: u16) -> Value {
    let response = get(port, "/status.json", "");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    serde_json::from_slice(&response.body).expect("status.json is JSON")
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no number {key} in {v}"))
}

#[test]
fn the_page_and_its_document_are_served_and_nothing_else() {
    let server = sprout_with_metrics().start();
    let port = metrics_port(&server);
    let page = get(port, "/", "");
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page.header("content-security-policy").unwrap().starts_with("default-src 'none'"));
    let html = page.text();
    assert!(html.starts_with("<!doctype html>") && html.contains("<title>sprout status</title>"));
    assert!(!html.contains("<form") && !html.contains("method=\"post\""), "read-only");
    let with_query = get(port, "/?refresh=1", "");
    assert_eq!((with_query.status, with_query.body.len()), (200, page.body.len()));

    let head = exchange(port, b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(page.body.len().to_string().as_str()));
    assert!(head.body.is_empty());
    for (method, path) in [("POST", "/"), ("DELETE", "/"), ("PUT", "/status.json"), ("POST", "/metrics")] {
        let r = exchange(port, format!("{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n").as_bytes());
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}");
    }
    for path in ["/index.html", "/status", "/status.json/x", "//"] {
        assert_eq!(get(port, path, "").status, 404, "{path}");
    }
    assert_eq!(get(port, "/metrics", "").status, 200);
    let doc = status_json(port);
    assert_eq!(doc["sprout_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!((num(&doc, "sample_interval_secs"), num(&doc, "samples_kept")), (5, 120));
}

#[test]
fn the_document_agrees_with_stats_taken_at_the_same_moment() {
    let server = sprout_with_metrics().start();
    let port = metrics_port(&server);
    let _clients = known_jobs(&server);
    let mut c = server.connect();
    // Nothing the document shows changes between the two.
    let stats = c.stats();
    let doc = status_json(port);
    assert_eq!(doc["version"], stats["version"]);
    assert_eq!(doc["id"], stats["id"]);
    assert_eq!(doc["hostname"], stats["hostname"]);
    assert_eq!(num(&doc, "pid"), stats.num("pid"));
    assert!(num(&doc, "uptime_secs") >= stats.num("uptime"));
    assert_eq!(doc["draining"], false);
    for (key, stat) in [
        ("current", "current-connections"),
        ("producers", "current-producers"),
        ("workers", "current-workers"),
        ("waiting", "current-waiting"),
        ("total", "total-connections"),
    ] {
        assert_eq!(num(&doc["connections"], key), stats.num(stat), "connections.{key} against {stat}");
    }
    for (key, stat) in [
        ("urgent", "current-jobs-urgent"),
        ("ready", "current-jobs-ready"),
        ("reserved", "current-jobs-reserved"),
        ("delayed", "current-jobs-delayed"),
        ("buried", "current-jobs-buried"),
        ("total", "total-jobs"),
        ("timeouts", "job-timeouts"),
    ] {
        assert_eq!(num(&doc["jobs"], key), stats.num(stat), "jobs.{key} against {stat}");
    }
    assert_eq!(num(&doc, "tube_count"), stats.num("current-tubes"));
    assert_eq!(num(&doc, "tube_cap"), 100);
    assert!(doc["other"].is_null(), "every tube has a row of its own");

    let rows = doc["tubes"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let listed = c.call("list-tubes\r\n");
    let listed: Vec<&str> = listed.lines().filter_map(|l| l.strip_prefix("- ")).collect();
    assert_eq!(names, listed, "in list-tubes order");
    for row in rows {
        let name = row["name"].as_str().unwrap();
        let t = c.yaml(&format!("stats-tube {name}"));
        for (key, stat) in [
            ("ready", "current-jobs-ready"),
            ("urgent", "current-jobs-urgent"),
            ("reserved", "current-jobs-reserved"),
            ("delayed", "current-jobs-delayed"),
            ("buried", "current-jobs-buried"),
            ("waiting", "current-waiting"),
            ("total_jobs", "total-jobs"),
            ("pause_time_left", "pause-time-left"),
        ] {
            assert_eq!(num(row, key), t.num(stat), "{name}: {key} against {stat}");
        }
        assert_eq!(num(row, "paused"), u64::from(t.num("pause") > 0), "{name} paused");
        assert_eq!(num(row, "tubes"), 1);
        let ready_age = num(row, "oldest_ready_age_ms");
        // (A job ready for under a millisecond shows 0.)
        if t.num("current-jobs-ready") == 0 {
            assert_eq!(ready_age, 0, "{name}: nothing ready");
        }
        assert!(ready_age < 600_000, "{name}: oldest ready {ready_age} ms, in a test's time");
        let intervals = doc["interval_ms"].as_array().unwrap().len();
        for series in ["puts", "reserves"] {
            assert!(row[series].as_array().unwrap().len() <= intervals, "{name}: {series} beyond the intervals");
        }
    }
}

#[test]
fn tubes_beyond_the_cap_are_one_row_that_says_how_many() {
    let server = sprout_with_metrics().args(["--metrics-tubes", "3"]).start();
    let port = metrics_port(&server);
    let mut c = server.connect();
    for i in 0..10 {
        c.exchange(format!("use t{i}\r\n"), format!("USING t{i}\r\n"));
        c.put(0, 0, 60, "x");
    }
    let doc = status_json(port);
    let names: Vec<&str> = doc["tubes"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["default", "t0", "t1"]);
    let other = &doc["other"];
    assert_eq!((other["name"].as_str(), num(other, "tubes"), num(other, "ready")), (Some("[other]"), 8, 8));
    assert_eq!((num(&doc, "tube_count"), num(&doc, "tube_cap")), (11, 3));
}

/// The rows of a dumped page: each tube's name and its cells' text by
/// column (charts aside), in the order shown.
fn rows(dom: &str) -> Vec<(String, BTreeMap<String, String>)> {
    dom.split("<tr data-tube=\"")
        .skip(1)
        .map(|rest| {
            let (name, rest) = rest.split_once('"').unwrap();
            let row = rest.split("</tr>").next().unwrap();
            let cells = row
                .split("<td data-col=\"")
                .skip(1)
                .map(|cell| {
                    let (col, rest) = cell.split_once('"').unwrap();
                    let text = rest.split_once('>').unwrap().1.split('<').next().unwrap();
                    (col.to_string(), unescape(text))
                })
                .collect();
            (unescape(name), cells)
        })
        .collect()
}

/// The text of the element with `id` in a dumped page.
fn text_of(dom: &str, id: &str) -> String {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the page"));
    unescape(dom[at..].split_once('>').unwrap().1.split('<').next().unwrap())
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&nbsp;", " ").replace("&amp;", "&")
}

/// A count as the page shows it (with thousands separators).
fn count(text: &str) -> u64 {
    text.replace(',', "").parse().unwrap_or_else(|_| panic!("not a count: {text:?}"))
}

#[test]
fn a_headless_browser_shows_the_known_jobs_sorted_by_backlog() {
    let test = "a_headless_browser_shows_the_known_jobs_sorted_by_backlog";
    let Some(browser) = Browser::find_or_skip(test) else { return };
    let server = sprout_with_metrics().start();
    let port = metrics_port(&server);
    let _clients = known_jobs(&server);
    // Still connected when the page loads: it is counted.
    let mut c = server.connect();
    let stats = c.stats();
    let url = format!("http://127.0.0.1:{port}/");
    let dom = browser.dump_dom(&url, 3000);
    assert!(!dom.contains("data-loads=\"0\""), "the page never drew status.json:\n{dom}");

    let shown = rows(&dom);
    let names: Vec<&str> = shown.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["beta", "alpha", ODD, "default", "idle"], "by backlog, most first; ties by name");
    let row = |name: &str| &shown.iter().find(|(n, _)| n == name).unwrap().1;
    for (name, ready, urgent, reserved, delayed, buried, waiting) in [
        ("alpha", 3, 2, 0, 2, 1, 0),
        ("beta", 5, 5, 1, 0, 0, 0),
        (ODD, 1, 1, 0, 0, 0, 0),
        ("default", 0, 0, 0, 0, 0, 0),
        ("idle", 0, 0, 0, 0, 0, 1),
    ] {
        let r = row(name);
        let got: Vec<u64> =
            ["ready", "urgent", "reserved", "delayed", "buried", "waiting"].iter().map(|c| count(&r[*c])).collect();
        assert_eq!(got, [ready, urgent, reserved, delayed, buried, waiting], "{name}: {r:?}");
        assert_eq!(r["name"], name, "the name shown as text");
        let age = &r["oldest_ready_age_ms"];
        if ready > 0 {
            assert!(age.ends_with(" ms") || age.ends_with(" s"), "{name}: oldest ready {age:?}");
        } else {
            assert_eq!(age, "", "{name}: nothing ready");
        }
    }
    assert!(row(ODD)["paused"].ends_with(" left"), "the pause's time left: {:?}", row(ODD));
    assert_eq!(row("alpha")["paused"], "");

    for (id, stat) in [
        ("jobs-ready", "current-jobs-ready"),
        ("jobs-urgent", "current-jobs-urgent"),
        ("jobs-reserved", "current-jobs-reserved"),
        ("jobs-delayed", "current-jobs-delayed"),
        ("jobs-buried", "current-jobs-buried"),
        ("jobs-total", "total-jobs"),
        ("conn-current", "current-connections"),
        ("conn-producers", "current-producers"),
        ("conn-workers", "current-workers"),
        ("conn-waiting", "current-waiting"),
        ("tube-count", "current-tubes"),
    ] {
        assert_eq!(count(&text_of(&dom, id)), stats.num(stat), "#{id} against stats {stat}");
    }
    assert_eq!(text_of(&dom, "hostname"), stats["hostname"]);
    let identity = text_of(&dom, "identity");
    assert!(identity.contains(&format!("pid {}", stats["pid"])), "{identity}");
    assert!(identity.contains(env!("CARGO_PKG_VERSION")), "{identity}");
    assert!(!text_of(&dom, "uptime").is_empty());

    if let Some(png) = std::env::var_os("STATUS_PAGE_SCREENSHOT") {
        browser.screenshot(&url, 3000, (1280, 900), png.as_ref());
        eprintln!("{test}: screenshot in {}", png.to_string_lossy());
    }
}
