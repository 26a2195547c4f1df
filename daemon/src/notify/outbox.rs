//! The durable outbox and the record of what was notified, in the shared
//! state database.
//!
//! A routing decision is one write transaction: the new entries and the
//! updated "notified" records commit together, so after a crash either both
//! are there (and the entry will be delivered) or neither is (and the next
//! evaluation decides again). An entry leaves the outbox only once it was
//! delivered, refused for good, or expired.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::message::Notification;
use crate::store::Store;

/// Pending notifications by (notifier, entry id).
const OUTBOX: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("notify_outbox");
/// What was notified, by (notifier, alert fingerprint).
const NOTIFIED: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("notify_sent");
/// Counters: the next entry id.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("notify_meta");
const NEXT_ID: &str = "next_id";

/// Why the outbox could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The database failed.
    #[error("state database: {0}")]
    Db(#[from] redb::Error),
    /// A stored record does not decode (written by an incompatible version).
    #[error("outbox record does not decode: {0}")]
    Decode(#[from] serde_json::Error),
}

fn db(error: impl Into<redb::Error>) -> OutboxError {
    OutboxError::Db(error.into())
}

/// One notification waiting for delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Increasing id: entries of one notifier are delivered in id order.
    pub id: u64,
    /// When it was written; it expires `max_age` later.
    pub created_at: SystemTime,
    /// Attempts made so far.
    pub attempts: u32,
    /// Not to be tried before this.
    pub next_attempt_at: SystemTime,
    /// What to send.
    pub notification: Notification,
}

/// What was last notified about one alert instance to one notifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentState {
    /// The instance's `active_at`: a new value means a new problem.
    pub active_at: SystemTime,
    /// When it was last put in the outbox as firing.
    pub last_sent: SystemTime,
}

/// (notifier, fingerprint).
pub type StateKey = (String, u64);

/// One routing decision, applied atomically.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    /// New outbox entries, in order.
    pub entries: Vec<Notification>,
    /// Records to write.
    pub set: BTreeMap<StateKey, SentState>,
    /// Records to delete.
    pub clear: BTreeSet<StateKey>,
}

/// Handle to the outbox tables.
#[derive(Debug, Clone)]
pub struct Outbox {
    store: Store,
}

impl Outbox {
    /// Opens the tables, creating them on first use.
    pub fn open(store: Store) -> Result<Outbox, OutboxError> {
        let txn = store.db().begin_write().map_err(db)?;
        txn.open_table(OUTBOX).map_err(db)?;
        txn.open_table(NOTIFIED).map_err(db)?;
        txn.open_table(META).map_err(db)?;
        txn.commit().map_err(db)?;
        Ok(Outbox { store })
    }

    /// Runs `decide` over every "notified" record and the set of notifiers
    /// with pending entries, then commits its plan in the same transaction.
    pub fn route(
        &self,
        now: SystemTime,
        decide: impl FnOnce(&BTreeMap<StateKey, SentState>, &BTreeSet<String>) -> Plan,
    ) -> Result<Plan, OutboxError> {
        let txn = self.store.db().begin_write().map_err(db)?;
        let plan = {
            let mut outbox = txn.open_table(OUTBOX).map_err(db)?;
            let mut notified = txn.open_table(NOTIFIED).map_err(db)?;
            let mut meta = txn.open_table(META).map_err(db)?;

            let mut states = BTreeMap::new();
            for row in notified.iter().map_err(db)? {
                let (key, value) = row.map_err(db)?;
                let (name, fingerprint) = key.value();
                states.insert(
                    (name.to_owned(), fingerprint),
                    serde_json::from_slice(value.value())?,
                );
            }
            let mut backlog = BTreeSet::new();
            for row in outbox.iter().map_err(db)? {
                let (key, _) = row.map_err(db)?;
                backlog.insert(key.value().0.to_owned());
            }

            let plan = decide(&states, &backlog);
            if plan == Plan::default() {
                return Ok(plan);
            }

            let mut next_id = meta.get(NEXT_ID).map_err(db)?.map_or(1, |v| v.value());
            for notification in &plan.entries {
                let entry = Entry {
                    id: next_id,
                    created_at: now,
                    attempts: 0,
                    next_attempt_at: now,
                    notification: notification.clone(),
                };
                let bytes = serde_json::to_vec(&entry)?;
                outbox
                    .insert((notification.notifier.as_str(), next_id), bytes.as_slice())
                    .map_err(db)?;
                next_id += 1;
            }
            meta.insert(NEXT_ID, next_id).map_err(db)?;
            for ((name, fingerprint), state) in &plan.set {
                let bytes = serde_json::to_vec(state)?;
                notified
                    .insert((name.as_str(), *fingerprint), bytes.as_slice())
                    .map_err(db)?;
            }
            for (name, fingerprint) in &plan.clear {
                notified.remove((name.as_str(), *fingerprint)).map_err(db)?;
            }
            plan
        };
        txn.commit().map_err(db)?;
        Ok(plan)
    }

