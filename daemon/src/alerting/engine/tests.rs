use std::time::UNIX_EPOCH;

use prometheus::{IntGaugeVec, Opts, Registry};

use super::*;
use crate::config::{Config, Origin};
use crate::store::Store;

fn rules(text: &str) -> Vec<RuleConfig> {
    Config::parse(text, Origin::File("warden.toml".into()))
        .unwrap()
        .alerting
        .rules
}

const DOWN: &str = r#"
[[rule]]
name = "DatabaseDown"
expr = 'warden_check_up{check="db"} == 0'
for = "1m"
severity = "critical"
labels = { team = "db" }
annotations = { summary = "{{ labels.check }} down, up={{ value }}" }
"#;

/// A registry with `warden_check_up{check}` and a handle to set it.
fn registry() -> (Registry, IntGaugeVec) {
    let registry = Registry::new();
    let up = IntGaugeVec::new(Opts::new("warden_check_up", "h"), &["check"]).unwrap();
    registry.register(Box::new(up.clone())).unwrap();
    (registry, up)
}

fn now(timeline_ms: i64, wall_s: u64) -> Now {
    Now {
        timeline_ms,
        wall: UNIX_EPOCH + Duration::from_secs(wall_s),
    }
}

fn engine(text: &str, store: Option<&Store>, at: Now) -> Engine {
    let mut engine = Engine::new(
        rules(text),
        1000,
        EvalOptions::default(),
        RuleMetrics::new(),
    );
    if let Some(store) = store {
        engine
            .restore(AlertDb::open(store.clone()).unwrap(), at)
            .unwrap();
    }
    engine
}

fn step(engine: &mut Engine, registry: &Registry, at: Now) -> Vec<Alert> {
    engine.feed(&registry.gather(), at.timeline_ms);
    engine.evaluate(at)
}

#[test]
fn instances_carry_series_rule_and_name_labels_and_rendered_annotations() {
    let (registry, up) = registry();
    up.with_label_values(&["db"]).set(0);
    up.with_label_values(&["cache"]).set(0);
    let mut engine = engine(DOWN, None, now(0, 1000));
    assert!(step(&mut engine, &registry, now(0, 1000)).is_empty());
    let [alert] = engine.alerts().try_into().unwrap();
    assert_eq!(alert.state, AlertState::Pending);
    let labels: Vec<(&str, &str)> = alert
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("alertname", "DatabaseDown"),
            ("check", "db"),
            ("severity", "critical"),
            ("team", "db")
        ]
    );
    assert_eq!(alert.annotations["summary"], "db down, up=0");
    let handover = step(&mut engine, &registry, now(60_000, 1060));
    assert_eq!(handover.len(), 1);
    assert_eq!(handover[0].state, AlertState::Firing);
}

#[test]
fn a_restart_keeps_the_start_time_of_a_pending_alert() {
    let store = Store::open(None).unwrap();
    let (registry, up) = registry();
    up.with_label_values(&["db"]).set(0);
    let mut first = engine(DOWN, Some(&store), now(0, 1000));
    step(&mut first, &registry, now(0, 1000));
    step(&mut first, &registry, now(20_000, 1020));
    drop(first);

    // A new process: its timeline starts elsewhere, the wall clock goes on.
    let mut second = engine(DOWN, Some(&store), now(500_000, 1030));
    let [restored] = second.alerts().try_into().unwrap();
    assert_eq!(restored.state, AlertState::Pending);
    assert_eq!(restored.active_at, UNIX_EPOCH + Duration::from_secs(1000));
    assert!(step(&mut second, &registry, now(500_000, 1030)).is_empty());
    // 29 s later the rule has held for 59 s since the original start.
    assert!(step(&mut second, &registry, now(529_000, 1059)).is_empty());
    let handover = step(&mut second, &registry, now(530_000, 1060));
    assert_eq!(handover.len(), 1);
    assert_eq!(handover[0].state, AlertState::Firing);
    assert_eq!(
        handover[0].active_at,
        UNIX_EPOCH + Duration::from_secs(1000)
    );
}

