//! Aggregation operators: sum, avg, min, max, count, group, topk, bottomk, quantile.

use std::cmp::Ordering;
use std::collections::HashMap;

use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_GROUP, T_MAX, T_MIN, T_QUANTILE, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::float::kahan_inc;
use super::{Ctx, Data, Sample};
use crate::error::EvalError;
use crate::labels::{Labels, METRIC_NAME};

/// Running state of one output group.
struct Group {
    labels: Labels,
    members: Vec<Sample>,
}

pub(crate) fn aggregate(ctx: &Ctx<'_>, a: &AggregateExpr) -> Result<Data, EvalError> {
    let op = a.op.id();
    let param = match (&a.param, op) {
        (Some(p), T_TOPK | T_BOTTOMK | T_QUANTILE) => Some(ctx.eval_scalar(p)?),
        (_, T_TOPK | T_BOTTOMK | T_QUANTILE) => {
            return Err(EvalError::Query(format!("{} needs a parameter", a.op)));
        }
        _ => None,
    };
    let input = ctx.eval_vector(&a.expr)?;

    // Group in order of first appearance; members keep input order, which
    // decides float summation order as in Prometheus.
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for s in input {
        let key = match &a.modifier {
            Some(LabelModifier::Include(by)) => s.labels.keep(&by.labels),
            Some(LabelModifier::Exclude(without)) => {
                let mut drop: Vec<&str> = without.labels.iter().map(String::as_str).collect();
                drop.push(METRIC_NAME);
                s.labels.without(&drop)
            }
            None => Labels::empty(),
        };
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push(Group {
                labels: key,
                members: Vec::new(),
            });
            groups.len() - 1
        });
        groups[i].members.push(s);
    }

    let mut out = Vec::with_capacity(groups.len());
    match op {
        T_TOPK | T_BOTTOMK => {
            let k = param.unwrap_or(0.0);
            if !(k > -9.223_372_036_854_776e18 && k < 9.223_372_036_854_776e18) {
                return Err(EvalError::Query(format!(
                    "Scalar value {k} overflows int64"
                )));
            }
            let k = k as i64;
            if k < 1 {
                return Ok(Data::Vector(Vec::new()));
            }
            for g in groups {
                out.extend(select_k(g.members, k as usize, op == T_TOPK));
            }
        }
        _ => {
            for g in groups {
                let value = fold(ctx, op, param, &g.members)?;
                out.push(Sample {
                    labels: g.labels,
                    value,
                });
            }
        }
    }
    Ok(Data::Vector(out))
}

fn fold(
    ctx: &Ctx<'_>,
    op: promql_parser::parser::token::TokenId,
    param: Option<f64>,
    m: &[Sample],
) -> Result<f64, EvalError> {
    let values = m.iter().map(|s| s.value);
    Ok(match op {
        T_SUM if ctx.v3() => {
            let mut values = values;
            let (mut sum, mut c) = (values.next().unwrap_or(f64::NAN), 0.0);
            for v in values {
                (sum, c) = kahan_inc(v, sum, c);
            }
            if sum.is_infinite() { sum } else { sum + c }
        }
        T_SUM => values.reduce(|acc, v| acc + v).unwrap_or(f64::NAN),
        T_AVG if ctx.v3() => avg_v3(values),
        T_AVG => avg_v2(values),
        // A NaN in the running value is replaced by whatever comes next.
        T_MIN => values
            .reduce(|acc, v| if acc > v || acc.is_nan() { v } else { acc })
            .unwrap_or(f64::NAN),
        T_MAX => values
            .reduce(|acc, v| if acc < v || acc.is_nan() { v } else { acc })
            .unwrap_or(f64::NAN),
        T_COUNT => m.len() as f64,
        T_GROUP => 1.0,
        T_QUANTILE => quantile(param.unwrap_or(f64::NAN), values.collect()),
        other => {
            return Err(EvalError::Unsupported(format!(
                "aggregation {}",
                promql_parser::parser::token::TokenType::new(other)
            )));
        }
    })
}

/// Prometheus 3: Kahan-summed mean, switching to an incremental mean once
/// the running sum would overflow.
fn avg_v3(mut values: impl Iterator<Item = f64>) -> f64 {
    let Some(first) = values.next() else {
        return f64::NAN;
    };
    let (mut sum, mut c, mut count) = (first, 0.0, 1.0);
    let mut mean = 0.0;
    let mut incremental = false;
    for v in values {
        count += 1.0;
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

/// Prometheus 2.42: plain incremental mean with infinity guards.
fn avg_v2(mut values: impl Iterator<Item = f64>) -> f64 {
    let Some(first) = values.next() else {
        return f64::NAN;
    };
    let (mut mean, mut count) = (first, 1.0);
    for v in values {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        mean += v / count - mean / count;
    }
    mean
}

/// The `k` largest (or smallest) samples, NaN ranking below every number.
fn select_k(mut members: Vec<Sample>, k: usize, largest: bool) -> Vec<Sample> {
    members.sort_by(|a, b| match (a.value.is_nan(), b.value.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ if largest => b.value.partial_cmp(&a.value).unwrap_or(Ordering::Equal),
        _ => a.value.partial_cmp(&b.value).unwrap_or(Ordering::Equal),
    });
    members.truncate(k);
    members
}

/// Prometheus's `quantile`: linear interpolation between closest ranks,
/// NaN sorting first.
pub(crate) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}
