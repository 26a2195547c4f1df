//! Parsing: error positions, retention windows, selectors, unsupported features.

use std::time::Duration;

use warden_promql::{Labels, MatchKind, parse};

#[test]
fn parse_errors_carry_message_and_position() {
    let e = parse("sum(rate(x[5m])) by (job) +").unwrap_err();
    assert!(!e.message.is_empty());
    let p = e.position.expect("position");
    assert_eq!(p.offset, 26, "{e}");
    assert_eq!((p.line, p.column), (1, 27));

    let e = parse("up{job=\"a\"} $ 1").unwrap_err();
    assert_eq!(e.position.map(|p| p.offset), Some(12), "{e}");

    // Type errors point past the longest valid prefix (here, at `[5m]` on y).
    let e = parse("rate(x[5m]) + y[5m]").unwrap_err();
    assert!(e.message.contains("binary expression"), "{e}");
    assert_eq!(e.position.map(|p| p.offset), Some(15), "{e}");

    // Multi-line rules get line and column.
    let e = parse("sum by (job) (\n  rate(x[5m])\n) > > 1").unwrap_err();
    let p = e.position.expect("position");
    assert_eq!((p.line, p.column), (3, 3), "{e}");
    assert!(e.to_string().contains("line 3, column 3"), "{e}");
}

#[test]
fn max_range_and_required_history_cover_ranges_and_offsets() {
    let e = parse("rate(a[5m] offset 1h) + b offset 2m + max_over_time(c[10m])").unwrap();
    assert_eq!(e.max_range(), Duration::from_secs(3900));
    assert_eq!(
        e.required_history(Duration::from_secs(300)),
        Duration::from_secs(3900)
    );
    let e = parse("up offset 1h").unwrap();
    assert_eq!(
        e.required_history(Duration::from_secs(300)),
        Duration::from_secs(3900)
    );
    let e = parse("rate(a[5m] offset -1m)").unwrap();
    assert_eq!(e.max_range(), Duration::from_secs(240));
    assert_eq!(parse("1 + 1").unwrap().max_range(), Duration::ZERO);
}

#[test]
fn selectors_list_names_and_matchers_and_match_series() {
    let e = parse(r#"rate(http_total{job=~"api|web", code!="500"}[5m]) / on(job) group_left {__name__="up", env!~"dev.*"}"#)
        .unwrap();
    let sels = e.selectors();
    assert_eq!(sels.len(), 2);
    assert_eq!(sels[0].metric_name.as_deref(), Some("http_total"));
    let ops: Vec<_> = sels[0]
        .matchers
        .iter()
        .map(|m| (m.name.as_str(), m.op))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("__name__", MatchKind::Equal),
            ("job", MatchKind::Regex),
            ("code", MatchKind::NotEqual)
        ]
    );
    assert_eq!(sels[1].metric_name.as_deref(), Some("up"));
    let api = Labels::new([("__name__", "http_total"), ("job", "api"), ("code", "200")]);
    let apix = Labels::new([("__name__", "http_total"), ("job", "apix"), ("code", "200")]);
    assert!(sels[0].matches(&api));
    assert!(!sels[0].matches(&apix), "regexes are anchored");
    assert!(
        sels[1].matches(&Labels::new([("__name__", "up")])),
        "absent label is empty"
    );
    assert!(!sels[1].matches(&Labels::new([("__name__", "up"), ("env", "devel")])));
}

#[test]
fn check_supported_names_and_locates_the_feature() {
    for (src, what, offset) in [
        ("stddev(up)", "stddev", Some(0)),
        ("1 + predict_linear(x[5m], 60)", "predict_linear", Some(4)),
        ("max_over_time(rate(x[1m])[5m:1m])", "subqueries", Some(28)),
        ("a atan2 b", "atan2", Some(2)),
        ("count_values(\"v\", up)", "count_values", Some(0)),
    ] {
        let e = parse(src).unwrap().check_supported().unwrap_err();
        assert!(e.message.contains(what), "{src}: {e}");
        assert_eq!(e.position.map(|p| p.offset), offset, "{src}: {e}");
    }
    for src in ["up[5m]", r#""text""#] {
        let e = parse(src).unwrap().check_supported().unwrap_err();
        assert!(e.message.contains("result"), "{src}: {e}");
    }
    parse(r#"histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m]))) > bool on() group_left vector(1)"#)
        .unwrap()
        .check_supported()
        .unwrap();
}