    /// The oldest pending entry of `notifier`.
    pub fn first(&self, notifier: &str) -> Result<Option<Entry>, OutboxError> {
        let txn = self.store.db().begin_read().map_err(db)?;
        let table = txn.open_table(OUTBOX).map_err(db)?;
        let mut range = table
            .range((notifier, 0)..=(notifier, u64::MAX))
            .map_err(db)?;
        match range.next() {
            Some(row) => {
                let (_, value) = row.map_err(db)?;
                Ok(Some(serde_json::from_slice(value.value())?))
            }
            None => Ok(None),
        }
    }

    /// Rewrites an entry after a failed attempt.
    pub fn update(&self, entry: &Entry) -> Result<(), OutboxError> {
        let bytes = serde_json::to_vec(entry)?;
        let txn = self.store.db().begin_write().map_err(db)?;
        {
            let mut table = txn.open_table(OUTBOX).map_err(db)?;
            table
                .insert(
                    (entry.notification.notifier.as_str(), entry.id),
                    bytes.as_slice(),
                )
                .map_err(db)?;
        }
        txn.commit().map_err(db)
    }

    /// Removes an entry (delivered, refused or expired).
    pub fn remove(&self, notifier: &str, id: u64) -> Result<(), OutboxError> {
        let txn = self.store.db().begin_write().map_err(db)?;
        {
            let mut table = txn.open_table(OUTBOX).map_err(db)?;
            table.remove((notifier, id)).map_err(db)?;
        }
        txn.commit().map_err(db)
    }

    /// Pending entries, in all.
    pub fn len(&self) -> Result<u64, OutboxError> {
        let txn = self.store.db().begin_read().map_err(db)?;
        let table = txn.open_table(OUTBOX).map_err(db)?;
        table.len().map_err(db)
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> Result<bool, OutboxError> {
        Ok(self.len()? == 0)
    }

    /// Removes every entry of notifiers not in `known` (no longer
    /// configured), returning how many went per notifier.
    pub fn drop_unknown(
        &self,
        known: &BTreeSet<&str>,
    ) -> Result<BTreeMap<String, u64>, OutboxError> {
        let txn = self.store.db().begin_write().map_err(db)?;
        let mut dropped: BTreeMap<String, u64> = BTreeMap::new();
        {
            let mut table = txn.open_table(OUTBOX).map_err(db)?;
            let mut doomed = Vec::new();
            for row in table.iter().map_err(db)? {
                let (key, _) = row.map_err(db)?;
                let (name, id) = key.value();
                if !known.contains(name) {
                    doomed.push((name.to_owned(), id));
                }
            }
            for (name, id) in doomed {
                table.remove((name.as_str(), id)).map_err(db)?;
                *dropped.entry(name).or_default() += 1;
            }
        }
        txn.commit().map_err(db)?;
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn notification(notifier: &str, key: &str) -> Notification {
        Notification {
            notifier: notifier.to_owned(),
            group_key: key.to_owned(),
            group_labels: BTreeMap::new(),
            alerts: Vec::new(),
        }
    }

    #[test]
    fn entries_and_records_survive_a_reopen_in_order() {
        let dir = std::env::temp_dir().join(format!("warden-outbox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        {
            let outbox = Outbox::open(Store::open(Some(&dir)).unwrap()).unwrap();
            outbox
                .route(now, |states, backlog| {
                    assert!(states.is_empty() && backlog.is_empty());
                    Plan {
                        entries: vec![
                            notification("a", "1"),
                            notification("b", "2"),
                            notification("a", "3"),
                        ],
                        set: [(
                            ("a".to_owned(), 9),
                            SentState {
                                active_at: now,
                                last_sent: now,
                            },
                        )]
                        .into(),
                        clear: BTreeSet::new(),
                    }
                })
                .unwrap();
        }
        let outbox = Outbox::open(Store::open(Some(&dir)).unwrap()).unwrap();
        assert_eq!(outbox.len().unwrap(), 3);
        let first = outbox.first("a").unwrap().unwrap();
        assert_eq!(first.notification.group_key, "1");
        assert_eq!((first.id, first.attempts, first.created_at), (1, 0, now));

        let mut retried = first.clone();
        retried.attempts = 2;
        outbox.update(&retried).unwrap();
        assert_eq!(outbox.first("a").unwrap().unwrap().attempts, 2);
        outbox.remove("a", first.id).unwrap();
        assert_eq!(
            outbox.first("a").unwrap().unwrap().notification.group_key,
            "3"
        );

        outbox
            .route(now, |states, backlog| {
                assert_eq!(states[&("a".to_owned(), 9)].last_sent, now);
                assert_eq!(backlog.iter().collect::<Vec<_>>(), ["a", "b"]);
                Plan {
                    entries: vec![notification("a", "4")],
                    set: BTreeMap::new(),
                    clear: [("a".to_owned(), 9)].into(),
                }
            })
            .unwrap();
        // Ids keep increasing across reopen: the new entry sorts last.
        outbox.remove("a", 3).unwrap();
        assert_eq!(outbox.first("a").unwrap().unwrap().id, 4);
        outbox
            .route(now, |states, _| {
                assert!(states.is_empty());
                Plan::default()
            })
            .unwrap();

        let dropped = outbox.drop_unknown(&["a"].into()).unwrap();
        assert_eq!(dropped, [("b".to_owned(), 1)].into());
        assert_eq!(outbox.len().unwrap(), 1);
        drop(outbox);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
