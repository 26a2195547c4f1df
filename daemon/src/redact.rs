//! Redaction of secret values wherever text leaves the daemon: log lines,
//! HTTP answers, notifications and check messages.
//!
//! The daemon knows every secret it resolved (`Config.secrets`: the admin
//! token, `{ env = }` / `{ file = }` / `{ credential = }` values in check
//! configs, notifier URLs, keys and headers). Each occurrence of one of them
//! in outgoing text becomes `[redacted]`. Values shorter than
//! [`MIN_SUBSTRING_LEN`] are only redacted where a whole string equals them
//! (diagnostics), never as substrings: a 2-character secret would shred
//! unrelated text.
//!
//! The set only grows: after a reload the old values may still sit in check
//! history, the outbox or a log buffer, so they stay redacted too.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use tracing_subscriber::fmt::MakeWriter;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";
/// Shortest secret redacted as a substring of longer text.
pub const MIN_SUBSTRING_LEN: usize = 4;

/// The secret values to hide, with the forms they take when escaped.
#[derive(Default)]
struct Secrets {
    /// Every value as resolved, for whole-string matches.
    exact: BTreeSet<String>,
    /// Substrings to replace, longest first so a secret that contains
    /// another is replaced whole.
    patterns: Vec<String>,
}

impl Secrets {
    fn with(&self, values: &[String]) -> Option<Secrets> {
        let fresh: Vec<&String> = values
            .iter()
            .filter(|v| !v.is_empty() && !self.exact.contains(*v))
            .collect();
        if fresh.is_empty() {
            return None;
        }
        let mut exact = self.exact.clone();
        let mut patterns: BTreeSet<String> = self.patterns.iter().cloned().collect();
        for value in fresh {
            exact.insert(value.clone());
            patterns.extend(forms(value));
        }
        let mut patterns: Vec<String> = patterns.into_iter().collect();
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        Some(Secrets { exact, patterns })
    }
}

/// The forms a secret may take in output: as is, escaped inside JSON or a
/// Prometheus label (same escapes for `\`, `"` and newlines), and for URLs
/// the normalised form and the password, which is what HTTP clients print.
fn forms(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_owned()];
    let escaped = serde_json::to_string(value).expect("strings serialise");
    forms.push(escaped[1..escaped.len() - 1].to_owned());
    if let Ok(url) = url::Url::parse(value)
        && url.has_host()
    {
        forms.push(url.to_string());
        if let Some(password) = url.password() {
            forms.push(password.to_owned());
        }
        if let Some(query) = url.query() {
            forms.push(query.to_owned());
        }
    }
    forms.retain(|f| f.chars().count() >= MIN_SUBSTRING_LEN);
    forms
}

/// A shared, growing set of secret values and the functions that hide them.
/// Clones share the set.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Arc<Secrets>>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.current().exact.len())
            .finish()
    }
}

static GLOBAL: LazyLock<Redactor> = LazyLock::new(Redactor::default);

impl Redactor {
    /// The daemon's redactor: logs, HTTP, notifications and check results
    /// all use this one.
    pub fn global() -> &'static Redactor {
        &GLOBAL
    }

    fn current(&self) -> Arc<Secrets> {
        Arc::clone(&self.secrets.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Adds secret values (those already known are kept).
    pub fn add(&self, values: &[String]) {
        let mut slot = self.secrets.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(next) = slot.with(values) {
            *slot = Arc::new(next);
        }
    }

    /// `text` with every secret replaced by `[redacted]`.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let secrets = self.current();
        let mut out = Cow::Borrowed(text);
        for pattern in &secrets.patterns {
            if out.contains(pattern.as_str()) {
                out = Cow::Owned(out.replace(pattern.as_str(), REDACTED));
            }
        }
        out
    }

    /// Replaces `text` in place when it holds a secret.
    pub fn in_place(&self, text: &mut String) {
        if let Cow::Owned(redacted) = self.text(text) {
            *text = redacted;
        }
    }

    /// Bytes with every secret replaced; bytes that are not UTF-8 are
    /// redacted in their lossy form.
    pub fn bytes(&self, bytes: Vec<u8>) -> Vec<u8> {
        if self.current().patterns.is_empty() {
            return bytes;
        }
        match String::from_utf8(bytes) {
            Ok(mut text) => {
                self.in_place(&mut text);
                text.into_bytes()
            }
            Err(error) => {
                let lossy = String::from_utf8_lossy(error.as_bytes());
                self.text(&lossy).into_owned().into_bytes()
            }
        }
    }

    /// Every string in `value` that equals a secret (whatever its length)
    /// becomes `[redacted]`; longer strings lose the secrets they contain.
    pub fn json(&self, value: &mut serde_json::Value) {
        let secrets = self.current();
        self.json_with(&secrets, value);
    }

    fn json_with(&self, secrets: &Secrets, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) => {
                if secrets.exact.contains(text.as_str()) {
                    *text = REDACTED.to_owned();
                } else {
                    self.in_place(text);
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    self.json_with(secrets, item);
                }
            }
            serde_json::Value::Object(map) => {
                for item in map.values_mut() {
                    self.json_with(secrets, item);
                }
            }
            _ => {}
        }
    }

    /// Redacts an alert's labels and annotations before it is routed, so no
    /// notification carries a secret.
    pub fn alert(&self, alert: &mut crate::alerting::Alert) {
        for text in alert
            .labels
            .values_mut()
            .chain(alert.annotations.values_mut())
        {
            self.in_place(text);
        }
    }

    /// Wraps a log writer so every formatted line is redacted.
    pub fn writer<M>(&self, inner: M) -> RedactingMakeWriter<M> {
        RedactingMakeWriter {
            inner,
            redactor: self.clone(),
        }
    }
}

