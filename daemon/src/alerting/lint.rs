//! Warnings for rules whose selectors can never match a series the daemon
//! produces: a metric name that is neither one of the daemon's own nor
//! `warden_<plugin>_...` for a configured plugin, or a `check="..."` matcher
//! naming no configured check. Warnings, not errors: a rule may be written
//! ahead of the check it watches.

use crate::config::{Config, Diagnostic};

/// Series names the daemon itself exports (histograms with their suffixes).
const DAEMON_SERIES: &[&str] = &[
    "warden_build_info",
    "warden_check_up",
    "warden_check_status",
    "warden_check_stale",
    "warden_check_last_run_timestamp_seconds",
    "warden_check_metrics_dropped",
    "warden_check_runs_total",
    "warden_check_duration_seconds_bucket",
    "warden_check_duration_seconds_sum",
    "warden_check_duration_seconds_count",
    "warden_http_requests_total",
    "warden_http_request_duration_seconds_bucket",
    "warden_http_request_duration_seconds_sum",
    "warden_http_request_duration_seconds_count",
    "warden_rule_series",
    "warden_rule_store_bytes",
    "warden_rule_samples_dropped_total",
    "warden_rule_evaluation_failures_total",
    "warden_alerts",
    "warden_notifications_total",
    "warden_outbox_entries",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
];

/// One warning per selector that cannot match, at the rule's `expr`.
pub fn warnings(config: &Config) -> Vec<Diagnostic> {
    let plugins: Vec<String> = config
        .checks
        .iter()
        .map(|c| format!("warden_{}_", sanitize(&c.plugin)))
        .collect();
    let known = |name: &str| {
        DAEMON_SERIES.contains(&name) || plugins.iter().any(|p| name.starts_with(p.as_str()))
    };
    let mut out = Vec::new();
    for rule in &config.alerting.rules {
        let mut warn = |message: String| {
            out.push(Diagnostic::new(
                &rule.origin,
                rule.expr_position,
                format!("warning: rule {:?}: {message}", rule.name),
            ));
        };
        for selector in rule.expr.selectors() {
            if let Some(name) = &selector.metric_name
                && !known(name)
            {
                warn(format!(
                    "`{name}` is not a series warden produces (its own metrics, or warden_<plugin>_<metric> for a configured plugin)"
                ));
            }
            for matcher in &selector.matchers {
                if matcher.name == "check"
                    && matcher.op == warden_promql::MatchKind::Equal
                    && config.check(&matcher.value).is_none()
                {
                    warn(format!(
                        "selector matches check {:?}, which is not configured",
                        matcher.value
                    ));
                }
            }
        }
    }
    out
}

/// The daemon's mapping of a plugin name onto a metric name fragment.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
