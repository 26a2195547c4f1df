//! The check's config: where Redis is, how to log in, what to test, and the
//! memory thresholds. Validated once at create.
//!
//! Credentials never travel inside a URL: `url` may not carry them, and the
//! `password` key is handed to the client as-is, so characters such as
//! `@ : / # + $ } ]` are used literally and never percent-decoded.

use std::path::PathBuf;
use std::time::Duration;

use warden_plugin_api::Fields;

const DEFAULT_PORT: u16 = 6379;

/// A validated config.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) db: i64,
    /// PEM bytes of the CA that signs the server certificate.
    pub(crate) ca_pem: Option<Vec<u8>>,
    pub(crate) roundtrip: bool,
    pub(crate) key_prefix: String,
    pub(crate) key_ttl: Duration,
    pub(crate) memory_warning_ratio: f64,
    pub(crate) memory_critical_ratio: f64,
    pub(crate) ping_warning: Option<Duration>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password is never printed.
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("db", &self.db)
            .field("roundtrip", &self.roundtrip)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads and validates the config table.
    pub(crate) fn parse(value: serde_json::Value) -> Result<Self, String> {
        let mut f = Fields::new(value)?;
        let url = f.string("url")?;
        let host = f.string("host")?;
        let port = f.int("port", 1, 65535)?;
        let tls = f.bool("tls")?;
        let db = f.int("db", 0, i64::from(i32::MAX))?;
        let username = f.string("username")?;
        let password = f.string("password")?;
        let ca_file = f.string("ca_file")?;
        let roundtrip = f.bool("roundtrip")?.unwrap_or(false);
        let key_prefix = f
            .string("key_prefix")?
            .unwrap_or_else(|| "warden:".to_owned());
        let key_ttl = f.int("key_ttl_seconds", 1, 86_400)?.unwrap_or(60);
        let warning = f.float("memory_warning_ratio", 0.0, 1.0)?.unwrap_or(0.8);
        let critical = f.float("memory_critical_ratio", 0.0, 1.0)?.unwrap_or(0.95);
        let ping_warning = f.float("ping_warning_seconds", 0.0, 3600.0)?;
        f.finish()?;

        let (host, port, tls, url_db) = match url {
            Some(url) => {
                if host.is_some() || port.is_some() || tls.is_some() {
                    return Err("`url` cannot be combined with `host`, `port` or `tls`".into());
                }
                parse_url(&url)?
            }
            None => (
                host.unwrap_or_else(|| "127.0.0.1".to_owned()),
                port.map_or(DEFAULT_PORT, |p| p as u16),
                tls.unwrap_or(false),
                None,
            ),
        };
        if host.is_empty() {
            return Err("`host` must not be empty".into());
        }
        let db = match (db, url_db) {
            (Some(_), Some(_)) => {
                return Err("`db` is given twice: in `url`'s path and as `db`".into());
            }
            (Some(d), None) | (None, Some(d)) => d,
            (None, None) => 0,
        };
        let ca_pem = match ca_file {
            None => None,
            Some(_) if !tls => {
                return Err("`ca_file` needs TLS: use a rediss:// `url` or `tls = true`".into());
            }
            Some(path) => {
                let path = PathBuf::from(path);
                let pem = std::fs::read(&path)
                    .map_err(|e| format!("`ca_file` {}: cannot read: {e}", path.display()))?;
                if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                    return Err(format!(
                        "`ca_file` {}: no PEM certificate in the file",
                        path.display()
                    ));
                }
                Some(pem)
            }
        };
        if username.is_some() && password.is_none() {
            return Err("`username` needs a `password`".into());
        }
        if roundtrip && key_prefix.is_empty() {
            return Err("`key_prefix` must not be empty when `roundtrip` is on".into());
        }
        if warning > critical {
            return Err(format!(
                "`memory_warning_ratio` ({warning}) must not exceed `memory_critical_ratio` ({critical})"
            ));
        }
        Ok(Config {
            host,
            port,
            tls,
            username,
            password,
            db,
            ca_pem,
            roundtrip,
            key_prefix,
            key_ttl: Duration::from_secs(key_ttl as u64),
            memory_warning_ratio: warning,
            memory_critical_ratio: critical,
            ping_warning: ping_warning.map(Duration::from_secs_f64),
        })
    }

    /// `host:port` for messages; never carries credentials.
    pub(crate) fn endpoint(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Splits a `redis://` or `rediss://` URL into host, port, TLS and db.
fn parse_url(text: &str) -> Result<(String, u16, bool, Option<i64>), String> {
    // The error from the url crate never echoes the input, so nothing leaks.
    let url = url::Url::parse(text).map_err(|e| format!("`url` is not a valid URL: {e}"))?;
    let tls = match url.scheme() {
        "redis" => false,
        "rediss" => true,
        other => {
            return Err(format!(
                "`url` must start with redis:// or rediss://, got {other}://"
            ));
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "`url` must not carry credentials: use the `username` and `password` keys".into(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("`url` must not have a query or fragment".into());
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err("`url` has no host".into()),
    };
    let port = url.port().unwrap_or(DEFAULT_PORT);
    let path = url.path().trim_matches('/');
    let db = if path.is_empty() {
        None
    } else {
        Some(
            path.parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| {
                    format!("`url` path must be a database number like /0, got /{path}")
                })?,
        )
    };
    Ok((host, port, tls, db))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn url_gives_host_port_tls_and_db() {
        let c = Config::parse(json!({"url": "rediss://cache.example.test:6380/2"})).unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.tls, c.db),
            ("cache.example.test", 6380, true, 2)
        );
        let c = Config::parse(json!({"url": "redis://[::1]"})).unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.tls, c.db),
            ("::1", 6379, false, 0)
        );
        assert_eq!(c.endpoint(), "[::1]:6379");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (json!({"bogus": 1}), "unknown config key `bogus`"),
            (
                json!({"port": 70000}),
                "`port` must be a whole number from 1 to 65535",
            ),
            (json!({"port": "6379"}), "`port` must be a number"),
            (
                json!({"memory_warning_ratio": 1.5}),
                "`memory_warning_ratio` must be between 0 and 1",
            ),
            (json!({"url": "http://x"}), "`url` must start with redis://"),
            (
                json!({"url": "redis://u:secret@x"}),
                "`url` must not carry credentials",
            ),
            (
                json!({"url": "redis://x", "port": 1}),
                "`url` cannot be combined",
            ),
            (json!({"ca_file": "/nonexistent"}), "`ca_file` needs TLS"),
            (
                json!({"tls": true, "ca_file": "/nonexistent/ca.pem"}),
                "`ca_file` /nonexistent/ca.pem",
            ),
            (json!({"username": "mon"}), "`username` needs a `password`"),
            (
                json!({"url": "redis://x/abc"}),
                "`url` path must be a database number",
            ),
        ];
        for (config, expected) in cases {
            let err = Config::parse(config.clone()).unwrap_err();
            assert!(err.contains(expected), "{config}: {err}");
        }
    }

    #[test]
    fn password_is_kept_literally_and_not_printed() {
        let c = Config::parse(json!({"password": "p@ss:/#+$}]%41"})).unwrap();
        assert_eq!(c.password.as_deref(), Some("p@ss:/#+$}]%41"));
        assert!(!format!("{c:?}").contains("p@ss"));
    }
}
