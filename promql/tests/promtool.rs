//! Compares the evaluator with the real Prometheus: evaluates a table of
//! expressions at several times, writes the results as the expected samples
//! of a `promtool test rules` file over the same input series, and requires
//! promtool to agree.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use warden_promql::{EvalOptions, Semantics, Value, evaluate_with, parse};

const INTERVAL_MS: i64 = 30_000;

/// Input series in promtool's notation, one sample per 30 s from time 0.
const SERIES: &[(&str, &str)] = &[
    // Counters with resets at steps 11 and 22.
    (
        r#"http_requests_total{job="api",instance="a"}"#,
        "0+10x10 5+7x10 3+11x19",
    ),
    (
        r#"http_requests_total{job="api",instance="b"}"#,
        "100+3.5x41",
    ),
    // A counter with a 5-minute gap.
    (
        r#"http_requests_total{job="web",instance="a"}"#,
        "0+1.5x15 _x10 30+0.25x15",
    ),
    // Gauges.
    (
        r#"cpu_usage_ratio{instance="a",mode="user"}"#,
        "0.1+0.05x15 0.9-0.07x10 0.2+0.013x14",
    ),
    (
        r#"cpu_usage_ratio{instance="b",mode="user"}"#,
        "0.9-0.01x41",
    ),
    (
        r#"cpu_usage_ratio{instance="a",mode="system"}"#,
        "0.3 0.1 0.7 0.2 0.6 _x3 0.45+0.02x33",
    ),
    (r#"disk_free_bytes{instance="a",mount="/"}"#, "1e9-1e6x41"),
    // Availability, one target disappearing after step 10.
    (r#"up{job="api",instance="a"}"#, "1+0x20 0+0x5 1+0x15"),
    (r#"up{job="api",instance="b"}"#, "1+0x41"),
    (r#"up{job="web",instance="a"}"#, "1+0x10"),
    // Classic histograms: regular, non-monotonic, idle (zero rates), no +Inf.
    (
        r#"request_duration_seconds_bucket{job="api",le="0.1"}"#,
        "0+3x41",
    ),
    (
        r#"request_duration_seconds_bucket{job="api",le="0.5"}"#,
        "0+7x41",
    ),
    (
        r#"request_duration_seconds_bucket{job="api",le="1"}"#,
        "0+9x41",
    ),
    (
        r#"request_duration_seconds_bucket{job="api",le="+Inf"}"#,
        "0+10x41",
    ),
    (
        r#"request_duration_seconds_bucket{job="web",le="0.25"}"#,
        "0+5x20 0+5x20",
    ),
    (
        r#"request_duration_seconds_bucket{job="web",le="0.5"}"#,
        "0+4x41",
    ),
    (
        r#"request_duration_seconds_bucket{job="web",le="+Inf"}"#,
        "0+6x20 2+6x20",
    ),
    (
        r#"request_duration_seconds_bucket{job="idle",le="1"}"#,
        "5+0x41",
    ),
    (
        r#"request_duration_seconds_bucket{job="idle",le="+Inf"}"#,
        "5+0x41",
    ),
    (
        r#"request_duration_seconds_bucket{job="broken",le="1"}"#,
        "0+1x41",
    ),
];

/// Expressions covering every supported operator family.
///
/// Prometheus adds up a group in storage order, which promtool's loader
/// makes random; so sums of three or more inexact values and averages of
/// inexact values (whose last bit depends on that order) are avoided, as are
/// ties in topk/bottomk.
const EXPRESSIONS: &[&str] = &[
    // Selectors and matchers.
    "http_requests_total",
    r#"http_requests_total{job="api"}"#,
    r#"http_requests_total{job!="api"}"#,
    r#"http_requests_total{instance=~"a|c"}"#,
    r#"{__name__=~"http_.*", instance!~"a"}"#,
    "http_requests_total offset 2m",
    "up offset -1m",
    "http_requests_total @ 300",
    // Range functions.
    "rate(http_requests_total[5m])",
    "rate(http_requests_total[1m])",
    "increase(http_requests_total[2m])",
    r#"rate(http_requests_total{job="web"}[3m] offset 1m)"#,
    "delta(cpu_usage_ratio[5m])",
    "avg_over_time(cpu_usage_ratio[5m])",
    "min_over_time(cpu_usage_ratio[3m])",
    "max_over_time(cpu_usage_ratio[3m])",
    "sum_over_time(cpu_usage_ratio[2m])",
    "count_over_time(http_requests_total[5m])",
    "last_over_time(http_requests_total[10m])",
    "changes(up[10m])",
    "resets(http_requests_total[10m])",
    // Histograms.
    "histogram_quantile(0.9, rate(request_duration_seconds_bucket[5m]))",
    "histogram_quantile(0.5, sum by (le) (rate(request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.99, rate(request_duration_seconds_bucket[2m]))",
    "histogram_quantile(0, rate(request_duration_seconds_bucket[5m]))",
    "histogram_quantile(1.5, rate(request_duration_seconds_bucket[5m]))",
    // Other functions.
    "abs(delta(cpu_usage_ratio[5m]))",
    "clamp_min(cpu_usage_ratio, 0.3)",
    "clamp_max(cpu_usage_ratio, 0.6)",
    "clamp(cpu_usage_ratio, 0.2, 0.7)",
    "time()",
    "vector(time() / 60)",
    r#"scalar(up{instance="b",job="api"})"#,
    "scalar(up)",
    // Arithmetic and comparisons.
    "100 - cpu_usage_ratio * 100",
    "2 ^ 3 - 7 % 4",
    "cpu_usage_ratio % 0.3 + cpu_usage_ratio ^ 2",
    "-cpu_usage_ratio",
    "cpu_usage_ratio > 0.5",
    "cpu_usage_ratio > bool 0.5",
    "0.5 < cpu_usage_ratio",
    "1 == bool 1",
    "disk_free_bytes / 1e9 <= 0.98",
    // Vector matching.
    "http_requests_total / on(job, instance) up",
    r#"http_requests_total{job="api"} * ignoring(job) up{job="api"}"#,
    r#"cpu_usage_ratio / ignoring(mode) group_left cpu_usage_ratio{mode="user"}"#,
    r#"cpu_usage_ratio{mode="user"} - on(instance) group_right cpu_usage_ratio"#,
    "rate(http_requests_total[5m]) > bool on(job, instance) group_left up",
    "up == on(job, instance) up offset 5m",
    // Set operators.
    r#"up and on(instance) cpu_usage_ratio{mode="user"}"#,
    "up or vector(0)",
    r#"up unless on(job) up{instance="b"}"#,
    "http_requests_total or up",
    "up unless up offset 4m",
    // Aggregations.
    "sum(http_requests_total)",
    "sum by (job) (rate(http_requests_total[5m]))",
    "avg by (job) (http_requests_total)",
    "min by (mode) (cpu_usage_ratio)",
    "max(cpu_usage_ratio)",
    "count by (job) (up)",
    "count(up == 1)",
    "group by (job) (up)",
    "topk(2, cpu_usage_ratio)",
    r#"bottomk(1, http_requests_total{job="api"})"#,
    "quantile(0.75, cpu_usage_ratio)",
    "sum(rate(http_requests_total[5m])) by (job) > 0.1",
];

/// Evaluation times in seconds: aligned and between samples, around the gap,
/// and at the lookback boundary after the data ends (last sample at 1230 s).
const TIMES_S: &[i64] = &[
    0, 60, 150, 300, 315, 420, 600, 750, 900, 1230, 1500, 1530, 1560,
];

fn promtool() -> PathBuf {
    let find = || {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .chain([PathBuf::from("/usr/bin")])
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    };
    if let Some(p) = find() {
        return p;
    }
    // Debian's `prometheus` package ships promtool; try to install it once.
    let installed = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "prometheus"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    match find() {
        Some(p) if installed => p,
        _ => panic!(
            "promtool not found on PATH or in /usr/bin and `apt-get install -y prometheus` \
             failed: install Debian's `prometheus` package to run this comparison"
        ),
    }
}

fn yaml_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Go's yaml float forms; Rust's `{:e}` is the shortest exact round trip.
fn yaml_float(v: f64) -> String {
    if v == f64::INFINITY {
        ".inf".into()
    } else if v == f64::NEG_INFINITY {
        "-.inf".into()
    } else {
        format!("{v:e}")
    }
}

fn duration(secs: i64) -> String {
    format!("{secs}s")
}

/// Appends one `promql_expr_test` entry with our result for `expr` at `t`.
/// Results holding NaN (which promtool cannot compare) are checked through
/// `(e) == (e)` (the non-NaN part) and `(e) != bool (e)` (where the NaNs are).
fn add_case(
    out: &mut String,
    store: &warden_promql::SeriesStore,
    expr: &str,
    t: i64,
) -> (usize, bool) {
    let opts = EvalOptions {
        semantics: Semantics::Prometheus2,
        ..EvalOptions::default()
    };
    let parsed = parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    parsed
        .check_supported()
        .unwrap_or_else(|e| panic!("{expr}: {e}"));
    let value = evaluate_with(&parsed, store, t * 1000, &opts)
        .unwrap_or_else(|e| panic!("{expr} at {t}s: {e}"));
    let samples: Vec<(String, f64)> = match value {
        Value::Scalar(v) => vec![(String::new(), v)],
        Value::Vector(v) => v
            .into_iter()
            .map(|s| (s.labels.to_string(), s.value))
            .collect(),
    };
    if samples.iter().any(|(_, v)| v.is_nan()) {
        let is_scalar = matches!(
            parse(expr).map(|p| evaluate_with(&p, store, t * 1000, &opts)),
            Ok(Ok(Value::Scalar(_)))
        );
        if !is_scalar {
            add_case(out, store, &format!("({expr}) == ({expr})"), t);
        }
        add_case(out, store, &format!("({expr}) != bool ({expr})"), t);
        return (samples.len(), true);
    }
    let _ = writeln!(
        out,
        "      - expr: {}\n        eval_time: {}",
        yaml_quote(expr),
        duration(t)
    );
    if samples.is_empty() {
        out.push_str("        exp_samples: []\n");
    } else {
        out.push_str("        exp_samples:\n");
        for (labels, v) in &samples {
            let _ = writeln!(
                out,
                "          - labels: {}\n            value: {}",
                yaml_quote(labels),
                yaml_float(*v)
            );
        }
    }
    (samples.len(), false)
}

fn write_test_file(dir: &Path) -> (PathBuf, usize, usize, usize) {
    let store = common::load(SERIES, INTERVAL_MS);
    let mut y = String::from(
        "rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 30s\n    input_series:\n",
    );
    for (sel, values) in SERIES {
        let _ = writeln!(
            y,
            "      - series: {}\n        values: {}",
            yaml_quote(sel),
            yaml_quote(values)
        );
    }
    y.push_str("    promql_expr_test:\n");
    let (mut cases, mut non_empty, mut nan_cases) = (0, 0, 0);
    for expr in EXPRESSIONS {
        for &t in TIMES_S {
            let (n, had_nan) = add_case(&mut y, &store, expr, t);
            cases += 1;
            non_empty += usize::from(n > 0);
            nan_cases += usize::from(had_nan);
        }
    }
    let path = dir.join("warden_promql_compare.yml");
    std::fs::write(&path, y).expect("write promtool test file");
    (path, cases, non_empty, nan_cases)
}

#[test]
fn results_match_promtool() {
    let promtool = promtool();
    let dir = std::env::temp_dir().join(format!("warden-promql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let (file, cases, non_empty, nan_cases) = write_test_file(&dir);
    // The comparison is only meaningful if most cases have results.
    assert!(cases >= 30 * TIMES_S.len(), "{cases} cases");
    assert!(
        non_empty * 4 >= cases * 3,
        "only {non_empty} of {cases} cases returned samples"
    );
    assert!(nan_cases > 0, "NaN handling path never exercised");
    let out = Command::new(&promtool)
        .arg("test")
        .arg("rules")
        .arg(&file)
        .output()
        .expect("run promtool");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "promtool disagrees ({}):\n{stdout}\n{stderr}\ntest file kept at {}",
        out.status,
        file.display()
    );
    assert!(
        stdout.contains("SUCCESS"),
        "promtool output lacks SUCCESS:\n{stdout}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
