//! The rule engine: the series store, every rule's alert lifecycle and the
//! persisted alert state, driven one evaluation at a time. The daemon's task
//! (`service`) and `warden rules test` both drive it, so both use the same
//! evaluator and lifecycle.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use minijinja::Environment;
use prometheus::proto::MetricFamily;
use warden_promql::{EvalOptions, METRIC_NAME, SeriesStore, StoreLimits, Value, evaluate_with};

use super::config::RuleConfig;
use super::feed::append_families;
use super::lifecycle::{Instance, RuleAlerts};
use super::metrics::RuleMetrics;
use super::persist::{AlertDb, PersistError, Stored};
use super::{Alert, AlertState, template};

/// Prometheus's default lookback delta for instant selectors.
pub const LOOKBACK: Duration = Duration::from_secs(300);
/// Kept beyond the longest window any rule reads, for evaluation jitter.
const RETENTION_MARGIN: Duration = Duration::from_secs(60);

/// Maps between the engine's timeline (milliseconds) and wall-clock Unix
/// milliseconds at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// The timeline's now.
    pub timeline_ms: i64,
    /// The wall clock's now.
    pub wall: SystemTime,
}

impl Now {
    fn wall_ms(&self) -> i64 {
        match self.wall.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        }
    }

    /// A wall time as a timeline time, never later than now.
    fn to_timeline(self, unix_ms: i64) -> i64 {
        self.timeline_ms - (self.wall_ms() - unix_ms).max(0)
    }

    /// A timeline time as Unix milliseconds.
    fn to_wall(self, timeline_ms: i64) -> i64 {
        self.wall_ms() - (self.timeline_ms - timeline_ms)
    }
}

struct RuleRuntime {
    config: RuleConfig,
    alerts: RuleAlerts,
}

/// Rules, their alerts and the series they read.
pub struct Engine {
    rules: Vec<RuleRuntime>,
    store: SeriesStore,
    env: Environment<'static>,
    options: EvalOptions,
    db: Option<AlertDb>,
    /// Alerts restored as firing for rules no longer configured: handed over
    /// as resolved at the first evaluation.
    orphans: Vec<Alert>,
    metrics: RuleMetrics,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.rules.len())
            .field("series", &self.store.series_count())
            .finish_non_exhaustive()
    }
}

/// Whether a reloaded rule produces the same alert instances as the one
/// running, so its alerts carry over: same name, expression and identity
/// labels. New `for`, `keep_firing_for` and annotations apply from the next
/// evaluation without re-paging anyone.
fn same_definition(a: &RuleConfig, b: &RuleConfig) -> bool {
    a.name == b.name
        && a.expr.source() == b.expr.source()
        && a.severity == b.severity
        && a.labels == b.labels
}

fn retention_of(rules: &[RuleRuntime]) -> Duration {
    let longest = rules
        .iter()
        .map(|r| r.config.expr.max_range())
        .max()
        .unwrap_or_default();
    longest + LOOKBACK + RETENTION_MARGIN
}

/// How long samples must be kept for `rules`.
pub fn retention(rules: &[RuleConfig]) -> Duration {
    let longest = rules
        .iter()
        .map(|r| r.expr.max_range())
        .max()
        .unwrap_or_default();
    longest + LOOKBACK + RETENTION_MARGIN
}

impl Engine {
    /// An engine over `rules` keeping at most `max_series` series.
    pub fn new(
        rules: Vec<RuleConfig>,
        max_series: usize,
        options: EvalOptions,
        metrics: RuleMetrics,
    ) -> Engine {
        let store = SeriesStore::new(StoreLimits {
            retention_ms: retention(&rules).as_millis() as i64,
            max_series,
        });
        for rule in &rules {
            metrics.failures.with_label_values(&[rule.name.as_str()]);
        }
        let engine = Engine {
            rules: rules
                .into_iter()
                .map(|config| RuleRuntime {
                    config,
                    alerts: RuleAlerts::default(),
                })
                .collect(),
            store,
            env: template::environment(),
            options,
            db: None,
            orphans: Vec::new(),
            metrics,
        };
        engine.update_alert_metrics();
        engine
    }

