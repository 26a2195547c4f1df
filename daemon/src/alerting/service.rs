//! The evaluation task: every `evaluation_interval` it gathers the daemon's
//! metrics into the series store, evaluates every rule, publishes the active
//! alerts for `/alerts` and hands firing and resolved ones to the sink.
//!
//! The first evaluation waits until every check has reported once (or the
//! settle time has passed), so alerts restored after a restart are judged on
//! fresh data rather than resolved for the lack of it.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use prometheus::proto::MetricFamily;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::engine::{Engine, Now};
use super::{Alert, AlertSink};

/// The engine's clock: a timeline on the monotonic clock (tokio's, so tests
/// can pause it), starting at the wall time of its creation, plus the wall
/// clock for display.
#[derive(Clone)]
pub struct Clock {
    start: Instant,
    start_ms: i64,
    wall: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock")
            .field("start_ms", &self.start_ms)
            .finish_non_exhaustive()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::with_wall(Arc::new(SystemTime::now))
    }
}

impl Clock {
    /// A clock reading wall time from `wall`.
    pub fn with_wall(wall: Arc<dyn Fn() -> SystemTime + Send + Sync>) -> Clock {
        let start_ms = wall()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Clock {
            start: Instant::now(),
            start_ms,
            wall,
        }
    }

    /// Now on the timeline and on the wall clock.
    pub fn now(&self) -> Now {
        Now {
            timeline_ms: self.start_ms + self.start.elapsed().as_millis() as i64,
            wall: (self.wall)(),
        }
    }
}

/// The active alerts as of the latest evaluation, for `/alerts`.
#[derive(Debug, Clone, Default)]
pub struct ActiveAlerts(Arc<RwLock<Vec<Alert>>>);

impl ActiveAlerts {
    /// A copy of the latest list.
    pub fn snapshot(&self) -> Vec<Alert> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, alerts: Vec<Alert>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = alerts;
    }
}

/// What the task needs besides the engine.
pub struct Inputs {
    /// Time between evaluations.
    pub interval: Duration,
    /// Gathers the metric families to feed (the daemon's registry).
    pub gather: Box<dyn Fn() -> Vec<MetricFamily> + Send>,
    /// Whether every check has reported once.
    pub ready: Box<dyn Fn() -> bool + Send>,
    /// Longest wait for `ready` before the first evaluation.
    pub settle: Duration,
    /// Where alerts go.
    pub sink: Arc<dyn AlertSink>,
    /// The clock.
    pub clock: Clock,
}

impl std::fmt::Debug for Inputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs")
            .field("interval", &self.interval)
            .field("settle", &self.settle)
            .finish_non_exhaustive()
    }
}

/// A reloaded rule set for the running task.
#[derive(Debug)]
pub struct Reload {
    /// The new rules.
    pub rules: Vec<super::config::RuleConfig>,
    /// The new series limit.
    pub max_series: usize,
    /// The new evaluation interval.
    pub interval: Duration,
    /// Where alerts go from now on (notifiers may have changed).
    pub sink: Arc<dyn AlertSink>,
}

/// The running evaluation task.
#[derive(Debug)]
pub struct Service {
    stop: oneshot::Sender<()>,
    reloads: tokio::sync::mpsc::UnboundedSender<Reload>,
    task: JoinHandle<()>,
}

impl Service {
    /// Starts evaluating; the returned list is updated after every evaluation.
    pub fn start(engine: Engine, inputs: Inputs) -> (Service, ActiveAlerts) {
        let view = ActiveAlerts::default();
        view.set(engine.alerts());
        let (stop, stopped) = oneshot::channel();
        let (reloads, reloaded) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(run(engine, inputs, view.clone(), stopped, reloaded));
        (
            Service {
                stop,
                reloads,
                task,
            },
            view,
        )
    }

    /// Applies a reloaded rule set between two evaluations; alert state of
    /// unchanged rules and the series history are kept.
    pub fn reload(&self, reload: Reload) {
        let _ = self.reloads.send(reload);
    }

    /// Stops after the evaluation in progress, if any.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn run(
    mut engine: Engine,
    mut inputs: Inputs,
    view: ActiveAlerts,
    mut stopped: oneshot::Receiver<()>,
    mut reloaded: tokio::sync::mpsc::UnboundedReceiver<Reload>,
) {
    let mut ticks = tokio::time::interval(inputs.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut settled = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = &mut stopped => break,
            Some(reload) = reloaded.recv() => {
                engine.replace_rules(reload.rules, reload.max_series, inputs.clock.now());
                view.set(engine.alerts());
                inputs.sink = reload.sink;
                if reload.interval != inputs.interval {
                    inputs.interval = reload.interval;
                    ticks = tokio::time::interval(inputs.interval);
                    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
                }
                continue;
            }
        }
        let now = inputs.clock.now();
        // Without rules nothing reads the series: do not keep them.
        if engine.rule_count() > 0 {
            engine.feed(&(inputs.gather)(), now.timeline_ms);
        }
        if !settled {
            settled = (inputs.ready)() || started.elapsed() >= inputs.settle;
            if !settled {
                continue;
            }
        }
        let handover = engine.evaluate(now);
        view.set(engine.alerts());
        inputs.sink.dispatch(handover);
    }
}

#[cfg(test)]
mod tests;
