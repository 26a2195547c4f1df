//! PagerDuty Events API v2: one event per alert, `trigger` while firing and
//! `resolve` once resolved, under a `dedup_key` that stays the same for the
//! alert instance across repeats, retries and restarts, so PagerDuty folds
//! duplicates into one incident.

use serde_json::{Value, json};

use super::Context;
use crate::notify::message::{Notified, Status, rfc3339, truncate_chars};

/// PagerDuty refuses a longer `payload.summary`.
pub const MAX_SUMMARY: usize = 1024;

/// The Events API severity for a `severity` label: `critical`, `error`,
/// `warning` or `info`. Unknown values map to `error`: the alert was routed
/// to PagerDuty, so it is treated as a problem rather than a note.
pub fn severity(label: &str) -> &'static str {
    match label.to_ascii_lowercase().as_str() {
        "critical" | "page" | "fatal" | "emergency" => "critical",
        "warning" | "warn" | "minor" => "warning",
        "info" | "informational" | "notice" | "none" => "info",
        _ => "error",
    }
}

/// The event for one alert.
pub fn body(alert: &Notified, routing_key: &str, cx: &Context) -> Value {
    let dedup_key = alert.dedup_key();
    match alert.status {
        Status::Resolved => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key,
        }),
        Status::Firing => {
            let mut payload = json!({
                "summary": truncate_chars(&alert.summary(), MAX_SUMMARY),
                "source": cx.source,
                "severity": severity(alert.severity()),
                "timestamp": rfc3339(alert.starts_at),
                "class": alert.name(),
                "custom_details": {
                    "labels": alert.labels,
                    "annotations": alert.annotations,
                },
            });
            if let Some(check) = alert.labels.get("check") {
                payload["component"] = json!(check);
            }
            json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": dedup_key,
                "payload": payload,
                "client": "Warden",
                "client_url": cx.generator_url(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn alert(status: Status, summary: String) -> Notified {
        Notified {
            status,
            labels: [
                ("alertname".to_owned(), "DbDown".to_owned()),
                ("severity".to_owned(), "page".to_owned()),
                ("check".to_owned(), "db".to_owned()),
            ]
            .into(),
            annotations: [("summary".to_owned(), summary)].into(),
            starts_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            ends_at: None,
            fingerprint: 0xabc,
        }
    }

    #[test]
    fn trigger_carries_a_bounded_summary_and_mapped_severity() {
        let cx = Context {
            source: "host-1".into(),
            external_url: "http://127.0.0.1:9731".into(),
        };
        let body = body(&alert(Status::Firing, "ü".repeat(3000)), "k", &cx);
        assert_eq!(body["event_action"], "trigger");
        assert_eq!(body["dedup_key"], "warden/DbDown/0000000000000abc");
        let summary = body["payload"]["summary"].as_str().unwrap();
        assert_eq!(summary.chars().count(), MAX_SUMMARY);
        assert_eq!(body["payload"]["severity"], "critical");
        assert_eq!(body["payload"]["source"], "host-1");
        assert_eq!(body["payload"]["component"], "db");
        assert_eq!(body["payload"]["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(body["payload"]["custom_details"]["labels"]["check"], "db");
    }

    #[test]
    fn resolve_names_the_same_dedup_key() {
        let cx = Context {
            source: "h".into(),
            external_url: String::new(),
        };
        let trigger = body(&alert(Status::Firing, "x".into()), "k", &cx);
        let resolve = body(&alert(Status::Resolved, "x".into()), "k", &cx);
        assert_eq!(resolve["event_action"], "resolve");
        assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
        assert!(resolve.get("payload").is_none());
    }

    #[test]
    fn severities_map_into_the_allowed_set() {
        for (label, expected) in [
            ("critical", "critical"),
            ("WARNING", "warning"),
            ("info", "info"),
            ("error", "error"),
            ("", "error"),
            ("whatever", "error"),
        ] {
            assert_eq!(severity(label), expected, "{label}");
        }
    }
}
