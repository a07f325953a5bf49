//! What the package ships for monitoring sprout: the Grafana dashboard
//! (`packaging/grafana/sprout-dashboard.json`) and the Prometheus alert
//! rules (`packaging/prometheus/sprout-alerts.yml`). Every query in them
//! names metrics a real scrape has, with label names and values the
//! scrape has too; Prometheus's own `promtool` accepts every query as
//! PromQL; and the alerts fire when they should, and only then
//! (`promtool test rules` with `tests/prometheus/sprout-alerts.test.yml`).
//! Then end to end: a real Prometheus server scrapes a real sprout, loads
//! the alert rules, and answers every dashboard query with data, the
//! numbers being the server's.
//!
//! `promtool` and `prometheus` are Debian's `prometheus` package
//! (`.ci/run` installs it); without them those tests skip outside CI.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::http::{get, metrics_port};
use support::process::Stderr;
use support::{Process, Server, skip, wait_until};

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn dashboard() -> Value {
    let path = repo_file("packaging/grafana/sprout-dashboard.json");
    serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every panel, those inside rows included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

/// (where, query) for every panel target and every query variable.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr =
                target["expr"].as_str().unwrap_or_else(|| panic!("panel {}: a target with no expr", panel["title"]));
            queries.push((format!("panel {}", panel["title"]), expr.to_string()));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().expect("templating") {
        if variable["type"] == "query" {
            // label_values(SELECTOR, LABEL): the selector is PromQL.
            let query = variable["query"]["query"].as_str().expect("a variable's query");
            let inner =
                query.strip_prefix("label_values(").and_then(|q| q.rsplit_once(',')).map(|(selector, _)| selector);
            let selector = inner.unwrap_or_else(|| panic!("variable {}: {query}", variable["name"]));
            queries.push((format!("variable {}", variable["name"]), selector.to_string()));
        }
    }
    queries
}

/// (alert name, expr) of every rule, read from the YAML's `- alert:` and
/// `expr:` lines (each rule's expr is on one line).
fn alert_queries() -> Vec<(String, String)> {
    let text = fs::read_to_string(repo_file("packaging/prometheus/sprout-alerts.yml")).unwrap();
    let mut alert = None;
    let mut queries = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert:") {
            alert = Some(name.trim().to_string());
        } else if let Some(expr) = line.strip_prefix("expr:") {
            queries.push((format!("alert {}", alert.clone().expect("expr before alert")), expr.trim().to_string()));
        }
    }
    assert!(queries.len() >= 5, "the alert rules: {queries:?}");
    queries
}

/// A metric a query names, with its label matchers `(label, op, value)`.
#[derive(Debug)]
struct Selector {
    metric: String,
    matchers: Vec<(String, String, String)>,
}

/// The `sprout_*` selectors of a PromQL query. Only sprout's metrics are
/// named, so anything else (functions, `by` labels) is skipped.
fn selectors(query: &str) -> Vec<Selector> {
    let mut found = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("sprout_") {
        let name_len = rest[at..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len() - at);
        let metric = rest[at..at + name_len].to_string();
        rest = &rest[at + name_len..];
        let mut matchers = Vec::new();
        if let Some(inside) = rest.strip_prefix('{') {
            let end = inside.find('}').expect("an unclosed selector");
            for matcher in inside[..end].split(',').map(str::trim).filter(|m| !m.is_empty()) {
                let op_at = matcher.find(['=', '!']).unwrap_or_else(|| panic!("matcher {matcher:?}"));
                let op_len = if matcher[op_at + 1..].starts_with(['=', '~']) { 2 } else { 1 };
                let value = matcher[op_at + op_len..].trim().trim_matches('"');
                matchers.push((
                    matcher[..op_at].trim().to_string(),
                    matcher[op_at..op_at + op_len].to_string(),
                    value.to_string(),
                ));
            }
            rest = &inside[end + 1..];
        }
        found.push(Selector { metric, matchers });
    }
    found
}

