//! Connection counts, role and replay lag, read in one simple-protocol
//! query so it also works through PgBouncer in transaction mode.

use tokio_postgres::{Client, SimpleQueryMessage};

/// Counts slots used by client backends, the limits that bound them, the
/// role, and on a standby how far replay is behind. Without `pg_monitor` (or
/// `pg_read_all_stats`) other users' rows hide `backend_type`; those are
/// counted when they have a user and a database, which is what a client
/// backend has (autovacuum and parallel workers also do, and are few).
/// `reserved_connections` exists from PostgreSQL 16 on; `current_setting(..,
/// true)` gives NULL before that. Replay lag is 0 when everything received is replayed, else
/// the age of the last replayed transaction.
const SQL: &str = "SELECT pg_is_in_recovery(), \
    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' \
        OR (backend_type IS NULL AND usesysid IS NOT NULL AND datid IS NOT NULL)), \
    current_setting('max_connections'), \
    current_setting('superuser_reserved_connections'), \
    coalesce(current_setting('reserved_connections', true), '0'), \
    CASE WHEN NOT pg_is_in_recovery() THEN NULL \
         WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
         ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END";

/// What [`read`] found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ServerStats {
    pub(crate) in_recovery: bool,
    pub(crate) used: u64,
    pub(crate) max_connections: u64,
    pub(crate) superuser_reserved: u64,
    pub(crate) reserved: u64,
    /// Seconds, on a standby whose replay position is known.
    pub(crate) replay_lag: Option<f64>,
}

impl ServerStats {
    /// Slots a non-superuser can take.
    pub(crate) fn usable(&self) -> u64 {
        self.max_connections
            .saturating_sub(self.superuser_reserved)
            .saturating_sub(self.reserved)
    }

    /// `used / usable`, when there is any usable slot.
    pub(crate) fn usage_ratio(&self) -> Option<f64> {
        let usable = self.usable();
        (usable > 0).then(|| self.used as f64 / usable as f64)
    }
}

/// Runs the stats query; `Err` is a message for the check's result.
pub(crate) async fn read(client: &Client) -> Result<ServerStats, String> {
    let messages = client
        .simple_query(SQL)
        .await
        .map_err(|e| crate::classify::describe(&e))?;
    let row = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .ok_or("the statistics query returned no row")?;
    let text = |i: usize| row.get(i);
    let count = |i: usize| -> Result<u64, String> {
        let value = text(i).ok_or_else(|| format!("column {i} of the statistics query is NULL"))?;
        value
            .parse()
            .map_err(|_| format!("column {i} of the statistics query is not a count: {value:?}"))
    };
    Ok(ServerStats {
        in_recovery: text(0) == Some("t"),
        used: count(1)?,
        max_connections: count(2)?,
        superuser_reserved: count(3)?,
        reserved: count(4)?,
        replay_lag: text(5).and_then(|v| v.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_slots_subtract_both_reservations() {
        let stats = ServerStats {
            in_recovery: false,
            used: 5,
            max_connections: 100,
            superuser_reserved: 3,
            reserved: 2,
            replay_lag: None,
        };
        assert_eq!(stats.usable(), 95);
        assert!((stats.usage_ratio().unwrap() - 5.0 / 95.0).abs() < 1e-12);
        let full = ServerStats {
            max_connections: 3,
            ..stats
        };
        assert_eq!(full.usable(), 0);
        assert_eq!(full.usage_ratio(), None);
    }
}
