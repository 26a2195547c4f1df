//! Config errors that point at a place: `file:line:column: message`, one per
//! line, all of them at once.

use std::fmt;

use super::Origin;

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text`.
    pub fn of(text: &str, offset: usize) -> Position {
        let offset = offset.min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// Where each line of a text starts, so that a position is found by binary
/// search: counting lines from the start for every check made loading a
/// config of n checks O(n²) (minutes at 100,000 checks).
#[derive(Debug, Clone)]
pub(super) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes `text`.
    pub(super) fn new(text: &str) -> LineIndex {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    /// The position of byte `offset` in `text`, the text this index was made
    /// from; the same answer as [`Position::of`].
    pub(super) fn position(&self, text: &str, offset: usize) -> Position {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let line = self.starts.partition_point(|&start| start <= offset);
        let line_start = self.starts[line - 1];
        Position {
            line,
            column: text[line_start..offset].chars().count() + 1,
        }
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// One problem with a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (or `<embedded default>`).
    pub file: String,
    /// Where in it, when known.
    pub position: Option<Position>,
    /// What is wrong, one line.
    pub message: String,
}

impl Diagnostic {
    /// A problem at a position.
    pub fn new(origin: &Origin, position: Position, message: String) -> Self {
        Diagnostic {
            file: origin.to_string(),
            position: Some(position),
            message,
        }
    }

    /// A problem with the file as a whole.
    pub fn whole_file(origin: &Origin, message: String) -> Self {
        Diagnostic {
            file: origin.to_string(),
            position: None,
            message,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{}:{}:{}: {}", self.file, p.line, p.column, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// A list of one.
    pub fn one(diagnostic: Diagnostic) -> Self {
        Diagnostics(vec![diagnostic])
    }

    /// Sorts by position so output reads top to bottom.
    pub fn sorted(mut self) -> Self {
        self.0
            .sort_by_key(|d| d.position.map(|p| (p.line, p.column)));
        self
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The key assigned on the line holding `offset`, if the line reads `key = ...`;
/// lets value errors name their key even when serde does not.
pub(super) fn key_at(text: &str, offset: usize) -> Option<&str> {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    valid.then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a = 1\nname = \"é\"\n";
        assert_eq!(Position::of(text, 0), Position { line: 1, column: 1 });
        assert_eq!(Position::of(text, 6), Position { line: 2, column: 1 });
        assert_eq!(
            Position::of(text, text.find('"').unwrap()),
            Position { line: 2, column: 8 }
        );
    }

    #[test]
    fn the_line_index_agrees_with_counting_at_every_offset() {
        let text = "a = 1\nname = \"é\"\n\n[check]\nx = \"ü\"";
        let index = LineIndex::new(text);
        for offset in 0..=text.len() + 2 {
            assert_eq!(
                index.position(text, offset),
                Position::of(text, offset),
                "offset {offset}"
            );
        }
    }

    #[test]
    fn finds_the_key_of_a_value() {
        let text = "[check]\ninterval = 10\n";
        assert_eq!(key_at(text, text.find("10").unwrap()), Some("interval"));
        assert_eq!(key_at(text, 1), None);
    }
}
