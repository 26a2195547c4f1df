//! Evaluator unit tests per operator family, with expectations worked out by
//! hand from Prometheus's documented semantics.

use warden_promql::{
    EvalError, EvalOptions, Labels, Semantics, SeriesStore, Value, evaluate, evaluate_with, parse,
};

const MIN: i64 = 60_000;

fn lbl(name: &str, pairs: &[(&str, &str)]) -> Labels {
    Labels::new(std::iter::once(("__name__", name)).chain(pairs.iter().copied()))
}

/// Series sampled once a minute from time 0 (`None` = no sample).
fn store(series: &[(Labels, &[Option<f64>])]) -> SeriesStore {
    let mut s = SeriesStore::default();
    for (l, vals) in series {
        for (i, v) in vals.iter().enumerate() {
            if let Some(v) = v {
                s.append(l.clone(), i as i64 * MIN, *v).unwrap();
            }
        }
    }
    s
}

fn eval_in(s: &SeriesStore, expr: &str, at_ms: i64, sem: Semantics) -> Result<Value, EvalError> {
    let e = parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    evaluate_with(
        &e,
        s,
        at_ms,
        &EvalOptions {
            semantics: sem,
            ..EvalOptions::default()
        },
    )
}

/// `labels -> value` pairs of a vector result under Prometheus 3 semantics.
fn vec3(s: &SeriesStore, expr: &str, at_ms: i64) -> Vec<(String, f64)> {
    match eval_in(s, expr, at_ms, Semantics::Prometheus3).unwrap_or_else(|e| panic!("{expr}: {e}"))
    {
        Value::Vector(v) => v
            .into_iter()
            .map(|x| (x.labels.to_string(), x.value))
            .collect(),
        Value::Scalar(x) => panic!("{expr}: scalar {x}"),
    }
}

fn scalar(s: &SeriesStore, expr: &str, at_ms: i64) -> f64 {
    match evaluate(&parse(expr).unwrap(), s, at_ms).unwrap() {
        Value::Scalar(x) => x,
        Value::Vector(v) => panic!("{expr}: vector {v:?}"),
    }
}

fn one(v: f64) -> Option<f64> {
    Some(v)
}

fn counter_store() -> SeriesStore {
    let c = lbl("c_total", &[("job", "a")]);
    store(&[(c, &[one(0.0), one(10.0), one(20.0), one(5.0), one(15.0)])])
}

#[test]
fn lookback_window_is_left_open_in_v3_and_closed_in_v2() {
    let s = store(&[(lbl("g", &[]), &[one(7.0)])]);
    let at = 5 * MIN;
    assert!(
        matches!(eval_in(&s, "g", at, Semantics::Prometheus3).unwrap(), Value::Vector(v) if v.is_empty())
    );
    assert!(
        matches!(eval_in(&s, "g", at, Semantics::Prometheus2).unwrap(), Value::Vector(v) if v.len() == 1)
    );
    assert_eq!(vec3(&s, "g", at - 1), vec![("g".into(), 7.0)]);
    assert_eq!(
        vec3(&s, "g offset 1m", at + MIN - 1),
        vec![("g".into(), 7.0)]
    );
    assert_eq!(vec3(&s, "g @ 60", 100 * MIN), vec![("g".into(), 7.0)]);
}

#[test]
fn range_window_bounds_follow_semantics() {
    let s = counter_store();
    let count = |sem| match eval_in(&s, "count_over_time(c_total[1m])", 2 * MIN, sem).unwrap() {
        Value::Vector(v) => v[0].value,
        Value::Scalar(_) => unreachable!(),
    };
    assert_eq!(count(Semantics::Prometheus3), 1.0);
    assert_eq!(count(Semantics::Prometheus2), 2.0);
}

