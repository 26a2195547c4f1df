//! Log set-up: text on a terminal or journald, JSON lines on request.
//!
//! Under systemd (`JOURNAL_STREAM` set) text lines carry no timestamp of
//! their own: the journal stamps every line already.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. `RUST_LOG` overrides the configured
/// level. Safe to call more than once; later calls do nothing.
pub fn init(config: &LogConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .or_else(|| {
            config
                .level
                .as_deref()
                .and_then(|spec| EnvFilter::try_new(spec).ok())
        })
        .unwrap_or_else(|| EnvFilter::new("info"));
    // Colours only for a person at a terminal, never into files or journald.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Every line passes the redactor: no known secret reaches the log.
        .with_writer(crate::redact::Redactor::global().writer(std::io::stderr))
        .with_ansi(ansi);
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let _ = match (config.format, under_journal) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Text, true) => builder.without_time().with_ansi(false).try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
}
