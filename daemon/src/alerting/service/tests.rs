use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::{IntGauge, Registry};
use warden_promql::EvalOptions;

use super::*;
use crate::alerting::{AlertState, RuleMetrics};
use crate::config::{Config, Origin};

/// Keeps every hand-over.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Vec<Alert>>>);

impl AlertSink for Recorder {
    fn dispatch(&self, alerts: Vec<Alert>) {
        self.0.lock().unwrap().push(alerts);
    }
}

impl Recorder {
    fn states(&self) -> Vec<AlertState> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .map(|a| a.state)
            .collect()
    }
}

struct Setup {
    up: IntGauge,
    sink: Arc<Recorder>,
    view: ActiveAlerts,
    service: Service,
    /// Seconds added to the real wall clock.
    wall_offset: Arc<AtomicU64>,
}

fn start(rule: &str) -> Setup {
    let rules = Config::parse(rule, Origin::File("warden.toml".into()))
        .unwrap()
        .alerting
        .rules;
    let registry = Registry::new();
    let up = IntGauge::new("warden_check_up", "h").unwrap();
    registry.register(Box::new(up.clone())).unwrap();
    let sink = Arc::new(Recorder::default());
    let wall_offset = Arc::new(AtomicU64::new(0));
    let offset = Arc::clone(&wall_offset);
    let clock = Clock::with_wall(Arc::new(move || {
        SystemTime::now() + Duration::from_secs(offset.load(Ordering::SeqCst))
    }));
    let engine = Engine::new(rules, 100, EvalOptions::default(), RuleMetrics::new());
    let (service, view) = Service::start(
        engine,
        Inputs {
            interval: Duration::from_secs(5),
            gather: Box::new(move || registry.gather()),
            ready: Box::new(|| true),
            settle: Duration::ZERO,
            sink: Arc::clone(&sink) as Arc<dyn AlertSink>,
            clock,
        },
    );
    Setup {
        up,
        sink,
        view,
        service,
        wall_offset,
    }
}

const RULE: &str = "[[rule]]\nname = \"Down\"\nexpr = 'warden_check_up == 0'\nfor = \"1m\"\n";

fn states(view: &ActiveAlerts) -> Vec<AlertState> {
    view.snapshot().iter().map(|a| a.state).collect()
}

#[tokio::test(start_paused = true)]
async fn pending_fires_after_for_on_the_monotonic_clock_and_resolves() {
    let setup = start(RULE);
    // Evaluations at 0, 5, 10 s ...; checking between ticks.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(states(&setup.view), [AlertState::Pending]);

    // The wall clock leaps an hour ahead: `for` is measured on the
    // monotonic clock, so the alert stays pending.
    setup.wall_offset.store(3600, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(50)).await;
    assert_eq!(states(&setup.view), [AlertState::Pending]);
    assert!(setup.sink.states().is_empty());

    // 60 s after the first evaluation it fires and is handed over.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(states(&setup.view), [AlertState::Firing]);
    assert_eq!(setup.sink.states(), [AlertState::Firing]);

    // Firing alerts are handed over at every evaluation.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        setup.sink.states(),
        [AlertState::Firing, AlertState::Firing]
    );

    setup.up.set(1);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(setup.view.snapshot().is_empty());
    let handed = setup.sink.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(handed.len(), 1);
    assert_eq!(handed[0].state, AlertState::Resolved);
    setup.service.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_first_evaluation_waits_for_the_checks_or_the_settle_time() {
    let rules = Config::parse(RULE, Origin::File("warden.toml".into()))
        .unwrap()
        .alerting
        .rules;
    let registry = Registry::new();
    let up = IntGauge::new("warden_check_up", "h").unwrap();
    registry.register(Box::new(up)).unwrap();
    let engine = Engine::new(rules, 100, EvalOptions::default(), RuleMetrics::new());
    let (service, view) = Service::start(
        engine,
        Inputs {
            interval: Duration::from_secs(5),
            gather: Box::new(move || registry.gather()),
            ready: Box::new(|| false),
            settle: Duration::from_secs(20),
            sink: Arc::new(LogSinkForTest),
            clock: Clock::default(),
        },
    );
    tokio::time::sleep(Duration::from_millis(17_500)).await;
    assert!(view.snapshot().is_empty());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(states(&view), [AlertState::Pending]);
    service.stop().await;
}

#[derive(Debug)]
struct LogSinkForTest;

impl AlertSink for LogSinkForTest {
    fn dispatch(&self, _alerts: Vec<Alert>) {}
}
