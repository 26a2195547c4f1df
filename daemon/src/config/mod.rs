//! Configuration: TOML as written in DESIGN.md, parsed into plain data and
//! validated in a second pass that reports every problem at once, each with
//! its file, line and column.
//!
//! Sections are deserialized one by one (each `[[check]]` on its own) from a
//! span-carrying parse of the document, so one bad table does not hide the
//! errors of the next.

mod diagnostic;
mod duration;
mod logging;
mod notify;
mod secret;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

pub use diagnostic::{Diagnostic, Diagnostics, Position};
pub use duration::ConfigDuration;
pub use logging::{DEFAULT_MAX_FILES, DEFAULT_PROBE_SAMPLE, LogConfig, LogFormat, Rotation};
pub use notify::{NotifierConfig, NotifierKind, NotifyConfig, RouteConfig};
pub use secret::Secret;

/// The configuration used when none is given: the system check and HTTP on
/// the default loopback address.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../config/default.toml");

/// Where a config came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Compiled into the binary.
    Embedded,
    /// Read from this path.
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Embedded => f.write_str("<embedded default>"),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from.
    pub origin: Origin,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[plugins]`.
    pub plugins: PluginsConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[state]`.
    pub state: StateConfig,
    /// `[[check]]`, in file order.
    pub checks: Vec<CheckConfig>,
    /// `[alerting]`, `[[rule]]` and the rules of `rule_files`.
    pub alerting: crate::alerting::AlertingConfig,
    /// `[[notifier]]`, in file order.
    pub notifiers: Vec<NotifierConfig>,
    /// `[[route]]`, in file order.
    pub routes: Vec<RouteConfig>,
    /// `[notify]`.
    pub notify: NotifyConfig,
    /// Every secret value resolved while loading, for redaction.
    pub secrets: Vec<String>,
}

/// `[server]`: the HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Bearer token for admin endpoints; they answer 404 without one.
    #[serde(default)]
    pub admin_token: Option<Secret>,
    /// HTTP status of `/health` while degraded.
    #[serde(default = "default_degraded_status")]
    pub degraded_status: u16,
}

/// The documented default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9731";

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("valid default address")
}

const fn default_degraded_status() -> u16 {
    200
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            admin_token: None,
            degraded_status: default_degraded_status(),
        }
    }
}

/// `[plugins]`: where plugin libraries are found.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Directories searched for plugin libraries, in order.
    #[serde(default, deserialize_with = "one_or_many")]
    pub dir: Vec<PathBuf>,
    /// Whether the directory holding the `warden` executable is searched too.
    #[serde(default = "yes")]
    pub beside_executable: bool,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: Vec::new(),
            beside_executable: true,
        }
    }
}

const fn yes() -> bool {
    true
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(path) => vec![path],
        OneOrMany::Many(paths) => paths,
    })
}

/// `[state]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Directory for alert state, the notification outbox and check history.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// How a check's plugin is run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// Called in the daemon's own process.
    #[default]
    InProcess,
    /// Called in a child `warden` process.
    Process,
}

/// One `[[check]]`.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// Unique name.
    pub name: String,
    /// Name of the plugin that runs it.
    pub plugin: String,
    /// Time between the starts of two runs.
    pub interval: ConfigDuration,
    /// Deadline of one run.
    pub timeout: ConfigDuration,
    /// Failing makes the host unhealthy (true) or only degraded (false).
    pub critical: bool,
    /// Consecutive failures before the check counts as failing.
    pub fall: u32,
    /// Consecutive successes before it counts as passing again.
    pub rise: u32,
    /// Number of intervals after which a result counts as `unknown`.
    pub stale_after: u32,
    /// How the plugin is run.
    pub isolation: Isolation,
    /// The plugin's own section, secrets resolved, as JSON.
    pub config: serde_json::Value,
    /// Where the check's `plugin` key is, for plugin-related errors.
    pub plugin_position: Position,
    /// Where its `[check.config]` is (or the check itself when absent).
    pub config_position: Position,
}

/// The raw shape of `[[check]]` before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: Spanned<String>,
    plugin: Spanned<String>,
    #[serde(default)]
    interval: Option<Spanned<ConfigDuration>>,
    #[serde(default)]
    timeout: Option<Spanned<ConfigDuration>>,
    #[serde(default = "yes")]
    critical: bool,
    #[serde(default)]
    fall: Option<Spanned<u32>>,
    #[serde(default)]
    rise: Option<Spanned<u32>>,
    #[serde(default)]
    stale_after: Option<Spanned<u32>>,
    #[serde(default)]
    isolation: Isolation,
    #[serde(default)]
    config: Option<Spanned<toml::Value>>,
}

const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const DEFAULT_STALE_AFTER: u32 = 3;
/// Shorter intervals only burn CPU: no check result means anything at that rate.
const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

