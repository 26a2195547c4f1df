//! Warden's `postgres` check plugin: liveness with `SELECT 1` over the simple
//! query protocol, connection slot usage, primary/standby role and replay
//! lag, and custom metric queries, over one connection kept across runs.
//!
//! Each instance owns a current-thread tokio runtime and `block_on`s each run
//! under one deadline (`RunContext::remaining`) covering DNS, connect, TLS,
//! authentication and queries. On the deadline the connection is dropped, so
//! a stalled server never collects a queue of half-open connections from us.
//! docs/plugins/postgres.md lists the config keys and metrics.

mod classify;
mod config;
mod custom;
mod number;
mod probe;
mod progress;
mod redact;
mod report;
mod stats;
mod tls;

use std::time::Duration;

use warden_plugin_api::{CheckResult, Host, Plugin, Reason, RunContext};

use crate::config::Settings;
use crate::probe::Probe;
use crate::progress::Step;

/// How long shutdown waits for the connection to say goodbye.
const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// One configured `postgres` check.
#[derive(Debug)]
pub struct Postgres {
    /// `Option` so `Drop` can shut it down without waiting on a stuck
    /// name lookup.
    runtime: Option<tokio::runtime::Runtime>,
    probe: Probe,
}

impl Plugin for Postgres {
    fn create(config: serde_json::Value, _host: Host) -> Result<Self, String> {
        let settings = Settings::parse(&config).map_err(|e| e.to_string())?;
        let secrets = settings.secrets.clone();
        let probe = Probe::new(settings).map_err(|e| secrets.scrub(&e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("cannot start the plugin's runtime: {e}"))?;
        Ok(Postgres {
            runtime: Some(runtime),
            probe,
        })
    }

    fn check(&mut self, ctx: &RunContext) -> CheckResult {
        let Some(runtime) = self.runtime.as_ref() else {
            return CheckResult::unknown("the plugin's runtime is gone");
        };
        let budget = ctx.remaining();
        let probe = &mut self.probe;
        // The timer must be made inside the runtime, hence the async block.
        let outcome =
            runtime.block_on(async { tokio::time::timeout(budget, probe.run(ctx.deadline)).await });
        let result = match outcome {
            Ok(result) => result,
            Err(_) => {
                let step = probe.progress.get();
                let during = match (step, &probe.current_query) {
                    (Step::Query, Some(name)) => format!("running query {name:?}"),
                    _ => step.describe().to_owned(),
                };
                let dropped = if step.is_connecting() {
                    "half-open connection"
                } else {
                    "connection"
                };
                // The stalled connection is of no further use; a fresh one is
                // opened on the next run, after this one is closed.
                runtime.block_on(probe.drop_session());
                CheckResult::critical(
                    Reason::Timeout,
                    format!(
                        "timeout: no answer within {:.1} s while {during}; {dropped} dropped",
                        budget.as_secs_f64()
                    ),
                )
            }
        };
        probe.settings().secrets.scrub_result(result)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            let probe = &mut self.probe;
            runtime.block_on(async {
                let _ = tokio::time::timeout(CLOSE_GRACE, probe.close_session()).await;
            });
            runtime.shutdown_background();
        }
    }
}

warden_plugin_api::export_plugin!(Postgres, name = "postgres");
