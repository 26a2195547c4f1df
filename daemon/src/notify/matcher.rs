//! Route matchers in PromQL/Alertmanager notation: `severity="critical"`,
//! `team=~"db|ops"`, `env!="dev"`, `instance!~"test-.*"`.
//!
//! Regular expressions are anchored at both ends, as in Prometheus and
//! Alertmanager, and a missing label reads as the empty string.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Comparison.
    pub op: MatchOp,
    /// The value or pattern as written.
    pub value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// Parses `name op "value"`; the message says what is wrong.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let text = text.trim();
        let name_end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        let name = &text[..name_end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!(
                "matcher {text:?} must start with a label name like `severity`"
            ));
        }
        let rest = text[name_end..].trim_start();
        let (op, rest) = [
            ("=~", MatchOp::Regex),
            ("!~", MatchOp::NotRegex),
            ("!=", MatchOp::NotEqual),
            ("=", MatchOp::Equal),
        ]
        .into_iter()
        .find_map(|(token, op)| rest.strip_prefix(token).map(|r| (op, r.trim_start())))
        .ok_or_else(|| {
            format!("matcher {text:?}: expected `=`, `!=`, `=~` or `!~` after `{name}`")
        })?;
        let value = unquote(rest).ok_or_else(|| {
            format!("matcher {text:?}: the value must be one double-quoted string")
        })?;
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                    format!(
                        "matcher {text:?}: invalid regular expression: {}",
                        brief(&e)
                    )
                })?)
            }
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name: name.to_owned(),
            op,
            value,
            regex,
        })
    }

    /// Whether `labels` satisfy this matcher.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let actual = labels.get(&self.name).map_or("", String::as_str);
        match (&self.op, &self.regex) {
            (MatchOp::Equal, _) => actual == self.value,
            (MatchOp::NotEqual, _) => actual != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(actual),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(actual),
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

/// The last line of a regex error ("unclosed group"): its full text spans
/// several lines, and config errors are one line each.
fn brief(error: &regex::Error) -> String {
    let text = error.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.trim().trim_start_matches("error: ").to_owned()
}

/// The content of a double-quoted string with `\"`, `\\`, `\n` and `\t`
/// escapes; `None` unless `text` is exactly one such string.
fn unquote(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other @ ('"' | '\\') => out.push(other),
                // Keep regex escapes such as `\.` as written.
                other => {
                    out.push('\\');
                    out.push(other);
                }
            },
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn each_operator_matches_as_in_prometheus() {
        let l = labels(&[("severity", "critical"), ("team", "db")]);
        assert!(
            Matcher::parse(r#"severity="critical""#)
                .unwrap()
                .matches(&l)
        );
        assert!(
            !Matcher::parse(r#"severity!="critical""#)
                .unwrap()
                .matches(&l)
        );
        assert!(Matcher::parse(r#"team=~"db|ops""#).unwrap().matches(&l));
        // Anchored: "d" alone does not match "db".
        assert!(!Matcher::parse(r#"team=~"d""#).unwrap().matches(&l));
        assert!(Matcher::parse(r#"team !~ "web.*""#).unwrap().matches(&l));
        // A missing label is the empty string.
        assert!(Matcher::parse(r#"env="""#).unwrap().matches(&l));
        assert!(!Matcher::parse(r#"env=~".+""#).unwrap().matches(&l));
    }

    #[test]
    fn unescapes_quotes_and_keeps_regex_escapes() {
        let m = Matcher::parse(r#"summary="say \"hi\"""#).unwrap();
        assert_eq!(m.value, "say \"hi\"");
        let m = Matcher::parse(r#"host=~"db\.example""#).unwrap();
        assert!(m.matches(&labels(&[("host", "db.example")])));
        assert!(!m.matches(&labels(&[("host", "dbxexample")])));
        assert_eq!(m.to_string(), r#"host=~"db\\.example""#);
    }

    #[test]
    fn refuses_malformed_matchers_with_a_reason() {
        for (text, reason) in [
            (r#"="x""#, "label name"),
            (r#"9a="x""#, "label name"),
            (r#"severity"#, "expected `=`"),
            (r#"severity=critical"#, "double-quoted"),
            (r#"severity="a" "b""#, "double-quoted"),
            (
                r#"team=~"(db""#,
                "invalid regular expression: unclosed group",
            ),
        ] {
            let error = Matcher::parse(text).unwrap_err();
            assert!(error.contains(reason), "{text}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }
}
