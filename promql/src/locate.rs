//! Finds where a parse error is, since promql-parser reports only a message.

use promql_parser::parser::{lex, parse};

/// Inputs longer than this are not searched (the search re-parses prefixes).
const MAX_SEARCH_LEN: usize = 8 * 1024;

/// Byte offset of the error in `src`, given the message `parse(src)` returned.
pub(crate) fn locate(src: &str, message: &str) -> Option<usize> {
    if src.len() > MAX_SEARCH_LEN || src.trim().is_empty() {
        return None;
    }
    match lex::lexer(src) {
        Err(lex_msg) => locate_lex_error(src, &lex_msg),
        Ok(_) => locate_grammar_error(src, message),
    }
}

/// The lexer stops at its first error, so once a prefix includes the bad
/// character every longer prefix fails the same way; errors about an unclosed
/// bracket hold only from the last opener on. Walk back from the full input
/// while the message stays the same; the character that started the run is it.
fn locate_lex_error(src: &str, message: &str) -> Option<usize> {
    let ends: Vec<usize> = src.char_indices().map(|(i, c)| i + c.len_utf8()).collect();
    let mut start = None;
    for &end in ends.iter().rev() {
        match lex::lexer(&src[..end]) {
            Err(m) if m == message => start = Some(end),
            _ => break,
        }
    }
    let end = start?;
    src[..end].char_indices().last().map(|(i, _)| i)
}

/// The first non-blank character after the longest prefix that parses as a
/// whole expression: the parser accepted everything before it.
fn locate_grammar_error(src: &str, _message: &str) -> Option<usize> {
    let mut best = None;
    for (i, c) in src.char_indices() {
        let end = i + c.len_utf8();
        if end < src.len() && !c.is_whitespace() && parse(&src[..end]).is_ok() {
            best = Some(end);
        }
    }
    let after = best.unwrap_or(0);
    let rest = &src[after..];
    let skip = rest.len() - rest.trim_start().len();
    Some(after + skip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(src: &str) -> Option<usize> {
        let msg = parse(src).expect_err("must fail");
        locate(src, &msg)
    }

    #[test]
    fn points_at_the_offending_token() {
        assert_eq!(at("foo bar"), Some(4));
        assert_eq!(at("1 > 2"), Some(2));
        assert_eq!(at("rate(x[5m]) group_left y"), Some(12));
        assert_eq!(at("foo $"), Some(4));
        assert_eq!(at("sum(rate(x[5m])) by ("), Some(20));
        assert_eq!(at("* 2"), Some(0));
    }
}
