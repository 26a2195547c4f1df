//! `Labels`: the sorted, immutable label set that identifies a series.

use std::fmt;
use std::sync::Arc;

/// The reserved label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// A sorted set of `(name, value)` pairs, `__name__` included.
///
/// Cloning is an `Arc` bump; hashing and comparison walk the pairs. Pairs are
/// sorted by name, names are unique, and pairs with an empty value are dropped
/// on construction because PromQL treats an empty value as an absent label.
/// The ordering (`Ord`) is Prometheus's `labels.Compare`: pairwise by name,
/// then value, shorter set first on a common prefix.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<[(Box<str>, Box<str>)]>);

impl Labels {
    /// Builds a label set. On a duplicate name the last value wins.
    pub fn new<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Self
    where
        N: Into<Box<str>>,
        V: Into<Box<str>>,
    {
        let mut v: Vec<(Box<str>, Box<str>)> = pairs
            .into_iter()
            .map(|(n, v)| (n.into(), v.into()))
            .collect();
        // Stable sort keeps insertion order among equal names, so the dedup
        // below can keep the last one.
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(Box<str>, Box<str>)> = Vec::with_capacity(v.len());
        for pair in v {
            match out.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => out.push(pair),
            }
        }
        out.retain(|(_, value)| !value.is_empty());
        Labels(out.into())
    }

    /// The empty label set.
    pub fn empty() -> Self {
        Labels(Arc::from(Vec::new()))
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .ok()
            .map(|i| &*self.0[i].1)
    }

    /// The metric name (`__name__`), if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Iterates `(name, value)` pairs in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.0.iter().map(|(n, v)| (&**n, &**v))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A copy without `__name__` (returns `self` cheaply when it has none).
    pub fn without_metric_name(&self) -> Self {
        self.without(&[METRIC_NAME])
    }

    /// A copy without the given names.
    pub fn without<S: AsRef<str>>(&self, names: &[S]) -> Self {
        if !self
            .iter()
            .any(|(n, _)| names.iter().any(|x| x.as_ref() == n))
        {
            return self.clone();
        }
        self.filtered(|n| !names.iter().any(|x| x.as_ref() == n))
    }

    /// A copy with only the given names.
    pub fn keep<S: AsRef<str>>(&self, names: &[S]) -> Self {
        self.filtered(|n| names.iter().any(|x| x.as_ref() == n))
    }

    /// A copy with `name` set to `value` (removed when `value` is empty).
    pub fn with(&self, name: &str, value: &str) -> Self {
        let mut pairs: Vec<(Box<str>, Box<str>)> = self
            .0
            .iter()
            .filter(|(n, _)| &**n != name)
            .cloned()
            .collect();
        pairs.push((name.into(), value.into()));
        Labels::new(pairs)
    }

    fn filtered(&self, mut keep: impl FnMut(&str) -> bool) -> Self {
        Labels(
            self.0
                .iter()
                .filter(|(n, _)| keep(n))
                .cloned()
                .collect::<Vec<_>>()
                .into(),
        )
    }

    /// Heap bytes owned by this set (the shared slice and its strings), for
    /// memory accounting. Counted in full even when the `Arc` is shared.
    pub fn heap_bytes(&self) -> usize {
        // Arc header: strong and weak counts.
        let header = 2 * std::mem::size_of::<usize>();
        let slots = self.0.len() * std::mem::size_of::<(Box<str>, Box<str>)>();
        let text: usize = self.0.iter().map(|(n, v)| n.len() + v.len()).sum();
        header + slots + text
    }
}

impl Default for Labels {
    fn default() -> Self {
        Labels::empty()
    }
}

/// Prometheus text form: `name{a="b", c="d"}`; `{}` when empty.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            f.write_str(name)?;
        }
        let rest: Vec<_> = self.iter().filter(|(n, _)| *n != METRIC_NAME).collect();
        if rest.is_empty() && self.metric_name().is_some() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, (n, v)) in rest.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}=\"")?;
            for c in v.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_dedups_and_drops_empty_values() {
        let l = Labels::new([("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![("a", "1"), ("b", "3")]);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn ordering_is_pairwise_then_length() {
        let a = Labels::new([("__name__", "x"), ("a", "1")]);
        let b = Labels::new([("__name__", "x"), ("a", "1"), ("b", "0")]);
        let c = Labels::new([("__name__", "x"), ("a", "2")]);
        assert!(a < b && b < c);
    }

    #[test]
    fn display_matches_prometheus_text_form() {
        let l = Labels::new([("__name__", "up"), ("job", "a\"b")]);
        assert_eq!(l.to_string(), r#"up{job="a\"b"}"#);
        assert_eq!(Labels::new([("__name__", "up")]).to_string(), "up");
        assert_eq!(Labels::empty().to_string(), "{}");
        assert_eq!(l.without_metric_name().to_string(), r#"{job="a\"b"}"#);
        assert_eq!(l.keep(&["job"]).len(), 1);
        assert_eq!(l.with("job", "").to_string(), "up");
    }
}
