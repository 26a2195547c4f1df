//! `[alerting]`, `[[rule]]` and `rule_files`: alert rules read from the main
//! config and from TOML files of `[[rule]]` tables, validated at load.
//!
//! Every rule's `expr` is parsed by warden-promql and vetted for features the
//! evaluator lacks, and its annotations are compiled as templates, so a rule
//! that loads is a rule that evaluates. Errors point at the file, line and
//! column of the culprit; a PromQL error points into the `expr` string itself
//! when the string is written without escapes.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::template;
use crate::config::{ConfigDuration, Diagnostic, Origin, Position};

/// Default time between two rule evaluations.
pub const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(5);
/// Default limit on series kept for rule evaluation.
pub const DEFAULT_MAX_SERIES: usize = 10_000;
/// Severity of a rule that names none.
pub const DEFAULT_SEVERITY: &str = "warning";

/// `[alerting]` plus every rule, from the main file and rule files.
#[derive(Debug, Clone)]
pub struct AlertingConfig {
    /// Time between two evaluations of all rules.
    pub evaluation_interval: Duration,
    /// Most series the rule engine keeps; samples of further series are dropped.
    pub max_series: usize,
    /// Every rule, main file first, then rule files in pattern and name order.
    pub rules: Vec<RuleConfig>,
    /// `rule_files` patterns with where each was written.
    rule_files: Vec<(String, Position)>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            evaluation_interval: DEFAULT_EVALUATION_INTERVAL,
            max_series: DEFAULT_MAX_SERIES,
            rules: Vec::new(),
            rule_files: Vec::new(),
        }
    }
}

/// One validated `[[rule]]`.
#[derive(Debug, Clone)]
pub struct RuleConfig {
    /// Unique name; the `alertname` label.
    pub name: String,
    /// The parsed, supported expression.
    pub expr: warden_promql::Expr,
    /// How long the expression must hold before the alert fires.
    pub for_: Duration,
    /// How long a firing alert keeps firing after the expression stops holding.
    pub keep_firing_for: Duration,
    /// The `severity` label.
    pub severity: String,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
    /// Annotation templates (minijinja source), checked to compile.
    pub annotations: BTreeMap<String, String>,
    /// The file it was read from.
    pub origin: Origin,
    /// Where its `name` is.
    pub position: Position,
    /// Where its `expr` string starts.
    pub expr_position: Position,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerting {
    #[serde(default)]
    evaluation_interval: Option<Spanned<ConfigDuration>>,
    #[serde(default)]
    max_series: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    expr: Spanned<String>,
    #[serde(default, rename = "for")]
    for_: Option<ConfigDuration>,
    #[serde(default)]
    keep_firing_for: Option<ConfigDuration>,
    #[serde(default)]
    severity: Option<Spanned<String>>,
    #[serde(default)]
    labels: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    annotations: BTreeMap<String, Spanned<String>>,
}

/// One TOML document being read: its text and name, for positions.
struct Source<'a> {
    text: &'a str,
    origin: &'a Origin,
}

impl Source<'_> {
    fn position(&self, offset: usize) -> Position {
        Position::of(self.text, offset)
    }

    fn error(&self, span: Range<usize>, message: String) -> Diagnostic {
        Diagnostic::new(self.origin, self.position(span.start), message)
    }

    fn toml_error(&self, error: &toml::de::Error) -> Diagnostic {
        let span = error.span().unwrap_or(0..0);
        let mut message = error.message().trim().replace('\n', "; ");
        if let Some(key) = key_on_line(self.text, span.start)
            && !message.contains(&format!("`{key}`"))
        {
            message = format!("`{key}`: {message}");
        }
        self.error(span, message)
    }

    fn deserialize<T: for<'de> Deserialize<'de>>(
        &self,
        value: Spanned<DeValue<'_>>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<T> {
        T::deserialize(ValueDeserializer::from(value))
            .map_err(|e| diagnostics.push(self.toml_error(&e)))
            .ok()
    }
}

/// The key assigned on the line holding `offset` (`key = ...`), so value
/// errors can name their key even when serde does not.
fn key_on_line(text: &str, offset: usize) -> Option<&str> {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = text[start..].lines().next()?.split_once('=')?;
    let key = key.trim();
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    valid.then_some(key)
}

impl AlertingConfig {
    /// Reads one top-level key of the main config that belongs to alerting
    /// (`alerting`, `rule` or `rule_files`).
    pub fn read_key(
        &mut self,
        key: &str,
        value: Spanned<DeValue<'_>>,
        text: &str,
        origin: &Origin,
        diagnostics: &mut Vec<Diagnostic>,
    ) {
        let source = Source { text, origin };
        match key {
            "alerting" => self.read_settings(value, &source, diagnostics),
            "rule" => read_rules(value, &source, diagnostics, &mut self.rules),
            _ => {
                let span = value.span();
                let patterns: Option<Vec<Spanned<String>>> = source.deserialize(value, diagnostics);
                let Some(patterns) = patterns else { return };
                if patterns.is_empty() {
                    diagnostics.push(source.error(span, "`rule_files` is empty".to_owned()));
                }
                for pattern in patterns {
                    let position = source.position(pattern.span().start);
                    self.rule_files.push((pattern.into_inner(), position));
                }
            }
        }
    }

