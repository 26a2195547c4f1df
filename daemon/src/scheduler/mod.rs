//! The scheduler: every check on its own interval.
//!
//! - In-process checks run on the run pool's threads ([`pool`]), one
//!   wake-up per run; checks in a child process, and checks that cannot run,
//!   have a tokio task each.
//! - Intervals and deadlines run on the monotonic clock (`Instant`), so a
//!   wall-clock jump neither stalls nor bursts checks.
//! - Each check starts after a random offset, spreading the load of many
//!   checks that share an interval.
//! - A run that overruns its interval is not followed by a backlog: the
//!   first missed tick runs at once, later ones are skipped, keeping the
//!   phase.
//! - A heartbeat task proves the runtime is making progress, for `/livez`.
//! - An admin may ask for a run now ([`Triggers`]); it is made between
//!   scheduled runs by whoever makes those (the pool, or the check's task),
//!   so two runs of one check never overlap.

mod alarm;
mod pool;
mod runner;
mod trigger;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument;

pub(crate) use runner::plugin_budget;
pub use runner::{InProcess, Runner};
pub use trigger::{TriggerError, Triggers};

use crate::status::{Board, CheckSpec, Health, RunRecord};
use crate::telemetry::Metrics;

/// How often the heartbeat ticks.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// The longest initial offset, so a host is ready soon after start even with
/// long intervals.
const MAX_INITIAL_OFFSET: Duration = Duration::from_secs(2);

/// A check ready to be scheduled.
#[derive(Debug)]
pub struct Scheduled {
    /// What it is.
    pub spec: CheckSpec,
    /// How it runs.
    pub runner: Runner,
}

/// One check's task and the switch that stops it; for a check in the run
/// pool, the task only hands run-now requests to the pool.
#[derive(Debug)]
struct Task {
    handle: JoinHandle<()>,
    stop: watch::Sender<bool>,
    slot: Option<pool::SlotId>,
}

/// Running checks, plus the heartbeat. Checks can be added and removed while
/// the others keep their schedule (reload).
#[derive(Debug)]
pub struct Scheduler {
    tasks: BTreeMap<String, Task>,
    heartbeat: Task,
    /// `None` if its threads could not be set up: every check then gets a
    /// task and calls through tokio's blocking pool.
    pool: Option<pool::Pool>,
    board: Arc<Board>,
    metrics: Metrics,
    triggers: Triggers,
}

impl Scheduler {
    /// Spawns one task per check plus the heartbeat.
    pub fn start(checks: Vec<Scheduled>, board: Arc<Board>, metrics: Metrics) -> Scheduler {
        let (stop, stopped) = watch::channel(false);
        let heartbeat = Task {
            handle: tokio::spawn(heartbeat(Arc::clone(&board), stopped)),
            stop,
            slot: None,
        };
        let pool = pool::Pool::new(Arc::clone(&board), metrics.clone())
            .inspect_err(
                |error| tracing::warn!(%error, "no run pool; checks run on tokio's blocking pool"),
            )
            .ok();
        let mut scheduler = Scheduler {
            tasks: BTreeMap::new(),
            heartbeat,
            pool,
            board,
            metrics,
            triggers: Triggers::default(),
        };
        for check in checks {
            scheduler.add(check);
        }
        scheduler
    }

    /// Starts scheduling one more check (replacing a running one of the
    /// same name, which is stopped without waiting).
    pub fn add(&mut self, check: Scheduled) {
        self.metrics.register_check(&check.spec);
        let name = check.spec.name.clone();
        let span =
            tracing::error_span!("check", check = %check.spec.name, plugin = %check.spec.plugin);
        let (stop, stopped) = watch::channel(false);
        let requests = self.triggers.register(&name);
        let first = Instant::now() + initial_offset(check.spec.interval);
        let (handle, slot) = match (&self.pool, check.runner) {
            (Some(pool), Runner::InProcess(runner)) => {
                let slot = pool.add(check.spec, runner, first.into_std());
                let forward = forward(pool.clone(), slot, stopped, requests);
                (tokio::spawn(forward.instrument(span)), Some(slot))
            }
            (_, runner) => {
                let check = Scheduled {
                    spec: check.spec,
                    runner,
                };
                let task = drive(
                    check,
                    first,
                    Arc::clone(&self.board),
                    self.metrics.clone(),
                    stopped,
                    requests,
                );
                (tokio::spawn(task.instrument(span)), None)
            }
        };
        let task = Task { handle, stop, slot };
        if let Some(old) = self.tasks.insert(name, task) {
            self.retire(old);
        }
    }

