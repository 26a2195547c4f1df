//! `SeriesStore`: the bounded in-memory sample store rules are evaluated over.

use std::collections::{HashMap, HashSet, VecDeque};
use std::mem::size_of;

use crate::expr::{MatchKind, Selector};
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

/// Series ids carrying one label value, ascending (that is, in creation order).
type Postings = Vec<u64>;

/// In-memory series store, bounded by series count and time retention.
///
/// Series are indexed like Prometheus's head block: a postings list per
/// `(label name, value)` lets [`SeriesStore::select`] look at the few series
/// of the rarest value a selector requires instead of at every series.
///
/// Not internally synchronised: the daemon wraps it in its own lock.
#[derive(Debug)]
pub struct SeriesStore {
    series: HashMap<Labels, Series>,
    /// Every series' id and labels, ascending by id: resolves postings to
    /// labels and gives full scans creation order without a sort.
    order: Vec<(u64, Labels)>,
    /// Label name, then value, to the series carrying that pair.
    postings: HashMap<Box<str>, HashMap<Box<str>, Postings>>,
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
            order: Vec::new(),
            postings: HashMap::new(),
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
        let id = self.next_id;
        self.next_id += 1;
        // Ids only grow, so pushing keeps `order` and every postings list sorted.
        for (name, value) in labels.iter() {
            self.postings
                .entry(name.into())
                .or_default()
                .entry(value.into())
                .or_default()
                .push(id);
        }
        self.order.push((id, labels.clone()));
        let mut series = Series {
            id,
            samples: VecDeque::new(),
        };
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
        let mut removed = Vec::new();
        self.series.retain(|labels, s| {
            let keep_from = s.samples.partition_point(|&(t, _)| t < cutoff);
            s.samples.drain(..keep_from);
            dropped += keep_from;
            // Give memory back once a series has shrunk well below its buffer.
            if s.samples.capacity() > 64 && s.samples.len() * 4 < s.samples.capacity() {
                s.samples.shrink_to(s.samples.len() * 2);
            }
            if s.samples.is_empty() {
                removed.push((s.id, labels.clone()));
                return false;
            }
            true
        });
        self.samples -= dropped;
        if !removed.is_empty() {
            self.unindex(removed);
        }
        dropped
    }

    /// Takes removed series out of `order` and the postings, dropping lists
    /// left empty so churning label values do not accumulate.
    fn unindex(&mut self, mut removed: Vec<(u64, Labels)>) {
        removed.sort_unstable_by_key(|&(id, _)| id);
        let gone = |id: u64| removed.binary_search_by_key(&id, |&(i, _)| i).is_ok();
        // One pass per touched list rather than one removal per series, so
        // pruning most of a large store stays linear.
        self.order.retain(|&(id, _)| !gone(id));
        shrink_if_sparse(&mut self.order);
        let touched: HashSet<(&str, &str)> = removed.iter().flat_map(|(_, l)| l.iter()).collect();
        for (name, value) in touched {
            let Some(values) = self.postings.get_mut(name) else {
                continue;
            };
            if let Some(ids) = values.get_mut(value) {
                ids.retain(|&id| !gone(id));
                if ids.is_empty() {
                    values.remove(value);
                } else {
                    shrink_if_sparse(ids);
                }
            }
            if values.is_empty() {
                self.postings.remove(name);
            }
        }
    }

    /// The series `selector` matches, in creation order: the order
    /// Prometheus's head returns them in, which fixes the float summation
    /// order of aggregations.
    ///
    /// Candidates come from the shortest postings list among the selector's
    /// `name="value"` matchers (`name=""` also matches series without the
    /// label, which have no postings); without such a matcher every series is
    /// a candidate. Candidates are then checked against all matchers.
    pub(crate) fn select_series(&self, selector: &Selector) -> Vec<(&Labels, &Series)> {
        let mut shortest: Option<&[u64]> = None;
        for m in &selector.matchers {
            if m.op != MatchKind::Equal || m.value.is_empty() {
                continue;
            }
            let ids = self
                .postings
                .get(m.name.as_str())
                .and_then(|values| values.get(m.value.as_str()))
                .map_or(&[][..], Vec::as_slice);
            if shortest.is_none_or(|s| ids.len() < s.len()) {
                shortest = Some(ids);
            }
        }
        let resolve = |labels: &Labels| {
            let found = self.series.get_key_value(labels);
            debug_assert!(found.is_some(), "indexed series {labels} is not stored");
            found
        };
        match shortest {
            Some(ids) => ids
                .iter()
                .filter_map(|&id| self.labels_of(id))
                .filter(|l| selector.matches(l))
                .filter_map(resolve)
                .collect(),
            None => self
                .order
                .iter()
                .map(|(_, l)| l)
                .filter(|l| selector.matches(l))
                .filter_map(resolve)
                .collect(),
        }
    }

    /// The labels of the series with this id.
    fn labels_of(&self, id: u64) -> Option<&Labels> {
        let found = self.order.binary_search_by_key(&id, |&(i, _)| i);
        debug_assert!(found.is_ok(), "posted series id {id} is not in the order");
        found.ok().map(|i| &self.order[i].1)
    }

    /// The labels of the series `selector` matches, in creation order (the
    /// order rule evaluation reads them in).
    pub fn select(&self, selector: &Selector) -> Vec<&Labels> {
        self.select_series(selector)
            .into_iter()
            .map(|(labels, _)| labels)
            .collect()
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Number of samples held.
    pub fn sample_count(&self) -> usize {
        self.samples
    }

    /// Approximate heap bytes held: the hash tables' buckets (entry plus one
    /// control byte per bucket), each label set's shared slice and strings,
    /// each series' sample buffer at its capacity, and the index: the
    /// creation-order list and the postings (label text and id lists at
    /// capacity). Allocator overhead and the tables' trailing control groups
    /// are not counted.
    pub fn memory_bytes(&self) -> usize {
        let table = self.series.capacity() * (size_of::<(Labels, Series)>() + 1);
        let per_series: usize = self
            .series
            .iter()
            .map(|(l, s)| l.heap_bytes() + s.samples.capacity() * size_of::<(i64, f64)>())
            .sum();
        // The labels in `order` share their allocation with the map's keys.
        let order = self.order.capacity() * size_of::<(u64, Labels)>();
        let names =
            self.postings.capacity() * (size_of::<(Box<str>, HashMap<Box<str>, Postings>)>() + 1);
        let postings: usize = self
            .postings
            .iter()
            .map(|(name, values)| {
                let table = values.capacity() * (size_of::<(Box<str>, Postings)>() + 1);
                let lists: usize = values
                    .iter()
                    .map(|(value, ids)| value.len() + ids.capacity() * size_of::<u64>())
                    .sum();
                name.len() + table + lists
            })
            .sum();
        table + per_series + order + names + postings
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

    /// The labels of every series held, unordered (e.g. to check which rule
    /// selectors match nothing).
    pub fn series_labels(&self) -> impl Iterator<Item = &Labels> {
        self.series.keys()
    }
}

/// Gives memory back once a list has shrunk well below its buffer.
fn shrink_if_sparse<T>(v: &mut Vec<T>) {
    if v.capacity() > 16 && v.len() * 4 < v.capacity() {
        v.shrink_to(v.len() * 2);
    }
}
