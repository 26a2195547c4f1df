//! What `GET /diagnostics` shows: the build, the plugins found, the
//! effective configuration with every secret redacted, and runtime figures
//! read from `/proc/self`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{Config, Isolation, NotifierConfig};
use crate::plugin::Catalog;
use crate::redact::{REDACTED, Redactor};

/// The binary: version, profile and target.
pub(super) fn build() -> Value {
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "target": format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
    })
}

/// Every plugin file considered, loaded or refused with the reason.
pub(super) fn plugins(catalog: &Catalog) -> Value {
    let found: Vec<Value> = catalog
        .found
        .iter()
        .map(|found| match &found.outcome {
            Ok(lib) => json!({
                "name": lib.name,
                "version": lib.version,
                "abi": format!("{}.{}", lib.abi.0, lib.abi.1),
                "path": found.path.display().to_string(),
            }),
            Err(reason) => json!({
                "path": found.path.display().to_string(),
                "refused": reason,
            }),
        })
        .collect();
    Value::Array(found)
}

fn seconds(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// Secret fields are shown as `[redacted]` whatever their value; every
/// other string that equals or contains a known secret is redacted too
/// (check configs do not say which of their values were secrets).
pub(super) fn effective_config(config: &Config, redactor: &Redactor) -> Value {
    let checks: Vec<Value> = config
        .checks
        .iter()
        .map(|check| {
            json!({
                "name": check.name,
                "plugin": check.plugin,
                "interval": check.interval.to_string(),
                "timeout": check.timeout.to_string(),
                "critical": check.critical,
                "fall": check.fall,
                "rise": check.rise,
                "stale_after": check.stale_after,
                "isolation": match check.isolation {
                    Isolation::InProcess => "in-process",
                    Isolation::Process => "process",
                },
                "config": check.config,
            })
        })
        .collect();
    let rules: Vec<Value> = config
        .alerting
        .rules
        .iter()
        .map(|rule| {
            json!({
                "name": rule.name,
                "expr": rule.expr.source(),
                "for": seconds(rule.for_),
                "keep_firing_for": seconds(rule.keep_firing_for),
                "severity": rule.severity,
                "labels": rule.labels,
                "annotations": rule.annotations,
            })
        })
        .collect();
    let routes: Vec<Value> = config
        .routes
        .iter()
        .map(|route| {
            json!({
                "matchers": route.matchers.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "notifiers": route.notifiers,
                "repeat_interval": seconds(route.repeat_interval),
                "send_resolved": route.send_resolved,
                "group_by": route.group_by,
                "group_wait": seconds(route.group_wait),
            })
        })
        .collect();
    let mut value = json!({
        "origin": config.origin.to_string(),
        "server": {
            "listen": config.server.listen.to_string(),
            "admin_token": config.server.admin_token.as_ref().map(|_| REDACTED),
            "degraded_status": config.server.degraded_status,
        },
        "plugins": {
            "dir": config.plugins.dir.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
            "beside_executable": config.plugins.beside_executable,
        },
        // Debug form: the section is being extended; it holds no secrets.
        "log": format!("{:?}", config.log),
        "state": {"dir": config.state.dir.as_ref().map(|d| d.display().to_string())},
        "checks": checks,
        "alerting": {
            "evaluation_interval": seconds(config.alerting.evaluation_interval),
            "max_series": config.alerting.max_series,
        },
        "rules": rules,
        "notifiers": config.notifiers.iter().map(notifier).collect::<Vec<_>>(),
        "routes": routes,
        "notify": {
            "max_age": seconds(config.notify.max_age),
            "retry_initial": seconds(config.notify.retry_initial),
            "retry_max": seconds(config.notify.retry_max),
            "alertmanager_resend": seconds(config.notify.alertmanager_resend),
        },
    });
    redactor.json(&mut value);
    value
}

fn notifier(notifier: &NotifierConfig) -> Value {
    json!({
        "name": notifier.name,
        "kind": notifier.kind.as_str(),
        "url": REDACTED,
        "routing_key": notifier.routing_key.as_ref().map(|_| REDACTED),
        "headers": notifier.headers.keys().map(|k| (k.clone(), json!(REDACTED))).collect::<serde_json::Map<_, _>>(),
        "timeout": seconds(notifier.timeout),
    })
}

/// One number from `/proc/self/status`, e.g. `VmRSS:` (in kB) or `Threads:`.
fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The soft limit on open files, from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Uptime, memory, descriptors, threads and tokio tasks of this process.
pub(super) fn runtime(uptime: Duration) -> Value {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // The listing holds the descriptor that reads it; it is not counted.
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|dir| dir.count().saturating_sub(1));
    let tokio = tokio::runtime::Handle::current().metrics();
    json!({
        "pid": std::process::id(),
        "uptime_seconds": uptime.as_secs(),
        "rss_bytes": status_field(&status, "VmRSS:").map(|kb| kb * 1024),
        "threads": status_field(&status, "Threads:"),
        "open_fds": open_fds,
        "open_fds_limit": open_files_limit(),
        "tokio_tasks_alive": tokio.num_alive_tasks(),
        "tokio_workers": tokio.num_workers(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_secrets_never_show() {
        let dir = std::env::temp_dir().join(format!("warden-diag-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "tok-canary-1\n").unwrap();
        let text = format!(
            r#"
            [server]
            admin_token = {{ file = {token:?} }}
            [[check]]
            name = "db"
            plugin = "noop"
            [check.config]
            url = "postgres://monitor:pw-canary-2@127.0.0.1/app"
            password = {{ file = {token:?} }}
            [[notifier]]
            name = "hook"
            kind = "webhook"
            url = "http://127.0.0.1:9/hook/url-canary-3"
            "#,
        );
        let config = Config::parse(&text, crate::config::Origin::Embedded).unwrap();
        let redactor = Redactor::default();
        redactor.add(&config.secrets);
        let shown = effective_config(&config, &redactor).to_string();
        for canary in ["tok-canary-1", "url-canary-3"] {
            assert!(!shown.contains(canary), "{canary} in {shown}");
        }
        // An inline string in a check config is not known as a secret.
        assert!(shown.contains("pw-canary-2"));
        assert!(shown.contains(r#""admin_token":"[redacted]""#), "{shown}");
        assert!(shown.contains(r#""password":"[redacted]""#), "{shown}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn proc_figures_are_read() {
        let status = "Name:\twarden\nVmRSS:\t  2048 kB\nThreads:\t7\n";
        assert_eq!(status_field(status, "VmRSS:"), Some(2048));
        assert_eq!(status_field(status, "Threads:"), Some(7));
        assert!(open_files_limit().is_some());
    }
}
