//! `histogram_quantile` over classic `le` buckets.

use std::collections::HashMap;

use super::float::almost_equal;
use super::{Ctx, Sample};
use crate::labels::{Labels, METRIC_NAME};

/// Relative difference below which Prometheus 3 treats bucket counts as equal.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

pub(crate) fn histogram_quantile(ctx: &Ctx<'_>, q: f64, input: Vec<Sample>) -> Vec<Sample> {
    // Buckets are grouped by every label but `le` (the name included), and the
    // result drops both, as Prometheus does.
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, Vec<(f64, f64)>)> = Vec::new();
    for s in input {
        // A missing or malformed `le` is skipped, like Prometheus.
        let Some(upper) = s
            .labels
            .get("le")
            .and_then(|le| le.trim().parse::<f64>().ok())
        else {
            continue;
        };
        let key = s.labels.without(&["le"]);
        let i = *index.entry(key).or_insert_with(|| {
            groups.push((s.labels.without(&[METRIC_NAME, "le"]), Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push((upper, s.value));
    }
    groups
        .into_iter()
        .map(|(labels, buckets)| Sample {
            labels,
            value: bucket_quantile(ctx.v3(), q, buckets),
        })
        .collect()
}

/// Prometheus's `bucketQuantile`: linear interpolation inside the bucket that
/// holds the rank, the lowest bucket starting at 0 (or returning its bound if
/// that is <= 0), and the +Inf bucket answering the second-highest bound.
pub(crate) fn bucket_quantile(v3: bool, q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    let mut buckets = coalesce(buckets);
    ensure_monotonic(&mut buckets, v3);
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = buckets[..buckets.len() - 1].partition_point(|&(_, count)| count < rank);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Merges buckets with the same upper bound by adding their counts.
fn coalesce(buckets: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match out.last_mut() {
            Some(last) if last.0 == b.0 => last.1 += b.1,
            _ => out.push(b),
        }
    }
    out
}

/// Raises any count below an earlier one to that earlier count (bucket rates
/// of a scrape that straddles a reset are not monotonic). Prometheus 3 also
/// flattens relative differences under 1e-12 in either direction.
fn ensure_monotonic(buckets: &mut [(f64, f64)], v3: bool) {
    if v3 {
        let Some(&(_, mut prev)) = buckets.first() else {
            return;
        };
        for b in buckets.iter_mut().skip(1) {
            let cur = b.1;
            if cur == prev {
                continue;
            }
            if almost_equal(prev, cur, SMALL_DELTA_TOLERANCE) || cur < prev {
                b.1 = prev;
                continue;
            }
            prev = cur;
        }
    } else {
        let mut max = f64::NEG_INFINITY;
        for b in buckets.iter_mut() {
            if b.1 > max {
                max = b.1;
            } else if b.1 < max {
                b.1 = max;
            }
        }
    }
}
