//! Custom metric queries: each runs, when due, in a READ ONLY transaction
//! with `SET LOCAL statement_timeout`, and every numeric column of its rows
//! becomes `query_<name>_<column>`. Text columns become labels, so a query
//! can return one row per database or state; rows past [`MAX_ROWS`] are
//! dropped to keep the label set bounded. Other column types are ignored.

use std::time::{Duration, Instant};

use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, Row};
use warden_plugin_api::Metric;

use crate::config::QuerySpec;
use crate::number::Number;

/// Rows of one query turned into metrics; later rows are dropped.
pub(crate) const MAX_ROWS: usize = 20;
/// Label values are cut to this many characters.
const MAX_LABEL_CHARS: usize = 64;

/// What the last run of a query produced.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub(crate) metrics: Vec<Metric>,
    /// Why it failed, when it did.
    pub(crate) error: Option<String>,
    /// Rows beyond [`MAX_ROWS`], when there were any.
    pub(crate) dropped_rows: usize,
}

/// One configured query and its last outcome, re-reported until it is due.
#[derive(Debug)]
pub(crate) struct CustomQuery {
    pub(crate) spec: QuerySpec,
    last_run: Option<Instant>,
    pub(crate) last: Option<Outcome>,
}

impl CustomQuery {
    pub(crate) fn new(spec: QuerySpec) -> Self {
        CustomQuery {
            spec,
            last_run: None,
            last: None,
        }
    }

    /// Whether the query should run now: never run, or its interval passed.
    pub(crate) fn due(&self, now: Instant) -> bool {
        match (self.last_run, self.spec.interval) {
            (None, _) | (_, None) => true,
            (Some(last), Some(interval)) => now.duration_since(last) >= interval,
        }
    }

    /// Records a failure that happened before the query could run.
    pub(crate) fn fail(&mut self, error: String) {
        self.last_run = Some(Instant::now());
        self.last = Some(Outcome {
            error: Some(error),
            ..Outcome::default()
        });
    }

    /// Runs the query within `budget`; returns false when it timed out and
    /// the connection, with a statement still in flight, must be dropped.
    pub(crate) async fn run(&mut self, client: &mut Client, budget: Duration) -> bool {
        self.last_run = Some(Instant::now());
        let limit = self.spec.timeout.map_or(budget, |t| t.min(budget));
        let started = Instant::now();
        let result = tokio::time::timeout(budget, execute(client, &self.spec.sql, limit)).await;
        let seconds = started.elapsed().as_secs_f64();
        let name = &self.spec.name;
        let timing = Metric::new("custom_query_seconds", seconds)
            .unit("seconds")
            .label("query", name.as_str());
        let (outcome, alive) = match result {
            Ok(Ok(rows)) => {
                let (mut metrics, dropped_rows) = rows_to_metrics(name, &rows);
                metrics.push(timing);
                (
                    Outcome {
                        metrics,
                        error: None,
                        dropped_rows,
                    },
                    true,
                )
            }
            Ok(Err(e)) => {
                let error = crate::classify::describe(&e);
                (
                    Outcome {
                        metrics: vec![timing],
                        error: Some(error),
                        dropped_rows: 0,
                    },
                    true,
                )
            }
            Err(_) => {
                let error = format!(
                    "no answer within {:.1} s; connection dropped",
                    budget.as_secs_f64()
                );
                (
                    Outcome {
                        metrics: vec![timing],
                        error: Some(error),
                        dropped_rows: 0,
                    },
                    false,
                )
            }
        };
        self.last = Some(outcome);
        alive
    }
}

/// READ ONLY transaction, statement timeout, one statement (the extended
/// protocol refuses several), then rollback: nothing it does can persist.
async fn execute(
    client: &mut Client,
    sql: &str,
    limit: Duration,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let tx = client.build_transaction().read_only(true).start().await?;
    let millis = limit.as_millis().max(1);
    tx.batch_execute(&format!("SET LOCAL statement_timeout = {millis}"))
        .await?;
    // query_typed uses the unnamed statement, which PgBouncer's transaction
    // mode passes through.
    let rows = tx.query_typed(sql, &[]).await;
    match rows {
        Ok(rows) => {
            tx.rollback().await?;
            Ok(rows)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// Lowercase, `[a-z0-9_]` only, no leading or trailing `_`; `value` if empty.
pub(crate) fn sanitize(column: &str) -> String {
    let mapped: String = column
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches('_');
    if trimmed.is_empty() {
        "value".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn is_label_type(ty: &Type) -> bool {
    <&str as FromSql<'_>>::accepts(ty)
}

/// One metric per numeric cell, labelled with the row's text columns (or
/// with `row` = its index when there are several rows and no text column).
fn rows_to_metrics(name: &str, rows: &[Row]) -> (Vec<Metric>, usize) {
    let kept = &rows[..rows.len().min(MAX_ROWS)];
    let mut metrics = Vec::new();
    for (index, row) in kept.iter().enumerate() {
        let columns = row.columns();
        let mut labels: Vec<(String, String)> = columns
            .iter()
            .enumerate()
            .filter(|(_, c)| is_label_type(c.type_()))
            .map(|(i, c)| {
                let value: Option<&str> = row.try_get(i).ok().flatten();
                let value: String = value.unwrap_or("").chars().take(MAX_LABEL_CHARS).collect();
                (sanitize(c.name()), value)
            })
            .collect();
        if labels.is_empty() && kept.len() > 1 {
            labels.push(("row".to_owned(), index.to_string()));
        }
        for (i, column) in columns.iter().enumerate() {
            if !Number::accepts(column.type_()) {
                continue;
            }
            let Ok(Some(Number(value))) = row.try_get::<_, Option<Number>>(i) else {
                continue;
            };
            let mut metric =
                Metric::new(format!("query_{name}_{}", sanitize(column.name())), value);
            for (label, text) in &labels {
                metric = metric.label(label.as_str(), text.as_str());
            }
            metrics.push(metric);
        }
    }
    (metrics, rows.len() - kept.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_column_names() {
        assert_eq!(sanitize("Total Bytes"), "total_bytes");
        assert_eq!(sanitize("?column?"), "column");
        assert_eq!(sanitize("--"), "value");
    }

    #[test]
    fn due_respects_interval() {
        let spec = QuerySpec {
            name: "q".into(),
            sql: "SELECT 1".into(),
            interval: Some(Duration::from_secs(60)),
            timeout: None,
        };
        let mut query = CustomQuery::new(spec);
        let now = Instant::now();
        assert!(query.due(now));
        query.fail("x".into());
        assert!(!query.due(Instant::now()));
        assert!(query.due(Instant::now() + Duration::from_secs(61)));
    }
}
