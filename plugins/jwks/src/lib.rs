//! Warden check plugin for JWK Sets: fetches the set, validates it key by
//! key, checks expected kids and a minimum key count, and optionally
//! verifies a canary token against it. See docs/plugins/jwks.md.
//!
//! Each instance owns a current-thread tokio runtime and an HTTP client kept
//! across runs. A run is bounded by the host's deadline; when it runs out,
//! the client and the runtime (with every connection on it) are dropped.

mod canary;
mod config;
mod fetch;
pub mod keyset;

use std::cell::Cell;

use reqwest::Client;
use tokio::runtime::Runtime;
use warden_plugin_api::{CheckResult, Host, Metric, Plugin, Reason, RunContext, Status};

use crate::config::{Config, display_url};
use crate::fetch::{Failure, Fetched, Progress, Step};
use crate::keyset::{Finding, KeySet, inspect};

/// Content types a JWK Set may be served as (parameters such as charset
/// are allowed).
const ACCEPTED_TYPES: [&str; 3] = [
    "application/json",
    "application/jwk-set+json",
    "application/jwk+json",
];

/// One configured JWK Set check.
#[derive(Debug)]
pub struct JwksCheck {
    config: Config,
    runtime: Runtime,
    client: Option<Client>,
}

fn new_runtime() -> Result<Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the plugin's runtime: {e}"))
}

impl Plugin for JwksCheck {
    fn create(config: serde_json::Value, _host: Host) -> Result<Self, String> {
        let config = Config::parse(config)?;
        // This library's own rustls copy uses ring; an error only means a
        // provider is already installed in it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = new_runtime()?;
        let client = {
            let _guard = runtime.enter();
            fetch::client(&config)?
        };
        Ok(JwksCheck {
            config,
            runtime,
            client: Some(client),
        })
    }

    fn check(&mut self, ctx: &RunContext) -> CheckResult {
        let budget = ctx.remaining();
        let client = match self.client.clone() {
            Some(client) => client,
            None => {
                let _guard = self.runtime.enter();
                match fetch::client(&self.config) {
                    Ok(client) => client,
                    Err(e) => return CheckResult::critical(Reason::Error, e),
                }
            }
        };
        let progress = Progress {
            step: Cell::new(Step::Request),
            body_bytes: Cell::new(0),
        };
        let config = &self.config;
        let outcome = self.runtime.block_on(async {
            tokio::time::timeout(budget, fetch::fetch(&client, config, &progress)).await
        });
        let url = display_url(&self.config.url);
        match outcome {
            Err(_) => {
                // Drop the pooled connections and any half-read response.
                self.client = None;
                if let Ok(runtime) = new_runtime() {
                    self.runtime = runtime;
                }
                let during = match progress.step.get() {
                    Step::Request => "waiting for the response headers".to_owned(),
                    Step::Body => {
                        format!(
                            "reading the body ({} bytes so far)",
                            progress.body_bytes.get()
                        )
                    }
                };
                let message = format!(
                    "timeout: {url} did not finish within {:.1} s, {during}",
                    budget.as_secs_f64()
                );
                CheckResult::critical(Reason::Timeout, message)
            }
            Ok(Err(Failure { reason, message })) => {
                self.client = Some(client);
                CheckResult::critical(reason, message)
            }
            Ok(Ok(fetched)) => {
                self.client = Some(client);
                judge(&self.config, &url, &fetched)
            }
        }
    }
}

