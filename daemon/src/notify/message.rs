//! What one outbox entry holds: a group of alerts for one notifier, as the
//! router decided to send it. Kept free of secrets (URLs and keys come from
//! the config at send time), since it is written to the state file.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::alerting::{Alert, AlertState};

/// An alert's status in a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Still firing.
    Firing,
    /// No longer firing.
    Resolved,
}

impl Status {
    /// `firing` or `resolved`, as the payload formats spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// One alert as it is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notified {
    /// Firing or resolved.
    pub status: Status,
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// Its rendered annotations.
    pub annotations: BTreeMap<String, String>,
    /// When its expression started to hold.
    pub starts_at: SystemTime,
    /// When it resolved, or (for Alertmanager) until when a firing alert
    /// counts as alive without another update.
    pub ends_at: Option<SystemTime>,
    /// `Alert::fingerprint`, the identity of the alert instance.
    pub fingerprint: u64,
}

impl Notified {
    /// The notified form of `alert`.
    pub fn from_alert(alert: &Alert) -> Notified {
        let resolved = alert.state == AlertState::Resolved;
        Notified {
            status: if resolved {
                Status::Resolved
            } else {
                Status::Firing
            },
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            starts_at: alert.active_at,
            ends_at: if resolved {
                Some(alert.resolved_at.unwrap_or_else(SystemTime::now))
            } else {
                None
            },
            fingerprint: alert.fingerprint(),
        }
    }

    /// The alert's name.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    /// The `severity` label, or empty.
    pub fn severity(&self) -> &str {
        self.labels.get("severity").map_or("", String::as_str)
    }

    /// One line saying what is wrong: the `summary` annotation, else the
    /// `description`, else the name and labels.
    pub fn summary(&self) -> String {
        for key in ["summary", "description"] {
            if let Some(text) = self.annotations.get(key).filter(|t| !t.trim().is_empty()) {
                return text.clone();
            }
        }
        let labels: Vec<String> = self
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!("{} {{{}}}", self.name(), labels.join(", "))
    }

    /// The stable key naming this alert instance outside Warden (PagerDuty's
    /// `dedup_key`): `warden/<alertname>/<fingerprint>`.
    pub fn dedup_key(&self) -> String {
        format!("warden/{}/{:016x}", self.name(), self.fingerprint)
    }
}

/// One message for one notifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The notifier's name.
    pub notifier: String,
    /// Identifies the group: route number and grouping labels.
    pub group_key: String,
    /// The values of the route's `group_by` labels.
    pub group_labels: BTreeMap<String, String>,
    /// Firing alerts first, then resolved ones.
    pub alerts: Vec<Notified>,
}

impl Notification {
    /// `firing` when any alert fires, else `resolved` (Alertmanager's rule).
    pub fn status(&self) -> Status {
        if self.alerts.iter().any(|a| a.status == Status::Firing) {
            Status::Firing
        } else {
            Status::Resolved
        }
    }

    /// How many alerts have `status`.
    pub fn count(&self, status: Status) -> usize {
        self.alerts.iter().filter(|a| a.status == status).count()
    }

    /// Labels (or annotations) shared by every alert with the same value.
    pub fn common(
        &self,
        pick: impl Fn(&Notified) -> &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut alerts = self.alerts.iter();
        let Some(first) = alerts.next() else {
            return BTreeMap::new();
        };
        let mut common = pick(first).clone();
        for alert in alerts {
            let other = pick(alert);
            common.retain(|k, v| other.get(k) == Some(v));
        }
        common
    }
}

/// `SystemTime` as RFC 3339 with milliseconds, in UTC.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Cuts `text` to at most `max` characters, never inside a character, and
/// marks the cut with `…`.
pub fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_characters_not_bytes() {
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abcd", 3), "ab…");
        let cut = truncate_chars(&"é".repeat(2000), 1024);
        assert_eq!(cut.chars().count(), 1024);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn common_labels_keep_only_shared_values() {
        let alert = |check: &str| Notified {
            status: Status::Firing,
            labels: [
                ("alertname".to_owned(), "Down".to_owned()),
                ("check".to_owned(), check.to_owned()),
            ]
            .into(),
            annotations: BTreeMap::new(),
            starts_at: SystemTime::UNIX_EPOCH,
            ends_at: None,
            fingerprint: 1,
        };
        let n = Notification {
            notifier: "x".into(),
            group_key: "k".into(),
            group_labels: BTreeMap::new(),
            alerts: vec![alert("db"), alert("cache")],
        };
        let common = n.common(|a| &a.labels);
        assert_eq!(common.len(), 1);
        assert_eq!(common["alertname"], "Down");
        assert_eq!(n.alerts[0].summary(), "Down {check=\"db\"}");
        assert_eq!(n.alerts[0].dedup_key(), "warden/Down/0000000000000001");
    }
}
