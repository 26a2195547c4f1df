//! The daemon's Prometheus metrics, in one explicit registry.
//!
//! Counters and histograms are updated as runs finish and requests are
//! served. Gauges that depend on time (up, status, staleness) and the
//! plugins' own metrics are built at scrape time from the status board, so
//! a stale result never shows as a live value.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::status::{Board, CheckSpec, Health, RunRecord};

/// Most plugin series kept per check; beyond it they are dropped and counted,
/// so a runaway plugin cannot blow up the scrape.
pub const MAX_PLUGIN_SERIES_PER_CHECK: usize = 500;

/// Buckets for check durations, from sub-millisecond pings to slow probes.
const CHECK_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets for how late checks start: timer resolution up to a stalled runtime.
const DELAY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Buckets for HTTP request durations.
const HTTP_BUCKETS: &[f64] = &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0];

/// Handles to every metric the daemon updates.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    runs: IntCounterVec,
    durations: HistogramVec,
    start_delay: Histogram,
    http_requests: IntCounterVec,
    http_durations: HistogramVec,
    reloads: IntCounterVec,
}

impl Metrics {
    /// Registers everything, reading check state from `board` at scrape time.
    pub fn new(board: Arc<Board>) -> Metrics {
        let registry = Registry::new();
        let runs = IntCounterVec::new(
            Opts::new("warden_check_runs_total", "Check runs by outcome."),
            &["check", "outcome"],
        )
        .expect("valid metric");
        let durations = HistogramVec::new(
            HistogramOpts::new("warden_check_duration_seconds", "Duration of check runs.")
                .buckets(CHECK_BUCKETS.to_vec()),
            &["check", "plugin"],
        )
        .expect("valid metric");
        // One series for all checks: per-check labels would cost 15 series
        // per check at the scale this is meant to watch.
        let start_delay = Histogram::with_opts(
            HistogramOpts::new(
                "warden_check_start_delay_seconds",
                "How late check runs start after their scheduled tick.",
            )
            .buckets(DELAY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let http_requests = IntCounterVec::new(
            Opts::new(
                "warden_http_requests_total",
                "HTTP requests by route and status code.",
            ),
            &["route", "code"],
        )
        .expect("valid metric");
        let http_durations = HistogramVec::new(
            HistogramOpts::new(
                "warden_http_request_duration_seconds",
                "Time to answer HTTP requests.",
            )
            .buckets(HTTP_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let build = IntGaugeVec::new(
            Opts::new(
                "warden_build_info",
                "Build of the running daemon; always 1.",
            ),
            &["version"],
        )
        .expect("valid metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let reloads = IntCounterVec::new(
            Opts::new(
                "warden_reloads_total",
                "Reload attempts (SIGHUP) by result.",
            ),
            &["result"],
        )
        .expect("valid metric");
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }

        for collector in [
            Box::new(runs.clone()) as Box<dyn Collector>,
            Box::new(durations.clone()),
            Box::new(start_delay.clone()),
            Box::new(http_requests.clone()),
            Box::new(http_durations.clone()),
            Box::new(build),
            Box::new(reloads.clone()),
            Box::new(BoardCollector::new(board)),
            Box::new(super::dropped::DroppedLinesCollector::new()),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Metrics {
            registry,
            runs,
            durations,
            start_delay,
            http_requests,
            http_durations,
            reloads,
        }
    }

    /// Counts a finished run.
    pub fn observe_run(&self, spec: &CheckSpec, record: &RunRecord) {
        self.runs
            .with_label_values(&[spec.name.as_str(), record.outcome.as_str()])
            .inc();
        self.durations
            .with_label_values(&[spec.name.as_str(), spec.plugin.as_str()])
            .observe(record.duration.as_secs_f64());
    }

    /// Records how late a run started after its scheduled tick.
    pub fn observe_start_delay(&self, delay: std::time::Duration) {
        self.start_delay.observe(delay.as_secs_f64());
    }

    /// Counts an answered HTTP request.
    pub fn observe_request(&self, route: &str, code: u16, seconds: f64) {
        let mut buf = itoa_buf();
        self.http_requests
            .with_label_values(&[route, code_str(code, &mut buf)])
            .inc();
        self.http_durations
            .with_label_values(&[route])
            .observe(seconds);
    }

    /// Pre-creates the series of a check so they read 0 rather than absent.
    pub fn register_check(&self, spec: &CheckSpec) {
        for outcome in crate::status::Outcome::ALL {
            self.runs
                .with_label_values(&[spec.name.as_str(), outcome.as_str()]);
        }
    }

    /// Every metric family, exactly what `/metrics` shows (alert rules read it).
    pub fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }

    /// Adds a collector owned elsewhere (e.g. the rule engine's metrics).
    pub fn register(&self, collector: Box<dyn Collector>) -> prometheus::Result<()> {
        self.registry.register(collector)
    }

    /// Counts a reload attempt.
    pub fn observe_reload(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
    }

    /// Drops the series of a check that no longer exists (reload).
    pub fn forget_check(&self, spec: &CheckSpec) {
        for outcome in crate::status::Outcome::ALL {
            let _ = self
                .runs
                .remove_label_values(&[spec.name.as_str(), outcome.as_str()]);
        }
        let _ = self
            .durations
            .remove_label_values(&[spec.name.as_str(), spec.plugin.as_str()]);
    }

    /// The text exposition format 0.0.4.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("writing to a Vec");
        out
    }
}

fn itoa_buf() -> [u8; 3] {
    [b'0'; 3]
}

fn code_str(code: u16, buf: &mut [u8; 3]) -> &str {
    let code = code.min(999);
    buf[0] = b'0' + (code / 100) as u8;
    buf[1] = b'0' + (code / 10 % 10) as u8;
    buf[2] = b'0' + (code % 10) as u8;
    std::str::from_utf8(buf).expect("ASCII digits")
}

/// Builds the per-check gauges and plugin metrics at scrape time.
struct BoardCollector {
    board: Arc<Board>,
    descs: Vec<Desc>,
}

impl BoardCollector {
    fn new(board: Arc<Board>) -> Self {
        BoardCollector {
            board,
            descs: Vec::new(),
        }
    }
}

impl std::fmt::Debug for BoardCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoardCollector")
    }
}

