//! Function calls: instant-vector functions and dispatch to range functions.

use promql_parser::parser::Call;

use super::float::{go_max, go_min};
use super::{Ctx, Data, Sample, check_unique, histogram, range};
use crate::error::EvalError;
use crate::labels::Labels;

pub(crate) fn call(ctx: &Ctx<'_>, c: &Call) -> Result<Data, EvalError> {
    let args = &c.args.args;
    let name = c.func.name;
    match name {
        "time" => Ok(Data::Scalar(ctx.at_ms() as f64 / 1000.0)),
        "vector" => {
            let v = ctx.eval_scalar(&args[0])?;
            Ok(Data::Vector(vec![Sample {
                labels: Labels::empty(),
                value: v,
            }]))
        }
        "scalar" => {
            let v = ctx.eval_vector(&args[0])?;
            Ok(Data::Scalar(if v.len() == 1 {
                v[0].value
            } else {
                f64::NAN
            }))
        }
        "abs" => map_values(ctx.eval_vector(&args[0])?, f64::abs),
        "clamp_min" => {
            let v = ctx.eval_vector(&args[0])?;
            let min = ctx.eval_scalar(&args[1])?;
            map_values(v, |x| go_max(min, x))
        }
        "clamp_max" => {
            let v = ctx.eval_vector(&args[0])?;
            let max = ctx.eval_scalar(&args[1])?;
            map_values(v, |x| go_min(max, x))
        }
        "clamp" => {
            let v = ctx.eval_vector(&args[0])?;
            let min = ctx.eval_scalar(&args[1])?;
            let max = ctx.eval_scalar(&args[2])?;
            if max < min {
                return Ok(Data::Vector(Vec::new()));
            }
            map_values(v, |x| go_max(min, go_min(max, x)))
        }
        "histogram_quantile" => {
            let q = ctx.eval_scalar(&args[0])?;
            let v = ctx.eval_vector(&args[1])?;
            check_unique(histogram::histogram_quantile(ctx, q, v))
        }
        _ => range::call(ctx, name, &args[0]),
    }
}

/// Applies `f` to every value and drops `__name__`.
fn map_values(v: Vec<Sample>, f: impl Fn(f64) -> f64) -> Result<Data, EvalError> {
    check_unique(
        v.into_iter()
            .map(|s| Sample {
                labels: s.labels.without_metric_name(),
                value: f(s.value),
            })
            .collect(),
    )
}
