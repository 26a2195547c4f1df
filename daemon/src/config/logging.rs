//! `[log]`: the level filter, the format, optional log files with rotation,
//! and how many health-probe requests make it into the request log.
//!
//! Every value is checked while it is deserialized, so a bad one is reported
//! at its own line and column like every other config error.

use std::path::{Path, PathBuf};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// When a log file is rolled over to a new one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rotation {
    /// A new file every UTC day: `warden.2026-01-31.log`.
    #[default]
    Daily,
    /// A new file every UTC hour: `warden.2026-01-31-13.log`.
    Hourly,
    /// One file, exactly the configured path, never rotated or pruned.
    Never,
}

/// Log files kept per appender unless `max_files` says otherwise.
pub const DEFAULT_MAX_FILES: usize = 7;
/// One health-probe request in this many is logged unless configured.
pub const DEFAULT_PROBE_SAMPLE: u32 = 100;

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawLog")]
pub struct LogConfig {
    /// A tracing filter, e.g. `info` or `info,warden::http=debug`; `RUST_LOG`
    /// overrides it.
    pub level: Option<String>,
    /// Output format.
    pub format: LogFormat,
    /// Write the log here instead of stderr (the date goes before the
    /// extension when rotated).
    pub file: Option<PathBuf>,
    /// When `file` and `security_file` roll over.
    pub rotation: Rotation,
    /// Most files of each appender kept, the current one included.
    pub max_files: usize,
    /// Events of target `warden::security` also go to this file.
    pub security_file: Option<PathBuf>,
    /// Log one in this many successful `/livez`, `/readyz` and `/health`
    /// requests; 1 logs all, 0 none.
    pub probe_sample: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: None,
            format: LogFormat::Text,
            file: None,
            rotation: Rotation::Daily,
            max_files: DEFAULT_MAX_FILES,
            security_file: None,
            probe_sample: DEFAULT_PROBE_SAMPLE,
        }
    }
}

/// `[log]` as written, each value checked on its own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    #[serde(default, deserialize_with = "filter")]
    level: Option<String>,
    #[serde(default)]
    format: LogFormat,
    #[serde(default, deserialize_with = "log_file")]
    file: Option<PathBuf>,
    #[serde(default)]
    rotation: Rotation,
    #[serde(default = "default_max_files", deserialize_with = "max_files")]
    max_files: usize,
    #[serde(default, deserialize_with = "log_file")]
    security_file: Option<PathBuf>,
    #[serde(default = "default_probe_sample")]
    probe_sample: u32,
}

const fn default_max_files() -> usize {
    DEFAULT_MAX_FILES
}

const fn default_probe_sample() -> u32 {
    DEFAULT_PROBE_SAMPLE
}

impl TryFrom<RawLog> for LogConfig {
    type Error = String;

    fn try_from(raw: RawLog) -> Result<Self, String> {
        if raw.file.is_some() && raw.file == raw.security_file {
            // Two appenders on one file would interleave and prune each other.
            return Err("`security_file` must differ from `file`".to_owned());
        }
        Ok(LogConfig {
            level: raw.level,
            format: raw.format,
            file: raw.file,
            rotation: raw.rotation,
            max_files: raw.max_files,
            security_file: raw.security_file,
            probe_sample: raw.probe_sample,
        })
    }
}

fn filter<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let spec = String::deserialize(d)?;
    match tracing_subscriber::EnvFilter::builder().parse(&spec) {
        Ok(_) => Ok(Some(spec)),
        Err(error) => Err(D::Error::custom(format!(
            "`level`: not a tracing filter ({error}); write e.g. \"info,warden::http=debug\""
        ))),
    }
}

fn log_file<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let path = PathBuf::deserialize(d)?;
    if !names_a_file(&path) {
        return Err(D::Error::custom(format!(
            "must be the path of a file, got {:?}",
            path.display().to_string()
        )));
    }
    Ok(Some(path))
}

/// Whether `path` ends in a file name with something before its extension,
/// which becomes the rotated files' prefix.
fn names_a_file(path: &Path) -> bool {
    let text = path.as_os_str().as_encoded_bytes();
    !text.ends_with(b"/")
        && path
            .file_stem()
            .is_some_and(|stem| !stem.is_empty() && stem != "." && stem != "..")
        && path.file_name().is_some()
}

fn max_files<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = u32::deserialize(d)?;
    if n == 0 {
        return Err(D::Error::custom(
            "`max_files` must be at least 1 (the current file)",
        ));
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_paths_need_a_file_name() {
        assert!(names_a_file(Path::new("/var/log/warden/warden.log")));
        assert!(names_a_file(Path::new("warden")));
        assert!(!names_a_file(Path::new("/var/log/warden/")));
        assert!(!names_a_file(Path::new("")));
        assert!(!names_a_file(Path::new("/")));
        assert!(!names_a_file(Path::new("logs/..")));
    }
}
