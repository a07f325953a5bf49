//! A scrape's [`Figures`] as text: the Prometheus text format (0.0.4), or
//! OpenMetrics for a scraper that asks for it, both written by the
//! `prometheus-client` crate. Every metric's name, type, help and labels
//! are here, in the order they are written, so the list lives in one place
//! (README's "Metrics" section lists them too).
//!
//! Names: `sprout_` and the `stats` key with `_` for `-` (a counter ends in
//! `_total`, a duration in `_seconds`, a size in `_bytes`), except where a
//! label gathers keys: `cmd-*` is `sprout_commands_total{command}`,
//! `current-jobs-*` is `sprout_current_jobs{state}`, and current producers,
//! workers and waiting connections are `sprout_current_connections_by_kind
//! {kind}`. Per-tube series are `sprout_tube_*{tube}`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::figures::{BinlogFigures, Figures, OTHER_TUBES, TubeFigures};
use super::histogram::Histogram;
use crate::protocol::Op;

/// The two text formats a scrape can be answered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text exposition format, version 0.0.4: the default.
    Prometheus,
    /// OpenMetrics 1.0, for a scraper whose `Accept` names it.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics if the `Accept` header names it (Prometheus does when
    /// it scrapes), else the Prometheus text format.
    pub fn from_accept(accept: Option<&[u8]>) -> Format {
        let names_openmetrics = accept.is_some_and(|a| {
            a.windows(b"application/openmetrics-text".len())
                .any(|w| w.eq_ignore_ascii_case(b"application/openmetrics-text"))
        });
        if names_openmetrics { Format::OpenMetrics } else { Format::Prometheus }
    }

    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The figures as a document in `format`.
pub fn encode(figures: Figures, format: Format) -> String {
    let mut registry = Registry::with_prefix("sprout");
    registry.register_collector(Box::new(Scrape(figures)));
    let mut out = String::with_capacity(64 * 1024);
    let written = match format {
        Format::Prometheus => prometheus_client::encoding::prometheus_text::encode(&mut out, &registry),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    };
    // Writing into a String cannot fail, and the collector never fails.
    written.expect("encoding into a String");
    out
}

/// The figures, handed to the registry for one encoding.
#[derive(Debug)]
struct Scrape(Figures);

/// A family being written: its descriptor, then one sample per label set.
struct Family<'a>(MetricEncoder<'a>);

impl Family<'_> {
    fn gauge(&mut self, labels: &impl EncodeLabelSet, value: impl GaugeValue) -> Fmt {
        value.encode_gauge(&mut self.0.encode_family(labels)?)
    }

    fn counter(&mut self, labels: &impl EncodeLabelSet, value: u64) -> Fmt {
        self.0.encode_family(labels)?.encode_counter::<NoLabelSet, _, u64>(&value, None)
    }

    fn histogram<const N: usize>(&mut self, labels: &impl EncodeLabelSet, h: &Histogram<N>) -> Fmt {
        let buckets: Vec<(f64, u64)> = h.buckets().collect();
        self.0.encode_family(labels)?.encode_histogram::<NoLabelSet>(h.sum_secs(), h.count(), &buckets, None)
    }
}

type Fmt = Result<(), std::fmt::Error>;

/// A gauge's value: a count, or seconds.
trait GaugeValue {
    fn encode_gauge(self, encoder: &mut MetricEncoder) -> Fmt;
}

impl GaugeValue for u64 {
    fn encode_gauge(self, encoder: &mut MetricEncoder) -> Fmt {
        encoder.encode_gauge(&self)
    }
}

impl GaugeValue for f64 {
    fn encode_gauge(self, encoder: &mut MetricEncoder) -> Fmt {
        encoder.encode_gauge(&self)
    }
}

const NO_LABELS: [(&str, &str); 0] = [];

