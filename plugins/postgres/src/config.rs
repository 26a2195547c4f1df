//! The check's `[check.config]` table, read key by key so every error names
//! the key it is about, and turned into a `tokio_postgres::Config`.
//!
//! Keys: `url` or `host`/`port`/`user`/`dbname`; `password`, `sslmode`,
//! `ca_file`, `application_name`, `expected_role`, `connections_warning`,
//! `connections_critical`, `replay_lag_warning`, `replay_lag_critical` and a
//! `query` list. docs/plugins/postgres.md describes each.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio_postgres::config::Host as PgHost;

use crate::redact::Secrets;

const KEYS: &[&str] = &[
    "url",
    "host",
    "port",
    "user",
    "dbname",
    "password",
    "sslmode",
    "ca_file",
    "application_name",
    "expected_role",
    "connections_warning",
    "connections_critical",
    "replay_lag_warning",
    "replay_lag_critical",
    "query",
];

const QUERY_KEYS: &[&str] = &["name", "sql", "interval", "timeout"];

/// A config value that is wrong, with the key it belongs to.
#[derive(Debug, thiserror::Error)]
#[error("`{key}` {problem}")]
pub(crate) struct ConfigError {
    key: String,
    problem: String,
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        problem: problem.into(),
    }
}

/// How TLS is used, with libpq's names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, without verifying the certificate.
    Prefer,
    /// TLS or fail, without verifying the certificate.
    Require,
    /// TLS, certificate chained to `ca_file` and naming the host.
    VerifyFull,
}

impl SslMode {
    fn parse(key: &str, text: &str) -> Result<SslMode, ConfigError> {
        match text {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(invalid(
                key,
                format!("must be one of disable, prefer, require, verify-full, got {other:?}"),
            )),
        }
    }
}

/// Which role the server is expected to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExpectedRole {
    /// Not in recovery.
    Primary,
    /// In recovery (a standby).
    Standby,
    /// Either.
    Any,
}

/// One custom metric query.
#[derive(Debug, Clone)]
pub(crate) struct QuerySpec {
    /// Snake-case name used in metric names.
    pub(crate) name: String,
    /// One SQL statement.
    pub(crate) sql: String,
    /// Run at most this often; `None` runs it on every check.
    pub(crate) interval: Option<Duration>,
    /// `statement_timeout` for it; the run's deadline caps it either way.
    pub(crate) timeout: Option<Duration>,
}

/// Where the server is, after parsing.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A TCP host name or address and port.
    Tcp { host: String, port: u16 },
    /// A unix socket directory and port.
    Unix { dir: PathBuf, port: u16 },
}

/// The validated settings of one check.
pub(crate) struct Settings {
    /// Connection parameters for tokio-postgres, including the password.
    pub(crate) pg: tokio_postgres::Config,
    pub(crate) target: Target,
    pub(crate) sslmode: SslMode,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) expected_role: ExpectedRole,
    pub(crate) connections_warning: f64,
    pub(crate) connections_critical: f64,
    pub(crate) replay_lag_warning: Option<Duration>,
    pub(crate) replay_lag_critical: Option<Duration>,
    pub(crate) queries: Vec<QuerySpec>,
    /// Strings never to show: the password, raw and decoded.
    pub(crate) secrets: Secrets,
}

impl std::fmt::Debug for Settings {
    // By hand, so no password can reach a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("target", &self.target)
            .field("user", &self.pg.get_user())
            .field("dbname", &self.pg.get_dbname())
            .field("sslmode", &self.sslmode)
            .field("expected_role", &self.expected_role)
            .field("queries", &self.queries.len())
            .finish_non_exhaustive()
    }
}

fn string(key: &str, value: &Value) -> Result<String, ConfigError> {
    match value {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::String(_) => Err(invalid(key, "must not be empty")),
        other => Err(invalid(
            key,
            format!("must be a string, got {}", type_name(other)),
        )),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

fn ratio(key: &str, value: &Value) -> Result<f64, ConfigError> {
    let number = value
        .as_f64()
        .ok_or_else(|| invalid(key, format!("must be a number, got {}", type_name(value))))?;
    if number > 0.0 && number <= 1.0 {
        Ok(number)
    } else {
        Err(invalid(
            key,
            format!("must be between 0 and 1, got {number}"),
        ))
    }
}

/// A duration given as seconds (number) or as text such as "500ms" or "5m".
fn duration(key: &str, value: &Value) -> Result<Duration, ConfigError> {
    let parsed = match value {
        Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                invalid(
                    key,
                    format!("must be a non-negative number of seconds, got {n}"),
                )
            }),
        Value::String(s) => humantime::parse_duration(s).map_err(|e| {
            invalid(
                key,
                format!("is not a duration such as \"30s\" ({e}), got {s:?}"),
            )
        }),
        other => Err(invalid(
            key,
            format!("must be a duration, got {}", type_name(other)),
        )),
    }?;
    if parsed.is_zero() {
        return Err(invalid(key, "must be greater than zero"));
    }
    Ok(parsed)
}