impl Config {
    /// Loads the config at `path`, or the embedded default when `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, Diagnostics> {
        match path {
            None => Config::parse(EMBEDDED_DEFAULT, Origin::Embedded),
            Some(path) => {
                let origin = Origin::File(path.to_owned());
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Diagnostics::one(Diagnostic::whole_file(
                        &origin,
                        format!("cannot read config: {e}"),
                    ))
                })?;
                Config::parse(&text, origin)
            }
        }
    }

    /// Parses and validates config text.
    pub fn parse(text: &str, origin: Origin) -> Result<Config, Diagnostics> {
        match Config::parse_partial(text, origin) {
            (Some(config), errors) if errors.0.is_empty() => Ok(config),
            (_, errors) => Err(errors),
        }
    }

    /// Like [`Config::load`], but keeps what is valid next to the errors, so
    /// `check-config` can go on to validate the sound checks' plugin sections
    /// and report everything in one pass. `None` when the file could not be
    /// read or parsed at all.
    pub fn load_partial(path: Option<&Path>) -> (Option<Config>, Diagnostics) {
        match path {
            None => Config::parse_partial(EMBEDDED_DEFAULT, Origin::Embedded),
            Some(path) => {
                let origin = Origin::File(path.to_owned());
                match std::fs::read_to_string(path) {
                    Ok(text) => Config::parse_partial(&text, origin),
                    Err(e) => (
                        None,
                        Diagnostics::one(Diagnostic::whole_file(
                            &origin,
                            format!("cannot read config: {e}"),
                        )),
                    ),
                }
            }
        }
    }

    /// Parses config text, returning the valid part and every error.
    pub fn parse_partial(text: &str, origin: Origin) -> (Option<Config>, Diagnostics) {
        let mut cx = Loader {
            text,
            lines: diagnostic::LineIndex::new(text),
            origin: &origin,
            diagnostics: Vec::new(),
        };
        let (root, syntax_errors) = DeTable::parse_recoverable(text);
        for error in syntax_errors {
            cx.toml_error(&error);
        }
        if !cx.diagnostics.is_empty() {
            return (None, Diagnostics(cx.diagnostics).sorted());
        }

        let mut config = Config {
            origin: origin.clone(),
            server: ServerConfig::default(),
            plugins: PluginsConfig::default(),
            log: LogConfig::default(),
            state: StateConfig::default(),
            checks: Vec::new(),
            alerting: crate::alerting::AlertingConfig::default(),
            secrets: Vec::new(),
            notifiers: Vec::new(),
            routes: Vec::new(),
            notify: NotifyConfig::default(),
        };
        for (key, value) in root.into_inner() {
            let span = key.span();
            match key.get_ref().as_ref() {
                "server" => cx.section(value, &mut config.server),
                "plugins" => cx.section(value, &mut config.plugins),
                "log" => cx.section(value, &mut config.log),
                "state" => cx.section(value, &mut config.state),
                "check" => cx.checks(value, &mut config),
                key @ ("alerting" | "rule" | "rule_files") => {
                    let (text, origin) = (cx.text, cx.origin);
                    config
                        .alerting
                        .read_key(key, value, text, origin, &mut cx.diagnostics);
                }
                "notifier" => cx.notifiers(value, &mut config),
                "route" => cx.routes(value, &mut config),
                "notify" => cx.notify(value, &mut config),
                other => cx.error(span, format!("unknown section `{other}`")),
            }
        }
        if let Some(token) = &config.server.admin_token {
            config.secrets.push(token.expose().to_owned());
        }
        config.alerting.finish(&origin, &mut cx.diagnostics);
        cx.validate(&config);
        cx.validate_routes(&config);
        (Some(config), Diagnostics(cx.diagnostics).sorted())
    }

    /// The check named `name`.
    pub fn check(&self, name: &str) -> Option<&CheckConfig> {
        self.checks.iter().find(|c| c.name == name)
    }
}

struct Loader<'a> {
    text: &'a str,
    lines: diagnostic::LineIndex,
    origin: &'a Origin,
    diagnostics: Vec<Diagnostic>,
}

