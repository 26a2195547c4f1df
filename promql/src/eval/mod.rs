//! Instant-query evaluation with Prometheus semantics.

mod aggregate;
mod binary;
mod float;
mod functions;
mod histogram;
mod range;

use std::collections::HashSet;
use std::time::UNIX_EPOCH;

use promql_parser::parser::{AtModifier, Expr as Ast, VectorSelector};

use crate::error::EvalError;
use crate::expr::{Expr, Selector, offset_ms, unsupported};
use crate::labels::Labels;
use crate::store::SeriesStore;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels (without `__name__` where PromQL drops it).
    pub labels: Labels,
    /// The value.
    pub value: f64,
}

/// The result of an instant query.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A single number (e.g. `time()`, `1 + 2`, `scalar(x)`).
    Scalar(f64),
    /// Zero or more samples, sorted by labels.
    Vector(Vec<Sample>),
}

/// Which Prometheus release line to reproduce where they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Semantics {
    /// Prometheus 3.x: selector windows are left-open, `(t - range, t]` and
    /// `(t - lookback, t]`; `rate` clamps the zero-point extrapolation after
    /// the threshold check; `sum`/`avg` aggregations use Kahan summation;
    /// `histogram_quantile` ignores bucket differences below 1e-12 relative.
    #[default]
    Prometheus3,
    /// Prometheus 2.x as of 2.42 (Debian 12's `prometheus` package, which the
    /// crate's promtool tests compare against): windows are closed,
    /// `[t - range, t]`, and the older float arithmetic above.
    Prometheus2,
}

/// Evaluation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalOptions {
    /// How far back an instant selector looks for the latest sample.
    pub lookback_delta_ms: i64,
    /// Release line to reproduce.
    pub semantics: Semantics,
}

impl Default for EvalOptions {
    /// Five minutes of lookback, Prometheus 3 semantics.
    fn default() -> Self {
        EvalOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            semantics: Semantics::default(),
        }
    }
}

/// Evaluates `expr` as a Prometheus instant query at `at_ms` with default options.
pub fn evaluate(expr: &Expr, store: &SeriesStore, at_ms: i64) -> Result<Value, EvalError> {
    evaluate_with(expr, store, at_ms, &EvalOptions::default())
}

/// Evaluates `expr` as a Prometheus instant query at `at_ms`.
pub fn evaluate_with(
    expr: &Expr,
    store: &SeriesStore,
    at_ms: i64,
    options: &EvalOptions,
) -> Result<Value, EvalError> {
    let ctx = Ctx {
        store,
        at_ms,
        opts: options,
    };
    match ctx.eval(expr.ast())? {
        Data::Scalar(v) => Ok(Value::Scalar(v)),
        Data::Vector(mut v) => {
            v.sort_by(|a, b| a.labels.cmp(&b.labels));
            Ok(Value::Vector(v))
        }
    }
}

/// An intermediate result.
pub(crate) enum Data {
    Scalar(f64),
    Vector(Vec<Sample>),
}

/// The samples of one series inside a range selector's window.
pub(crate) struct Window {
    pub(crate) labels: Labels,
    pub(crate) points: Vec<(i64, f64)>,
}

/// A range selector's windows plus its bounds (for extrapolation).
pub(crate) struct RangeData {
    pub(crate) series: Vec<Window>,
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
    pub(crate) range_ms: i64,
}

pub(crate) struct Ctx<'a> {
    store: &'a SeriesStore,
    at_ms: i64,
    pub(crate) opts: &'a EvalOptions,
}

