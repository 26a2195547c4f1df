//! Pending and firing alerts in the state database, so a restart keeps their
//! start times and a resolve is still sent for one that cleared meanwhile.
//!
//! One row per alert, keyed `rule NUL fingerprint`, holding the alert as
//! JSON with wall-clock times (the monotonic clock does not survive a
//! restart). A rule's rows are rewritten whenever one of its alerts appears,
//! changes state or goes away; value changes alone are not written.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::lifecycle::Active;
use super::{Alert, AlertState};
use crate::store::Store;

const ALERTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("alerting.alerts.v1");

/// Why alert state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("alert state in the state database: {0}")]
pub struct PersistError(String);

fn fail(e: impl std::fmt::Display) -> PersistError {
    PersistError(e.to_string())
}

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// Labels, `alertname` included.
    pub labels: BTreeMap<String, String>,
    /// Annotations as last rendered.
    pub annotations: BTreeMap<String, String>,
    /// `pending` or `firing`.
    pub state: AlertState,
    /// When the expression started to hold, Unix milliseconds.
    pub active_at_ms: i64,
    /// When it started firing, Unix milliseconds.
    pub fired_at_ms: Option<i64>,
    /// When `keep_firing_for` started holding it, Unix milliseconds.
    pub keep_firing_since_ms: Option<i64>,
    /// The last value.
    pub value: f64,
}

fn unix_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

fn from_unix_ms(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

impl Stored {
    /// The stored form of an active alert; `timeline_to_wall` maps the
    /// keep-firing timeline time to Unix milliseconds.
    pub(crate) fn from_active(active: &Active, timeline_to_wall: impl Fn(i64) -> i64) -> Stored {
        Stored {
            labels: active.alert.labels.clone(),
            annotations: active.alert.annotations.clone(),
            state: active.alert.state,
            active_at_ms: unix_ms(active.alert.active_at),
            fired_at_ms: active.alert.fired_at.map(unix_ms),
            keep_firing_since_ms: active.keep_firing_since_ms.map(timeline_to_wall),
            value: active.alert.value,
        }
    }

    /// Back to an active alert: `wall_to_timeline` maps Unix milliseconds
    /// onto the engine's timeline.
    pub(crate) fn into_active(self, wall_to_timeline: impl Fn(i64) -> i64) -> Active {
        Active {
            active_at_ms: wall_to_timeline(self.active_at_ms),
            keep_firing_since_ms: self.keep_firing_since_ms.map(&wall_to_timeline),
            alert: Alert {
                labels: self.labels,
                annotations: self.annotations,
                state: self.state,
                active_at: from_unix_ms(self.active_at_ms),
                fired_at: self.fired_at_ms.map(from_unix_ms),
                resolved_at: None,
                value: self.value,
            },
        }
    }
}

/// Alert state in the shared store.
#[derive(Debug, Clone)]
pub struct AlertDb {
    store: Store,
}

impl AlertDb {
    /// Uses `store`, creating the table if needed.
    pub fn open(store: Store) -> Result<AlertDb, PersistError> {
        let tx = store.db().begin_write().map_err(fail)?;
        tx.open_table(ALERTS).map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(AlertDb { store })
    }

    /// Every stored alert, by rule name.
    pub fn load(&self) -> Result<BTreeMap<String, Vec<Stored>>, PersistError> {
        let tx = self.store.db().begin_read().map_err(fail)?;
        let table = tx.open_table(ALERTS).map_err(fail)?;
        let mut out: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
        for row in table.iter().map_err(fail)? {
            let (key, value) = row.map_err(fail)?;
            let Some((rule, _)) = key.value().split_once('\0') else {
                continue;
            };
            let stored: Stored = serde_json::from_slice(value.value())
                .map_err(|e| fail(format!("row {:?}: {e}", key.value())))?;
            out.entry(rule.to_owned()).or_default().push(stored);
        }
        Ok(out)
    }

    /// Replaces the stored alerts of each rule in `rules` (in one transaction).
    pub fn replace(&self, rules: &[(&str, Vec<Stored>)]) -> Result<(), PersistError> {
        let tx = self.store.db().begin_write().map_err(fail)?;
        {
            let mut table = tx.open_table(ALERTS).map_err(fail)?;
            for (rule, alerts) in rules {
                let start = format!("{rule}\0");
                let end = format!("{rule}\u{1}");
                table
                    .retain_in(start.as_str()..end.as_str(), |_, _| false)
                    .map_err(fail)?;
                for stored in alerts {
                    let key = format!("{rule}\0{:016x}", super::fingerprint(&stored.labels));
                    let value = serde_json::to_vec(stored).map_err(fail)?;
                    table.insert(key.as_str(), value.as_slice()).map_err(fail)?;
                }
            }
        }
        tx.commit().map_err(fail)
    }
}