    /// Stops a replaced or removed check without waiting for it.
    fn retire(&self, task: Task) {
        let _ = task.stop.send(true);
        if let (Some(pool), Some(slot)) = (&self.pool, task.slot) {
            pool.remove(slot);
        }
    }

    /// Stops scheduling a check; a run in progress ends at its deadline.
    pub fn remove(&mut self, name: &str) {
        self.triggers.unregister(name);
        if let Some(task) = self.tasks.remove(name) {
            self.retire(task);
        }
    }

    /// Where run-now requests go; follows checks as they are added and removed.
    pub fn triggers(&self) -> Triggers {
        self.triggers.clone()
    }

    /// Names of the scheduled checks.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tasks.keys().map(String::as_str)
    }

    /// Stops scheduling and waits for running checks, each bounded by its
    /// deadline.
    pub async fn stop(self) {
        self.triggers.clear();
        for task in self.tasks.values() {
            let _ = task.stop.send(true);
        }
        let _ = self.heartbeat.stop.send(true);
        if let Some(pool) = &self.pool {
            pool.stop().await;
        }
        for (_, task) in self.tasks {
            let _ = task.handle.await;
        }
        let _ = self.heartbeat.handle.await;
    }
}

fn initial_offset(interval: Duration) -> Duration {
    interval.min(MAX_INITIAL_OFFSET).mul_f64(fastrand::f64())
}

/// Hands a pooled check's run-now requests to the pool, one at a time, so
/// the check's queue bound holds as it does for a task-driven check.
async fn forward(
    pool: pool::Pool,
    slot: pool::SlotId,
    mut stopped: watch::Receiver<bool>,
    mut requests: mpsc::Receiver<trigger::RunNow>,
) {
    loop {
        let reply = tokio::select! {
            Some(reply) = requests.recv() => reply,
            _ = stopped.changed() => return,
        };
        let (pooled, answer) = tokio::sync::oneshot::channel();
        pool.request(slot, pooled);
        tokio::select! {
            answered = answer => match answered {
                Ok(record) => {
                    let _ = reply.send(record);
                }
                // Removed, or the daemon stops.
                Err(_) => return,
            },
            _ = stopped.changed() => return,
        }
    }
}

/// Drives a check that is not in the run pool: a tokio task on an interval.
async fn drive(
    check: Scheduled,
    start: Instant,
    board: Arc<Board>,
    metrics: Metrics,
    mut stopped: watch::Receiver<bool>,
    mut requests: mpsc::Receiver<trigger::RunNow>,
) {
    let Scheduled { spec, runner } = check;
    let mut ticks = tokio::time::interval_at(start, spec.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        let reply = tokio::select! {
            scheduled = ticks.tick() => {
                metrics.observe_start_delay(scheduled.elapsed());
                None
            }
            Some(reply) = requests.recv() => Some(reply),
            _ = stopped.changed() => return,
        };
        let record = runner.run(spec.timeout).await;
        if *stopped.borrow() {
            // Removed or replaced by a reload while running: this result
            // belongs to a check that no longer exists.
            return;
        }
        record_run(&board, &metrics, &spec, record, reply);
    }
}

/// Records a finished run: metrics, the board, a log line when the check's
/// health changes, and the answer to whoever asked for the run.
fn record_run(
    board: &Board,
    metrics: &Metrics,
    spec: &CheckSpec,
    record: RunRecord,
    reply: Option<trigger::RunNow>,
) {
    metrics.observe_run(spec, &record);
    tracing::debug!(
        outcome = record.outcome.as_str(),
        duration_ms = record.duration.as_millis() as u64,
        "check ran"
    );
    let outcome = record.outcome.as_str();
    let answer = reply.map(|reply| (reply, record.clone()));
    let failing = record.outcome.is_failure().then(|| record.message.clone());
    if let Some((now, before)) = board.record(&spec.name, record) {
        match now {
            Health::Unhealthy => {
                let message = failing.as_deref().unwrap_or_default();
                tracing::warn!(outcome, message, ?before, "check failing")
            }
            Health::Healthy if before != Health::Pending => {
                tracing::info!(?before, "check recovered")
            }
            _ => tracing::debug!(?now, ?before, "check health changed"),
        }
    }
    if let Some((reply, record)) = answer {
        tracing::info!(target: "warden::security", outcome, "admin run finished");
        // Sent once recorded, so the answer and the board agree; the
        // requester may have given up, the run counts anyway.
        let _ = reply.send(record);
    }
}

async fn heartbeat(board: Arc<Board>, mut stopped: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = ticks.tick() => board.beat(),
            _ = stopped.changed() => return,
        }
    }
}
