//! The alert lifecycle of one rule, as Prometheus's `AlertingRule.Eval`:
//! each result sample is an alert instance; a new one is pending, fires once
//! the expression has held for `for`, and resolves when it stops holding
//! (after `keep_firing_for`, for a firing one). A pending alert whose
//! expression stops holding is dropped without a resolve.
//!
//! Times are milliseconds on the engine's timeline, which the daemon derives
//! from the monotonic clock: a wall-clock jump cannot shorten `for`. Wall
//! times are carried along for display, persistence and notifications only.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use super::{Alert, AlertState, fingerprint};

/// One alert instance computed from one result sample.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Instance {
    /// Final labels (series labels, rule labels, `severity`, `alertname`).
    pub(crate) labels: BTreeMap<String, String>,
    /// Rendered annotations.
    pub(crate) annotations: BTreeMap<String, String>,
    /// The sample's value.
    pub(crate) value: f64,
}

/// An active (pending or firing) alert.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Active {
    /// The alert as handed over and shown.
    pub(crate) alert: Alert,
    /// When the expression started to hold, on the timeline.
    pub(crate) active_at_ms: i64,
    /// When the expression stopped holding while `keep_firing_for` keeps it firing.
    pub(crate) keep_firing_since_ms: Option<i64>,
}

/// What one evaluation changed.
#[derive(Debug, Default)]
pub(crate) struct Transition {
    /// Alerts that were firing and now resolved.
    pub(crate) resolved: Vec<Alert>,
    /// Whether any alert appeared, changed state or went away (values and
    /// annotations alone do not count): the persisted state must be rewritten.
    pub(crate) changed: bool,
}

/// The active alerts of one rule, by label fingerprint.
#[derive(Debug, Default, Clone)]
pub(crate) struct RuleAlerts {
    active: BTreeMap<u64, Active>,
}

impl RuleAlerts {
    /// Puts back an alert restored from persisted state.
    pub(crate) fn restore(&mut self, active: Active) {
        self.active.insert(active.alert.fingerprint(), active);
    }

