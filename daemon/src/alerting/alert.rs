//! An alert instance as rule evaluation hands it to notification: the
//! contract between the two halves of alerting.
//!
//! Like Prometheus and Alertmanager: after every evaluation the rule engine
//! passes every *firing* alert, and every alert that *resolved* since the
//! last hand-over, to the notification side; deciding what to send (new
//! pages, repeats, grouping, resolves) is the notifier's job.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Where an alert is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The expression holds, but not yet for `for`.
    Pending,
    /// The expression has held for `for` (or `keep_firing_for` keeps it).
    Firing,
    /// It fired and no longer does.
    Resolved,
}

/// One alert instance: one sample of one rule's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Rule labels, series labels, `alertname` and `severity`.
    pub labels: BTreeMap<String, String>,
    /// Rendered annotations (`summary`, `description`, ...).
    pub annotations: BTreeMap<String, String>,
    /// Lifecycle state.
    pub state: AlertState,
    /// When the expression started to hold (Alertmanager's `startsAt`).
    pub active_at: SystemTime,
    /// When it started firing.
    pub fired_at: Option<SystemTime>,
    /// When it resolved.
    pub resolved_at: Option<SystemTime>,
    /// The sample value at the last evaluation.
    pub value: f64,
}

impl Alert {
    /// The alert's name.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    /// A stable identity from the labels: the same alert instance gets the
    /// same fingerprint across evaluations and restarts (FNV-1a, so it does
    /// not depend on the process's hash seed).
    pub fn fingerprint(&self) -> u64 {
        fingerprint(&self.labels)
    }
}

/// FNV-1a over sorted label pairs.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> u64 {
    let mut hasher = Fnv1a(0xcbf2_9ce4_8422_2325);
    for (name, value) in labels {
        name.hash(&mut hasher);
        value.hash(&mut hasher);
    }
    hasher.finish()
}

struct Fnv1a(u64);

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_and_label_sensitive() {
        let a: BTreeMap<String, String> = [
            ("alertname".into(), "CacheDown".into()),
            ("check".into(), "cache".into()),
        ]
        .into();
        let mut b = a.clone();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        b.insert("check".into(), "cache2".into());
        assert_ne!(fingerprint(&a), fingerprint(&b));
        // Fixed value: changing the hash breaks persisted dedup keys.
        assert_eq!(fingerprint(&BTreeMap::new()), 0xcbf2_9ce4_8422_2325);
    }
}
