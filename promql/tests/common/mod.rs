//! Shared test helpers: promtool's expanding series notation and a store loader.

use warden_promql::{Labels, SeriesStore, StoreLimits};

/// Expands promtool's `input_series` notation (`a+bxN`, `a-bxN`, `_`, `_xN`,
/// plain numbers) into one optional value per step, as Prometheus's series
/// parser does: `a+bxN` is N+1 values built by repeated addition, `_xN` is N
/// missing values.
pub(crate) fn expand(values: &str) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    for tok in values.split_whitespace() {
        if let Some(rest) = tok.strip_prefix('_') {
            let n = match rest.strip_prefix('x') {
                Some(n) => n.parse::<usize>().expect("count after _x"),
                None => 1,
            };
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        let Some((head, count)) = tok.rsplit_once('x') else {
            out.push(Some(parse_num(tok)));
            continue;
        };
        let n: usize = count.parse().expect("count after x");
        // Split "a+b"/"a-b" at the sign that is neither leading nor an exponent's.
        let bytes = head.as_bytes();
        let split = (1..bytes.len())
            .find(|&i| {
                (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E')
            })
            .expect("a+bxN needs a step");
        let (start, step) = (parse_num(&head[..split]), parse_num(&head[split..]));
        let mut v = start;
        out.push(Some(v));
        for _ in 0..n {
            v += step;
            out.push(Some(v));
        }
    }
    out
}

fn parse_num(s: &str) -> f64 {
    s.parse()
        .unwrap_or_else(|_| panic!("bad number {s:?} in series notation"))
}

/// Parses `name{a="b",c="d"}` (no escapes) into labels.
pub(crate) fn labels(series: &str) -> Labels {
    let (name, rest) = series.split_once('{').unwrap_or((series, "}"));
    let body = rest.strip_suffix('}').expect("closing brace");
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !name.is_empty() {
        pairs.push(("__name__".into(), name.into()));
    }
    for kv in body.split(',').filter(|s| !s.trim().is_empty()) {
        let (k, v) = kv.split_once('=').expect("label=value");
        pairs.push((k.trim().into(), v.trim().trim_matches('"').into()));
    }
    Labels::new(pairs)
}

/// A store holding `series` (pairs of selector text and notation) sampled
/// every `interval_ms` from time 0.
pub(crate) fn load(series: &[(&str, &str)], interval_ms: i64) -> SeriesStore {
    let mut store = SeriesStore::new(StoreLimits {
        retention_ms: i64::MAX / 4,
        max_series: 10_000,
    });
    for (sel, values) in series {
        let l = labels(sel);
        for (step, v) in expand(values).into_iter().enumerate() {
            if let Some(v) = v {
                store
                    .append(l.clone(), step as i64 * interval_ms, v)
                    .expect("append");
            }
        }
    }
    store
}

#[test]
fn expand_follows_promtool_notation() {
    assert_eq!(
        expand("1+2x2 _x2 5 -1-1x1"),
        vec![
            Some(1.0),
            Some(3.0),
            Some(5.0),
            None,
            None,
            Some(5.0),
            Some(-1.0),
            Some(-2.0)
        ]
    );
    assert_eq!(expand("1e9-1e6x1"), vec![Some(1e9), Some(1e9 - 1e6)]);
}
