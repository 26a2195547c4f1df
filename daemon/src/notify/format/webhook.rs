//! The generic webhook: exactly Alertmanager's webhook payload (version 4),
//! so receivers written for Alertmanager work unchanged.

use serde_json::{Value, json};

use super::Context;
use crate::notify::message::{Notification, Status, rfc3339};

/// Go's zero time, which Alertmanager sends as `endsAt` of a firing alert.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The payload for one notification.
pub fn body(notification: &Notification, cx: &Context) -> Value {
    let alerts: Vec<Value> = notification
        .alerts
        .iter()
        .map(|alert| {
            json!({
                "status": alert.status.as_str(),
                "labels": alert.labels,
                "annotations": alert.annotations,
                "startsAt": rfc3339(alert.starts_at),
                "endsAt": match (alert.status, alert.ends_at) {
                    (Status::Resolved, Some(at)) => rfc3339(at),
                    _ => ZERO_TIME.to_owned(),
                },
                "generatorURL": cx.generator_url(),
                "fingerprint": format!("{:016x}", alert.fingerprint),
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": 0,
        "status": notification.status().as_str(),
        "receiver": notification.notifier,
        "groupLabels": notification.group_labels,
        "commonLabels": notification.common(|a| &a.labels),
        "commonAnnotations": notification.common(|a| &a.annotations),
        "externalURL": cx.external_url,
        "alerts": alerts,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::notify::message::Notified;

    #[test]
    fn matches_alertmanagers_field_names_and_values() {
        let at = |ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        let alert = |status, check: &str, ends| Notified {
            status,
            labels: [
                ("alertname".to_owned(), "Down".to_owned()),
                ("check".to_owned(), check.to_owned()),
            ]
            .into(),
            annotations: [("summary".to_owned(), format!("{check} down"))].into(),
            starts_at: at(1_000),
            ends_at: ends,
            fingerprint: 0x1f,
        };
        let n = Notification {
            notifier: "hook".into(),
            group_key: "0:{alertname=\"Down\"}".into(),
            group_labels: [("alertname".to_owned(), "Down".to_owned())].into(),
            alerts: vec![
                alert(Status::Firing, "db", None),
                alert(Status::Resolved, "cache", Some(at(2_500))),
            ],
        };
        let cx = Context {
            source: "h".into(),
            external_url: "http://127.0.0.1:9731".into(),
        };
        let body = body(&n, &cx);
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "firing");
        assert_eq!(body["receiver"], "hook");
        assert_eq!(body["truncatedAlerts"], 0);
        assert_eq!(body["commonLabels"], json!({"alertname": "Down"}));
        assert_eq!(body["commonAnnotations"], json!({}));
        assert_eq!(body["groupLabels"], json!({"alertname": "Down"}));
        assert_eq!(body["externalURL"], "http://127.0.0.1:9731");
        let first = &body["alerts"][0];
        assert_eq!(first["startsAt"], "1970-01-01T00:00:01.000Z");
        assert_eq!(first["endsAt"], ZERO_TIME);
        assert_eq!(first["fingerprint"], "000000000000001f");
        assert_eq!(first["generatorURL"], "http://127.0.0.1:9731/alerts");
        assert_eq!(body["alerts"][1]["status"], "resolved");
        assert_eq!(body["alerts"][1]["endsAt"], "1970-01-01T00:00:02.500Z");
    }
}