fn family<'s>(
    encoder: &'s mut DescriptorEncoder,
    name: &'s str,
    help: &str,
    unit: Option<&'s Unit>,
    metric_type: MetricType,
) -> Result<Family<'s>, std::fmt::Error> {
    Ok(Family(encoder.encode_descriptor(name, help, unit, metric_type)?))
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: impl GaugeValue) -> Fmt {
    family(encoder, name, help, None, MetricType::Gauge)?.gauge(&NO_LABELS, value)
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Fmt {
    family(encoder, name, help, None, MetricType::Counter)?.counter(&NO_LABELS, value)
}

fn nanos_to_secs(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Fmt {
        let f = &self.0;
        server(&mut e, f)?;
        tubes(&mut e, f)?;
        if let Some(binlog) = &f.binlog {
            self::binlog(&mut e, binlog)?;
        }
        Ok(())
    }
}

/// Everything `stats` reports.
fn server(e: &mut DescriptorEncoder, f: &Figures) -> Fmt {
    let s = &f.server;
    let mut jobs = family(e, "current_jobs", "Jobs by state (stats current-jobs-*).", None, MetricType::Gauge)?;
    for (state, n) in [("ready", s.ready), ("reserved", s.reserved), ("delayed", s.delayed), ("buried", s.buried)] {
        jobs.gauge(&[("state", state)], n)?;
    }
    gauge(e, "current_jobs_urgent", "Ready jobs with a priority below 1024 (stats current-jobs-urgent).", s.urgent)?;
    let mut commands =
        family(e, "commands", "Commands received, by command (stats cmd-*).", None, MetricType::Counter)?;
    for (op, name) in op_names() {
        commands.counter(&[("command", name)], s.ops[op as usize])?;
    }
    counter(e, "job_timeouts", "Reservations whose TTR ran out (stats job-timeouts).", s.job_timeouts)?;
    counter(e, "jobs", "Jobs put since the start (stats total-jobs).", s.total_jobs)?;
    let max = u64::from(s.max_job_size);
    family(e, "max_job_size", "The largest job body accepted (-z).", Some(&Unit::Bytes), MetricType::Gauge)?
        .gauge(&NO_LABELS, max)?;
    gauge(e, "current_tubes", "Tubes that exist (stats current-tubes).", s.tubes as u64)?;
    gauge(e, "current_connections", "Open client connections (stats current-connections).", s.connections)?;
    let mut kinds = family(
        e,
        "current_connections_by_kind",
        "Open connections that ever put (producer), ever reserved (worker), or wait in a reserve now (stats \
         current-producers, current-workers, current-waiting).",
        None,
        MetricType::Gauge,
    )?;
    for (kind, n) in [("producer", s.producers), ("worker", s.workers), ("waiting", s.waiting)] {
        kinds.gauge(&[("kind", kind)], n)?;
    }
    counter(e, "connections", "Connections accepted since the start (stats total-connections).", s.total_connections)?;
    let pid = s.pid.to_string();
    let info = [
        ("version", s.version.as_str()),
        ("pid", pid.as_str()),
        ("id", s.instance_id.as_str()),
        ("hostname", s.hostname.as_str()),
        ("os", s.os.as_str()),
        ("platform", s.platform.as_str()),
    ];
    family(e, "server", "The server (stats version, pid, id, hostname, os, platform).", None, MetricType::Info)?
        .0
        .encode_info(&info)?;
    let mut cpu = family(
        e,
        "rusage",
        "CPU time used, user and system (stats rusage-utime, rusage-stime).",
        Some(&Unit::Seconds),
        MetricType::Counter,
    )?;
    for (mode, micros) in [("user", s.rusage_utime_us), ("system", s.rusage_stime_us)] {
        cpu.0.encode_family(&[("mode", mode)])?.encode_counter::<NoLabelSet, _, u64>(&(micros as f64 / 1e6), None)?;
    }
    family(e, "uptime", "Seconds since the start (stats uptime).", Some(&Unit::Seconds), MetricType::Gauge)?
        .gauge(&NO_LABELS, s.uptime_secs)?;
    gauge(e, "binlog_oldest_index", "The oldest binlog file kept (stats binlog-oldest-index).", s.binlog.oldest_index)?;
    gauge(e, "binlog_current_index", "The binlog file written (stats binlog-current-index).", s.binlog.current_index)?;
    counter(
        e,
        "binlog_records_migrated",
        "Records compaction rewrote (stats binlog-records-migrated).",
        s.binlog.records_migrated,
    )?;
    counter(e, "binlog_records_written", "Records written (stats binlog-records-written).", s.binlog.records_written)?;
    family(e, "binlog_max_size", "The size of each binlog file (-s).", Some(&Unit::Bytes), MetricType::Gauge)?
        .gauge(&NO_LABELS, s.binlog.max_size)?;
    gauge(e, "draining", "1 in drain mode (SIGUSR1): puts are refused (stats draining).", u64::from(s.draining))?;
    Ok(())
}

/// Per-tube series, then how many tubes have series of their own.
fn tubes(e: &mut DescriptorEncoder, f: &Figures) -> Fmt {
    let rows: Vec<(&str, &TubeFigures)> = f
        .tubes
        .iter()
        .map(|t| (t.stats.name.as_str(), t))
        .chain((f.other_tubes > 0).then_some((OTHER_TUBES, &f.other)))
        .collect();
    let gauge_rows = |e: &mut DescriptorEncoder, name: &str, help: &str, value: &dyn Fn(&TubeFigures) -> u64| {
        let mut fam = family(e, name, help, None, MetricType::Gauge)?;
        rows.iter().try_for_each(|(tube, t)| fam.gauge(&[("tube", *tube)], value(t)))
    };
    let counter_rows = |e: &mut DescriptorEncoder, name: &str, help: &str, value: &dyn Fn(&TubeFigures) -> u64| {
        let mut fam = family(e, name, help, None, MetricType::Counter)?;
        rows.iter().try_for_each(|(tube, t)| fam.counter(&[("tube", *tube)], value(t)))
    };
    let mut jobs =
        family(e, "tube_current_jobs", "A tube's jobs by state (stats-tube current-jobs-*).", None, MetricType::Gauge)?;
    for (tube, t) in &rows {
        let s = &t.stats;
        for (state, n) in [("ready", s.ready), ("reserved", s.reserved), ("delayed", s.delayed), ("buried", s.buried)] {
            jobs.gauge(&[("tube", *tube), ("state", state)], n)?;
        }
    }
    gauge_rows(e, "tube_current_jobs_urgent", "A tube's ready jobs with a priority below 1024.", &|t| t.stats.urgent)?;
    gauge_rows(e, "tube_current_using", "Connections using the tube (stats-tube current-using).", &|t| t.stats.using)?;
    gauge_rows(e, "tube_current_watching", "Connections watching the tube (stats-tube current-watching).", &|t| {
        t.stats.watching
    })?;
    gauge_rows(
        e,
        "tube_current_waiting",
        "Connections waiting in a reserve on the tube (stats-tube current-waiting).",
        &|t| t.stats.waiting,
    )?;
    gauge_rows(e, "tube_paused", "1 while the tube is paused (for [other]: how many of them are).", &|t| t.paused)?;
    counter_rows(e, "tube_jobs", "Jobs put into the tube (stats-tube total-jobs).", &|t| t.stats.total_jobs)?;
    counter_rows(e, "tube_deletes", "Jobs of the tube deleted (stats-tube cmd-delete).", &|t| t.stats.deletes)?;
    counter_rows(e, "tube_pauses", "Times the tube was paused (stats-tube cmd-pause-tube).", &|t| t.stats.pauses)?;
    counter_rows(e, "tube_ttr_expiries", "Reservations of the tube's jobs whose TTR ran out.", &|t| t.ttr_expiries)?;
    counter_rows(
        e,
        "tube_deadline_soon",
        "DEADLINE_SOON answers, counted in the tube of the job whose TTR was about to end.",
        &|t| t.deadline_soon,
    )?;
    let mut oldest = family(
        e,
        "tube_oldest_ready_age",
        "How long the tube's longest-waiting ready job has been ready (0 with none): the queue's latency now.",
        Some(&Unit::Seconds),
        MetricType::Gauge,
    )?;
    for (tube, t) in &rows {
        oldest.gauge(&[("tube", *tube)], nanos_to_secs(t.oldest_ready_age))?;
    }
    let mut wait = family(
        e,
        "tube_ready_wait",
        "How long jobs were ready before a reserve took them.",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    for (tube, t) in &rows {
        wait.histogram(&[("tube", *tube)], &t.ready_wait)?;
    }
    let mut hold = family(
        e,
        "tube_hold",
        "How long workers held jobs, from the reserve to the delete, release or bury.",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    for (tube, t) in &rows {
        hold.histogram(&[("tube", *tube)], &t.hold)?;
    }
    let mut series = family(
        e,
        "metrics_tubes",
        "Tubes with series of their own (own), and tubes counted together as tube=\"[other]\" (other).",
        None,
        MetricType::Gauge,
    )?;
    series.gauge(&[("series", "own")], f.tubes.len() as u64)?;
    series.gauge(&[("series", "other")], f.other_tubes)?;
    gauge(e, "metrics_tube_cap", "The most tubes with series of their own (--metrics-tubes).", f.tube_cap)?;
    Ok(())
}

/// What the write-ahead log did (`-b`).
fn binlog(e: &mut DescriptorEncoder, b: &BinlogFigures) -> Fmt {
    family(e, "binlog_written", "Bytes of records written to the binlog.", Some(&Unit::Bytes), MetricType::Counter)?
        .counter(&NO_LABELS, b.written_bytes)?;
    family(
        e,
        "binlog_fsync",
        "How long each fsync of a binlog file took.",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?
    .histogram(&NO_LABELS, &b.fsync)?;
    gauge(e, "binlog_files", "binlog.N files, spare ones included.", b.files)?;
    family(e, "binlog_disk", "Bytes the binlog files take on disk.", Some(&Unit::Bytes), MetricType::Gauge)?
        .gauge(&NO_LABELS, b.disk_bytes)?;
    family(e, "binlog_live", "Bytes of the live jobs' records.", Some(&Unit::Bytes), MetricType::Gauge)?
        .gauge(&NO_LABELS, b.live_bytes)?;
    family(
        e,
        "binlog_reclaimable",
        "Bytes compaction could give back, about (as sprout binlog inspect counts them).",
        Some(&Unit::Bytes),
        MetricType::Gauge,
    )?
    .gauge(&NO_LABELS, b.reclaimable_bytes)?;
    gauge(
        e,
        "binlog_write_failed",
        "1 once a binlog write or fsync failed: every change is refused until a restart.",
        u64::from(b.write_failed),
    )?;
    gauge(
        e,
        "binlog_allocation_failed",
        "1 while a binlog file cannot be allocated (disk full): changes are refused once the room made is used.",
        u64::from(b.allocation_failed),
    )?;
    counter(e, "binlog_refused", "Changes refused for want of room on disk (OUT_OF_MEMORY to a put).", b.refused)?;
    Ok(())
}

/// Every counted command by the name the protocol gives it: the ones
/// `stats` reports as `cmd-*`, and the two it counts without reporting.
fn op_names() -> impl Iterator<Item = (Op, &'static str)> {
    let reported = Op::REPORTED.into_iter().map(|(op, key)| (op, key.strip_prefix("cmd-").unwrap_or(key)));
    reported.chain([(Op::ReserveJob, "reserve-job"), (Op::KickJob, "kick-job")])
}

#[cfg(test)]
mod tests;
