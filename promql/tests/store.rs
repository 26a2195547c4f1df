//! SeriesStore: retention, pruning, series limit, ordering, selection through
//! the label index and memory accounting.

use warden_promql::{AppendError, Labels, SeriesStore, StoreLimits, Value, evaluate, parse};

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

/// The store's answer to `selector` (the only selector in `expr`).
fn select(s: &SeriesStore, expr: &str) -> Vec<String> {
    let selectors = parse(expr)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .selectors();
    assert_eq!(selectors.len(), 1, "{expr}");
    s.select(&selectors[0])
        .into_iter()
        .map(|l| l.to_string())
        .collect()
}

fn series(name: &str, pairs: &[(&str, &str)]) -> Labels {
    Labels::new(std::iter::once(("__name__", name)).chain(pairs.iter().copied()))
}

#[test]
fn select_returns_series_in_creation_order_not_label_order() {
    let mut s = SeriesStore::default();
    for labels in [
        series("up", &[("instance", "b")]),
        series("other", &[("instance", "a")]),
        series("up", &[("instance", "a"), ("job", "x")]),
        series("up", &[("instance", "c")]),
    ] {
        s.append(labels, 0, 1.0).unwrap();
    }
    assert_eq!(
        select(&s, "up"),
        [
            r#"up{instance="b"}"#,
            r#"up{instance="a", job="x"}"#,
            r#"up{instance="c"}"#
        ]
    );
    assert_eq!(
        select(&s, r#"{instance="a"}"#),
        [r#"other{instance="a"}"#, r#"up{instance="a", job="x"}"#]
    );
    // Two equality matchers: the shorter list is walked, both must hold.
    assert_eq!(
        select(&s, r#"up{instance="a"}"#),
        [r#"up{instance="a", job="x"}"#]
    );
    assert!(select(&s, r#"up{instance="z"}"#).is_empty());
    assert!(select(&s, r#"nothing{instance="a"}"#).is_empty());
}

#[test]
fn selectors_without_a_usable_equality_matcher_scan_in_creation_order() {
    let mut s = SeriesStore::default();
    for labels in [
        series("up", &[("instance", "b"), ("job", "x")]),
        series("other", &[("instance", "a")]),
        series("up", &[("instance", "a")]),
        series("up", &[("instance", "c"), ("job", "y")]),
    ] {
        s.append(labels, 0, 1.0).unwrap();
    }
    assert_eq!(
        select(&s, r#"{instance=~"a|c"}"#),
        [
            r#"other{instance="a"}"#,
            r#"up{instance="a"}"#,
            r#"up{instance="c", job="y"}"#
        ]
    );
    assert_eq!(
        select(&s, r#"{__name__=~"up", job!="y"}"#),
        [r#"up{instance="b", job="x"}"#, r#"up{instance="a"}"#]
    );
    // `job=""` matches the series without a job, which no postings list holds.
    assert_eq!(
        select(&s, r#"{__name__=~".+", job=""}"#),
        [r#"other{instance="a"}"#, r#"up{instance="a"}"#]
    );
    assert_eq!(select(&s, r#"up{job=""}"#), [r#"up{instance="a"}"#]);
    assert_eq!(
        select(&s, r#"{instance=~"[a-c]", instance!~"b", job!~"y"}"#),
        [r#"other{instance="a"}"#, r#"up{instance="a"}"#]
    );
    assert!(select(&s, r#"{__name__=~"up", instance=""}"#).is_empty());
}

#[test]
fn pruned_series_leave_the_index_and_return_as_new_series() {
    let mut s = SeriesStore::new(StoreLimits {
        retention_ms: 60_000,
        max_series: 10,
    });
    s.append(l("a"), 0, 1.0).unwrap();
    s.append(l("b"), 0, 1.0).unwrap();
    s.append(l("b"), 100_000, 1.0).unwrap();
    s.prune(100_000);
    assert_eq!(select(&s, "up"), [r#"up{instance="b"}"#]);
    assert!(select(&s, r#"up{instance="a"}"#).is_empty());
    assert!(select(&s, r#"{instance=~"a"}"#).is_empty());
    // Re-created, `a` is found again and now comes after `b`.
    s.append(l("a"), 100_000, 2.0).unwrap();
    assert_eq!(
        select(&s, "up"),
        [r#"up{instance="b"}"#, r#"up{instance="a"}"#]
    );
    assert_eq!(select(&s, r#"up{instance="a"}"#), [r#"up{instance="a"}"#]);
    let Value::Vector(v) = evaluate(&parse(r#"up{instance="a"}"#).unwrap(), &s, 100_000).unwrap()
    else {
        panic!("vector expected");
    };
    assert_eq!(v.len(), 1);
    assert_eq!(
        v[0].value, 2.0,
        "the new series' sample, not the pruned one"
    );
}

/// A deterministic stream of pseudo-random numbers (PCG-style LCG).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// Appends and prunes at random and checks every selector against a model
/// that keeps series in creation order and forgets them when they age out.
#[test]
fn select_agrees_with_a_creation_order_model_through_appends_and_prunes() {
    const RETENTION: i64 = 15_000;
    let selectors: Vec<_> = [
        "a",
        r#"{inst="3"}"#,
        r#"a{inst="3"}"#,
        r#"a{inst="3", job="x"}"#,
        r#"{job="x"}"#,
        r#"b{job=""}"#,
        r#"{__name__=~"a|c"}"#,
        r#"{inst=~".+", job!="y"}"#,
        r#"c{inst!~"[0-2]"}"#,
        r#"{__name__=~".+", job=""}"#,
        r#"{inst="9"}"#,
    ]
    .iter()
    .map(|e| (*e, parse(e).unwrap().selectors().remove(0)))
    .collect();
    let mut s = SeriesStore::new(StoreLimits {
        retention_ms: RETENTION,
        max_series: 1000,
    });
    // (labels, newest sample time), in creation order.
    let mut model: Vec<(Labels, i64)> = Vec::new();
    let mut rng = Lcg(7);
    for step in 1..=2_000i64 {
        let t = step * 1000;
        let name = ["a", "b", "c"][rng.below(3)];
        let inst = rng.below(6).to_string();
        let job = ["", "x", "y"][rng.below(3)];
        let labels = series(name, &[("inst", &inst), ("job", job)]);
        s.append(labels.clone(), t, 0.0).unwrap();
        match model.iter_mut().find(|(m, _)| *m == labels) {
            Some((_, newest)) => *newest = t,
            None => model.push((labels, t)),
        }
        if step % 25 == 0 {
            s.prune(t);
            model.retain(|&(_, newest)| newest >= t - RETENTION);
        }
        if step % 5 == 0 {
            for (expr, sel) in &selectors {
                let want: Vec<&Labels> = model
                    .iter()
                    .map(|(l, _)| l)
                    .filter(|l| sel.matches(l))
                    .collect();
                assert_eq!(s.select(sel), want, "{expr} at step {step}");
            }
        }
    }
    assert_eq!(s.series_count(), model.len());
}

#[test]
fn memory_stays_flat_while_label_values_churn() {
    let mut s = SeriesStore::new(StoreLimits {
        retention_ms: 10_000,
        max_series: 1000,
    });
    let mut after_warm_up = 0;
    for round in 0..300 {
        let t = round * 20_000;
        for i in 0..10 {
            s.append(l(&format!("{round}-{i}")), t, 1.0).unwrap();
        }
        // Drops the previous round's series, and their label values with them.
        s.prune(t);
        assert_eq!(s.series_count(), 10);
        if round == 30 {
            after_warm_up = s.memory_bytes();
        }
    }
    let end = s.memory_bytes();
    // Hash tables may double once with tombstones; keeping the 2,700 dead
    // label values and their lists would add well over 100 KB.
    assert!(
        end <= after_warm_up * 3,
        "{end} bytes after 300 rounds vs {after_warm_up} after 30"
    );
}

#[test]
fn memory_counts_the_label_index() {
    let mut s = SeriesStore::default();
    let names: Vec<String> = (0..500).map(|i| format!("label_{i:03}")).collect();
    let wide = Labels::new(names.iter().map(|n| (n.as_str(), "value")));
    s.append(wide.clone(), 0, 1.0).unwrap();
    // The postings own a copy of every name and value and an id per pair, on
    // top of the label set itself and the one 16-byte sample.
    let index: usize = wide.iter().map(|(n, v)| n.len() + v.len() + 8).sum();
    let floor = wide.heap_bytes() + 16 + index;
    assert!(s.memory_bytes() >= floor, "{} < {floor}", s.memory_bytes());
}
