//! SeriesStore: retention, pruning, series limit, ordering and memory accounting.

use warden_promql::{AppendError, Labels, SeriesStore, StoreLimits};

fn l(instance: &str) -> Labels {
    Labels::new([("__name__", "up"), ("instance", instance)])
}

#[test]
fn prune_drops_samples_past_retention_and_then_stale_series() {
    let mut s = SeriesStore::new(StoreLimits {
        retention_ms: 60_000,
        max_series: 10,
    });
    for t in (0..=120_000).step_by(15_000) {
        s.append(l("a"), t, 1.0).unwrap();
    }
    s.append(l("b"), 10_000, 1.0).unwrap();
    assert_eq!((s.series_count(), s.sample_count()), (2, 10));
    // Cutoff 60 s: a keeps 60..120 s (5 samples), b's only sample is older.
    assert_eq!(s.prune(120_000), 5);
    assert_eq!((s.series_count(), s.sample_count()), (1, 5));
    assert_eq!(s.series_labels().cloned().collect::<Vec<_>>(), vec![l("a")]);
    // Nothing new for longer than the retention: the series goes too.
    s.prune(181_000);
    assert_eq!((s.series_count(), s.sample_count()), (0, 0));
}

#[test]
fn series_limit_refuses_and_counts_new_series_only() {
    let mut s = SeriesStore::new(StoreLimits {
        retention_ms: 60_000,
        max_series: 2,
    });
    s.append(l("a"), 0, 1.0).unwrap();
    s.append(l("b"), 0, 1.0).unwrap();
    let err = s.append(l("c"), 0, 1.0).unwrap_err();
    assert!(
        matches!(err, AppendError::SeriesLimit { limit: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(r#"up{instance="c"}"#), "{err}");
    // Existing series still accept samples.
    s.append(l("a"), 1, 2.0).unwrap();
    s.append(l("c"), 1, 1.0).unwrap_err();
    let st = s.stats();
    assert_eq!((st.series, st.samples, st.refused_series), (2, 3, 2));
    // Room again once a series is pruned away.
    s.append(l("a"), 200_000, 3.0).unwrap();
    s.prune(200_000);
    s.append(l("c"), 200_000, 1.0).unwrap();
    assert_eq!(s.series_count(), 2);
}

#[test]
fn out_of_order_and_duplicate_timestamps_are_refused() {
    let mut s = SeriesStore::default();
    s.append(l("a"), 1000, 1.0).unwrap();
    for t in [1000, 999] {
        let err = s.append(l("a"), t, 2.0).unwrap_err();
        assert!(
            matches!(
                err,
                AppendError::OutOfOrder {
                    newest_ms: 1000,
                    ..
                }
            ),
            "{err}"
        );
    }
    assert_eq!(s.stats().out_of_order, 2);
    assert_eq!(s.sample_count(), 1);
}

#[test]
fn memory_grows_with_series_and_samples_and_shrinks_after_prune() {
    let mut s = SeriesStore::new(StoreLimits {
        retention_ms: 1_000_000,
        max_series: 1000,
    });
    let empty = s.memory_bytes();
    for i in 0..100 {
        for t in 0..50 {
            s.append(l(&format!("host-{i:03}")), t * 1000, t as f64)
                .unwrap();
        }
    }
    let full = s.memory_bytes();
    // At least the sample payload (16 bytes each) and the label text must be counted.
    let floor = 100 * 50 * 16 + 100 * ("__name__upinstancehost-000".len());
    assert!(full >= empty + floor, "{full} < {empty} + {floor}");
    // And not wildly more than that (the estimate is of real allocations).
    assert!(full < floor * 4, "{full} vs floor {floor}");
    s.prune(10_000_000);
    assert_eq!(s.series_count(), 0);
    assert!(
        s.memory_bytes() < full / 4,
        "{} after prune",
        s.memory_bytes()
    );
    assert_eq!(s.stats().memory_bytes, s.memory_bytes());
}

#[test]
fn retention_can_be_changed() {
    let mut s = SeriesStore::new(StoreLimits {
        retention_ms: 1_000_000,
        max_series: 10,
    });
    for t in 0..10 {
        s.append(l("a"), t * 1000, 0.0).unwrap();
    }
    s.prune(9000);
    assert_eq!(s.sample_count(), 10);
    s.set_retention_ms(2000);
    s.prune(9000);
    assert_eq!(s.sample_count(), 3, "7, 8 and 9 s remain");
}
