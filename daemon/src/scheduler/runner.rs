//! Running one check once, under its deadline.
//!
//! A plugin call blocks a thread for as long as the plugin takes, so it runs
//! off the async workers (on the run pool's threads, or tokio's blocking
//! pool) and the deadline is enforced around it: at the deadline the run is
//! reported as `timeout`, while the stuck call keeps the instance busy until
//! it returns, and no new call reaches that instance meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use warden_plugin_api::Reason;

use crate::plugin::{CallError, Instance};
use crate::status::{Outcome, RunRecord};

/// The time a plugin is given: a little less than the run's deadline, so a
/// plugin that honours it reports its own timeout, naming the step it was
/// in, before the daemon gives up on the call with a bare "no result".
pub(crate) fn plugin_budget(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 20).min(Duration::from_millis(100)))
}

/// How a check gets run.
#[derive(Debug)]
pub enum Runner {
    /// An instance in this process.
    InProcess(InProcess),
    /// An instance in a child process (`isolation = "process"`).
    Process(crate::isolation::Process),
    /// The check cannot run; every run reports this error.
    Broken(String),
}

impl Runner {
    /// Runs the check once; never takes much longer than `timeout`. Secrets
    /// in the result (a driver error quoting its connection string) are
    /// redacted once, so every consumer sees the redacted text: here, or for
    /// an in-process call where the call is made, as the run pool makes it
    /// too ([`InProcess::call`]).
    pub async fn run(&self, timeout: Duration) -> RunRecord {
        let started_at = SystemTime::now();
        let started = Instant::now();
        match self {
            Runner::InProcess(runner) => runner.run(timeout, started_at, started).await,
            Runner::Process(runner) => redacted(runner.run(timeout, started_at, started).await),
            Runner::Broken(message) => redacted(RunRecord::failed(
                Outcome::Error,
                Reason::Error,
                message.clone(),
                started_at,
                started.elapsed(),
            )),
        }
    }
}

/// Hides every known secret in a record's message and metric labels.
fn redacted(mut record: RunRecord) -> RunRecord {
    let redactor = crate::redact::Redactor::global();
    redactor.in_place(&mut record.message);
    for metric in &mut record.metrics {
        for value in metric.labels.values_mut() {
            redactor.in_place(value);
        }
    }
    record
}

/// A plugin instance in this process. The scheduler's run pool calls it on
/// its own threads ([`InProcess::call`]); [`Runner::run`] hands the same call
/// to tokio's blocking pool.
#[derive(Debug, Clone)]
pub struct InProcess {
    instance: Arc<Mutex<Instance>>,
    busy: Arc<AtomicBool>,
}

/// Clears the busy flag when the call ends, even by panic.
struct BusyGuard(Arc<AtomicBool>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl InProcess {
    /// Wraps an instance.
    pub fn new(instance: Instance) -> Self {
        InProcess {
            instance: Arc::new(Mutex::new(instance)),
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Calls the plugin on this thread, blocking for as long as it takes.
    /// The caller enforces `timeout` around the call, counted from `started`
    /// (when the run began, which may be before this thread got to it); the
    /// plugin is told a little less. While an earlier call is still inside
    /// the plugin (it overran and was given up on), the plugin is not called
    /// again.
    pub fn call(
        &self,
        timeout: Duration,
        started_at: SystemTime,
        started: std::time::Instant,
    ) -> RunRecord {
        let failed = |outcome, reason, message: String| {
            RunRecord::failed(outcome, reason, message, started_at, started.elapsed())
        };
        if self.busy.swap(true, Ordering::AcqRel) {
            return redacted(failed(
                Outcome::Timeout,
                Reason::Timeout,
                "previous run has not returned yet; not calling the plugin again".to_owned(),
            ));
        }
        let _guard = BusyGuard(Arc::clone(&self.busy));
        let mut instance = self.instance.lock().unwrap_or_else(|e| e.into_inner());
        let budget = plugin_budget(timeout).saturating_sub(started.elapsed());
        let record = match instance.check(budget) {
            Ok(result) => RunRecord::from_result(result, started_at, started.elapsed()),
            Err(CallError::Plugin(message)) => failed(Outcome::Error, Reason::Error, message),
            Err(error @ CallError::BadResult(_)) => {
                failed(Outcome::Error, Reason::Protocol, error.to_string())
            }
        };
        redacted(record)
    }

    async fn run(&self, timeout: Duration, started_at: SystemTime, started: Instant) -> RunRecord {
        let this = self.clone();
        let since = started.into_std();
        let call = tokio::task::spawn_blocking(move || this.call(timeout, started_at, since));
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(record)) => record,
            Ok(Err(join_error)) => crashed(&join_error, started_at, started.elapsed()),
            Err(_) => timed_out(timeout, started_at, started.elapsed()),
        }
    }
}

/// The record of a call given up on at its deadline.
pub(crate) fn timed_out(timeout: Duration, started_at: SystemTime, took: Duration) -> RunRecord {
    RunRecord::failed(
        Outcome::Timeout,
        Reason::Timeout,
        format!("no result within {}", humantime::format_duration(timeout)),
        started_at,
        took,
    )
}

/// The record of a call that panicked in the daemon's own code; the panic
/// text may quote a secret, so it is redacted like any result.
pub(crate) fn crashed(
    panic: &dyn std::fmt::Display,
    started_at: SystemTime,
    took: Duration,
) -> RunRecord {
    redacted(RunRecord::failed(
        Outcome::Error,
        Reason::Crashed,
        format!("plugin call failed: {panic}"),
        started_at,
        took,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_get_a_twentieth_less_time_at_most_100_ms() {
        let ms = Duration::from_millis;
        assert_eq!(plugin_budget(ms(1000)), ms(950));
        assert_eq!(plugin_budget(ms(5000)), ms(4900));
        assert_eq!(plugin_budget(ms(100)), ms(95));
        assert_eq!(plugin_budget(Duration::ZERO), Duration::ZERO);
    }
}