#[test]
fn a_firing_alert_that_cleared_while_down_is_handed_over_as_resolved() {
    let store = Store::open(None).unwrap();
    let (registry, up) = registry();
    up.with_label_values(&["db"]).set(0);
    let mut first = engine(DOWN, Some(&store), now(0, 1000));
    step(&mut first, &registry, now(0, 1000));
    let fired = step(&mut first, &registry, now(60_000, 1060));
    assert_eq!(fired[0].state, AlertState::Firing);
    drop(first);

    up.with_label_values(&["db"]).set(1);
    let mut second = engine(DOWN, Some(&store), now(0, 2000));
    let [restored] = second.alerts().try_into().unwrap();
    assert_eq!(restored.state, AlertState::Firing);
    let handover = step(&mut second, &registry, now(0, 2000));
    assert_eq!(handover.len(), 1, "{handover:?}");
    let resolved = &handover[0];
    assert_eq!(resolved.state, AlertState::Resolved);
    assert_eq!(resolved.labels, fired[0].labels);
    assert_eq!(resolved.active_at, UNIX_EPOCH + Duration::from_secs(1000));
    assert_eq!(
        resolved.fired_at,
        Some(UNIX_EPOCH + Duration::from_secs(1060))
    );
    assert_eq!(
        resolved.resolved_at,
        Some(UNIX_EPOCH + Duration::from_secs(2000))
    );
    // Resolved once, and the stored state is gone.
    assert!(step(&mut second, &registry, now(5_000, 2005)).is_empty());
    assert!(AlertDb::open(store).unwrap().load().unwrap().is_empty());
}

#[test]
fn firing_alerts_of_a_removed_rule_resolve_at_the_first_evaluation() {
    let store = Store::open(None).unwrap();
    let (registry, up) = registry();
    up.with_label_values(&["db"]).set(0);
    let mut first = engine(DOWN, Some(&store), now(0, 1000));
    step(&mut first, &registry, now(0, 1000));
    step(&mut first, &registry, now(60_000, 1060));
    drop(first);

    let other = "[[rule]]\nname = \"Other\"\nexpr = 'warden_check_up == 5'\n";
    let mut second = engine(other, Some(&store), now(0, 2000));
    let handover = step(&mut second, &registry, now(0, 2000));
    assert_eq!(handover.len(), 1);
    assert_eq!(handover[0].name(), "DatabaseDown");
    assert_eq!(handover[0].state, AlertState::Resolved);
    assert!(step(&mut second, &registry, now(5_000, 2005)).is_empty());
}

#[test]
fn evaluation_errors_are_counted_per_rule_and_leave_state_alone() {
    let (registry, up) = registry();
    up.with_label_values(&["db"]).set(0);
    up.with_label_values(&["cache"]).set(0);
    // Both series map to the same label set once `check` is dropped.
    let text = "[[rule]]\nname = \"Many\"\nexpr = 'sum without (check) (warden_check_up) == 0 or warden_check_up == 0'\n[[rule]]\nname = \"Clash\"\nexpr = 'warden_check_up == 0'\nlabels = { check = \"same\" }\n";
    let metrics = RuleMetrics::new();
    let mut engine = Engine::new(rules(text), 1000, EvalOptions::default(), metrics.clone());
    step(&mut engine, &registry, now(0, 1000));
    assert_eq!(metrics.failures.with_label_values(&["Clash"]).get(), 1);
    assert_eq!(metrics.failures.with_label_values(&["Many"]).get(), 0);
    assert_eq!(
        metrics.alerts.with_label_values(&["Many", "firing"]).get(),
        3
    );
    assert_eq!(
        metrics.alerts.with_label_values(&["Clash", "firing"]).get(),
        0
    );
    assert!(metrics.series.get() >= 2);
    assert!(metrics.store_bytes.get() > 0);
}

#[test]
fn the_series_limit_drops_and_counts_samples() {
    let (registry, up) = registry();
    for check in ["a", "b", "c"] {
        up.with_label_values(&[check]).set(1);
    }
    let metrics = RuleMetrics::new();
    let mut engine = Engine::new(
        rules("[[rule]]\nname = \"X\"\nexpr = 'warden_check_up == 0'\n"),
        2,
        EvalOptions::default(),
        metrics.clone(),
    );
    engine.feed(&registry.gather(), 0);
    assert_eq!(metrics.series.get(), 2);
    assert_eq!(metrics.samples_dropped.get(), 1);
}
