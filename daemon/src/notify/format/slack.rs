//! Slack incoming webhooks: a `text` line and one coloured attachment per
//! alert (critical red, warning orange, other grey, resolved green).
//!
//! Slack reads `&`, `<` and `>` as markup, so every piece of alert text is
//! escaped as its message-formatting guide asks.

use serde_json::{Value, json};

use super::Context;
use crate::notify::message::{Notification, Notified, Status, truncate_chars};

/// Most attachments in one message; further alerts are only counted.
const MAX_ATTACHMENTS: usize = 20;
/// Slack truncates longer attachment text anyway; cut it ourselves, cleanly.
const MAX_TEXT: usize = 3000;

/// Colours of the attachment bar.
const RED: &str = "#d63232";
const ORANGE: &str = "#f2a33a";
const GREY: &str = "#a0a0a0";
const GREEN: &str = "#2eb886";

/// Escapes `&`, `<` and `>` for Slack.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The bar colour of one alert.
pub fn colour(alert: &Notified) -> &'static str {
    match (alert.status, alert.severity()) {
        (Status::Resolved, _) => GREEN,
        (Status::Firing, "critical") => RED,
        (Status::Firing, "warning") => ORANGE,
        (Status::Firing, _) => GREY,
    }
}

/// The message body.
pub fn body(notification: &Notification, cx: &Context) -> Value {
    let firing = notification.count(Status::Firing);
    let resolved = notification.count(Status::Resolved);
    let counts = match (firing, resolved) {
        (f, 0) => format!("FIRING:{f}"),
        (0, r) => format!("RESOLVED:{r}"),
        (f, r) => format!("FIRING:{f}, RESOLVED:{r}"),
    };
    let group: Vec<String> = notification
        .group_labels
        .iter()
        .filter(|(k, _)| k.as_str() != "alertname")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let name = notification
        .alerts
        .first()
        .map_or("", |a| a.name())
        .to_owned();
    let mut text = format!("[{counts}] {name}");
    if !group.is_empty() {
        text.push_str(&format!(" ({})", group.join(", ")));
    }
    text.push_str(&format!(" on {}", cx.source));
    let hidden = notification.alerts.len().saturating_sub(MAX_ATTACHMENTS);
    if hidden > 0 {
        text.push_str(&format!(" (and {hidden} more not shown)"));
    }

    let attachments: Vec<Value> = notification
        .alerts
        .iter()
        .take(MAX_ATTACHMENTS)
        .map(|alert| attachment(alert, cx))
        .collect();
    json!({ "text": escape(&text), "attachments": attachments })
}

fn attachment(alert: &Notified, cx: &Context) -> Value {
    let status = match alert.status {
        Status::Firing => "FIRING",
        Status::Resolved => "RESOLVED",
    };
    let labels: Vec<String> = alert
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != "alertname")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let details = format!("{}\n{}", alert.summary(), labels.join(", "));
    let title = escape(&format!("[{status}] {}", alert.name()));
    json!({
        "color": colour(alert),
        "title": title,
        "title_link": cx.generator_url(),
        "text": escape(&truncate_chars(&details, MAX_TEXT)),
        "fallback": title,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use super::*;

    fn alert(status: Status, severity: &str, summary: &str) -> Notified {
        Notified {
            status,
            labels: [
                ("alertname".to_owned(), "Down".to_owned()),
                ("severity".to_owned(), severity.to_owned()),
            ]
            .into(),
            annotations: [("summary".to_owned(), summary.to_owned())].into(),
            starts_at: SystemTime::UNIX_EPOCH,
            ends_at: None,
            fingerprint: 7,
        }
    }

    fn cx() -> Context {
        Context {
            source: "host-1".into(),
            external_url: "http://127.0.0.1:9731".into(),
        }
    }

    #[test]
    fn escapes_markup_and_colours_by_severity() {
        let n = Notification {
            notifier: "chat".into(),
            group_key: "0:{}".into(),
            group_labels: BTreeMap::new(),
            alerts: vec![
                alert(Status::Firing, "critical", "a < b && c > d"),
                alert(Status::Firing, "warning", "w"),
                alert(Status::Firing, "info", "i"),
                alert(Status::Resolved, "critical", "r"),
            ],
        };
        let body = body(&n, &cx());
        assert_eq!(body["text"], "[FIRING:3, RESOLVED:1] Down on host-1");
        let colours: Vec<&str> = body["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["color"].as_str().unwrap())
            .collect();
        assert_eq!(colours, [RED, ORANGE, GREY, GREEN]);
        let text = body["attachments"][0]["text"].as_str().unwrap();
        assert!(text.starts_with("a &lt; b &amp;&amp; c &gt; d\n"), "{text}");
        assert_eq!(body["attachments"][3]["title"], "[RESOLVED] Down");
    }

    #[test]
    fn caps_the_number_of_attachments() {
        let n = Notification {
            notifier: "chat".into(),
            group_key: "k".into(),
            group_labels: [("team".to_owned(), "db".to_owned())].into(),
            alerts: vec![alert(Status::Firing, "critical", "x"); 25],
        };
        let body = body(&n, &cx());
        assert_eq!(body["attachments"].as_array().unwrap().len(), 20);
        assert_eq!(
            body["text"],
            "[FIRING:25] Down (team=db) on host-1 (and 5 more not shown)"
        );
    }
}
