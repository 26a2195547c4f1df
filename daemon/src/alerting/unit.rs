//! `warden rules test`: rule unit tests in `promtool test rules` format,
//! run with the daemon's own evaluator and alert lifecycle.
//!
//! A test file names TOML rule files (`rule_files`, relative to the test
//! file), an `evaluation_interval` (default 1m) and test groups of
//! `input_series` in promtool's expanding notation, `alert_rule_test` and
//! `promql_expr_test`. As promtool does, rules are evaluated every
//! `evaluation_interval` from time 0, and an alert test at `eval_time`
//! compares the firing alerts of the last evaluation at or before it.
//! Evaluation follows Prometheus 2 semantics, as the `promtool` these tests
//! are checked against (2.42).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;
use warden_promql::{EvalOptions, Labels, METRIC_NAME, MatchKind, Semantics, Value, evaluate_with};

use super::config::{RuleConfig, expand_pattern, read_rule_file};
use super::engine::Now;
use super::{Engine, RuleMetrics};
use crate::config::{ConfigDuration, Origin};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<ConfigDuration>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    interval: Option<ConfigDuration>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    eval_time: ConfigDuration,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    eval_time: ConfigDuration,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    value: f64,
}

/// The outcome of one test file.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// One line per test: `ok` or `FAIL` with what differed.
    pub(crate) lines: Vec<String>,
    /// Tests that failed.
    pub(crate) failed: usize,
    /// Tests that passed.
    pub(crate) passed: usize,
}

/// Runs every test of the file at `path`. `Err` when the file or its rule
/// files cannot be read.
pub(crate) fn run_file(path: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: TestFile =
        serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = path.parent().map(Path::to_owned).unwrap_or_default();
    let rules = load_rules(&base, &file.rule_files)?;
    let eval_interval = file
        .evaluation_interval
        .map_or(Duration::from_secs(60), ConfigDuration::get);
    if eval_interval.is_zero() {
        return Err(format!("{}: `evaluation_interval` is zero", path.display()));
    }
    let mut report = Report::default();
    for (index, group) in file.tests.iter().enumerate() {
        let label = match &group.name {
            Some(name) => format!("{}: test {} ({name})", path.display(), index + 1),
            None => format!("{}: test {}", path.display(), index + 1),
        };
        run_group(&label, group, &rules, eval_interval, &mut report)
            .map_err(|e| format!("{label}: {e}"))?;
    }
    Ok(report)
}