impl Collector for BoardCollector {
    fn desc(&self) -> Vec<&Desc> {
        // Families are dynamic (plugin metrics), so none is declared up front.
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let views = self.board.views();
        let mut up = family(
            "warden_check_up",
            "1 when the check passes (rise/fall and staleness applied), else 0.",
        );
        let mut status = family(
            "warden_check_status",
            "Latest status as a Nagios code: 0 ok, 1 warning, 2 critical, 3 unknown (stale results are 3).",
        );
        let mut stale = family(
            "warden_check_stale",
            "1 when the latest result is older than stale_after intervals.",
        );
        let mut last_run = family(
            "warden_check_last_run_timestamp_seconds",
            "Unix time of the start of the latest run.",
        );
        let mut plugin_families: BTreeMap<String, MetricFamily> = BTreeMap::new();
        let mut dropped = family(
            "warden_check_metrics_dropped",
            "Plugin metrics of the latest result dropped for exceeding the per-check limit.",
        );

        for view in &views {
            let base = [
                ("check", view.spec.name.as_str()),
                ("plugin", view.spec.plugin.as_str()),
            ];
            let passing = matches!(view.health, Health::Healthy | Health::Warning);
            push(&mut up, &base, &[], if passing { 1.0 } else { 0.0 });
            push(&mut stale, &base, &[], if view.stale { 1.0 } else { 0.0 });
            let Some(last) = &view.last else { continue };
            let code = if view.stale {
                3
            } else {
                last.outcome.status().exit_code()
            };
            push(&mut status, &base, &[], f64::from(code));
            let started = last
                .started_at
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            push(&mut last_run, &base, &[], started.as_secs_f64());
            if view.stale {
                continue;
            }
            let plugin = sanitize_name(&view.spec.plugin);
            for metric in last.metrics.iter().take(MAX_PLUGIN_SERIES_PER_CHECK) {
                let name = format!("warden_{plugin}_{}", sanitize_name(&metric.name));
                let entry = plugin_families.entry(name.clone()).or_insert_with(|| {
                    let unit = metric
                        .unit
                        .as_deref()
                        .map(|u| format!(" ({u})"))
                        .unwrap_or_default();
                    let mut family = family(
                        &name,
                        &format!(
                            "Metric {}{unit} reported by the {} plugin.",
                            metric.name, view.spec.plugin
                        ),
                    );
                    // By Prometheus convention `_total` names a counter;
                    // exposing it as a gauge would mislead rate().
                    if name.ends_with("_total") {
                        family.set_field_type(MetricType::COUNTER);
                    }
                    family
                });
                let extra: Vec<(String, &str)> = metric
                    .labels
                    .iter()
                    .map(|(k, v)| (sanitize_label(k), v.as_str()))
                    .collect();
                push(entry, &base, &extra, metric.value);
            }
            let over = last
                .metrics
                .len()
                .saturating_sub(MAX_PLUGIN_SERIES_PER_CHECK);
            push(&mut dropped, &base, &[], over as f64);
        }
        let mut out = vec![up, status, stale, last_run, dropped];
        out.extend(plugin_families.into_values());
        out.retain(|f| !f.get_metric().is_empty());
        out
    }
}

fn family(name: &str, help: &str) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(MetricType::GAUGE);
    family
}

fn push(family: &mut MetricFamily, base: &[(&str, &str)], extra: &[(String, &str)], value: f64) {
    let mut labels: Vec<LabelPair> = base.iter().map(|(k, v)| pair(k, v)).collect();
    for (k, v) in extra {
        let key = if k == "check" || k == "plugin" {
            format!("exported_{k}")
        } else {
            k.clone()
        };
        labels.push(pair(&key, v));
    }
    labels.sort_by(|a, b| a.name().cmp(b.name()));
    let mut metric = Metric::default();
    metric.set_label(labels);
    if family.get_field_type() == MetricType::COUNTER {
        let mut counter = Counter::default();
        counter.set_value(value);
        metric.set_counter(counter);
    } else {
        let mut gauge = Gauge::default();
        gauge.set_value(value);
        metric.set_gauge(gauge);
    }
    family.mut_metric().push(metric);
}

fn pair(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value.to_owned());
    pair
}

/// Maps any text onto a valid metric name fragment.
fn sanitize_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// Maps any text onto a valid label name.
fn sanitize_label(name: &str) -> String {
    let mut out = sanitize_name(name);
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.starts_with("__") {
        out.insert_str(0, "l_");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize_name("disk.used-ratio"), "disk_used_ratio");
        assert_eq!(sanitize_label("0day"), "l_0day");
        assert_eq!(sanitize_label("__name__"), "l___name__");
    }

    #[test]
    fn status_codes_print() {
        let mut buf = itoa_buf();
        assert_eq!(code_str(503, &mut buf), "503");
        assert_eq!(code_str(200, &mut buf), "200");
    }
}
