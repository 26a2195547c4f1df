//! Alertmanager API v2 (`POST /api/v2/alerts`): the alerts as Prometheus
//! sends them. A firing alert carries an `endsAt` a few resend intervals
//! ahead, so Alertmanager keeps it alive while Warden keeps re-sending and
//! resolves it by itself if Warden goes away; a resolved one carries the
//! time it resolved.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Context;
use crate::config::NotifierConfig;
use crate::notify::message::{Notification, rfc3339};

/// `{base}/api/v2/alerts`.
pub fn endpoint(notifier: &NotifierConfig) -> String {
    format!(
        "{}/api/v2/alerts",
        notifier.url.expose().trim_end_matches('/')
    )
}

/// Makes a label name acceptable to Alertmanager (`[a-zA-Z_][a-zA-Z0-9_]*`):
/// every other character becomes `_`, and a leading digit gets a `_` prefix.
pub fn sanitize_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn sanitize(map: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    map.iter()
        // Alertmanager drops labels with empty values; send none.
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (sanitize_name(k), v.clone()))
        .collect()
}

/// The JSON array of alerts.
pub fn body(notification: &Notification, cx: &Context) -> Value {
    let alerts: Vec<Value> = notification
        .alerts
        .iter()
        .map(|alert| {
            let mut item = json!({
                "labels": sanitize(&alert.labels),
                "annotations": sanitize(&alert.annotations),
                "startsAt": rfc3339(alert.starts_at),
                "generatorURL": cx.generator_url(),
            });
            if let Some(ends) = alert.ends_at {
                item["endsAt"] = json!(rfc3339(ends));
            }
            item
        })
        .collect();
    Value::Array(alerts)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::notify::message::{Notified, Status};

    #[test]
    fn label_names_are_made_valid() {
        assert_eq!(sanitize_name("check"), "check");
        assert_eq!(sanitize_name("team.name"), "team_name");
        assert_eq!(sanitize_name("9lives"), "_9lives");
        assert_eq!(sanitize_name("é-x"), "__x");
        assert_eq!(sanitize_name(""), "_");
    }

    #[test]
    fn sends_start_and_end_times() {
        let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let n = Notification {
            notifier: "am".into(),
            group_key: "k".into(),
            group_labels: BTreeMap::new(),
            alerts: vec![Notified {
                status: Status::Firing,
                labels: [
                    ("alertname".to_owned(), "Down".to_owned()),
                    ("bad-name".to_owned(), "v".to_owned()),
                    ("empty".to_owned(), String::new()),
                ]
                .into(),
                annotations: BTreeMap::new(),
                starts_at: at(10),
                ends_at: Some(at(250)),
                fingerprint: 1,
            }],
        };
        let cx = Context {
            source: "h".into(),
            external_url: "http://127.0.0.1:9731".into(),
        };
        let body = body(&n, &cx);
        assert_eq!(
            body[0]["labels"],
            json!({"alertname": "Down", "bad_name": "v"})
        );
        assert_eq!(body[0]["startsAt"], "1970-01-01T00:00:10.000Z");
        assert_eq!(body[0]["endsAt"], "1970-01-01T00:04:10.000Z");
    }
}
