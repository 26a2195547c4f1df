//! Parsed rule expressions: `parse`, the retention window they need, the
//! selectors they use, and the check for features this evaluator lacks.

use std::time::Duration;

use promql_parser::label::{MatchOp, Matcher as PMatcher};
use promql_parser::parser::token;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr as Ast, LabelModifier, Offset};

use crate::error::{ParseError, Position};
use crate::labels::{Labels, METRIC_NAME};
use crate::locate::locate;

/// Functions `evaluate` implements, by name.
pub const SUPPORTED_FUNCTIONS: &[&str] = &[
    "abs",
    "avg_over_time",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "count_over_time",
    "delta",
    "histogram_quantile",
    "increase",
    "last_over_time",
    "max_over_time",
    "min_over_time",
    "rate",
    "resets",
    "scalar",
    "sum_over_time",
    "time",
    "vector",
];

/// Aggregation operators `evaluate` implements.
pub const SUPPORTED_AGGREGATIONS: &[&str] = &[
    "sum", "avg", "min", "max", "count", "group", "topk", "bottomk", "quantile",
];

/// A parsed PromQL expression together with its source text.
#[derive(Debug, Clone)]
pub struct Expr {
    ast: Ast,
    source: String,
}

/// Parses a PromQL expression with promql-parser.
///
/// Everything promql-parser accepts is returned, supported or not; call
/// [`Expr::check_supported`] to learn at load time whether [`crate::evaluate`]
/// will handle it.
pub fn parse(expr: &str) -> Result<Expr, ParseError> {
    match parser::parse(expr) {
        Ok(ast) => Ok(Expr {
            ast,
            source: expr.to_owned(),
        }),
        Err(message) => {
            let position = locate(expr, &message).map(|o| Position::at(expr, o));
            Err(ParseError { message, position })
        }
    }
}

/// One label matcher of a selector.
#[derive(Debug, Clone)]
pub struct LabelMatcher {
    /// Label name (`__name__` for the metric name).
    pub name: String,
    /// The operator.
    pub op: MatchKind,
    /// The literal value or regex source as written.
    pub value: String,
    inner: PMatcher,
}

/// A label matcher operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (anchored regex)
    Regex,
    /// `!~` (anchored regex)
    NotRegex,
}

impl LabelMatcher {
    fn from_parser(m: &PMatcher) -> Self {
        let op = match m.op {
            MatchOp::Equal => MatchKind::Equal,
            MatchOp::NotEqual => MatchKind::NotEqual,
            MatchOp::Re(_) => MatchKind::Regex,
            MatchOp::NotRe(_) => MatchKind::NotRegex,
        };
        LabelMatcher {
            name: m.name.clone(),
            op,
            value: m.value.clone(),
            inner: m.clone(),
        }
    }

    /// Whether a label value (`""` when the label is absent) satisfies this matcher.
    pub fn matches(&self, value: &str) -> bool {
        self.inner.is_match(value)
    }
}

/// A series selector used by an expression.
#[derive(Debug, Clone)]
pub struct Selector {
    /// The metric name when fixed by `name{...}` or `{__name__="name"}`.
    pub metric_name: Option<String>,
    /// All matchers, the metric-name one included.
    pub matchers: Vec<LabelMatcher>,
}

impl Selector {
    pub(crate) fn from_vs(vs: &parser::VectorSelector) -> Self {
        let mut matchers: Vec<LabelMatcher> = Vec::new();
        if let Some(name) = &vs.name {
            let m = PMatcher::new(MatchOp::Equal, METRIC_NAME, name);
            matchers.push(LabelMatcher::from_parser(&m));
        }
        matchers.extend(vs.matchers.matchers.iter().map(LabelMatcher::from_parser));
        let metric_name = matchers
            .iter()
            .find(|m| m.name == METRIC_NAME && m.op == MatchKind::Equal)
            .map(|m| m.value.clone());
        Selector {
            metric_name,
            matchers,
        }
    }

    /// Whether the series with these labels is selected.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
    }
}

impl Expr {
    /// The expression text as given to [`parse`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// promql-parser's syntax tree.
    pub fn ast(&self) -> &Ast {
        &self.ast
    }

    /// The longest stretch of history before the evaluation time that any
    /// selector reads through its range and offset: `range + offset` for range
    /// selectors and `offset` for instant ones (negative offsets shorten it).
    /// Instant selectors also look back by the lookback delta; use
    /// [`Expr::required_history`] to size a store's retention.
    pub fn max_range(&self) -> Duration {
        self.required_history(Duration::ZERO)
    }

    /// `max_range` with instant selectors counted as reaching back `lookback`
    /// (Prometheus's lookback delta, 5 minutes by default).
    pub fn required_history(&self, lookback: Duration) -> Duration {
        let mut longest: i128 = 0;
        walk(&self.ast, &mut |node| {
            let reach = match node {
                Ast::VectorSelector(vs) => lookback.as_millis() as i128 + offset_ms(&vs.offset),
                Ast::MatrixSelector(ms) => ms.range.as_millis() as i128 + offset_ms(&ms.vs.offset),
                Ast::Subquery(sq) => sq.range.as_millis() as i128 + offset_ms(&sq.offset),
                _ => 0,
            };
            longest = longest.max(reach);
        });
        Duration::from_millis(longest.clamp(0, u64::MAX as i128) as u64)
    }