impl Ctx<'_> {
    pub(crate) fn v3(&self) -> bool {
        self.opts.semantics == Semantics::Prometheus3
    }

    pub(crate) fn at_ms(&self) -> i64 {
        self.at_ms
    }

    pub(crate) fn eval(&self, e: &Ast) -> Result<Data, EvalError> {
        if let Some((what, _)) = unsupported(e) {
            return Err(EvalError::Unsupported(what));
        }
        match e {
            Ast::NumberLiteral(n) => Ok(Data::Scalar(n.val)),
            Ast::Paren(p) => self.eval(&p.expr),
            Ast::Unary(u) => match self.eval(&u.expr)? {
                Data::Scalar(v) => Ok(Data::Scalar(-v)),
                Data::Vector(v) => {
                    let out = v
                        .into_iter()
                        .map(|s| Sample {
                            labels: s.labels.without_metric_name(),
                            value: -s.value,
                        })
                        .collect();
                    check_unique(out)
                }
            },
            Ast::VectorSelector(vs) => Ok(Data::Vector(self.instant_selector(vs))),
            Ast::Call(c) => functions::call(self, c),
            Ast::Aggregate(a) => aggregate::aggregate(self, a),
            Ast::Binary(b) => binary::binary(self, b),
            Ast::StringLiteral(_) => {
                Err(EvalError::Unsupported("string-valued expressions".into()))
            }
            Ast::MatrixSelector(_) => Err(EvalError::Unsupported(
                "a range vector outside a function argument (instant queries for rules must \
                 return a scalar or an instant vector)"
                    .into(),
            )),
            Ast::Subquery(_) | Ast::Extension(_) => {
                Err(EvalError::Unsupported("subqueries and extensions".into()))
            }
        }
    }

    pub(crate) fn eval_scalar(&self, e: &Ast) -> Result<f64, EvalError> {
        match self.eval(e)? {
            Data::Scalar(v) => Ok(v),
            Data::Vector(_) => Err(EvalError::Query(
                "expected a scalar, got an instant vector".into(),
            )),
        }
    }

    pub(crate) fn eval_vector(&self, e: &Ast) -> Result<Vec<Sample>, EvalError> {
        match self.eval(e)? {
            Data::Vector(v) => Ok(v),
            Data::Scalar(_) => Err(EvalError::Query(
                "expected an instant vector, got a scalar".into(),
            )),
        }
    }

    /// Evaluation time of a selector after `@` and `offset`.
    fn selector_time(&self, vs: &VectorSelector) -> i64 {
        let base = match &vs.at {
            None | Some(AtModifier::Start) | Some(AtModifier::End) => self.at_ms,
            Some(AtModifier::At(t)) => match t.duration_since(UNIX_EPOCH) {
                Ok(d) => d.as_millis() as i64,
                Err(e) => -(e.duration().as_millis() as i64),
            },
        };
        (base as i128 - offset_ms(&vs.offset)) as i64
    }

    /// Whether `t` is past a window's lower bound `start`.
    fn after_start(&self, t: i64, start: i64) -> bool {
        if self.v3() { t > start } else { t >= start }
    }

    /// Series matching the selector in creation order, as Prometheus's head
    /// block returns them to the engine (this decides summation order).
    fn matching<'s>(&'s self, vs: &VectorSelector) -> Vec<(&'s Labels, &'s crate::store::Series)> {
        self.store.select_series(&Selector::from_vs(vs))
    }

    fn instant_selector(&self, vs: &VectorSelector) -> Vec<Sample> {
        let t = self.selector_time(vs);
        let start = t.saturating_sub(self.opts.lookback_delta_ms);
        let mut out = Vec::new();
        for (labels, series) in self.matching(vs) {
            let idx = series.samples.partition_point(|&(ts, _)| ts <= t);
            if idx == 0 {
                continue;
            }
            let (ts, v) = series.samples[idx - 1];
            if self.after_start(ts, start) {
                out.push(Sample {
                    labels: labels.clone(),
                    value: v,
                });
            }
        }
        out
    }

    pub(crate) fn range_selector(&self, e: &Ast) -> Result<RangeData, EvalError> {
        let ms = match e {
            Ast::MatrixSelector(ms) => ms,
            Ast::Paren(p) => return self.range_selector(&p.expr),
            _ => {
                return Err(EvalError::Unsupported(
                    "range-vector arguments other than a range selector".into(),
                ));
            }
        };
        let range_ms = ms.range.as_millis() as i64;
        let end = self.selector_time(&ms.vs);
        let start = end - range_ms;
        let mut series = Vec::new();
        for (labels, s) in self.matching(&ms.vs) {
            let lo = if self.v3() {
                s.samples.partition_point(|&(ts, _)| ts <= start)
            } else {
                s.samples.partition_point(|&(ts, _)| ts < start)
            };
            let hi = s.samples.partition_point(|&(ts, _)| ts <= end);
            if lo < hi {
                let points = s.samples.range(lo..hi).copied().collect();
                series.push(Window {
                    labels: labels.clone(),
                    points,
                });
            }
        }
        Ok(RangeData {
            series,
            start_ms: start,
            end_ms: end,
            range_ms,
        })
    }
}

/// Prometheus fails a query whose vector holds two samples with one label set.
pub(crate) fn check_unique(v: Vec<Sample>) -> Result<Data, EvalError> {
    let mut seen = HashSet::with_capacity(v.len());
    for s in &v {
        if !seen.insert(&s.labels) {
            return Err(EvalError::Query(format!(
                "vector cannot contain metrics with the same labelset ({})",
                s.labels
            )));
        }
    }
    Ok(Data::Vector(v))
}