fn load_rules(base: &Path, patterns: &[String]) -> Result<Vec<RuleConfig>, String> {
    let mut rules = Vec::new();
    let mut diagnostics = Vec::new();
    for pattern in patterns {
        let files: Vec<PathBuf> = expand_pattern(base, pattern)?;
        for file in files {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            read_rule_file(&text, &Origin::File(file), &mut diagnostics, &mut rules);
        }
    }
    if diagnostics.is_empty() {
        Ok(rules)
    } else {
        Err(crate::config::Diagnostics(diagnostics).to_string())
    }
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

fn options() -> EvalOptions {
    EvalOptions {
        semantics: Semantics::Prometheus2,
        ..EvalOptions::default()
    }
}

fn run_group(
    label: &str,
    group: &TestGroup,
    rules: &[RuleConfig],
    eval_interval: Duration,
    report: &mut Report,
) -> Result<(), String> {
    let step = group.interval.map_or(eval_interval, ConfigDuration::get);
    let mut engine = Engine::new(rules.to_vec(), usize::MAX, options(), RuleMetrics::new());
    for input in &group.input_series {
        let labels = series_labels(&input.series)?;
        for (i, value) in expand(&input.values)?.into_iter().enumerate() {
            if let Some(value) = value {
                engine
                    .store_mut()
                    .append(labels.clone(), i as i64 * ms(step), value)
                    .map_err(|e| e.to_string())?;
            }
        }
    }

    let mut alert_tests: Vec<&AlertTest> = group.alert_rule_test.iter().collect();
    alert_tests.sort_by_key(|t| t.eval_time);
    let last = alert_tests.last().map_or(0, |t| ms(t.eval_time.get()));
    let interval = ms(eval_interval);
    let mut next = alert_tests.into_iter().peekable();
    let mut ts = 0;
    while ts <= last {
        engine.evaluate(Now {
            timeline_ms: ts,
            wall: UNIX_EPOCH + Duration::from_millis(ts as u64),
        });
        while let Some(test) = next.next_if(|t| ms(t.eval_time.get()) < ts + interval) {
            let name = format!("{label}: alert {} at {}", test.alertname, test.eval_time);
            record(report, name, check_alerts(&engine, test));
        }
        ts += interval;
    }

    for test in &group.promql_expr_test {
        let name = format!("{label}: expr {:?} at {}", test.expr, test.eval_time);
        record(report, name, check_expr(engine.store(), test));
    }
    Ok(())
}

fn record(report: &mut Report, name: String, outcome: Result<(), String>) {
    match outcome {
        Ok(()) => {
            report.passed += 1;
            report.lines.push(format!("{name}: ok"));
        }
        Err(why) => {
            report.failed += 1;
            report
                .lines
                .push(format!("{name}: FAIL\n    {}", why.replace('\n', "\n    ")));
        }
    }
}

type LabelSet = BTreeMap<String, String>;

fn check_alerts(engine: &Engine, test: &AlertTest) -> Result<(), String> {
    let mut got: Vec<(LabelSet, LabelSet)> = engine
        .firing(&test.alertname)
        .into_iter()
        .map(|a| (a.labels, a.annotations))
        .collect();
    let mut expected: Vec<(LabelSet, LabelSet)> = test
        .exp_alerts
        .iter()
        .map(|e| {
            let mut labels = e.exp_labels.clone();
            labels.insert("alertname".to_owned(), test.alertname.clone());
            (labels, e.exp_annotations.clone())
        })
        .collect();
    got.sort();
    expected.sort();
    if got == expected {
        Ok(())
    } else {
        Err(format!(
            "expected: {}\ngot:      {}",
            show_alerts(&expected),
            show_alerts(&got)
        ))
    }
}

fn show_alerts(alerts: &[(LabelSet, LabelSet)]) -> String {
    if alerts.is_empty() {
        return "(none)".to_owned();
    }
    alerts
        .iter()
        .map(|(l, a)| format!("labels {l:?} annotations {a:?}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn check_expr(store: &warden_promql::SeriesStore, test: &ExprTest) -> Result<(), String> {
    let expr = warden_promql::parse(&test.expr).map_err(|e| e.to_string())?;
    expr.check_supported().map_err(|e| e.to_string())?;
    let value = evaluate_with(&expr, store, ms(test.eval_time.get()), &options())
        .map_err(|e| e.to_string())?;
    let mut got: Vec<(String, f64)> = match value {
        Value::Vector(samples) => samples
            .into_iter()
            .map(|s| (s.labels.to_string(), s.value))
            .collect(),
        Value::Scalar(v) => vec![(Labels::empty().to_string(), v)],
    };
    let mut expected = Vec::new();
    for sample in &test.exp_samples {
        let labels = if sample.labels.trim().is_empty() {
            Labels::empty()
        } else {
            series_labels(&sample.labels)?
        };
        expected.push((labels.to_string(), sample.value));
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let same = got.len() == expected.len()
        && got
            .iter()
            .zip(&expected)
            .all(|(g, e)| g.0 == e.0 && (g.1 == e.1 || (g.1.is_nan() && e.1.is_nan())));
    if same {
        Ok(())
    } else {
        Err(format!("expected: {expected:?}\ngot:      {got:?}"))
    }
}

/// Labels of a series written as a selector, `name{a="b"}`.
fn series_labels(series: &str) -> Result<Labels, String> {
    let bad = || format!("series {series:?} must read name{{label=\"value\", ...}}");
    let expr = warden_promql::parse(series).map_err(|e| format!("{}: {e}", bad()))?;
    let selectors = expr.selectors();
    let [selector] = selectors.as_slice() else {
        return Err(bad());
    };
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for matcher in &selector.matchers {
        if matcher.op != MatchKind::Equal {
            return Err(bad());
        }
        pairs.push((matcher.name.as_str(), matcher.value.as_str()));
    }
    if selector.metric_name.is_none() && pairs.iter().any(|(k, _)| *k == METRIC_NAME) {
        return Err(bad());
    }
    Ok(Labels::new(pairs))
}

/// Expands promtool's notation: `a+bxN` / `a-bxN` are N+1 values from a in
/// steps of b, `axN` is a N+1 times, `_` one missing value, `_xN` N missing.
fn expand(values: &str) -> Result<Vec<Option<f64>>, String> {
    let number = |s: &str| {
        s.parse::<f64>()
            .map_err(|_| format!("bad number {s:?} in {values:?}"))
    };
    let mut out = Vec::new();
    for token in values.split_whitespace() {
        if token == "stale" {
            return Err("stale markers are not supported".to_owned());
        }
        if let Some(rest) = token.strip_prefix('_') {
            let n = match rest.strip_prefix('x') {
                Some(n) => n
                    .parse::<usize>()
                    .map_err(|_| format!("bad count in {token:?}"))?,
                None if rest.is_empty() => 1,
                None => return Err(format!("bad value {token:?}")),
            };
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        let Some((head, count)) = token.rsplit_once('x') else {
            out.push(Some(number(token)?));
            continue;
        };
        let n: usize = count
            .parse()
            .map_err(|_| format!("bad count in {token:?}"))?;
        let bytes = head.as_bytes();
        let split = (1..bytes.len())
            .find(|&i| matches!(bytes[i], b'+' | b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
        let (start, step) = match split {
            Some(i) => (number(&head[..i])?, number(&head[i..])?),
            None => (number(head)?, 0.0),
        };
        // Repeated addition, as Prometheus builds the sequence.
        let mut v = start;
        out.push(Some(v));
        for _ in 0..n {
            v += step;
            out.push(Some(v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_promtool_notation() {
        assert_eq!(
            expand("1 _ 0x2 1+1x2 _x2 5-2x1 -1+1x1").unwrap(),
            [
                Some(1.0),
                None,
                Some(0.0),
                Some(0.0),
                Some(0.0),
                Some(1.0),
                Some(2.0),
                Some(3.0),
                None,
                None,
                Some(5.0),
                Some(3.0),
                Some(-1.0),
                Some(0.0),
            ]
        );
        assert!(expand("1 stale").unwrap_err().contains("stale"));
        assert!(expand("1+x").is_err());
    }

    #[test]
    fn reads_series_as_selectors() {
        let labels = series_labels(r#"up{job="a\"b",instance="x"}"#).unwrap();
        assert_eq!(labels.get("job"), Some("a\"b"));
        assert_eq!(labels.metric_name(), Some("up"));
        assert!(series_labels(r#"up{job=~"a"}"#).is_err());
    }
}