    fn read_settings(
        &mut self,
        value: Spanned<DeValue<'_>>,
        source: &Source<'_>,
        diagnostics: &mut Vec<Diagnostic>,
    ) {
        let Some(raw) = source.deserialize::<RawAlerting>(value, diagnostics) else {
            return;
        };
        if let Some(interval) = raw.evaluation_interval {
            if interval.get_ref().get() < Duration::from_millis(100) {
                diagnostics.push(source.error(
                    interval.span(),
                    "`alerting.evaluation_interval` must be at least 100ms".to_owned(),
                ));
            } else {
                self.evaluation_interval = interval.get_ref().get();
            }
        }
        if let Some(max) = raw.max_series {
            if *max.get_ref() == 0 {
                diagnostics.push(source.error(
                    max.span(),
                    "`alerting.max_series` must be at least 1".to_owned(),
                ));
            } else {
                self.max_series = *max.get_ref();
            }
        }
    }

    /// Reads the rule files named by `rule_files` (patterns relative to the
    /// main config's directory) and checks rule names are unique.
    pub fn finish(&mut self, origin: &Origin, diagnostics: &mut Vec<Diagnostic>) {
        let base = match origin {
            Origin::File(path) => path.parent().map(Path::to_owned).unwrap_or_default(),
            Origin::Embedded => PathBuf::from("."),
        };
        for (pattern, position) in std::mem::take(&mut self.rule_files) {
            let files = match expand_pattern(&base, &pattern) {
                Ok(files) => files,
                Err(message) => {
                    diagnostics.push(Diagnostic::new(
                        origin,
                        position,
                        format!("`rule_files`: {message}"),
                    ));
                    continue;
                }
            };
            for file in files {
                let file_origin = Origin::File(file.clone());
                match std::fs::read_to_string(&file) {
                    Ok(text) => read_rule_file(&text, &file_origin, diagnostics, &mut self.rules),
                    Err(e) => diagnostics.push(Diagnostic::new(
                        origin,
                        position,
                        format!("`rule_files`: cannot read {}: {e}", file.display()),
                    )),
                }
            }
        }
        let mut seen: BTreeMap<&str, (&Origin, Position)> = BTreeMap::new();
        for rule in &self.rules {
            if let Some((file, first)) = seen.insert(&rule.name, (&rule.origin, rule.position)) {
                diagnostics.push(Diagnostic::new(
                    &rule.origin,
                    rule.position,
                    format!(
                        "rule {:?} is defined twice (first at {file}:{}:{})",
                        rule.name, first.line, first.column
                    ),
                ));
            }
        }
    }
}

/// Reads one rule file: only `[[rule]]` tables are allowed in it.
pub fn read_rule_file(
    text: &str,
    origin: &Origin,
    diagnostics: &mut Vec<Diagnostic>,
    rules: &mut Vec<RuleConfig>,
) {
    let source = Source { text, origin };
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        diagnostics.extend(syntax_errors.iter().map(|e| source.toml_error(e)));
        return;
    }
    for (key, value) in root.into_inner() {
        if key.get_ref().as_ref() == "rule" {
            read_rules(value, &source, diagnostics, rules);
        } else {
            diagnostics.push(source.error(
                key.span(),
                format!(
                    "unknown section `{}`: a rule file holds only [[rule]] tables",
                    key.get_ref()
                ),
            ));
        }
    }
}

fn read_rules(
    value: Spanned<DeValue<'_>>,
    source: &Source<'_>,
    diagnostics: &mut Vec<Diagnostic>,
    rules: &mut Vec<RuleConfig>,
) {
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        diagnostics.push(source.error(
            span,
            "`rule` must be an array of tables: write [[rule]]".to_owned(),
        ));
        return;
    };
    for item in items {
        if let Some(raw) = source.deserialize::<RawRule>(item, diagnostics)
            && let Some(rule) = validate(raw, source, diagnostics)
        {
            rules.push(rule);
        }
    }
}

/// A Prometheus metric name, which alert names must be.
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A Prometheus label name not reserved for internal use.
pub(crate) fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

