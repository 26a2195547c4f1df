//! Binary operators: arithmetic, comparison and set operations, with
//! Prometheus's vector matching (`on`, `ignoring`, `group_left/right`).

use std::collections::{HashMap, HashSet};

use promql_parser::parser::token::{
    T_ADD, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD, T_MUL,
    T_NEQ, T_POW, T_SUB, TokenId,
};
use promql_parser::parser::{BinaryExpr, VectorMatchCardinality};

use super::{Ctx, Data, Sample, check_unique};
use crate::error::EvalError;
use crate::expr::matching_labels;
use crate::labels::{Labels, METRIC_NAME};

pub(crate) fn binary(ctx: &Ctx<'_>, b: &BinaryExpr) -> Result<Data, EvalError> {
    let op = b.op.id();
    let return_bool = b.return_bool();
    let lhs = ctx.eval(&b.lhs)?;
    let rhs = ctx.eval(&b.rhs)?;
    match (lhs, rhs) {
        (Data::Scalar(l), Data::Scalar(r)) => Ok(Data::Scalar(scalar_op(op, l, r)?)),
        (Data::Vector(v), Data::Scalar(s)) => {
            check_unique(vector_scalar(op, v, s, false, return_bool)?)
        }
        (Data::Scalar(s), Data::Vector(v)) => {
            check_unique(vector_scalar(op, v, s, true, return_bool)?)
        }
        (Data::Vector(l), Data::Vector(r)) => {
            let modifier = b.modifier.as_ref();
            let (on, names) = matching_labels(modifier.and_then(|m| m.matching.as_ref()));
            let matcher = Matching { on, names };
            let card = modifier.map_or(&VectorMatchCardinality::OneToOne, |m| &m.card);
            let out = match op {
                T_LAND => and(l, r, &matcher),
                T_LOR => or(l, r, &matcher),
                T_LUNLESS => unless(l, r, &matcher),
                _ => vector_vector(op, l, r, &matcher, card, return_bool)?,
            };
            check_unique(out)
        }
    }
}

/// `on(names)` or `ignoring(names)`.
struct Matching {
    on: bool,
    names: Vec<String>,
}