/// A [`MakeWriter`] whose writers redact each log event before passing it on.
#[derive(Debug)]
pub struct RedactingMakeWriter<M> {
    inner: M,
    redactor: Redactor,
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingMakeWriter<M> {
    type Writer = RedactingWriter<'a, M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter::new(self.inner.make_writer(), &self.redactor)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactingWriter::new(self.inner.make_writer_for(meta), &self.redactor)
    }
}

/// Buffers one log event and writes it redacted when flushed or dropped
/// (the formatter makes one writer per event).
#[derive(Debug)]
pub struct RedactingWriter<'a, W: Write> {
    inner: W,
    buffer: Vec<u8>,
    redactor: &'a Redactor,
}

impl<'a, W: Write> RedactingWriter<'a, W> {
    fn new(inner: W, redactor: &'a Redactor) -> Self {
        RedactingWriter {
            inner,
            buffer: Vec::new(),
            redactor,
        }
    }

    fn emit(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let line = self.redactor.bytes(std::mem::take(&mut self.buffer));
        self.inner.write_all(&line)
    }
}

impl<W: Write> Write for RedactingWriter<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.emit()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingWriter<'_, W> {
    fn drop(&mut self) {
        // A log line that cannot be written has nowhere else to go.
        let _ = self.emit();
        let _ = self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(values: &[&str]) -> Redactor {
        let redactor = Redactor::default();
        redactor.add(&values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>());
        redactor
    }

    #[test]
    fn replaces_every_occurrence_longest_first() {
        let r = redactor(&["hunter2", "hunter2-and-more"]);
        assert_eq!(
            r.text("a hunter2-and-more b hunter2 c"),
            "a [redacted] b [redacted] c"
        );
        assert!(matches!(r.text("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn short_secrets_only_match_whole_strings() {
        let r = redactor(&["abc"]);
        assert_eq!(r.text("abcdef"), "abcdef");
        let mut value = serde_json::json!({"token": "abc", "note": "abcdef"});
        r.json(&mut value);
        assert_eq!(
            value,
            serde_json::json!({"token": "[redacted]", "note": "abcdef"})
        );
    }

    #[test]
    fn escaped_forms_are_redacted_too() {
        let r = redactor(&["pa\"ss\\word"]);
        let body = serde_json::to_string(&serde_json::json!({"m": "x pa\"ss\\word y"})).unwrap();
        assert_eq!(r.text(&body), r#"{"m":"x [redacted] y"}"#);
    }

    #[test]
    fn urls_lose_their_normalised_form_and_password() {
        let r = redactor(&["http://user:s3cr3t-pw@127.0.0.1:9/hook?key=abcdef"]);
        assert_eq!(r.text("password s3cr3t-pw"), "password [redacted]");
        assert_eq!(r.text("q key=abcdef"), "q [redacted]");
    }

    #[test]
    fn the_set_grows_and_is_shared_by_clones() {
        let r = redactor(&["first-secret"]);
        let clone = r.clone();
        r.add(&["second-secret".to_owned()]);
        assert_eq!(
            clone.text("first-secret second-secret"),
            "[redacted] [redacted]"
        );
        assert!(!format!("{r:?}").contains("first"));
    }

    #[test]
    fn writer_redacts_whole_events() {
        let r = redactor(&["hunter2"]);
        let mut out = Vec::new();
        {
            let mut writer = RedactingWriter::new(&mut out, &r);
            writer.write_all(b"login with hun").unwrap();
            writer.write_all(b"ter2 failed\n").unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "login with [redacted] failed\n"
        );
    }
}
