//! Range-vector functions: `*_over_time`, `rate`, `increase`, `delta`,
//! `changes`, `resets`.

use promql_parser::parser::Expr as Ast;

use super::float::{duration_seconds, kahan_inc};
use super::{Ctx, Data, RangeData, Sample, check_unique};
use crate::error::EvalError;

pub(crate) fn call(ctx: &Ctx<'_>, name: &str, arg: &Ast) -> Result<Data, EvalError> {
    let data = ctx.range_selector(arg)?;
    let mut out = Vec::with_capacity(data.series.len());
    for w in &data.series {
        let p = &w.points;
        let value = match name {
            "avg_over_time" if ctx.v3() => Some(avg_over_time_v3(p)),
            "avg_over_time" => Some(avg_over_time_v2(p)),
            "sum_over_time" => Some(sum_over_time(p)),
            "count_over_time" => Some(p.len() as f64),
            "min_over_time" => Some(extreme(p, |cur, best| cur < best)),
            "max_over_time" => Some(extreme(p, |cur, best| cur > best)),
            "last_over_time" => p.last().map(|&(_, v)| v),
            "changes" => Some(changes(p)),
            "resets" => Some(resets(p)),
            "rate" => extrapolated(ctx, &data, p, true, true),
            "increase" => extrapolated(ctx, &data, p, true, false),
            "delta" => extrapolated(ctx, &data, p, false, false),
            other => return Err(EvalError::Unsupported(format!("function {other}()"))),
        };
        if let Some(value) = value {
            // last_over_time acts like an offset selector, so it keeps the name.
            let labels = if name == "last_over_time" {
                w.labels.clone()
            } else {
                w.labels.without_metric_name()
            };
            out.push(Sample { labels, value });
        }
    }
    check_unique(out)
}

fn sum_over_time(p: &[(i64, f64)]) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for &(_, v) in p {
        (sum, c) = kahan_inc(v, sum, c);
    }
    if sum.is_infinite() { sum } else { sum + c }
}

/// Prometheus 3: Kahan-summed mean, incremental once the sum would overflow.
fn avg_over_time_v3(p: &[(i64, f64)]) -> f64 {
    let (mut sum, mut count) = (p[0].1, 1.0);
    let (mut mean, mut c) = (0.0, 0.0);
    let mut incremental = false;
    for (i, &(_, v)) in p[1..].iter().enumerate() {
        count = (i + 2) as f64;
        if !incremental {
            let (ns, nc) = kahan_inc(v, sum, c);
            if !ns.is_infinite() {
                (sum, c) = (ns, nc);
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(v / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

/// Prometheus 2.42: incremental mean with Kahan compensation.
fn avg_over_time_v2(p: &[(i64, f64)]) -> f64 {
    let (mut mean, mut count, mut c) = (0.0f64, 0.0, 0.0);
    for &(_, v) in p {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        (mean, c) = kahan_inc(v / count - mean / count, mean, c);
    }
    if mean.is_infinite() { mean } else { mean + c }
}

/// min/max over time: a NaN best is replaced by whatever comes next.
fn extreme(p: &[(i64, f64)], better: impl Fn(f64, f64) -> bool) -> f64 {
    let mut best = p[0].1;
    for &(_, v) in p {
        if better(v, best) || best.is_nan() {
            best = v;
        }
    }
    best
}

fn changes(p: &[(i64, f64)]) -> f64 {
    let mut n = 0;
    for w in p.windows(2) {
        let (prev, cur) = (w[0].1, w[1].1);
        if cur != prev && !(cur.is_nan() && prev.is_nan()) {
            n += 1;
        }
    }
    n as f64
}

fn resets(p: &[(i64, f64)]) -> f64 {
    p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64
}

/// rate/increase/delta with Prometheus's extrapolation to the range edges.
fn extrapolated(
    ctx: &Ctx<'_>,
    range: &RangeData,
    p: &[(i64, f64)],
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (first_t, first_v) = p[0];
    let (last_t, last_v) = p[p.len() - 1];
    let mut result = if ctx.v3() {
        let mut r = last_v - first_v;
        if is_counter {
            for w in p.windows(2) {
                if w[1].1 < w[0].1 {
                    r += w[0].1;
                }
            }
        }
        r
    } else {
        // 2.42 sums the corrections first, starting from a previous value of 0.
        let mut correction = 0.0;
        let mut prev = 0.0;
        for &(_, v) in p {
            if is_counter && v < prev {
                correction += prev;
            }
            prev = v;
        }
        last_v - first_v + correction
    };

    let mut to_start = (first_t - range.start_ms) as f64 / 1000.0;
    let mut to_end = (range.end_ms - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg_step = sampled / (p.len() - 1) as f64;
    let threshold = avg_step * 1.1;
    let range_s = duration_seconds(range.range_ms);

    if ctx.v3() {
        if to_start >= threshold {
            to_start = avg_step / 2.0;
        }
        if is_counter && result > 0.0 && first_v >= 0.0 {
            let to_zero = sampled * (first_v / result);
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
        if to_end >= threshold {
            to_end = avg_step / 2.0;
        }
        let mut factor = (sampled + to_start + to_end) / sampled;
        if is_rate {
            factor /= range_s;
        }
        result *= factor;
    } else {
        if is_counter && result > 0.0 && first_v >= 0.0 {
            let to_zero = sampled * (first_v / result);
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
        let mut interval = sampled;
        interval += if to_start < threshold {
            to_start
        } else {
            avg_step / 2.0
        };
        interval += if to_end < threshold {
            to_end
        } else {
            avg_step / 2.0
        };
        let mut factor = interval / sampled;
        if is_rate {
            factor /= range_s;
        }
        result *= factor;
    }
    Some(result)
}