fn reject_unknown(
    map: &Map<String, Value>,
    known: &[&str],
    prefix: &str,
) -> Result<(), ConfigError> {
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(invalid(
            format!("{prefix}{unknown}"),
            format!("is not a known key (known keys: {})", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// Removes `sslmode=...` from a URL's query string, since tokio-postgres
/// knows fewer modes than libpq; returns the URL and the mode text.
fn split_sslmode(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut mode = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("sslmode=") {
            Some(value) => {
                mode = Some(value.to_owned());
                false
            }
            None => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, mode)
}

/// The raw `user:password` password of a URL, before percent-decoding.
fn raw_url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo
        .split_once(':')
        .map(|(_, p)| p.to_owned())
        .filter(|p| !p.is_empty())
}

fn from_url(
    url: &str,
    secrets: &mut Secrets,
) -> Result<(tokio_postgres::Config, Option<String>), ConfigError> {
    if let Some(raw) = raw_url_password(url) {
        secrets.add(&raw);
    }
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(invalid(
            "url",
            "must start with postgres:// or postgresql://",
        ));
    }
    let (stripped, mode) = split_sslmode(url);
    let pg: tokio_postgres::Config = stripped.parse().map_err(|e: tokio_postgres::Error| {
        let cause = std::error::Error::source(&e)
            .map(|c| c.to_string())
            .unwrap_or_default();
        invalid(
            "url",
            format!("is not a valid PostgreSQL URL: {}", secrets.scrub(&cause)),
        )
    })?;
    if let Some(password) = pg.get_password() {
        secrets.add(&String::from_utf8_lossy(password));
    }
    if pg.get_target_session_attrs() != tokio_postgres::config::TargetSessionAttrs::Any {
        return Err(invalid(
            "url",
            "must not set target_session_attrs; use `expected_role`",
        ));
    }
    Ok((pg, mode))
}

fn target_of(pg: &tokio_postgres::Config) -> Result<Target, ConfigError> {
    if pg.get_hosts().len() > 1 {
        return Err(invalid("url", "must name one host, not several"));
    }
    let port = match pg.get_ports() {
        [] => 5432,
        [port] => *port,
        _ => return Err(invalid("url", "must name one port, not several")),
    };
    match pg.get_hosts() {
        [PgHost::Tcp(host)] => Ok(Target::Tcp {
            host: host.clone(),
            port,
        }),
        [PgHost::Unix(dir)] => Ok(Target::Unix {
            dir: dir.clone(),
            port,
        }),
        _ => Err(invalid("url", "must name a host")),
    }
}

fn parse_query(index: usize, value: &Value) -> Result<QuerySpec, ConfigError> {
    let prefix = format!("query[{index}].");
    let Value::Object(map) = value else {
        return Err(invalid(
            format!("query[{index}]"),
            "must be a table with `name` and `sql`",
        ));
    };
    reject_unknown(map, QUERY_KEYS, &prefix)?;
    let field = |k: &str| (format!("{prefix}{k}"), map.get(k));
    let (key, name) = field("name");
    let name = string(&key, name.ok_or_else(|| invalid(&key, "is required"))?)?;
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(invalid(
            key,
            format!("must be snake_case (a-z, 0-9, _), got {name:?}"),
        ));
    }
    let (key, sql) = field("sql");
    let sql = string(&key, sql.ok_or_else(|| invalid(&key, "is required"))?)?;
    let (key, interval) = field("interval");
    let interval = interval.map(|v| duration(&key, v)).transpose()?;
    let (key, timeout) = field("timeout");
    let timeout = timeout.map(|v| duration(&key, v)).transpose()?;
    Ok(QuerySpec {
        name,
        sql,
        interval,
        timeout,
    })
}

impl Settings {
    /// Reads and checks the config table.
    pub(crate) fn parse(config: &Value) -> Result<Settings, ConfigError> {
        let empty = Map::new();
        let map = match config {
            Value::Object(map) => map,
            Value::Null => &empty,
            other => {
                return Err(invalid(
                    "config",
                    format!("must be a table, got {}", type_name(other)),
                ));
            }
        };
        reject_unknown(map, KEYS, "")?;
        let get = |key: &str| map.get(key);
        let text = |key: &str| get(key).map(|v| string(key, v)).transpose();
        let mut secrets = Secrets::default();

        let password = text("password")?;
        if let Some(p) = &password {
            secrets.add(p);
        }
        let (mut pg, url_sslmode) = match text("url")? {
            Some(url) => {
                if let Some(clash) = ["host", "port", "user", "dbname"]
                    .iter()
                    .find(|k| map.contains_key(**k))
                {
                    return Err(invalid(
                        *clash,
                        "cannot be combined with `url`; put it in the URL",
                    ));
                }
                from_url(&url, &mut secrets)?
            }
            None => {
                let mut pg = tokio_postgres::Config::new();
                pg.host(text("host")?.unwrap_or_else(|| "127.0.0.1".to_owned()));
                if let Some(port) = get("port") {
                    let port = port
                        .as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p > 0)
                        .ok_or_else(|| {
                            invalid("port", format!("must be a port number 1-65535, got {port}"))
                        })?;
                    pg.port(port);
                }
                pg.user(text("user")?.unwrap_or_else(|| "postgres".to_owned()));
                if let Some(dbname) = text("dbname")? {
                    pg.dbname(dbname);
                }
                (pg, None)
            }
        };
        if pg.get_user().is_none() {
            pg.user("postgres");
        }
        if let Some(password) = &password {
            pg.password(password.as_bytes());
        }
        let target = target_of(&pg)?;

        let sslmode = match (text("sslmode")?, url_sslmode) {
            (Some(mode), _) => SslMode::parse("sslmode", &mode)?,
            (None, Some(mode)) => SslMode::parse("url", &mode)?,
            (None, None) => SslMode::Prefer,
        };
        let ca_file = text("ca_file")?.map(PathBuf::from);
        match (sslmode, &ca_file) {
            (SslMode::VerifyFull, None) => {
                return Err(invalid(
                    "ca_file",
                    "is required with sslmode = \"verify-full\"",
                ));
            }
            (SslMode::Disable | SslMode::Prefer | SslMode::Require, Some(_)) => {
                return Err(invalid(
                    "ca_file",
                    "is only used with sslmode = \"verify-full\"",
                ));
            }
            _ => {}
        }
        if sslmode != SslMode::Disable
            && sslmode != SslMode::Prefer
            && matches!(target, Target::Unix { .. })
        {
            return Err(invalid("sslmode", "cannot require TLS on a unix socket"));
        }
        pg.ssl_mode(match sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });

        match text("application_name")? {
            Some(name) => {
                pg.application_name(name);
            }
            None if pg.get_application_name().is_none() => {
                pg.application_name("warden");
            }
            None => {}
        }

        let expected_role = match text("expected_role")?.as_deref() {
            None | Some("any") => ExpectedRole::Any,
            Some("primary") => ExpectedRole::Primary,
            Some("standby") => ExpectedRole::Standby,
            Some(other) => {
                return Err(invalid(
                    "expected_role",
                    format!("must be one of primary, standby, any, got {other:?}"),
                ));
            }
        };

        let connections_warning = get("connections_warning")
            .map(|v| ratio("connections_warning", v))
            .transpose()?
            .unwrap_or(0.8);
        let connections_critical = get("connections_critical")
            .map(|v| ratio("connections_critical", v))
            .transpose()?
            .unwrap_or(0.95);
        if connections_warning > connections_critical {
            return Err(invalid(
                "connections_warning",
                format!(
                    "({connections_warning}) must not exceed `connections_critical` ({connections_critical})"
                ),
            ));
        }
        let replay_lag_warning = get("replay_lag_warning")
            .map(|v| duration("replay_lag_warning", v))
            .transpose()?;
        let replay_lag_critical = get("replay_lag_critical")
            .map(|v| duration("replay_lag_critical", v))
            .transpose()?;
        if let (Some(w), Some(c)) = (replay_lag_warning, replay_lag_critical)
            && w > c
        {
            return Err(invalid(
                "replay_lag_warning",
                "must not exceed `replay_lag_critical`",
            ));
        }

        let queries = match get("query") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| parse_query(i, v))
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(invalid(
                    "query",
                    format!("must be a list of tables, got {}", type_name(other)),
                ));
            }
        };
        for (i, query) in queries.iter().enumerate() {
            if queries[..i].iter().any(|q| q.name == query.name) {
                return Err(invalid(
                    format!("query[{i}].name"),
                    format!("{:?} is used twice", query.name),
                ));
            }
        }

        Ok(Settings {
            pg,
            target,
            sslmode,
            ca_file,
            expected_role,
            connections_warning,
            connections_critical,
            replay_lag_warning,
            replay_lag_critical,
            queries,
            secrets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error(config: Value) -> String {
        Settings::parse(&config)
            .expect_err("config should be rejected")
            .to_string()
    }

    #[test]
    fn unknown_keys_are_named() {
        assert!(error(json!({"hots": "x"})).starts_with("`hots` is not a known key"));
        let nested = error(json!({"query": [{"name": "a", "sql": "SELECT 1", "every": 5}]}));
        assert!(
            nested.starts_with("`query[0].every` is not a known key"),
            "{nested}"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(
            error(json!({"connections_warning": 1.5})),
            "`connections_warning` must be between 0 and 1, got 1.5"
        );
        assert!(error(json!({"port": "x"})).starts_with("`port` must be a port number"));
        assert!(error(json!({"sslmode": "verify-ca"})).starts_with("`sslmode` must be one of"));
        assert!(error(json!({"sslmode": "verify-full"})).starts_with("`ca_file` is required"));
        assert!(
            error(json!({"expected_role": "leader"})).starts_with("`expected_role` must be one of")
        );
        assert!(
            error(json!({"url": "postgres://h/db", "host": "x"}))
                .starts_with("`host` cannot be combined")
        );
        assert!(
            error(json!({"query": [{"name": "Bad-Name", "sql": "SELECT 1"}]}))
                .starts_with("`query[0].name` must be snake_case")
        );
        assert!(
            error(json!({"query": [{"name": "a", "sql": "SELECT 1", "interval": "soon"}]}))
                .starts_with("`query[0].interval` is not a duration")
        );
        assert!(
            error(json!({"query": [{"name": "a", "sql": "x"}, {"name": "a", "sql": "y"}]}))
                .contains("used twice")
        );
    }

    #[test]
    fn url_errors_never_show_the_password() {
        let message = error(json!({"url": "postgres://me:hunter2@h:notaport/db"}));
        assert!(
            message.starts_with("`url` is not a valid PostgreSQL URL"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
        let message = error(json!({"url": "postgres://h/db?target_session_attrs=read-write"}));
        assert!(message.contains("expected_role"), "{message}");
        let message = error(json!({"url": "postgres://h1,h2/db"}));
        assert!(message.contains("one host"), "{message}");
        let message = error(json!({"url": "mysql://me:hunter2@h/db"}));
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn url_and_keys_build_the_same_target() {
        let from_url = Settings::parse(&json!({
            "url": "postgresql://mon:p%40ss@db.example.invalid:6543/app?sslmode=require&application_name=x",
        }))
        .unwrap();
        assert!(
            matches!(&from_url.target, Target::Tcp { host, port: 6543 } if host == "db.example.invalid")
        );
        assert_eq!(from_url.sslmode, SslMode::Require);
        assert_eq!(from_url.pg.get_application_name(), Some("x"));
        assert_eq!(from_url.pg.get_user(), Some("mon"));
        assert_eq!(from_url.secrets.scrub("a p@ss b p%40ss"), "a *** b ***");

        let from_keys =
            Settings::parse(&json!({"host": "db.example.invalid", "port": 6543, "user": "mon"}))
                .unwrap();
        assert!(
            matches!(&from_keys.target, Target::Tcp { host, port: 6543 } if host == "db.example.invalid")
        );
        assert_eq!(from_keys.pg.get_application_name(), Some("warden"));
        assert_eq!(from_keys.sslmode, SslMode::Prefer);
        assert_eq!(from_keys.connections_warning, 0.8);
    }

    #[test]
    fn queries_parse_with_durations() {
        let settings = Settings::parse(&json!({"query": [
            {"name": "locks", "sql": "SELECT 1", "interval": "5m", "timeout": 2},
        ]}))
        .unwrap();
        let q = &settings.queries[0];
        assert_eq!(q.interval, Some(Duration::from_secs(300)));
        assert_eq!(q.timeout, Some(Duration::from_secs(2)));
    }
}
