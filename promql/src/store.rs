//! `SeriesStore`: the bounded in-memory sample store rules are evaluated over.

use std::collections::{HashMap, VecDeque};
use std::mem::size_of;

use crate::labels::Labels;

/// Limits of a [`SeriesStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// How long samples are kept, in milliseconds before the newest `prune`
    /// time. Size it with [`crate::Expr::required_history`] over all rules
    /// plus a margin of a few scrape intervals.
    pub retention_ms: i64,
    /// Most series held at once; samples for further new series are refused.
    pub max_series: usize,
}

impl Default for StoreLimits {
    /// One hour of retention, 10 000 series.
    fn default() -> Self {
        StoreLimits {
            retention_ms: 60 * 60 * 1000,
            max_series: 10_000,
        }
    }
}

/// Why [`SeriesStore::append`] refused a sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The series is new and the store already holds `max_series` series.
    #[error("series {labels} refused: the store is at its limit of {limit} series")]
    SeriesLimit {
        /// The refused series.
        labels: Labels,
        /// The configured limit.
        limit: usize,
    },
    /// The timestamp is not after the series' newest sample.
    #[error(
        "sample for {labels} at {timestamp_ms} ms is not after the newest one at {newest_ms} ms"
    )]
    OutOfOrder {
        /// The series.
        labels: Labels,
        /// The refused timestamp.
        timestamp_ms: i64,
        /// The series' newest timestamp.
        newest_ms: i64,
    },
}

/// Counts reported by [`SeriesStore::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Series held.
    pub series: usize,
    /// Samples held across all series.
    pub samples: usize,
    /// Approximate heap bytes: see [`SeriesStore::memory_bytes`].
    pub memory_bytes: usize,
    /// Samples refused because their series would exceed `max_series`, since creation.
    pub refused_series: u64,
    /// Samples refused for not being newer than their series' last one, since creation.
    pub out_of_order: u64,
}

/// The samples of one series, oldest first, timestamps strictly increasing.
#[derive(Debug, Default)]
pub(crate) struct Series {
    /// Creation sequence number: Prometheus's head returns series in
    /// creation order, which fixes the float summation order of aggregations.
    pub(crate) id: u64,
    pub(crate) samples: VecDeque<(i64, f64)>,
}

/// In-memory series store, bounded by series count and time retention.
///
/// Not internally synchronised: the daemon wraps it in its own lock.
#[derive(Debug)]
pub struct SeriesStore {
    series: HashMap<Labels, Series>,
    limits: StoreLimits,
    samples: usize,
    next_id: u64,
    refused_series: u64,
    out_of_order: u64,
}

impl Default for SeriesStore {
    fn default() -> Self {
        SeriesStore::new(StoreLimits::default())
    }
}

impl SeriesStore {
    /// An empty store with these limits.
    pub fn new(limits: StoreLimits) -> Self {
        SeriesStore {
            series: HashMap::new(),
            limits,
            samples: 0,
            next_id: 0,
            refused_series: 0,
            out_of_order: 0,
        }
    }

    /// The current limits.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// Changes the retention; takes effect at the next [`SeriesStore::prune`].
    pub fn set_retention_ms(&mut self, retention_ms: i64) {
        self.limits.retention_ms = retention_ms.max(0);
    }

    /// Changes the series limit. Existing series are kept even if over it.
    pub fn set_max_series(&mut self, max_series: usize) {
        self.limits.max_series = max_series;
    }

    /// Adds one sample. Timestamps of a series must strictly increase.
    pub fn append(
        &mut self,
        labels: Labels,
        timestamp_ms: i64,
        value: f64,
    ) -> Result<(), AppendError> {
        if let Some(series) = self.series.get_mut(&labels) {
            if let Some(&(newest_ms, _)) = series.samples.back()
                && timestamp_ms <= newest_ms
            {
                self.out_of_order += 1;
                return Err(AppendError::OutOfOrder {
                    labels,
                    timestamp_ms,
                    newest_ms,
                });
            }
            series.samples.push_back((timestamp_ms, value));
            self.samples += 1;
            return Ok(());
        }
        if self.series.len() >= self.limits.max_series {
            self.refused_series += 1;
            return Err(AppendError::SeriesLimit {
                labels,
                limit: self.limits.max_series,
            });
        }
        let mut series = Series {
            id: self.next_id,
            samples: VecDeque::new(),
        };
        self.next_id += 1;
        series.samples.push_back((timestamp_ms, value));
        self.series.insert(labels, series);
        self.samples += 1;
        Ok(())
    }

    /// Drops samples older than `now_ms - retention_ms` and the series left
    /// without samples (those not updated for longer than the retention).
    /// Returns how many samples were dropped.
    pub fn prune(&mut self, now_ms: i64) -> usize {
        let cutoff = now_ms.saturating_sub(self.limits.retention_ms);
        let mut dropped = 0;
        self.series.retain(|_, s| {
            let keep_from = s.samples.partition_point(|&(t, _)| t < cutoff);
            s.samples.drain(..keep_from);
            dropped += keep_from;
            // Give memory back once a series has shrunk well below its buffer.
            if s.samples.capacity() > 64 && s.samples.len() * 4 < s.samples.capacity() {
                s.samples.shrink_to(s.samples.len() * 2);
            }
            !s.samples.is_empty()
        });
        self.samples -= dropped;
        dropped
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Number of samples held.
    pub fn sample_count(&self) -> usize {
        self.samples
    }

    /// Approximate heap bytes held: the hash table's buckets (entry plus one
    /// control byte per bucket), each label set's shared slice and strings,
    /// and each series' sample buffer at its capacity. Allocator overhead and
    /// the table's trailing control group are not counted.
    pub fn memory_bytes(&self) -> usize {
        let table = self.series.capacity() * (size_of::<(Labels, Series)>() + 1);
        let per_series: usize = self
            .series
            .iter()
            .map(|(l, s)| l.heap_bytes() + s.samples.capacity() * size_of::<(i64, f64)>())
            .sum();
        table + per_series
    }

    /// Counts and memory in one call.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            series: self.series.len(),
            samples: self.samples,
            memory_bytes: self.memory_bytes(),
            refused_series: self.refused_series,
            out_of_order: self.out_of_order,
        }
    }

    /// Every series, unordered.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Labels, &Series)> {
        self.series.iter()
    }

    /// The labels of every series held, unordered (e.g. to check which rule
    /// selectors match nothing).
    pub fn series_labels(&self) -> impl Iterator<Item = &Labels> {
        self.series.keys()
    }
}