    /// Active alerts, in fingerprint order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Active> {
        self.active.values()
    }

    /// Applies one evaluation's instances at `now_ms` (wall time `wall`).
    ///
    /// Fails, changing nothing, when two instances have the same labels, as
    /// Prometheus does.
    pub(crate) fn update(
        &mut self,
        instances: Vec<Instance>,
        for_ms: i64,
        keep_firing_for_ms: i64,
        now_ms: i64,
        wall: SystemTime,
    ) -> Result<Transition, String> {
        let mut seen = BTreeSet::new();
        for instance in &instances {
            if !seen.insert(fingerprint(&instance.labels)) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .to_owned(),
                );
            }
        }
        let mut transition = Transition::default();
        for instance in instances {
            let fp = fingerprint(&instance.labels);
            match self.active.get_mut(&fp) {
                Some(active) => {
                    active.alert.value = instance.value;
                    active.alert.annotations = instance.annotations;
                }
                None => {
                    transition.changed = true;
                    self.active.insert(
                        fp,
                        Active {
                            alert: Alert {
                                labels: instance.labels,
                                annotations: instance.annotations,
                                state: AlertState::Pending,
                                active_at: wall,
                                fired_at: None,
                                resolved_at: None,
                                value: instance.value,
                            },
                            active_at_ms: now_ms,
                            keep_firing_since_ms: None,
                        },
                    );
                }
            }
        }
        self.active.retain(|fp, active| {
            if seen.contains(fp) {
                active.keep_firing_since_ms = None;
                return true;
            }
            if active.alert.state == AlertState::Firing && keep_firing_for_ms > 0 {
                let since = *active.keep_firing_since_ms.get_or_insert(now_ms);
                if now_ms - since < keep_firing_for_ms {
                    return true;
                }
            }
            transition.changed = true;
            if active.alert.state == AlertState::Firing {
                let mut resolved = active.alert.clone();
                resolved.state = AlertState::Resolved;
                resolved.resolved_at = Some(wall);
                transition.resolved.push(resolved);
            }
            false
        });
        for active in self.active.values_mut() {
            if active.alert.state == AlertState::Pending && now_ms - active.active_at_ms >= for_ms {
                active.alert.state = AlertState::Firing;
                active.alert.fired_at = Some(wall);
                transition.changed = true;
            }
        }
        Ok(transition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn instance(check: &str, value: f64) -> Instance {
        Instance {
            labels: [
                ("alertname".to_owned(), "Down".to_owned()),
                ("check".to_owned(), check.to_owned()),
            ]
            .into(),
            annotations: BTreeMap::new(),
            value,
        }
    }

    fn at(ms: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    }

    fn states(alerts: &RuleAlerts) -> Vec<AlertState> {
        alerts.iter().map(|a| a.alert.state).collect()
    }

    #[test]
    fn pending_until_for_has_held_then_firing_then_resolved() {
        let mut alerts = RuleAlerts::default();
        let t = alerts
            .update(vec![instance("db", 0.0)], 60_000, 0, 0, at(0))
            .unwrap();
        assert!(t.changed);
        assert_eq!(states(&alerts), [AlertState::Pending]);
        let t = alerts
            .update(vec![instance("db", 0.0)], 60_000, 0, 59_999, at(59_999))
            .unwrap();
        assert!(!t.changed);
        assert_eq!(states(&alerts), [AlertState::Pending]);
        alerts
            .update(vec![instance("db", 0.0)], 60_000, 0, 60_000, at(60_000))
            .unwrap();
        assert_eq!(states(&alerts), [AlertState::Firing]);
        let fired = alerts.iter().next().unwrap().alert.clone();
        assert_eq!(fired.active_at, at(0));
        assert_eq!(fired.fired_at, Some(at(60_000)));

        let t = alerts
            .update(vec![], 60_000, 0, 65_000, at(65_000))
            .unwrap();
        assert!(t.changed);
        assert_eq!(t.resolved.len(), 1);
        assert_eq!(t.resolved[0].state, AlertState::Resolved);
        assert_eq!(t.resolved[0].resolved_at, Some(at(65_000)));
        assert_eq!(t.resolved[0].active_at, at(0));
        assert!(alerts.iter().next().is_none());
    }

    #[test]
    fn a_pending_alert_that_clears_is_dropped_without_a_resolve() {
        let mut alerts = RuleAlerts::default();
        alerts
            .update(vec![instance("db", 0.0)], 60_000, 0, 0, at(0))
            .unwrap();
        let t = alerts.update(vec![], 60_000, 0, 5_000, at(5_000)).unwrap();
        assert!(t.changed && t.resolved.is_empty());
        // Back again: a new pending alert with a new start.
        alerts
            .update(vec![instance("db", 0.0)], 60_000, 0, 10_000, at(10_000))
            .unwrap();
        assert_eq!(alerts.iter().next().unwrap().active_at_ms, 10_000);
    }

    #[test]
    fn zero_for_fires_at_once_and_instances_are_independent() {
        let mut alerts = RuleAlerts::default();
        alerts
            .update(
                vec![instance("db", 0.0), instance("cache", 0.0)],
                0,
                0,
                0,
                at(0),
            )
            .unwrap();
        assert_eq!(states(&alerts), [AlertState::Firing, AlertState::Firing]);
        let t = alerts
            .update(vec![instance("db", 2.0)], 0, 0, 1_000, at(1_000))
            .unwrap();
        assert_eq!(t.resolved.len(), 1);
        assert_eq!(t.resolved[0].labels["check"], "cache");
        assert_eq!(alerts.iter().next().unwrap().alert.value, 2.0);
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert_and_resets_when_it_holds_again() {
        let mut alerts = RuleAlerts::default();
        let keep = 10_000;
        alerts
            .update(vec![instance("db", 0.0)], 0, keep, 0, at(0))
            .unwrap();
        let t = alerts.update(vec![], 0, keep, 5_000, at(5_000)).unwrap();
        assert!(t.resolved.is_empty());
        assert_eq!(states(&alerts), [AlertState::Firing]);
        // Holds again at 8 s: the keep-firing clock restarts.
        alerts
            .update(vec![instance("db", 0.0)], 0, keep, 8_000, at(8_000))
            .unwrap();
        let t = alerts.update(vec![], 0, keep, 9_000, at(9_000)).unwrap();
        assert!(t.resolved.is_empty());
        let t = alerts.update(vec![], 0, keep, 18_999, at(18_999)).unwrap();
        assert!(t.resolved.is_empty());
        let t = alerts.update(vec![], 0, keep, 19_000, at(19_000)).unwrap();
        assert_eq!(t.resolved.len(), 1);
    }

    #[test]
    fn duplicate_label_sets_fail_without_changes() {
        let mut alerts = RuleAlerts::default();
        let error = alerts
            .update(
                vec![instance("db", 0.0), instance("db", 1.0)],
                0,
                0,
                0,
                at(0),
            )
            .unwrap_err();
        assert!(error.contains("same labelset"));
        assert!(alerts.iter().next().is_none());
    }
}