    /// Every selector in the expression, in source order.
    pub fn selectors(&self) -> Vec<Selector> {
        let mut out = Vec::new();
        walk(&self.ast, &mut |node| match node {
            Ast::VectorSelector(vs) => out.push(Selector::from_vs(vs)),
            Ast::MatrixSelector(ms) => out.push(Selector::from_vs(&ms.vs)),
            _ => {}
        });
        out
    }

    /// `Err` naming the first feature [`crate::evaluate`] does not implement.
    pub fn check_supported(&self) -> Result<(), ParseError> {
        let mut first: Option<(String, Option<String>)> = None;
        walk(&self.ast, &mut |node| {
            if first.is_none() {
                first = unsupported(node);
            }
        });
        if first.is_none()
            && !matches!(self.ast.value_type(), ValueType::Scalar | ValueType::Vector)
        {
            first = Some((
                format!(
                    "a {} result (rules must return a scalar or an instant vector)",
                    self.ast.value_type()
                ),
                None,
            ));
        }
        match first {
            None => Ok(()),
            Some((message, keyword)) => {
                let position = keyword
                    .and_then(|k| find_keyword(&self.source, &k))
                    .map(|o| Position::at(&self.source, o));
                Err(ParseError {
                    message: format!("unsupported: {message}"),
                    position,
                })
            }
        }
    }
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i128 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i128,
        Some(Offset::Neg(d)) => -(d.as_millis() as i128),
    }
}

/// Pre-order walk over every node.
fn walk(e: &Ast, f: &mut dyn FnMut(&Ast)) {
    f(e);
    match e {
        Ast::Aggregate(a) => {
            if let Some(p) = &a.param {
                walk(p, f);
            }
            walk(&a.expr, f);
        }
        Ast::Unary(u) => walk(&u.expr, f),
        Ast::Binary(b) => {
            walk(&b.lhs, f);
            walk(&b.rhs, f);
        }
        Ast::Paren(p) => walk(&p.expr, f),
        Ast::Subquery(s) => walk(&s.expr, f),
        Ast::Call(c) => c.args.args.iter().for_each(|a| walk(a, f)),
        Ast::NumberLiteral(_)
        | Ast::StringLiteral(_)
        | Ast::VectorSelector(_)
        | Ast::MatrixSelector(_)
        | Ast::Extension(_) => {}
    }
}

/// The reason `node` itself is unsupported, and a keyword to locate it by.
pub(crate) fn unsupported(node: &Ast) -> Option<(String, Option<String>)> {
    match node {
        Ast::Subquery(_) => Some(("subqueries".into(), Some(":".into()))),
        Ast::Extension(_) => Some(("extension expressions".into(), None)),
        Ast::Call(c) if !SUPPORTED_FUNCTIONS.contains(&c.func.name) => Some((
            format!("function {}()", c.func.name),
            Some(c.func.name.to_string()),
        )),
        Ast::Aggregate(a) => {
            let name = a.op.to_string();
            (!SUPPORTED_AGGREGATIONS.contains(&name.as_str()))
                .then(|| (format!("aggregation {name}"), Some(name)))
        }
        Ast::Binary(b) => {
            if b.op.id() == token::T_ATAN2 {
                return Some(("operator atan2".into(), Some("atan2".into())));
            }
            let m = b.modifier.as_ref()?;
            if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                return Some(("fill modifiers".into(), Some("fill".into())));
            }
            None
        }
        Ast::VectorSelector(vs) if !vs.matchers.or_matchers.is_empty() => {
            Some(("`or` inside a label matcher list".into(), None))
        }
        Ast::MatrixSelector(ms) if !ms.vs.matchers.or_matchers.is_empty() => {
            Some(("`or` inside a label matcher list".into(), None))
        }
        Ast::StringLiteral(_) => None,
        _ => None,
    }
}

/// Whether `m` is `on(...)` (as opposed to `ignoring(...)` or nothing).
pub(crate) fn matching_labels(m: Option<&LabelModifier>) -> (bool, Vec<String>) {
    match m {
        Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
        Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
        None => (false, Vec::new()),
    }
}

/// Byte offset of `word` in `src` outside string literals, as a whole word
/// (or, for `:`, inside `[...]`, where it marks a subquery).
fn find_keyword(src: &str, word: &str) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut quote: Option<u8> = None;
    let mut bracket = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == b'\\' {
                i += 1;
            } else if b == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match b {
            b'"' | b'\'' | b'`' => quote = Some(b),
            b'[' => bracket += 1,
            b']' => bracket = bracket.saturating_sub(1),
            _ => {}
        }
        if word == ":" {
            if b == b':' && bracket > 0 {
                return Some(i);
            }
        } else if src[i..].starts_with(word) {
            let ident = |c: u8| c == b'_' || c == b':' || c.is_ascii_alphanumeric();
            let before_ok = i == 0 || !ident(bytes[i - 1]);
            let after_ok = bytes.get(i + word.len()).is_none_or(|&c| !ident(c));
            if before_ok && after_ok {
                return Some(i);
            }
        }
        i += 1;
    }
    None
}