/// The labels of each `by (...)` clause of a query.
fn grouping_labels(query: &str) -> Vec<String> {
    query
        .split("by (")
        .skip(1)
        .flat_map(|after| after.split(')').next().unwrap().split(',').map(|l| l.trim().to_string()))
        .filter(|l| !l.is_empty())
        .collect()
}

/// A scrape's samples: metric name -> label name -> values seen.
type Scraped = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Reads the Prometheus text format (sprout writes the values unquoted of
/// escapes in these tests: tube names are plain).
fn read_scrape(text: &str) -> Scraped {
    let mut scraped = Scraped::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name_end = line.find(['{', ' ']).unwrap();
        let labels = scraped.entry(line[..name_end].to_string()).or_default();
        if line[name_end..].starts_with('{') {
            let body = &line[name_end + 1..line.rfind('}').unwrap()];
            for pair in body.split("\",").map(|p| p.trim_end_matches('"')).filter(|p| !p.is_empty()) {
                let (name, value) = pair.split_once("=\"").unwrap_or_else(|| panic!("label {pair:?} in {line}"));
                labels.entry(name.to_string()).or_default().insert(value.to_string());
            }
        }
    }
    scraped
}

/// A sprout with a binlog (in `dir`) and metrics, with jobs that went
/// through every state, so every series that can exist does: in tube
/// `emails` 2 ready, 1 delayed, 1 buried, 1 deleted; a waiting worker.
/// Returns the server, its metrics port, and the clients to keep.
fn busy_server(dir: &Path) -> (Server, u16, Vec<support::Client>) {
    let server = Server::sprout().binlog(dir).args(["-V", "--metrics", "127.0.0.1:0"]).start();
    let port = metrics_port(&server);
    let mut producer = server.connect();
    producer.exchange("use emails\r\n", "USING emails\r\n");
    for i in 0..4 {
        producer.put(0, 0, 60, format!("email {i}"));
    }
    producer.put(0, 100, 60, "later");
    let mut worker = server.connect();
    worker.exchange("watch emails\r\n", "WATCHING 2\r\n");
    let mut reserve = || support::found(&worker.request("reserve\r\n")[..]).map(|(id, _)| id).unwrap();
    let (first, second) = (reserve(), reserve());
    worker.exchange(format!("delete {first}\r\n"), "DELETED\r\n");
    worker.exchange(format!("bury {second} 0\r\n"), "BURIED\r\n");
    producer.exchange("pause-tube emails 1\r\n", "PAUSED\r\n");
    let mut waiter = server.connect();
    waiter.send("reserve\r\n");
    assert!(wait_until(Duration::from_secs(10), || producer.stats().num("current-waiting") == 1));
    assert_eq!(producer.stats().num("current-jobs-ready"), 2);
    (server, port, vec![producer, worker, waiter])
}

fn scrape_of_a_busy_server() -> Scraped {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port, _clients) = busy_server(dir.path());
    let response = get(port, "/metrics", "");
    assert_eq!(response.status, 200);
    read_scrape(&response.text())
}

/// Prometheus adds these to every series it scrapes; histograms' buckets
/// have `le`.
const ADDED_BY_PROMETHEUS: [&str; 2] = ["instance", "job"];

