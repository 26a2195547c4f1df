//! The series feed: every sample of the daemon's gathered metric families
//! (what `/metrics` shows) appended to the rule engine's series store under
//! the names and labels the exposition uses, so a rule reads exactly what
//! Prometheus would scrape.

use prometheus::proto::MetricFamily;
use warden_promql::{AppendError, Labels, METRIC_NAME, SeriesStore};

use crate::telemetry::for_each_sample;

/// What one feed did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FeedStats {
    /// Samples stored.
    pub(crate) appended: u64,
    /// Samples refused because the store is at its series limit.
    pub(crate) dropped: u64,
}

/// Appends every sample of `families` at `timestamp_ms`.
pub(crate) fn append_families(
    store: &mut SeriesStore,
    families: &[MetricFamily],
    timestamp_ms: i64,
) -> FeedStats {
    let mut stats = FeedStats::default();
    let mut push = |labels: Labels, value: f64| match store.append(labels, timestamp_ms, value) {
        Ok(()) => stats.appended += 1,
        Err(AppendError::SeriesLimit { .. }) => stats.dropped += 1,
        // Only a repeated timestamp gets here (two feeds in one millisecond):
        // the sample already stored for it stands.
        Err(AppendError::OutOfOrder { .. }) => {}
    };
    for family in families {
        let name = family.name();
        for_each_sample(family, |suffix, pairs, extra, value| {
            let full_name = format!("{name}{suffix}");
            let pairs = std::iter::once((METRIC_NAME, full_name.as_str()))
                .chain(pairs.iter().copied())
                .chain(extra);
            push(Labels::new(pairs), value);
        });
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
    use warden_promql::{StoreLimits, Value, evaluate, parse};

    #[test]
    fn counters_and_histograms_read_back_as_exposed() {
        let registry = Registry::new();
        let runs = IntCounterVec::new(Opts::new("runs_total", "h"), &["check"]).unwrap();
        let durations = HistogramVec::new(
            HistogramOpts::new("run_seconds", "h").buckets(vec![0.1, 1.0]),
            &["check"],
        )
        .unwrap();
        registry.register(Box::new(runs.clone())).unwrap();
        registry.register(Box::new(durations.clone())).unwrap();
        let mut store = SeriesStore::new(StoreLimits::default());
        for (i, seconds) in [0.05, 0.5, 2.0].into_iter().enumerate() {
            runs.with_label_values(&["db"]).inc();
            durations.with_label_values(&["db"]).observe(seconds);
            append_families(&mut store, &registry.gather(), i as i64 * 1000);
        }
        // One counter, three buckets (the +Inf one added), sum and count.
        assert_eq!(store.series_count(), 6);
        let value = |q: &str| match evaluate(&parse(q).unwrap(), &store, 2000).unwrap() {
            Value::Vector(v) => v.iter().map(|s| s.value).collect::<Vec<_>>(),
            Value::Scalar(s) => vec![s],
        };
        assert_eq!(value(r#"runs_total{check="db"}"#), [3.0]);
        assert_eq!(value(r#"run_seconds_bucket{le="1"}"#), [2.0]);
        assert_eq!(value(r#"run_seconds_bucket{le="+Inf"}"#), [3.0]);
        assert_eq!(value("run_seconds_count"), [3.0]);
        assert_eq!(value("run_seconds_sum"), [2.55]);
        let median = value("histogram_quantile(0.5, run_seconds_bucket)");
        assert!((median[0] - 0.55).abs() < 1e-9, "{median:?}");
    }

    #[test]
    fn samples_beyond_the_series_limit_are_counted() {
        let registry = Registry::new();
        let runs = IntCounterVec::new(Opts::new("runs_total", "h"), &["check"]).unwrap();
        registry.register(Box::new(runs.clone())).unwrap();
        for check in ["a", "b", "c"] {
            runs.with_label_values(&[check]).inc();
        }
        let mut store = SeriesStore::new(StoreLimits {
            retention_ms: 60_000,
            max_series: 2,
        });
        let stats = append_families(&mut store, &registry.gather(), 0);
        assert_eq!(
            stats,
            FeedStats {
                appended: 2,
                dropped: 1
            }
        );
    }
}