impl Matching {
    /// The labels two samples must share to match.
    fn signature(&self, l: &Labels) -> Labels {
        if self.on {
            l.keep(&self.names)
        } else {
            let mut drop: Vec<&str> = self.names.iter().map(String::as_str).collect();
            drop.push(METRIC_NAME);
            l.without(&drop)
        }
    }
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Arithmetic drops `__name__`; comparisons (without `bool`) keep it.
fn drops_name(op: TokenId) -> bool {
    matches!(op, T_ADD | T_SUB | T_MUL | T_DIV | T_POW | T_MOD)
}

/// `(value, keep)` as Prometheus's `vectorElemBinop`: comparisons yield the
/// left value and whether the comparison holds.
fn elem(op: TokenId, l: f64, r: f64) -> Result<(f64, bool), EvalError> {
    Ok(match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        // Rust's `%` on floats is C's fmod, like Go's math.Mod.
        T_MOD => (l % r, true),
        T_POW => (l.powf(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        other => {
            return Err(EvalError::Unsupported(format!(
                "binary operator {}",
                promql_parser::parser::token::TokenType::new(other)
            )));
        }
    })
}

fn scalar_op(op: TokenId, l: f64, r: f64) -> Result<f64, EvalError> {
    let (v, keep) = elem(op, l, r)?;
    Ok(if is_comparison(op) {
        if keep { 1.0 } else { 0.0 }
    } else {
        v
    })
}

fn vector_scalar(
    op: TokenId,
    vec: Vec<Sample>,
    scalar: f64,
    scalar_on_left: bool,
    return_bool: bool,
) -> Result<Vec<Sample>, EvalError> {
    let mut out = Vec::with_capacity(vec.len());
    for s in vec {
        let (l, r) = if scalar_on_left {
            (scalar, s.value)
        } else {
            (s.value, scalar)
        };
        let (mut value, mut keep) = elem(op, l, r)?;
        // A comparison filters the vector but always keeps the vector's value.
        if is_comparison(op) && scalar_on_left {
            value = r;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            let labels = if drops_name(op) || return_bool {
                s.labels.without_metric_name()
            } else {
                s.labels
            };
            out.push(Sample { labels, value });
        }
    }
    Ok(out)
}

fn vector_vector(
    op: TokenId,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    m: &Matching,
    card: &VectorMatchCardinality,
    return_bool: bool,
) -> Result<Vec<Sample>, EvalError> {
    let (include, one_to_many) = match card {
        VectorMatchCardinality::OneToOne => (None, false),
        VectorMatchCardinality::ManyToOne(l) => (Some(&l.labels), false),
        VectorMatchCardinality::OneToMany(l) => (Some(&l.labels), true),
        VectorMatchCardinality::ManyToMany => {
            return Err(EvalError::Query(
                "many-to-many matching only allowed for set operators".into(),
            ));
        }
    };
    // Walk the "many" side and look each sample up on the "one" side.
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut one_by_sig: HashMap<Labels, Sample> = HashMap::with_capacity(one.len());
    for s in one {
        let sig = m.signature(&s.labels);
        if let Some(prev) = one_by_sig.get(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(EvalError::Query(format!(
                "found duplicate series for the match group {sig} on the {side} hand-side of the \
                 operation: [{}, {}];many-to-many matching not allowed: matching labels must be \
                 unique on one side",
                s.labels, prev.labels
            )));
        }
        one_by_sig.insert(sig, s);
    }
    let mut matched: HashMap<Labels, HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    for ms in many {
        let sig = m.signature(&ms.labels);
        let Some(os) = one_by_sig.get(&sig) else {
            continue;
        };
        let (l, r) = if one_to_many {
            (os.value, ms.value)
        } else {
            (ms.value, os.value)
        };
        let (mut value, keep) = elem(op, l, r)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let mut labels = result_labels(&ms.labels, &os.labels, op, m, include);
        if return_bool {
            labels = labels.without_metric_name();
        }
        let seen = matched.entry(sig).or_default();
        match include {
            None if !seen.is_empty() => {
                return Err(EvalError::Query(
                    "multiple matches for labels: many-to-one matching must be explicit \
                     (group_left/group_right)"
                        .into(),
                ));
            }
            Some(_) if seen.contains(&labels) => {
                return Err(EvalError::Query(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                ));
            }
            _ => {}
        }
        seen.insert(labels.clone());
        out.push(Sample { labels, value });
    }
    Ok(out)
}

/// Labels of a vector-vector result, as Prometheus's `resultMetric`.
fn result_labels(
    many: &Labels,
    one: &Labels,
    op: TokenId,
    m: &Matching,
    include: Option<&Vec<String>>,
) -> Labels {
    let mut l = if drops_name(op) {
        many.without_metric_name()
    } else {
        many.clone()
    };
    match include {
        None if m.on => l = l.keep(&m.names),
        None => l = l.without(&m.names),
        Some(extra) => {
            for name in extra {
                l = l.with(name, one.get(name).unwrap_or(""));
            }
        }
    }
    l
}

fn and(lhs: Vec<Sample>, rhs: Vec<Sample>, m: &Matching) -> Vec<Sample> {
    if lhs.is_empty() || rhs.is_empty() {
        return Vec::new();
    }
    let sigs: HashSet<Labels> = rhs.iter().map(|s| m.signature(&s.labels)).collect();
    lhs.into_iter()
        .filter(|s| sigs.contains(&m.signature(&s.labels)))
        .collect()
}

fn or(mut lhs: Vec<Sample>, rhs: Vec<Sample>, m: &Matching) -> Vec<Sample> {
    if lhs.is_empty() {
        return rhs;
    }
    let sigs: HashSet<Labels> = lhs.iter().map(|s| m.signature(&s.labels)).collect();
    lhs.extend(
        rhs.into_iter()
            .filter(|s| !sigs.contains(&m.signature(&s.labels))),
    );
    lhs
}

fn unless(lhs: Vec<Sample>, rhs: Vec<Sample>, m: &Matching) -> Vec<Sample> {
    if lhs.is_empty() || rhs.is_empty() {
        return lhs;
    }
    let sigs: HashSet<Labels> = rhs.iter().map(|s| m.signature(&s.labels)).collect();
    lhs.into_iter()
        .filter(|s| !sigs.contains(&m.signature(&s.labels)))
        .collect()
}