fn validate(
    raw: RawRule,
    source: &Source<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<RuleConfig> {
    let before = diagnostics.len();
    let name = raw.name.get_ref().clone();
    let label = format!("rule {name:?}");
    if !is_metric_name(&name) {
        diagnostics.push(source.error(
            raw.name.span(),
            format!(
                "{label}: `name` must be letters, digits, '_' or ':', not starting with a digit"
            ),
        ));
    }
    let expr = match parse_expr(raw.expr.get_ref()) {
        Ok(expr) => Some(expr),
        Err((message, offset)) => {
            let at = offset
                .and_then(|o| {
                    string_content_offset(source.text, raw.expr.span(), raw.expr.get_ref(), o)
                })
                .unwrap_or(raw.expr.span().start);
            diagnostics.push(source.error(at..at, format!("{label}: `expr`: {message}")));
            None
        }
    };
    let severity = match &raw.severity {
        Some(s) if s.get_ref().trim().is_empty() => {
            diagnostics.push(source.error(s.span(), format!("{label}: `severity` is empty")));
            String::new()
        }
        Some(s) => s.get_ref().clone(),
        None => DEFAULT_SEVERITY.to_owned(),
    };
    let mut labels = BTreeMap::new();
    for (key, value) in &raw.labels {
        let problem = if key == "alertname" || key == "severity" {
            Some(format!(
                "set `{key}` with the rule's `name`/`severity` keys"
            ))
        } else if !is_label_name(key) {
            Some(
                "a label name is letters, digits and '_', not starting with a digit or \"__\""
                    .to_owned(),
            )
        } else if value.get_ref().is_empty() {
            Some("an empty value would remove the label".to_owned())
        } else {
            None
        };
        match problem {
            Some(problem) => diagnostics
                .push(source.error(value.span(), format!("{label}: label `{key}`: {problem}"))),
            None => {
                labels.insert(key.clone(), value.get_ref().clone());
            }
        }
    }
    let mut annotations = BTreeMap::new();
    for (key, value) in &raw.annotations {
        if !is_label_name(key) {
            diagnostics.push(source.error(
                value.span(),
                format!("{label}: annotation `{key}`: the name must be letters, digits and '_'"),
            ));
        } else if let Err(error) = template::check(value.get_ref()) {
            diagnostics.push(source.error(
                value.span(),
                format!("{label}: annotation `{key}`: template error: {error}"),
            ));
        } else {
            annotations.insert(key.clone(), value.get_ref().clone());
        }
    }
    if diagnostics.len() != before {
        return None;
    }
    Some(RuleConfig {
        name,
        expr: expr?,
        for_: raw.for_.unwrap_or_default().get(),
        keep_firing_for: raw.keep_firing_for.unwrap_or_default().get(),
        severity,
        labels,
        annotations,
        origin: source.origin.clone(),
        position: source.position(raw.name.span().start),
        expr_position: source.position(raw.expr.span().start),
    })
}

/// Parses and vets an expression; the error's byte offset is into `expr`.
fn parse_expr(expr: &str) -> Result<warden_promql::Expr, (String, Option<usize>)> {
    let parsed = warden_promql::parse(expr)
        .map_err(|e| (e.message.clone(), e.position.map(|p| p.offset)))?;
    parsed
        .check_supported()
        .map_err(|e| (e.message.clone(), e.position.map(|p| p.offset)))?;
    Ok(parsed)
}

/// The byte offset in `text` of byte `offset` of a string value, when the
/// string's source (at `span`) holds the value verbatim: a literal string or
/// a basic one without escapes.
fn string_content_offset(
    text: &str,
    span: Range<usize>,
    value: &str,
    offset: usize,
) -> Option<usize> {
    let raw = text.get(span.clone())?;
    let quote = if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
        3
    } else {
        1
    };
    let mut start = span.start + quote;
    let mut inner = raw.get(quote..raw.len().checked_sub(quote)?)?;
    // A newline right after a multi-line opening delimiter is not part of the value.
    if quote == 3 {
        for newline in ["\r\n", "\n"] {
            if let Some(rest) = inner.strip_prefix(newline) {
                start += newline.len();
                inner = rest;
                break;
            }
        }
    }
    (inner == value).then_some(start + offset.min(value.len()))
}

/// Files matching `pattern` (relative to `base` unless absolute). Wildcards
/// `*` and `?` are allowed in the file name only; a pattern without them
/// names a file that must exist.
pub(super) fn expand_pattern(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = base.join(pattern);
    let dir = full.parent().map(Path::to_owned).unwrap_or_default();
    let name = full
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{pattern:?} names no file"))?;
    if dir.to_string_lossy().contains(['*', '?', '[']) {
        return Err(format!(
            "{pattern:?}: wildcards are allowed in the file name only"
        ));
    }
    if !name.contains(['*', '?']) {
        return if full.is_file() {
            Ok(vec![full])
        } else {
            Err(format!("{} does not exist", full.display()))
        };
    }
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut files: BTreeSet<PathBuf> = BTreeSet::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        if let Some(file_name) = file_name.to_str()
            && wildcard_match(name.as_bytes(), file_name.as_bytes())
            && entry.path().is_file()
        {
            files.insert(entry.path());
        }
    }
    Ok(files.into_iter().collect())
}

/// `*` matches any run of bytes, `?` one byte; hidden files only match a
/// pattern that starts with a dot.
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match backtrack {
                Some((bp, bn)) => {
                    p = bp + 1;
                    n = bn + 1;
                    backtrack = Some((bp, bn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests;