    /// Restores alert state from `db` and keeps writing changes to it.
    /// Returns how many alerts were restored.
    pub fn restore(&mut self, db: AlertDb, now: Now) -> Result<usize, PersistError> {
        let mut stored = db.load()?;
        let mut restored = 0;
        for rule in &mut self.rules {
            for alert in stored.remove(&rule.config.name).unwrap_or_default() {
                rule.alerts
                    .restore(alert.into_active(|ms| now.to_timeline(ms)));
                restored += 1;
            }
        }
        // What is left belongs to rules that are gone: resolve what fired,
        // forget the rest.
        let gone: Vec<String> = stored.keys().cloned().collect();
        for alert in stored.into_values().flatten() {
            if alert.state == AlertState::Firing {
                let mut alert = alert.into_active(|ms| now.to_timeline(ms)).alert;
                alert.state = AlertState::Resolved;
                alert.resolved_at = Some(now.wall);
                self.orphans.push(alert);
            }
        }
        let cleared: Vec<(&str, Vec<Stored>)> =
            gone.iter().map(|r| (r.as_str(), Vec::new())).collect();
        db.replace(&cleared)?;
        self.db = Some(db);
        self.update_alert_metrics();
        Ok(restored)
    }

    /// Swaps in a reloaded rule set. A rule whose definition did not change
    /// keeps its pending and firing alerts with their start times; the
    /// series store is kept whole, so range windows do not restart empty;
    /// firing alerts of rules that are gone or changed are handed over as
    /// resolved at the next evaluation (a changed rule re-fires after its
    /// `for` if it still holds).
    pub fn replace_rules(&mut self, rules: Vec<RuleConfig>, max_series: usize, now: Now) {
        let mut old: Vec<RuleRuntime> = std::mem::take(&mut self.rules);
        let mut gone: Vec<String> = Vec::new();
        for rule in &rules {
            self.metrics
                .failures
                .with_label_values(&[rule.name.as_str()]);
        }
        self.rules = rules
            .into_iter()
            .map(|config| {
                let kept = old
                    .iter()
                    .position(|r| same_definition(&r.config, &config))
                    .map(|i| old.swap_remove(i).alerts);
                RuleRuntime {
                    config,
                    alerts: kept.unwrap_or_default(),
                }
            })
            .collect();
        for rule in old {
            for active in rule.alerts.iter() {
                if active.alert.state == AlertState::Firing {
                    let mut alert = active.alert.clone();
                    alert.state = AlertState::Resolved;
                    alert.resolved_at = Some(now.wall);
                    self.orphans.push(alert);
                }
            }
            let name = rule.config.name.as_str();
            for state in ["pending", "firing"] {
                let _ = self.metrics.alerts.remove_label_values(&[name, state]);
            }
            if !self.rules.iter().any(|r| r.config.name == rule.config.name) {
                gone.push(rule.config.name.clone());
            }
        }
        if let Some(db) = &self.db {
            let mut rows: Vec<(&str, Vec<Stored>)> =
                gone.iter().map(|n| (n.as_str(), Vec::new())).collect();
            // Changed rules start without alerts; make the stored state agree.
            for rule in &self.rules {
                if rule.alerts.iter().next().is_none() {
                    rows.push((rule.config.name.as_str(), Vec::new()));
                }
            }
            if let Err(error) = db.replace(&rows) {
                tracing::error!(%error, "cannot save alert state");
            }
        }
        self.store
            .set_retention_ms(retention_of(&self.rules).as_millis() as i64);
        self.store.set_max_series(max_series);
        self.update_alert_metrics();
    }

    /// Appends every sample of `families` at `timestamp_ms` and drops what
    /// fell out of retention.
    pub fn feed(&mut self, families: &[MetricFamily], timestamp_ms: i64) {
        let stats = append_families(&mut self.store, families, timestamp_ms);
        self.store.prune(timestamp_ms);
        self.metrics.samples_dropped.inc_by(stats.dropped);
        self.metrics.series.set(self.store.series_count() as i64);
        self.metrics
            .store_bytes
            .set(self.store.memory_bytes() as i64);
    }

    /// How many rules are loaded.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The series store.
    pub fn store(&self) -> &SeriesStore {
        &self.store
    }

    /// The series store, for loading test data.
    pub fn store_mut(&mut self) -> &mut SeriesStore {
        &mut self.store
    }