#[test]
fn increase_and_rate_extrapolate_and_handle_resets() {
    let s = counter_store();
    // v2 window [0, 4m] holds all five samples: 15 - 0 + 20 (reset) = 35,
    // first and last samples sit on the window edges so no extrapolation.
    let v2 = |e| match eval_in(&s, e, 4 * MIN, Semantics::Prometheus2).unwrap() {
        Value::Vector(v) => v[0].value,
        Value::Scalar(_) => unreachable!(),
    };
    assert_eq!(v2("increase(c_total[4m])"), 35.0);
    assert_eq!(v2("rate(c_total[4m])"), 35.0 / 240.0);
    // v3 window (0, 4m]: 10 20 5 15 -> 25 over 180 s, extrapolated 60 s to the
    // start (within 1.1 x the 60 s spacing, and the zero point is further).
    let got = vec3(&s, "increase(c_total[4m])", 4 * MIN);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, r#"{job="a"}"#, "name dropped");
    assert!((got[0].1 - 25.0 * 240.0 / 180.0).abs() < 1e-9, "{got:?}");
    // One sample in range: no rate.
    assert!(vec3(&s, "rate(c_total[1m])", 4 * MIN).is_empty());
    assert_eq!(vec3(&s, "resets(c_total[5m])", 4 * MIN)[0].1, 1.0);
    assert_eq!(vec3(&s, "changes(c_total[5m])", 4 * MIN)[0].1, 4.0);
    let delta = vec3(&s, "delta(c_total[4m])", 4 * MIN)[0].1;
    assert!((delta - 5.0 * 240.0 / 180.0).abs() < 1e-12, "{delta}");
}

