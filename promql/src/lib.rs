//! Warden's in-process PromQL rule evaluator.
//!
//! Check results are fed into a [`SeriesStore`]; alert rules are parsed once
//! with [`parse`] (promql-parser does the parsing), vetted with
//! [`Expr::check_supported`], and evaluated with [`evaluate`] as Prometheus
//! instant queries over the store.
//!
//! ```
//! use warden_promql::{Labels, SeriesStore, StoreLimits, Value, evaluate, parse};
//!
//! let rule = parse(r#"rate(requests_total{job="api"}[5m]) > 0.5"#).unwrap();
//! rule.check_supported().unwrap();
//! let history = rule.required_history(std::time::Duration::from_secs(300));
//! let mut store = SeriesStore::new(StoreLimits {
//!     retention_ms: history.as_millis() as i64 + 60_000,
//!     max_series: 1000,
//! });
//! let series = Labels::new([("__name__", "requests_total"), ("job", "api")]);
//! for i in 0..=20 {
//!     store.append(series.clone(), i * 15_000, (i * 15) as f64).unwrap();
//! }
//! let Value::Vector(firing) = evaluate(&rule, &store, 300_000).unwrap() else { panic!() };
//! assert_eq!(firing.len(), 1);
//! assert_eq!(firing[0].labels.to_string(), r#"{job="api"}"#);
//! assert!((firing[0].value - 1.0).abs() < 1e-12); // 15 requests per 15 s
//! ```
//!
//! # Supported PromQL
//!
//! - Selectors with `=`, `!=`, `=~`, `!~` (regexes fully anchored), `offset`
//!   (also negative) and `@` (`@ start()`/`@ end()` are the evaluation time).
//! - Range functions: `avg_over_time`, `min_over_time`, `max_over_time`,
//!   `sum_over_time`, `count_over_time`, `last_over_time`, `rate`, `increase`,
//!   `delta`, `changes`, `resets`.
//! - Other functions: `histogram_quantile` (classic `le` buckets), `abs`,
//!   `clamp`, `clamp_min`, `clamp_max`, `time`, `vector`, `scalar`.
//! - Arithmetic `+ - * / % ^` and comparisons `== != > < >= <=` between any
//!   mix of scalars and instant vectors, with `bool`, `on(...)`,
//!   `ignoring(...)`, `group_left(...)`, `group_right(...)`; unary `-`.
//! - Set operators `and`, `or`, `unless` with `on`/`ignoring`.
//! - Aggregations `sum`, `avg`, `min`, `max`, `count`, `group`, `topk`,
//!   `bottomk`, `quantile` with `by (...)` / `without (...)`.
//!
//! Everything else that promql-parser accepts (other functions and
//! aggregations, subqueries, `atan2`, `fill` modifiers, `or` inside `{...}`,
//! string results, native histograms) is reported by
//! [`Expr::check_supported`] and fails [`evaluate`] with
//! [`EvalError::Unsupported`]; nothing is silently approximated.
//!
//! # Semantics
//!
//! Results follow Prometheus: 5-minute lookback for instant selectors,
//! `__name__` dropped by arithmetic, `bool` comparisons and functions (except
//! `last_over_time`) but kept by filtering comparisons and set operators,
//! `on(...)` keeping only the listed labels in one-to-one matches, and the same
//! query errors (many-to-many matches, duplicate output label sets). Where
//! Prometheus 2 and 3 differ, [`Semantics`] picks one (3 by default).
//!
//! # Limitations
//!
//! - promql-parser returns no error positions, so [`ParseError::position`] is
//!   located by this crate (see its docs) and can point at the end of the
//!   longest valid prefix rather than the exact culprit.
//! - Regexes are compiled by promql-parser with Rust's `regex` crate: RE2
//!   syntax like Go's, but `.` does not match `\n` (Prometheus 3 lets it).
//! - `^` uses the platform `pow`, which can differ from Go's `math.Pow` in the
//!   last bit for non-integer exponents; `topk`/`bottomk` pick ties by label
//!   order where Prometheus's heap order is unspecified.
//! - The promtool comparison tests run against Prometheus 2.42
//!   ([`Semantics::Prometheus2`]); the Prometheus 3 variants are covered by
//!   unit tests of their documented behaviour only.
//! - `@ <timestamp>` reads whatever the store still holds at that time: the
//!   store's retention is sized by [`Expr::required_history`], which does not
//!   account for fixed `@` times.
//! - Results are vectors sorted by labels; range-vector results are refused.

mod error;
mod eval;
mod expr;
mod labels;
mod locate;
mod store;

pub use error::{EvalError, ParseError, Position};
pub use eval::{EvalOptions, Sample, Semantics, Value, evaluate, evaluate_with};
pub use expr::{
    Expr, LabelMatcher, MatchKind, SUPPORTED_AGGREGATIONS, SUPPORTED_FUNCTIONS, Selector, parse,
};
pub use labels::{Labels, METRIC_NAME};
pub use store::{AppendError, SeriesStore, StoreLimits, StoreStats};