impl Loader<'_> {
    fn position(&self, offset: usize) -> Position {
        self.lines.position(self.text, offset)
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let position = self.position(span.start);
        self.diagnostics
            .push(Diagnostic::new(self.origin, position, message.into()));
    }

    fn toml_error(&mut self, error: &toml::de::Error) {
        let span = error.span().unwrap_or(0..0);
        let message = error.message().trim().replace('\n', "; ");
        let message = match diagnostic::key_at(self.text, span.start) {
            Some(key) if !message.contains(&format!("`{key}`")) => format!("`{key}`: {message}"),
            _ => message,
        };
        self.error(span, message);
    }

    fn deserialize<T: for<'de> Deserialize<'de>>(
        &mut self,
        value: Spanned<DeValue<'_>>,
    ) -> Option<T> {
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                self.toml_error(&error);
                None
            }
        }
    }

    fn section<T: for<'de> Deserialize<'de>>(&mut self, value: Spanned<DeValue<'_>>, slot: &mut T) {
        if let Some(parsed) = self.deserialize(value) {
            *slot = parsed;
        }
    }

    fn checks(&mut self, value: Spanned<DeValue<'_>>, config: &mut Config) {
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            self.error(span, "`check` must be an array of tables: write [[check]]");
            return;
        };
        for item in items {
            let item_span = item.span();
            if let Some(raw) = self.deserialize::<RawCheck>(item)
                && let Some(check) = self.check(raw, item_span, &mut config.secrets)
            {
                config.checks.push(check);
            }
        }
    }

    fn check(
        &mut self,
        raw: RawCheck,
        span: Range<usize>,
        secrets: &mut Vec<String>,
    ) -> Option<CheckConfig> {
        let errors_before = self.diagnostics.len();
        let name = raw.name.get_ref().clone();
        let label = format!("check {name:?}");
        if name.is_empty() || name.chars().any(|c| c.is_control() || c == '/') {
            self.error(
                raw.name.span(),
                format!("{label}: `name` must be non-empty, without '/' or control characters"),
            );
        }

        let interval = raw
            .interval
            .as_ref()
            .map_or(ConfigDuration(DEFAULT_INTERVAL), |d| *d.get_ref());
        if let Some(d) = &raw.interval {
            let interval = d.get_ref().get();
            if interval.is_zero() {
                self.error(
                    d.span(),
                    format!("{label}: `interval` must be greater than zero"),
                );
            } else if interval < MIN_INTERVAL {
                self.error(
                    d.span(),
                    format!(
                        "{label}: `interval` must be at least {}",
                        ConfigDuration(MIN_INTERVAL)
                    ),
                );
            }
        }
        let timeout = raw
            .timeout
            .as_ref()
            .map_or(ConfigDuration(DEFAULT_TIMEOUT.min(interval.get())), |d| {
                *d.get_ref()
            });
        if let Some(d) = &raw.timeout {
            if d.get_ref().get().is_zero() {
                self.error(
                    d.span(),
                    format!("{label}: `timeout` must be greater than zero"),
                );
            } else if d.get_ref().get() > interval.get() && !interval.get().is_zero() {
                self.error(
                    d.span(),
                    format!(
                        "{label}: `timeout` ({}) must not exceed `interval` ({interval})",
                        d.get_ref()
                    ),
                );
            }
        }
        let mut count = |field: &Option<Spanned<u32>>, key: &str, default: u32| match field {
            Some(v) if *v.get_ref() == 0 => {
                self.error(v.span(), format!("{label}: `{key}` must be at least 1"));
                default
            }
            Some(v) => *v.get_ref(),
            None => default,
        };
        let fall = count(&raw.fall, "fall", 1);
        let rise = count(&raw.rise, "rise", 1);
        let stale_after = count(&raw.stale_after, "stale_after", DEFAULT_STALE_AFTER);

        let (config, config_position) = match raw.config {
            Some(spanned) => {
                let position = self.position(spanned.span().start);
                let mut value = spanned.into_inner();
                if !value.is_table() {
                    self.error(span.clone(), format!("{label}: `config` must be a table"));
                }
                let mut errors = Vec::new();
                // The section itself is never a reference; its values may be.
                if let toml::Value::Table(table) = &mut value {
                    for (key, child) in table.iter_mut() {
                        secret::resolve_tree(child, &format!("config.{key}"), secrets, &mut errors);
                    }
                }
                for message in errors {
                    self.diagnostics.push(Diagnostic::new(
                        self.origin,
                        position,
                        format!("{label}: {message}"),
                    ));
                }
                (serde_json::to_value(&value).unwrap_or_default(), position)
            }
            None => (serde_json::json!({}), self.position(span.start)),
        };

        (self.diagnostics.len() == errors_before).then(|| CheckConfig {
            name,
            plugin: raw.plugin.get_ref().clone(),
            interval,
            timeout,
            critical: raw.critical,
            fall,
            rise,
            stale_after,
            isolation: raw.isolation,
            config,
            plugin_position: self.position(raw.plugin.span().start),
            config_position,
        })
    }

    fn validate(&mut self, config: &Config) {
        let mut seen: BTreeMap<&str, Position> = BTreeMap::new();
        for check in &config.checks {
            if let Some(first) = seen.insert(&check.name, check.plugin_position) {
                let message = format!(
                    "check {:?} is defined twice (first at line {})",
                    check.name, first.line
                );
                self.diagnostics
                    .push(Diagnostic::new(self.origin, check.plugin_position, message));
            }
        }
        if !(100..=599).contains(&config.server.degraded_status) {
            let message = format!(
                "`server.degraded_status` must be an HTTP status code, got {}",
                config.server.degraded_status
            );
            self.diagnostics
                .push(Diagnostic::whole_file(self.origin, message));
        }
    }
}

#[cfg(test)]
mod tests;