/// Turns a fetched body into the verdict.
fn judge(config: &Config, url: &str, fetched: &Fetched) -> CheckResult {
    let mut metrics = vec![
        Metric::new("fetch_seconds", fetched.elapsed.as_secs_f64()).unit("seconds"),
        Metric::new("body_bytes", fetched.body.len() as f64).unit("bytes"),
    ];
    if let Some(age) = fetched.cache_max_age {
        metrics.push(Metric::new("cache_max_age_seconds", age as f64).unit("seconds"));
    }
    let not_a_set = |why: &str| {
        let message = format!(
            "not a JWK Set: {why} (HTTP {}, content type {}, body starts {})",
            fetched.status.as_u16(),
            fetched.content_type.as_deref().unwrap_or("none"),
            first_bytes(&fetched.body)
        );
        CheckResult::critical(Reason::Protocol, message).with_metrics(metrics.clone())
    };
    let doc: serde_json::Value = match serde_json::from_slice(&fetched.body) {
        Ok(doc) => doc,
        Err(e) => return not_a_set(&format!("not JSON ({e})")),
    };
    let set = match inspect(&doc) {
        Ok(set) => set,
        Err(e) => return not_a_set(&e.0),
    };
    metrics.push(Metric::new("keys", set.total as f64));
    metrics.push(Metric::new("usable_keys", set.usable.len() as f64));

    let mut findings = set.findings.clone();
    let essence = fetched
        .content_type
        .as_deref()
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase());
    if !essence
        .as_deref()
        .is_some_and(|t| ACCEPTED_TYPES.contains(&t))
    {
        findings.push(Finding {
            status: Status::Warning,
            reason: Reason::Protocol,
            message: format!(
                "served as {}, not application/json or application/jwk-set+json",
                fetched.content_type.as_deref().unwrap_or("no content type")
            ),
        });
    }
    findings.extend(expectations(config, &set));

    let mut summary = vec![format!(
        "{} of {} keys usable{}",
        set.usable.len(),
        set.total,
        if set.usable.is_empty() {
            String::new()
        } else {
            format!(" ({})", set.by_type())
        }
    )];
    if set.encryption > 0 {
        summary.push(format!("{} for encryption", set.encryption));
    }
    if let Some(path) = &config.canary_token_file {
        let verdict = canary::read_token(path).and_then(|t| canary::verify(&t, &set.usable));
        metrics.push(Metric::new(
            "canary_verified",
            if verdict.is_ok() { 1.0 } else { 0.0 },
        ));
        match verdict {
            Ok(label) => summary.push(format!("canary token verified by {label}")),
            Err(message) => findings.push(Finding {
                status: Status::Critical,
                reason: Reason::Auth,
                message,
            }),
        }
    }
    summary.push(format!(
        "fetched in {:.0} ms",
        fetched.elapsed.as_secs_f64() * 1e3
    ));

    let status = findings
        .iter()
        .map(|f| f.status)
        .max()
        .unwrap_or(Status::Ok);
    let reason = findings
        .iter()
        .find(|f| f.status == status)
        .map(|f| f.reason);
    // Worst first, so the line starts with what matters.
    findings.sort_by_key(|f| std::cmp::Reverse(f.status));
    let mut parts: Vec<String> = findings.into_iter().map(|f| f.message).collect();
    parts.extend(summary);
    let mut result =
        CheckResult::new(status, format!("{url}: {}", parts.join("; "))).with_metrics(metrics);
    result.reason = reason;
    result
}

/// Findings from `min_keys` and `expected_kids`, and the empty set.
fn expectations(config: &Config, set: &KeySet) -> Vec<Finding> {
    let mut findings = Vec::new();
    if set.usable.is_empty() {
        let why = if set.total == 0 {
            "\"keys\" is empty".to_owned()
        } else {
            "none of the keys can verify signatures".to_owned()
        };
        findings.push(Finding {
            status: Status::Critical,
            reason: Reason::Protocol,
            message: format!("no usable signing key: {why}"),
        });
    } else if set.usable.len() < config.min_keys {
        findings.push(Finding {
            status: Status::Critical,
            reason: Reason::Threshold,
            message: format!(
                "{} usable keys, fewer than min_keys = {}",
                set.usable.len(),
                config.min_keys
            ),
        });
    }
    let missing: Vec<&str> = config
        .expected_kids
        .iter()
        .filter(|kid| {
            !set.usable
                .iter()
                .any(|k| k.kid.as_deref() == Some(kid.as_str()))
        })
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        findings.push(Finding {
            status: Status::Critical,
            reason: Reason::Other,
            message: format!("expected kids missing or unusable: {}", missing.join(", ")),
        });
    }
    findings
}

/// The first 64 bytes of a body, quoted with control and non-ASCII
/// characters escaped, so one log line shows what the server sent.
fn first_bytes(body: &[u8]) -> String {
    let head = &body[..body.len().min(64)];
    let text: String = head
        .iter()
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    let more = if body.len() > 64 { "..." } else { "" };
    format!("\"{text}\"{more}")
}

warden_plugin_api::export_plugin!(JwksCheck, name = "jwks");