    /// Evaluates every rule at `now` and returns the hand-over: every firing
    /// alert and every alert resolved by this evaluation.
    pub fn evaluate(&mut self, now: Now) -> Vec<Alert> {
        let mut handover = std::mem::take(&mut self.orphans);
        let mut changed: Vec<usize> = Vec::new();
        for (index, rule) in self.rules.iter_mut().enumerate() {
            let config = &rule.config;
            let instances =
                match evaluate_with(&config.expr, &self.store, now.timeline_ms, &self.options) {
                    Ok(value) => instances(config, value, &self.env),
                    Err(error) => {
                        self.metrics
                            .failures
                            .with_label_values(&[config.name.as_str()])
                            .inc();
                        tracing::warn!(rule = %config.name, %error, "rule evaluation failed");
                        continue;
                    }
                };
            let transition = rule.alerts.update(
                instances,
                config.for_.as_millis() as i64,
                config.keep_firing_for.as_millis() as i64,
                now.timeline_ms,
                now.wall,
            );
            match transition {
                Ok(transition) => {
                    for alert in &transition.resolved {
                        tracing::info!(rule = %config.name, fingerprint = alert.fingerprint(), "alert resolved");
                    }
                    handover.extend(transition.resolved);
                    if transition.changed {
                        changed.push(index);
                    }
                }
                Err(error) => {
                    self.metrics
                        .failures
                        .with_label_values(&[config.name.as_str()])
                        .inc();
                    tracing::warn!(rule = %config.name, %error, "rule evaluation failed");
                }
            }
            handover.extend(
                rule.alerts
                    .iter()
                    .filter(|a| a.alert.state == AlertState::Firing)
                    .map(|a| a.alert.clone()),
            );
        }
        self.persist(&changed, now);
        self.update_alert_metrics();
        handover
    }

    fn persist(&self, changed: &[usize], now: Now) {
        let Some(db) = &self.db else { return };
        if changed.is_empty() {
            return;
        }
        let rows: Vec<(&str, Vec<Stored>)> = changed
            .iter()
            .map(|&i| {
                let rule = &self.rules[i];
                let alerts = rule
                    .alerts
                    .iter()
                    .map(|a| Stored::from_active(a, |t| now.to_wall(t)))
                    .collect();
                (rule.config.name.as_str(), alerts)
            })
            .collect();
        if let Err(error) = db.replace(&rows) {
            tracing::error!(%error, "cannot save alert state");
        }
    }

    fn update_alert_metrics(&self) {
        for rule in &self.rules {
            let (mut pending, mut firing) = (0, 0);
            for active in rule.alerts.iter() {
                match active.alert.state {
                    AlertState::Pending => pending += 1,
                    AlertState::Firing => firing += 1,
                    AlertState::Resolved => {}
                }
            }
            let name = rule.config.name.as_str();
            self.metrics
                .alerts
                .with_label_values(&[name, "pending"])
                .set(pending);
            self.metrics
                .alerts
                .with_label_values(&[name, "firing"])
                .set(firing);
        }
    }

    /// Every pending and firing alert, by rule order then labels.
    pub fn alerts(&self) -> Vec<Alert> {
        self.rules
            .iter()
            .flat_map(|r| r.alerts.iter().map(|a| a.alert.clone()))
            .collect()
    }

    /// Firing alerts of the rule named `name`.
    pub fn firing(&self, name: &str) -> Vec<Alert> {
        self.rules
            .iter()
            .filter(|r| r.config.name == name)
            .flat_map(|r| r.alerts.iter())
            .filter(|a| a.alert.state == AlertState::Firing)
            .map(|a| a.alert.clone())
            .collect()
    }
}

/// One alert instance per result sample: labels are the sample's (without
/// `__name__`), then the rule's labels, `severity` and `alertname`, later
/// ones winning; annotations see the sample's labels as `labels`.
fn instances(rule: &RuleConfig, value: Value, env: &Environment<'_>) -> Vec<Instance> {
    let samples: Vec<(BTreeMap<String, String>, f64)> = match value {
        Value::Vector(samples) => samples
            .into_iter()
            .map(|s| {
                let labels = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                (labels, s.value)
            })
            .collect(),
        Value::Scalar(v) => vec![(BTreeMap::new(), v)],
    };
    samples
        .into_iter()
        .map(|(series, value)| {
            let annotations = rule
                .annotations
                .iter()
                .map(|(key, source)| {
                    (
                        key.clone(),
                        template::render(env, source, &series, value, &rule.name),
                    )
                })
                .collect();
            let mut labels = series;
            labels.remove(METRIC_NAME);
            labels.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            labels.insert("severity".to_owned(), rule.severity.clone());
            labels.insert("alertname".to_owned(), rule.name.clone());
            Instance {
                labels,
                annotations,
                value,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
