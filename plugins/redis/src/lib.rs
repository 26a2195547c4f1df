//! Warden check plugin for Redis: PING latency, an optional SET/GET/DEL round
//! trip under a key prefix, and memory, client and replication health from
//! `INFO`. See docs/plugins/redis.md for the config keys and metrics.
//!
//! Each instance owns a current-thread tokio runtime and keeps one
//! connection between runs. A run is bounded by the host's deadline; when it
//! runs out, the connection and the runtime (with every task and socket on
//! it) are dropped, so a hung server never collects half-open connections.

mod config;
mod failure;
pub mod info;
mod probe;

use std::cell::Cell;

use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, TlsCertificates};
use tokio::runtime::Runtime;
use warden_plugin_api::{CheckResult, Host, Plugin, Reason, RunContext, Status};

use crate::config::Config;
use crate::failure::redact;
use crate::probe::{Run, Session, Step};

/// One configured Redis check.
pub struct RedisCheck {
    config: Config,
    client: Client,
    runtime: Runtime,
    session: Option<Session>,
}

impl std::fmt::Debug for RedisCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCheck")
            .field("config", &self.config)
            .field("connected", &self.session.is_some())
            .finish_non_exhaustive()
    }
}

fn new_runtime() -> Result<Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the plugin's runtime: {e}"))
}

/// Builds the client from parts, never from a URL, so the password is used
/// byte for byte.
fn build_client(config: &Config) -> Result<Client, String> {
    let addr = if config.tls {
        ConnectionAddr::TcpTls {
            host: config.host.clone(),
            port: config.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(config.host.clone(), config.port)
    };
    let mut redis = RedisConnectionInfo::default()
        .set_db(config.db)
        .set_skip_set_lib_name();
    if let Some(password) = &config.password {
        redis = redis.set_password(password);
    }
    if let Some(username) = &config.username {
        redis = redis.set_username(username);
    }
    let info = addr
        .into_connection_info()
        .map_err(|e| format!("invalid address: {e}"))?
        .set_redis_settings(redis);
    let client = match &config.ca_pem {
        Some(pem) => Client::build_with_tls(
            info,
            TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        ),
        None => Client::open(info),
    };
    client.map_err(|e| format!("`ca_file`: {e}"))
}

impl Plugin for RedisCheck {
    fn create(config: serde_json::Value, _host: Host) -> Result<Self, String> {
        let config = Config::parse(config)?;
        // This library's own rustls copy uses ring; an error only means a
        // provider is already installed in it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = build_client(&config)?;
        Ok(RedisCheck {
            config,
            client,
            runtime: new_runtime()?,
            session: None,
        })
    }

    fn check(&mut self, ctx: &RunContext) -> CheckResult {
        let result = self.run(ctx);
        let message = redact(&result.message, self.config.password.as_deref());
        CheckResult { message, ..result }
    }
}

impl RedisCheck {
    fn run(&mut self, ctx: &RunContext) -> CheckResult {
        let budget = ctx.remaining();
        let step = Cell::new(Step::Dns);
        let run = Run {
            config: &self.config,
            client: &self.client,
            session: &mut self.session,
            step: &step,
        };
        // The timer must be made inside the runtime, hence the async block.
        let outcome = self
            .runtime
            .block_on(async { tokio::time::timeout(budget, run.execute()).await });
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(_) => {
                self.discard_connection();
                let message = format!(
                    "timeout: no answer from {} within {:.1} s, during {}",
                    self.config.endpoint(),
                    budget.as_secs_f64(),
                    step.get().describe(self.config.tls)
                );
                return CheckResult::critical(Reason::Timeout, message);
            }
        };
        match outcome {
            Ok(report) => {
                let status = report
                    .findings
                    .iter()
                    .map(|f| f.status)
                    .max()
                    .unwrap_or(Status::Ok);
                let reason = report
                    .findings
                    .iter()
                    .filter(|f| f.status == status)
                    .map(|f| f.reason)
                    .next();
                let mut parts: Vec<String> =
                    report.findings.iter().map(|f| f.message.clone()).collect();
                parts.extend(report.summary.into_iter().filter(|s| !s.is_empty()));
                let message = format!("{}: {}", self.config.endpoint(), parts.join("; "));
                let mut result = CheckResult::new(status, message).with_metrics(report.metrics);
                result.reason = reason;
                result
            }
            Err(failure) => {
                if failure.drop_connection {
                    self.discard_connection();
                }
                CheckResult::critical(failure.reason, failure.message)
            }
        }
    }

    /// Drops the kept connection and the runtime that drives it, closing
    /// its socket now rather than whenever the runtime next runs.
    fn discard_connection(&mut self) {
        self.session = None;
        // On failure the old runtime stays; the dropped connection then
        // closes on its next run.
        if let Ok(runtime) = new_runtime() {
            self.runtime = runtime;
        }
    }
}

warden_plugin_api::export_plugin!(RedisCheck, name = "redis");