#[test]
fn every_query_names_metrics_and_labels_that_a_scrape_has() {
    let scraped = scrape_of_a_busy_server();
    let dashboard = dashboard();
    let mut queries = dashboard_queries(&dashboard);
    queries.extend(alert_queries());
    let mut named = BTreeSet::new();
    for (place, query) in &queries {
        let found = selectors(query);
        assert!(!found.is_empty(), "{place}: {query} names no sprout metric");
        for Selector { metric, matchers } in &found {
            let labels = scraped.get(metric).unwrap_or_else(|| panic!("{place}: {metric} is not in a scrape"));
            named.insert(metric.clone());
            for (label, op, value) in matchers {
                if ADDED_BY_PROMETHEUS.contains(&label.as_str()) {
                    continue;
                }
                let values = labels.get(label).unwrap_or_else(|| panic!("{place}: {metric} has no label {label}"));
                if op == "=" && !value.contains('$') {
                    assert!(
                        values.contains(value),
                        "{place}: {metric}{{{label}=\"{value}\"}} is not in a scrape: {values:?}"
                    );
                }
            }
        }
        for label in grouping_labels(query) {
            let known = ADDED_BY_PROMETHEUS.contains(&label.as_str())
                || found.iter().any(|s| scraped[&s.metric].contains_key(&label));
            assert!(known, "{place}: by ({label}), which none of its metrics has: {query}");
        }
    }
    // The dashboard shows what the issue asks for: backlog age, buried
    // jobs, TTR expiries, the binlog's health, waits and holds.
    for metric in [
        "sprout_tube_oldest_ready_age_seconds",
        "sprout_tube_current_jobs",
        "sprout_tube_ttr_expiries_total",
        "sprout_binlog_write_failed",
        "sprout_tube_ready_wait_seconds_bucket",
        "sprout_tube_hold_seconds_bucket",
        "sprout_binlog_fsync_seconds_bucket",
    ] {
        assert!(named.contains(metric), "nothing shows {metric}");
    }
}

#[test]
fn the_dashboard_is_well_formed() {
    let dashboard = dashboard();
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for panel in panels(&dashboard) {
        let title = &panel["title"];
        assert!(ids.insert(panel["id"].as_u64().expect("an id")), "panel {title}: id used twice");
        let grid = &panel["gridPos"];
        let [x, y, w, h] =
            ["x", "y", "w", "h"].map(|k| grid[k].as_u64().unwrap_or_else(|| panic!("panel {title}: gridPos.{k}")));
        assert!(x + w <= 24, "panel {title} is wider than the dashboard");
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            assert!(cells.insert(cell), "panel {title} overlaps another at {cell:?}");
        }
        if panel["type"] == "row" {
            continue;
        }
        assert!(panel["description"].as_str().is_some_and(|d| !d.is_empty()), "panel {title}: no description");
        let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("panel {title}: no targets"));
        assert!(!targets.is_empty(), "panel {title}: no targets");
        for datasource in targets.iter().map(|t| &t["datasource"]).chain([&panel["datasource"]]) {
            assert_eq!(datasource["uid"], "${datasource}", "panel {title}: pick the data source from the variable");
        }
    }
}

/// Runs `promtool` with `args`, or says why it cannot (`None`).
fn promtool(test: &str, args: &[&Path]) -> Option<String> {
    let output = match Command::new("promtool").args(args).output() {
        Ok(output) => output,
        Err(e) => {
            skip(test, &format!("promtool (Debian's prometheus package) cannot run: {e}"));
            return None;
        }
    };
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool {args:?}:\n{text}");
    Some(text)
}

