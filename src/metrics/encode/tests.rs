//! The documents written for a scrape: both formats, their names and
//! labels, and the other tubes' series.

use super::*;
use crate::metrics::TubeFigures;

fn figures() -> Figures {
    let mut f = Figures::default();
    f.server.ready = 3;
    f.server.ops[Op::Put as usize] = 7;
    f.server.ops[Op::KickJob as usize] = 2;
    f.server.version = "1.12".into();
    f.server.hostname = "host \"quoted\"".into();
    let mut t = TubeFigures::default();
    t.stats.name = "emails".into();
    t.stats.ready = 3;
    t.oldest_ready_age = 1_500_000_000;
    t.ready_wait.observe(2_000_000);
    f.tubes.push(t);
    f.tube_cap = 1;
    f
}

#[test]
fn the_prometheus_text_format_has_stats_names_and_labels() {
    let text = encode(figures(), Format::Prometheus);
    for line in [
        "# TYPE sprout_current_jobs gauge",
        "sprout_current_jobs{state=\"ready\"} 3",
        "# TYPE sprout_commands_total counter",
        "sprout_commands_total{command=\"put\"} 7",
        "sprout_commands_total{command=\"kick-job\"} 2",
        "sprout_tube_current_jobs{tube=\"emails\",state=\"ready\"} 3",
        "sprout_tube_oldest_ready_age_seconds{tube=\"emails\"} 1.5",
        "sprout_tube_ready_wait_seconds_bucket{tube=\"emails\",le=\"0.005\"} 1",
        "sprout_tube_ready_wait_seconds_bucket{tube=\"emails\",le=\"+Inf\"} 1",
        "sprout_tube_ready_wait_seconds_count{tube=\"emails\"} 1",
        "sprout_metrics_tubes{series=\"own\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
    }
    assert!(text.contains("hostname=\"host \\\"quoted\\\"\""), "label values are escaped");
    assert!(!text.contains("{tube=\"[other]\""), "no other tubes, no [other] series");
    assert!(!text.contains("# EOF"));
    assert!(!text.contains("binlog_fsync"), "no binlog figures without -b");
}

#[test]
fn openmetrics_ends_with_eof_and_names_units() {
    let text = encode(figures(), Format::OpenMetrics);
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# UNIT sprout_tube_oldest_ready_age_seconds seconds"));
    assert!(text.contains("# TYPE sprout_commands counter"));
    assert!(text.contains("sprout_server_info{version=\"1.12\""));
}

#[test]
fn the_other_tubes_have_one_series_when_there_are_any() {
    let mut f = figures();
    f.other_tubes = 5;
    f.other.stats.ready = 9;
    let text = encode(f, Format::Prometheus);
    assert!(text.contains("sprout_tube_current_jobs{tube=\"[other]\",state=\"ready\"} 9"), "{text}");
    assert!(text.contains("sprout_metrics_tubes{series=\"other\"} 5"));
}

#[test]
fn the_format_follows_accept() {
    assert_eq!(Format::from_accept(None), Format::Prometheus);
    assert_eq!(Format::from_accept(Some(b"text/plain")), Format::Prometheus);
    let prometheus = b"application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";
    assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
    assert_eq!(Format::from_accept(Some(b"Application/OpenMetrics-Text")), Format::OpenMetrics);
}
