//! Keeps the password out of everything the plugin shows: messages, metric
//! labels and config errors, even when a server error echoes it back.

use warden_plugin_api::CheckResult;

/// What replaces a secret in text.
const MASK: &str = "***";

/// The strings that must never be shown, longest first so a secret that
/// contains another is masked whole.
#[derive(Default, Clone)]
pub(crate) struct Secrets(Vec<String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} hidden)", self.0.len())
    }
}

impl Secrets {
    /// Adds a secret; empty strings are ignored.
    pub(crate) fn add(&mut self, secret: &str) {
        if !secret.is_empty() && !self.0.iter().any(|s| s == secret) {
            self.0.push(secret.to_owned());
            self.0.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `text` with every secret replaced by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        self.0.iter().fold(text.to_owned(), |acc, secret| {
            acc.replace(secret.as_str(), MASK)
        })
    }

    /// The result with its message and metric labels scrubbed.
    pub(crate) fn scrub_result(&self, mut result: CheckResult) -> CheckResult {
        if self.0.is_empty() {
            return result;
        }
        result.message = self.scrub(&result.message);
        for metric in &mut result.metrics {
            for value in metric.labels.values_mut() {
                *value = self.scrub(value);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_longest_first() {
        let mut secrets = Secrets::default();
        secrets.add("pw");
        secrets.add("pw%21");
        secrets.add("");
        assert_eq!(secrets.scrub("x pw%21 y pw z"), "x *** y *** z");
        assert_eq!(format!("{secrets:?}"), "Secrets(2 hidden)");
    }
}
