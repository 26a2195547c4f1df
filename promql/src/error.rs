//! Error types: `ParseError` (with a source position) and `EvalError`.

use std::fmt;

/// A place in the rule expression text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Byte offset into the expression.
    pub offset: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `src` (clamped to its length).
    pub fn at(src: &str, offset: usize) -> Self {
        let mut offset = offset.min(src.len());
        while !src.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &src[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = src[line_start..offset].chars().count() + 1;
        Position {
            offset,
            line,
            column,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// An expression that does not parse, or uses a feature this evaluator lacks.
///
/// `message` is promql-parser's text (or ours for unsupported features).
/// promql-parser reports no positions, so `position` is located by this crate:
/// for a lexer error, the character at which every longer prefix of the input
/// keeps failing with the same message; for a grammar or type error, the first
/// token after the longest prefix that parses on its own; for an unsupported
/// feature, where its keyword first appears. It is `None` when that search
/// finds nothing (or the input is over 8 KiB, where it is not attempted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// What is wrong.
    pub message: String,
    /// Where, when it could be located.
    pub position: Option<Position>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.position {
            Some(p) => write!(f, "{} (at {p})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Why an evaluation produced no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The expression uses a PromQL feature this evaluator does not implement.
    #[error("unsupported PromQL feature: {0}")]
    Unsupported(String),
    /// Prometheus would fail this query too (e.g. many-to-many matching, or
    /// two result series with the same label set).
    #[error("{0}")]
    Query(String),
}
