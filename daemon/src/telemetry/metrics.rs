//! The daemon's Prometheus metrics, in one explicit registry.
//!
//! Counters and histograms are updated as runs finish and requests are
//! served. Gauges that depend on time (up, status, staleness) and the
//! plugins' own metrics are derived at scrape time from the status board
//! (see `exposition`), so a stale result never shows as a live value.

use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use super::exposition::{FamilySink, TextSink, describe_board, write_families};
use crate::status::{Board, CheckSpec, CheckView, RunRecord};

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
    board: Arc<Board>,
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
            Box::new(super::dropped::DroppedLinesCollector::new()),
            Box::new(super::process::ProcessCollector::new(board.started_wall())),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Metrics {
            registry,
            board,
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
        let mut families = self.registry.gather();
        let mut board = FamilySink::default();
        describe_board(&self.board.views(), &mut board);
        families.extend(board.families);
        families
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
        self.encode_views(&self.board.views())
    }

    /// [`Metrics::encode`] with the board's views already taken.
    pub fn encode_views(&self, views: &[CheckView]) -> Vec<u8> {
        // A check's built-in series (runs, duration histogram, gauges) take
        // about 1.9 KB; a plugin's own metrics grow it from there.
        let mut out = Vec::with_capacity(16 * 1024 + views.len() * 2048);
        write_families(&mut out, &self.registry.gather());
        describe_board(views, &mut TextSink::new(&mut out));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_print() {
        let mut buf = itoa_buf();
        assert_eq!(code_str(503, &mut buf), "503");
        assert_eq!(code_str(200, &mut buf), "200");
    }
}