#[test]
fn over_time_functions() {
    let g = lbl("g", &[("h", "x")]);
    let s = store(&[(g, &[one(4.0), one(f64::NAN), one(1.0), one(9.0), one(2.0)])]);
    let at = 4 * MIN;
    let v = |e: &str| vec3(&s, e, at)[0].1;
    assert_eq!(v("min_over_time(g[3m])"), 1.0); // NaN replaced by later values
    assert_eq!(v("max_over_time(g[2m])"), 9.0);
    assert_eq!(v("sum_over_time(g[2m])"), 11.0);
    assert_eq!(v("avg_over_time(g[2m])"), 5.5);
    assert_eq!(v("count_over_time(g[10m])"), 5.0);
    assert_eq!(
        vec3(&s, "last_over_time(g[10m])", at),
        vec![(r#"g{h="x"}"#.into(), 2.0)]
    );
    assert!(v("avg_over_time(g[10m])").is_nan());
}

#[test]
fn arithmetic_and_comparison_with_scalars() {
    let s = store(&[
        (lbl("m", &[("i", "a")]), &[one(0.25)]),
        (lbl("m", &[("i", "b")]), &[one(0.75)]),
    ]);
    assert_eq!(
        vec3(&s, "m * 4 - 1", 0),
        vec![(r#"{i="a"}"#.into(), 0.0), (r#"{i="b"}"#.into(), 2.0)]
    );
    assert_eq!(vec3(&s, "m > 0.5", 0), vec![(r#"m{i="b"}"#.into(), 0.75)]);
    assert_eq!(
        vec3(&s, "0.5 < m", 0),
        vec![(r#"m{i="b"}"#.into(), 0.75)],
        "vector value kept"
    );
    assert_eq!(
        vec3(&s, "m > bool 0.5", 0),
        vec![(r#"{i="a"}"#.into(), 0.0), (r#"{i="b"}"#.into(), 1.0)]
    );
    assert_eq!(vec3(&s, "-m", 0)[0], (r#"{i="a"}"#.into(), -0.25));
    assert_eq!(scalar(&s, "2 ^ 10 % 1000", 0), 24.0);
    assert_eq!(scalar(&s, "3 >= bool 3", 0), 1.0);
    assert_eq!(
        scalar(&s, "-7 % 3", 0),
        -1.0,
        "sign of the dividend, like Go's math.Mod"
    );
}

#[test]
fn vector_matching() {
    let s = store(&[
        (lbl("req", &[("job", "api"), ("code", "200")]), &[one(90.0)]),
        (lbl("req", &[("job", "api"), ("code", "500")]), &[one(10.0)]),
        (lbl("req", &[("job", "web"), ("code", "200")]), &[one(50.0)]),
        (lbl("total", &[("job", "api")]), &[one(100.0)]),
        (lbl("total", &[("job", "web")]), &[one(50.0)]),
        (
            lbl("owner", &[("job", "api"), ("team", "core")]),
            &[one(1.0)],
        ),
        (lbl("spare", &[("job", "api")]), &[one(1.0)]),
    ]);
    assert_eq!(
        vec3(&s, "req / on(job) group_left total", 0),
        vec![
            (r#"{code="200", job="api"}"#.into(), 0.9),
            (r#"{code="200", job="web"}"#.into(), 1.0),
            (r#"{code="500", job="api"}"#.into(), 0.1),
        ]
    );
    // group_left(team) copies the label from the "one" side.
    assert_eq!(
        vec3(&s, "total * on(job) group_left(team) owner", 0),
        vec![(r#"{job="api", team="core"}"#.into(), 100.0)]
    );
    // One-to-one with on(): only the listed labels remain.
    assert_eq!(
        vec3(&s, r#"req{code="500"} == on(job) total / 10"#, 0),
        vec![(r#"{job="api"}"#.into(), 10.0)]
    );
    assert_eq!(
        vec3(&s, r#"total - ignoring(code) req{code="200"}"#, 0),
        vec![
            (r#"{job="api"}"#.into(), 10.0),
            (r#"{job="web"}"#.into(), 0.0)
        ]
    );
    let err = eval_in(&s, "req / on(job) total", 0, Semantics::Prometheus3).unwrap_err();
    assert!(
        err.to_string()
            .contains("many-to-one matching must be explicit"),
        "{err}"
    );
    let err = eval_in(
        &s,
        "total / on(job) group_left req",
        0,
        Semantics::Prometheus3,
    )
    .unwrap_err();
    assert!(err.to_string().contains("on the right hand-side"), "{err}");
    assert!(
        err.to_string()
            .contains("matching labels must be unique on one side"),
        "{err}"
    );
    let err = eval_in(
        &s,
        r#"{__name__=~"total|spare", job="api"} + 1"#,
        0,
        Semantics::Prometheus3,
    )
    .unwrap_err();
    assert!(
        matches!(&err, EvalError::Query(m) if m.contains("same labelset")),
        "{err}"
    );
}

#[test]
fn set_operators() {
    let s = store(&[
        (lbl("up", &[("i", "a")]), &[one(1.0)]),
        (lbl("up", &[("i", "b")]), &[one(0.0)]),
        (lbl("load", &[("i", "a")]), &[one(3.0)]),
    ]);
    assert_eq!(
        vec3(&s, "up and load", 0),
        vec![(r#"up{i="a"}"#.into(), 1.0)]
    );
    assert_eq!(
        vec3(&s, "up unless load", 0),
        vec![(r#"up{i="b"}"#.into(), 0.0)]
    );
    assert_eq!(
        vec3(&s, "load or up", 0),
        vec![(r#"load{i="a"}"#.into(), 3.0), (r#"up{i="b"}"#.into(), 0.0)]
    );
    assert_eq!(vec3(&s, "up and on() vector(1)", 0).len(), 2);
    assert_eq!(
        vec3(&s, "missing or vector(0)", 0),
        vec![("{}".into(), 0.0)]
    );
    assert!(vec3(&s, "up unless on() load", 0).is_empty());
}

#[test]
fn aggregations() {
    let s = store(&[
        (lbl("cpu", &[("host", "a"), ("mode", "user")]), &[one(0.5)]),
        (lbl("cpu", &[("host", "a"), ("mode", "sys")]), &[one(0.25)]),
        (
            lbl("cpu", &[("host", "b"), ("mode", "user")]),
            &[one(f64::NAN)],
        ),
        (lbl("cpu", &[("host", "b"), ("mode", "sys")]), &[one(1.0)]),
    ]);
    assert_eq!(
        vec3(&s, "sum by (host) (cpu)", 0)[0],
        (r#"{host="a"}"#.into(), 0.75)
    );
    assert_eq!(
        vec3(&s, "max without (host) (cpu)", 0),
        vec![
            (r#"{mode="sys"}"#.into(), 1.0),
            (r#"{mode="user"}"#.into(), 0.5)
        ]
    );
    assert_eq!(vec3(&s, "min(cpu)", 0), vec![("{}".into(), 0.25)]);
    assert_eq!(
        vec3(&s, "count by (mode) (cpu)", 0)[1],
        (r#"{mode="user"}"#.into(), 2.0)
    );
    assert_eq!(vec3(&s, r#"avg(cpu{host="a"})"#, 0)[0].1, 0.375);
    assert_eq!(vec3(&s, "group by (host) (cpu)", 0).len(), 2);
    let top = vec3(&s, "topk(2, cpu)", 0);
    assert_eq!(
        top,
        vec![
            (r#"cpu{host="a", mode="user"}"#.into(), 0.5),
            (r#"cpu{host="b", mode="sys"}"#.into(), 1.0)
        ]
    );
    assert_eq!(
        vec3(&s, "bottomk(1, cpu)", 0),
        vec![(r#"cpu{host="a", mode="sys"}"#.into(), 0.25)]
    );
    assert!(vec3(&s, "topk(0, cpu)", 0).is_empty());
    assert_eq!(vec3(&s, r#"quantile(0.5, cpu{mode="sys"})"#, 0)[0].1, 0.625);
}

#[test]
fn histogram_quantile_interpolates_and_fixes_monotonicity() {
    let b = |job: &str, le: &str| lbl("lat_bucket", &[("job", job), ("le", le)]);
    let s = store(&[
        (b("x", "1"), &[one(5.0)]),
        (b("x", "2"), &[one(8.0)]),
        (b("x", "+Inf"), &[one(10.0)]),
        (b("y", "1"), &[one(6.0)]),
        (b("y", "2"), &[one(5.0)]),
        (b("y", "+Inf"), &[one(6.0)]),
        (b("z", "1"), &[one(3.0)]),
    ]);
    let q = |phi: &str| vec3(&s, &format!("histogram_quantile({phi}, lat_bucket)"), 0);
    let half = q("0.5");
    assert_eq!(half[0], (r#"{job="x"}"#.into(), 1.0));
    assert_eq!(half[1], (r#"{job="y"}"#.into(), 1.0 * (3.0 / 6.0)));
    assert!(half[2].1.is_nan(), "no +Inf bucket");
    assert!((q("0.75")[0].1 - (1.0 + 2.5 / 3.0)).abs() < 1e-12);
    assert_eq!(
        q("0.95")[0].1,
        2.0,
        "rank in +Inf bucket answers the highest finite bound"
    );
    assert_eq!(
        q("0.9")[1].1,
        0.9,
        "le=2 raised to 6, so rank 5.4 of 6 lands in le=1"
    );
    assert_eq!(q("1.5")[0].1, f64::INFINITY);
    assert_eq!(q("-1")[0].1, f64::NEG_INFINITY);
}

#[test]
fn instant_functions() {
    let s = store(&[
        (lbl("v", &[("k", "a")]), &[one(-2.0)]),
        (lbl("v", &[("k", "b")]), &[one(f64::NAN)]),
    ]);
    assert_eq!(vec3(&s, "abs(v)", 0)[0], (r#"{k="a"}"#.into(), 2.0));
    assert_eq!(vec3(&s, "clamp_min(v, 0)", 0)[0].1, 0.0);
    assert!(
        vec3(&s, "clamp_max(v, 0)", 0)[1].1.is_nan(),
        "NaN stays NaN like Go's math.Min"
    );
    assert_eq!(vec3(&s, "clamp(v, -1, 1)", 0)[0].1, -1.0);
    assert!(vec3(&s, "clamp(v, 1, -1)", 0).is_empty());
    assert_eq!(scalar(&s, "time()", 90_500), 90.5);
    assert!(scalar(&s, "scalar(v)", 0).is_nan(), "two elements");
    assert_eq!(scalar(&s, r#"scalar(v{k="a"})"#, 0), -2.0);
    assert_eq!(vec3(&s, "vector(3)", 0), vec![("{}".into(), 3.0)]);
}

#[test]
fn unsupported_features_fail_evaluation_clearly() {
    let s = counter_store();
    for expr in [
        "stddev(c_total)",
        "max_over_time(rate(c_total[1m])[5m:1m])",
        "c_total[5m]",
        r#""text""#,
    ] {
        let err = eval_in(&s, expr, 0, Semantics::Prometheus3).unwrap_err();
        assert!(matches!(err, EvalError::Unsupported(_)), "{expr}: {err}");
        assert!(
            err.to_string().starts_with("unsupported PromQL feature"),
            "{err}"
        );
    }
}
