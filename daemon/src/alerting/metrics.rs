//! The rule engine's own metrics: series store size, dropped samples,
//! evaluation failures per rule and active alerts per rule and state.

use prometheus::core::Collector;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};

/// Handles to the rule engine's metrics.
#[derive(Debug, Clone)]
pub struct RuleMetrics {
    /// `warden_rule_series`.
    pub series: IntGauge,
    /// `warden_rule_store_bytes`.
    pub store_bytes: IntGauge,
    /// `warden_rule_samples_dropped_total`.
    pub samples_dropped: IntCounter,
    /// `warden_rule_evaluation_failures_total{rule}`.
    pub failures: IntCounterVec,
    /// `warden_alerts{alertname,state}`.
    pub alerts: IntGaugeVec,
}

impl Default for RuleMetrics {
    fn default() -> Self {
        RuleMetrics::new()
    }
}

impl RuleMetrics {
    /// Creates the metrics, not yet registered anywhere.
    pub fn new() -> RuleMetrics {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        RuleMetrics {
            series: gauge("warden_rule_series", "Series held for rule evaluation."),
            store_bytes: gauge(
                "warden_rule_store_bytes",
                "Approximate memory of the series held for rule evaluation.",
            ),
            samples_dropped: IntCounter::new(
                "warden_rule_samples_dropped_total",
                "Samples not kept for rule evaluation because the series limit was reached.",
            )
            .expect("valid metric"),
            failures: IntCounterVec::new(
                Opts::new(
                    "warden_rule_evaluation_failures_total",
                    "Rule evaluations that failed, by rule.",
                ),
                &["rule"],
            )
            .expect("valid metric"),
            alerts: IntGaugeVec::new(
                Opts::new(
                    "warden_alerts",
                    "Active alerts by rule and state (pending or firing).",
                ),
                &["alertname", "state"],
            )
            .expect("valid metric"),
        }
    }

    /// Every collector, for registration.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.series.clone()),
            Box::new(self.store_bytes.clone()),
            Box::new(self.samples_dropped.clone()),
            Box::new(self.failures.clone()),
            Box::new(self.alerts.clone()),
        ]
    }
}
