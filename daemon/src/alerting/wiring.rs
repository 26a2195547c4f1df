//! Starting the rule engine inside the daemon: its metrics registered with
//! the daemon's registry, alert state restored from the state database, the
//! evaluation task fed from the registry and gated on the checks' first
//! results.

use std::sync::Arc;
use std::time::Duration;

use warden_promql::EvalOptions;

use super::persist::AlertDb;
use super::{ActiveAlerts, AlertSink, Clock, Engine, Inputs, RuleMetrics, Service, lint};
use crate::config::Config;
use crate::status::Board;
use crate::store::Store;
use crate::telemetry::Metrics;

/// Longest wait for every check's first result before rules are evaluated.
const MAX_SETTLE: Duration = Duration::from_secs(120);

/// Starts rule evaluation. It runs even without rules, so a reload can add
/// some, and so alerts persisted for rules that are gone are resolved.
pub fn start(
    config: &Config,
    board: Arc<Board>,
    metrics: &Metrics,
    store: &Store,
    sink: Arc<dyn AlertSink>,
) -> (Service, ActiveAlerts) {
    let alerting = &config.alerting;
    for warning in lint::warnings(config) {
        tracing::warn!(%warning, "rule can never match");
    }
    let rule_metrics = RuleMetrics::new();
    for collector in rule_metrics.collectors() {
        if let Err(error) = metrics.register(collector) {
            tracing::error!(%error, "cannot register rule metrics");
        }
    }
    let clock = Clock::default();
    let mut engine = Engine::new(
        alerting.rules.clone(),
        alerting.max_series,
        EvalOptions::default(),
        rule_metrics,
    );
    match AlertDb::open(store.clone()).and_then(|db| engine.restore(db, clock.now())) {
        Ok(0) => {}
        Ok(restored) => tracing::info!(restored, "alert state restored"),
        Err(error) => tracing::error!(%error, "alert state not restored; alerts start afresh"),
    }
    let settle = config
        .checks
        .iter()
        .map(|c| c.interval.get() + c.timeout.get())
        .max()
        .unwrap_or_default()
        .min(MAX_SETTLE);
    let registry = metrics.clone();
    let inputs = Inputs {
        interval: alerting.evaluation_interval,
        gather: Box::new(move || registry.gather()),
        ready: Box::new(move || board.views().iter().all(|v| v.last.is_some())),
        settle,
        sink,
        clock,
    };
    tracing::info!(
        rules = alerting.rules.len(),
        interval_ms = alerting.evaluation_interval.as_millis() as u64,
        "rule evaluation started"
    );
    let (service, view) = Service::start(engine, inputs);
    (service, view)
}

/// The reload message for the running service from a new config.
pub fn reload(config: &Config, sink: Arc<dyn AlertSink>) -> super::service::Reload {
    for warning in lint::warnings(config) {
        tracing::warn!(%warning, "rule can never match");
    }
    super::service::Reload {
        rules: config.alerting.rules.clone(),
        max_series: config.alerting.max_series,
        interval: config.alerting.evaluation_interval,
        sink,
    }
}
