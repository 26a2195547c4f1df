//! Rule evaluation at the daemon's scale: 1,000 alert rules evaluated at one
//! instant over a store shaped like the daemon's feed (400 checks, 25 series
//! each, five minutes of samples every 10 s).
//!
//! Run: `cargo bench -p warden-promql --bench rules -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use warden_promql::{Expr, Labels, METRIC_NAME, SeriesStore, StoreLimits, Value, evaluate, parse};

const CHECKS: usize = 400;
const RULES: usize = 1_000;
const STEP_MS: i64 = 10_000;
/// Five minutes of history: 31 samples per series.
const STEPS: i64 = 31;
const RESULTS: [&str; 4] = ["ok", "warning", "critical", "error"];
/// 15 finite bounds plus `+Inf`: 16 buckets, as the daemon's histogram.
const BOUNDS: [&str; 16] = [
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
    "10", "30", "60", "+Inf",
];

fn series(name: &str, check: &str, extra: Option<(&str, &str)>) -> Labels {
    Labels::new(
        [(METRIC_NAME, name), ("check", check), ("plugin", "http")]
            .into_iter()
            .chain(extra),
    )
}

/// The 25 series the daemon exposes for one check.
fn check_series(check: &str) -> Vec<Labels> {
    let mut out = vec![
        series("warden_check_up", check, None),
        series("warden_check_status", check, None),
        series("warden_check_last_run_timestamp_seconds", check, None),
        series("warden_check_duration_seconds_sum", check, None),
        series("warden_check_duration_seconds_count", check, None),
    ];
    for result in RESULTS {
        out.push(series(
            "warden_check_runs_total",
            check,
            Some(("result", result)),
        ));
    }
    for le in BOUNDS {
        out.push(series(
            "warden_check_duration_seconds_bucket",
            check,
            Some(("le", le)),
        ));
    }
    out
}

/// The store as the daemon's feed fills it: every series appended once per
/// step, in the same order each time.
fn build_store() -> (SeriesStore, i64) {
    let mut store = SeriesStore::new(StoreLimits {
        retention_ms: 60 * 60 * 1000,
        max_series: 20_000,
    });
    let all: Vec<Labels> = (0..CHECKS)
        .flat_map(|c| check_series(&format!("c{c}")))
        .collect();
    for step in 0..STEPS {
        let t = step * STEP_MS;
        for (i, labels) in all.iter().enumerate() {
            let value = ((i as i64 + step) % 3) as f64;
            store
                .append(labels.clone(), t, value)
                .expect("bench series fit the store");
        }
    }
    (store, (STEPS - 1) * STEP_MS)
}

fn rules() -> Vec<Expr> {
    (0..RULES)
        .map(|i| {
            let up = i % CHECKS;
            let status = (i * 7 + 3) % CHECKS;
            let src = format!(
                r#"warden_check_up{{check="c{up}"}} == 0 or warden_check_status{{check="c{status}"}} > 1"#
            );
            parse(&src).expect("bench rule parses")
        })
        .collect()
}

fn evaluate_rules(c: &mut Criterion) {
    let (store, now_ms) = build_store();
    let rules = rules();
    // Guard against benchmarking an empty answer: some rules must fire.
    let firing: usize = rules
        .iter()
        .map(
            |r| match evaluate(r, &store, now_ms).expect("bench rule evaluates") {
                Value::Vector(v) => v.len(),
                Value::Scalar(_) => 0,
            },
        )
        .sum();
    assert!(firing > 0, "no bench rule fires");

    let mut group = c.benchmark_group("rules");
    // One iteration is a whole evaluation cycle; keep the sample count low so
    // the slow path still finishes in well under a minute.
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function(
        format!("{RULES} rules over {} series", store.series_count()),
        |b| {
            b.iter(|| {
                for rule in &rules {
                    black_box(evaluate(rule, &store, now_ms).expect("bench rule evaluates"));
                }
            });
        },
    );
    group.finish();
}

criterion_group!(benches, evaluate_rules);
criterion_main!(benches);
