//! Log set-up: text on a terminal or journald, JSON lines on request; to
//! stderr, or to a rotated file; security events also to a file of their own.
//!
//! Under systemd (`JOURNAL_STREAM` set) text lines on stderr carry no
//! timestamp of their own: the journal stamps every line already. Files are
//! written by a background thread (tracing-appender's non-blocking writer),
//! so a slow disk never stalls a request; lines it has to drop are counted
//! (see `dropped`). The returned [`LogGuard`] flushes them at exit. Every
//! writer passes lines through the secret redactor.

use std::sync::atomic::{AtomicU32, Ordering};

use tracing::Level;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use super::dropped::{self, Reporter};
use super::json::JsonLayer;
use super::rolling::{LogFile, OpenError};
use crate::config::{DEFAULT_PROBE_SAMPLE, LogConfig, LogFormat};

/// The target of security events (authentication failures, admin actions,
/// reloads): they also go to `[log] security_file`.
pub const SECURITY_TARGET: &str = "warden::security";

/// One in this many successful probe requests is logged.
static PROBE_SAMPLE: AtomicU32 = AtomicU32::new(DEFAULT_PROBE_SAMPLE);

/// `[log] probe_sample` of the running daemon: 0 logs no successful probe,
/// 1 every one.
pub fn probe_sample() -> u32 {
    PROBE_SAMPLE.load(Ordering::Relaxed)
}

/// Keeps the file writers' threads alive; dropping it writes out every
/// line logged before. Hold it until the very end of the process.
#[derive(Debug)]
#[must_use = "dropping the guard stops file logging"]
pub struct LogGuard {
    // Fields drop in order: the reporter's last warning goes out before
    // the writers flush and stop.
    _reporter: Option<Reporter>,
    _workers: Vec<WorkerGuard>,
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the global subscriber. `RUST_LOG` overrides the configured
/// level. Fails only when a log file cannot be opened. Calling it again
/// installs nothing but still opens the files.
pub fn init(config: &LogConfig) -> Result<LogGuard, OpenError> {
    PROBE_SAMPLE.store(config.probe_sample, Ordering::Relaxed);
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

    let mut workers = Vec::new();
    let mut prune_failures = Vec::new();
    let mut open = |path: &std::path::Path| -> Result<BoxMakeWriter, OpenError> {
        let (file, failure) = LogFile::open(path, config.rotation, config.max_files)?;
        if let Some(error) = failure {
            prune_failures.push((path.to_owned(), error));
        }
        let (writer, guard) = NonBlockingBuilder::default()
            .lossy(true)
            .thread_name("warden-log")
            .finish(file);
        dropped::track(writer.error_counter());
        workers.push(guard);
        Ok(redacted(writer))
    };

    let main = match &config.file {
        Some(path) => layer(config.format, open(path)?, false, true),
        None => {
            // Colours only for a person at a terminal, never into journald.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let stamped = std::env::var_os("JOURNAL_STREAM").is_none();
            layer(
                config.format,
                redacted(std::io::stderr),
                ansi && stamped,
                stamped,
            )
        }
    };
    let mut layers: Vec<BoxedLayer> = vec![Box::new(main.with_filter(filter))];
    if let Some(path) = &config.security_file {
        // Security events are kept whatever the main level filter says.
        let security = tracing_subscriber::filter::filter_fn(|metadata| {
            is_security(metadata.target()) && *metadata.level() <= Level::INFO
        });
        let writer = open(path)?;
        layers.push(Box::new(
            layer(config.format, writer, false, true).with_filter(security),
        ));
    }
    let installed = tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .is_ok();
    for (path, error) in prune_failures {
        tracing::warn!(path = %path.display(), %error, "cannot prune old log files");
    }
    let reporter = (installed && !workers.is_empty()).then(Reporter::start);
    Ok(LogGuard {
        _reporter: reporter,
        _workers: workers,
    })
}

/// `writer`, with every line passing the secret redactor first: no known
/// secret reaches any log.
fn redacted<M>(writer: M) -> BoxMakeWriter
where
    M: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    BoxMakeWriter::new(crate::redact::Redactor::global().writer(writer))
}

/// Whether events of `target` belong in the security file.
fn is_security(target: &str) -> bool {
    target
        .strip_prefix(SECURITY_TARGET)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// A formatting layer writing to `writer`.
fn layer(format: LogFormat, writer: BoxMakeWriter, ansi: bool, stamped: bool) -> BoxedLayer {
    // Every line passes the redactor: no known secret reaches a log.
    let writer = BoxMakeWriter::new(crate::redact::Redactor::global().writer(writer));
    match format {
        LogFormat::Json => Box::new(JsonLayer::new(writer)),
        LogFormat::Text => {
            let text = tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(ansi);
            if stamped {
                Box::new(text)
            } else {
                Box::new(text.without_time())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_security_target_and_its_children_only() {
        assert!(is_security("warden::security"));
        assert!(is_security("warden::security::admin"));
        assert!(!is_security("warden::securityx"));
        assert!(!is_security("warden::http"));
        assert!(!is_security("warden"));
    }
}