#[test]
fn promtool_accepts_every_dashboard_query() {
    let test = "promtool_accepts_every_dashboard_query";
    // Each query as a recording rule, Grafana's variables given values.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, query)) in dashboard_queries(&dashboard()).iter().enumerate() {
        let query = query.replace("$__rate_interval", "5m").replace("$instance", ".*").replace("$tube", ".*");
        assert!(!query.contains('$'), "a variable the test does not know: {query}");
        rules += &format!("      - record: dashboard:query_{i}\n        expr: '{}'\n", query.replace('\'', "''"));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yml");
    fs::write(&file, rules).unwrap();
    let Some(out) = promtool(test, &[Path::new("check"), Path::new("rules"), &file]) else { return };
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_alerts_fire_when_they_should() {
    let test = "the_alerts_fire_when_they_should";
    let rules = repo_file("packaging/prometheus/sprout-alerts.yml");
    let Some(out) = promtool(test, &[Path::new("check"), Path::new("rules"), &rules]) else { return };
    assert!(out.contains("SUCCESS: 5 rules found"), "{out}");
    let cases = repo_file("tests/prometheus/sprout-alerts.test.yml");
    let Some(out) = promtool(test, &[Path::new("test"), Path::new("rules"), &cases]) else { return };
    assert!(out.contains("SUCCESS"), "{out}");
}

/// Percent-encodes a query for a URL.
fn url_encoded(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Prometheus's HTTP API: the `data` of a successful answer.
fn prometheus_api(port: u16, path: &str) -> Value {
    let response = get(port, path, "");
    let body: Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{path}: {e}: {}", String::from_utf8_lossy(&response.body)));
    assert_eq!(body["status"], "success", "{path}: {body}");
    body["data"].clone()
}

/// An instant query's result vector.
fn instant_query(port: u16, query: &str) -> Vec<Value> {
    let data = prometheus_api(port, &format!("/api/v1/query?query={}", url_encoded(query)));
    data["result"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_real_prometheus_answers_every_dashboard_query_with_the_servers_numbers() {
    let test = "a_real_prometheus_answers_every_dashboard_query_with_the_servers_numbers";
    if Command::new("prometheus").arg("--version").output().is_err() {
        return skip(test, "prometheus (Debian's prometheus package) cannot run");
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, metrics, _clients) = busy_server(&dir.path().join("binlog"));
    let rules = repo_file("packaging/prometheus/sprout-alerts.yml");
    let config = dir.path().join("prometheus.yml");
    fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [\"{}\"]\n\
             scrape_configs:\n  - job_name: sprout\n    static_configs:\n      - targets: [\"127.0.0.1:{metrics}\"]\n",
            rules.display()
        ),
    )
    .unwrap();
    let (prometheus, port) = Process::spawn_on_free_port(
        |port| {
            let mut cmd = Command::new("prometheus");
            cmd.arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn");
            cmd
        },
        Stderr::Capture,
    );
    // Rates want two scrapes in their window; the rules one evaluation.
    let ready = wait_until(Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && get(port, "/-/ready", "").status == 200
            && instant_query(port, "count_over_time(sprout_uptime_seconds[1m]) >= 3").len() == 1
    });
    assert!(ready, "prometheus never scraped sprout 3 times:\n{}", prometheus.stderr_text());
    let rules_ok = wait_until(Duration::from_secs(60), || {
        let groups = prometheus_api(port, "/api/v1/rules")["groups"].clone();
        let rules: Vec<Value> = groups
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        rules.len() == 5 && rules.iter().all(|r| r["health"] == "ok")
    });
    assert!(
        rules_ok,
        "prometheus did not load and evaluate the 5 alert rules: {}",
        prometheus_api(port, "/api/v1/rules")
    );
    // Every query answers with data (a rate of a counter that did not move
    // is 0, a quantile of no observations NaN: series all the same).
    for (place, query) in dashboard_queries(&dashboard()) {
        let query = query.replace("$__rate_interval", "1m").replace("$instance", ".*").replace("$tube", ".*");
        let result = instant_query(port, &query);
        assert!(!result.is_empty(), "{place}: no data for {query}");
    }
    // And the numbers are the server's: the overview's ready and buried.
    let value = |query: &str| -> f64 {
        let result = instant_query(port, query);
        assert_eq!(result.len(), 1, "{query}: {result:?}");
        result[0]["value"][1].as_str().unwrap().parse().unwrap()
    };
    let mut client = server.connect();
    let stats = client.stats();
    assert_eq!(value(r#"sum(sprout_current_jobs{state="ready"})"#), stats.num("current-jobs-ready") as f64);
    assert_eq!(value(r#"sum(sprout_current_jobs{state="buried"})"#), stats.num("current-jobs-buried") as f64);
    assert_eq!(value(r#"max(sprout_binlog_write_failed or sprout_binlog_allocation_failed)"#), 0.0);
    // Nothing in this healthy server fires.
    let alerts = prometheus_api(port, "/api/v1/alerts")["alerts"].clone();
    assert_eq!(alerts.as_array().map(Vec::len), Some(0), "alerts: {alerts}");
}
