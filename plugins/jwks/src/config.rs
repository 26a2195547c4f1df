//! The check's config: the JWK Set URL, fetch limits, expectations about
//! the keys and the optional canary token. Validated once at create.

use std::path::PathBuf;

use warden_plugin_api::Fields;

/// A validated config.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) url: url::Url,
    pub(crate) max_redirects: usize,
    pub(crate) max_body_bytes: usize,
    pub(crate) min_keys: usize,
    pub(crate) expected_kids: Vec<String>,
    pub(crate) canary_token_file: Option<PathBuf>,
    /// PEM bytes of an extra CA trusted for https.
    pub(crate) ca_pem: Option<Vec<u8>>,
}

impl Config {
    /// Reads and validates the config table.
    pub(crate) fn parse(value: serde_json::Value) -> Result<Self, String> {
        let mut f = Fields::new(value)?;
        let url = f.string("url")?;
        let max_redirects = f.int("max_redirects", 0, 10)?.unwrap_or(3);
        let max_body_bytes = f
            .int("max_body_bytes", 1024, 64 * 1024 * 1024)?
            .unwrap_or(1 << 20);
        let min_keys = f.int("min_keys", 1, 1000)?.unwrap_or(1);
        let expected_kids = f.strings("expected_kids")?.unwrap_or_default();
        let canary_token_file = f.string("canary_token_file")?.map(PathBuf::from);
        let ca_file = f.string("ca_file")?.map(PathBuf::from);
        f.finish()?;

        let url = url.ok_or("`url` is required")?;
        let url = url::Url::parse(&url).map_err(|e| format!("`url` is not a valid URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "`url` must be http:// or https://, got {}://",
                url.scheme()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Credentials in a URL end up in logs; a JWK Set is public anyway.
            return Err("`url` must not carry credentials".into());
        }
        if url.host().is_none() {
            return Err("`url` has no host".into());
        }
        if expected_kids.iter().any(String::is_empty) {
            return Err("`expected_kids` must not contain an empty kid".into());
        }
        if let Some(path) = &canary_token_file {
            // Read now so a wrong path fails at create; read again every run
            // so a refreshed token is picked up.
            crate::canary::read_token(path)?;
        }
        let ca_pem = match ca_file {
            None => None,
            Some(path) => {
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
        Ok(Config {
            url,
            max_redirects: max_redirects as usize,
            max_body_bytes: max_body_bytes as usize,
            min_keys: min_keys as usize,
            expected_kids,
            canary_token_file,
            ca_pem,
        })
    }
}

/// A URL fit for messages: scheme, host, port and path only, so a query
/// string (which may hold a token) never reaches a log.
pub(crate) fn display_url(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_and_errors_name_the_key() {
        let c = Config::parse(json!({"url": "https://idp.example.test/jwks"})).unwrap();
        assert_eq!(
            (c.max_redirects, c.max_body_bytes, c.min_keys),
            (3, 1 << 20, 1)
        );
        let cases = [
            (json!({}), "`url` is required"),
            (
                json!({"url": "ftp://x/"}),
                "`url` must be http:// or https://",
            ),
            (
                json!({"url": "https://u:p@x/"}),
                "`url` must not carry credentials",
            ),
            (
                json!({"url": "https://x/", "max_redirects": 11}),
                "`max_redirects` must be",
            ),
            (
                json!({"url": "https://x/", "max_body_bytes": 1}),
                "`max_body_bytes` must be",
            ),
            (
                json!({"url": "https://x/", "expected_kids": "a"}),
                "`expected_kids` must be a list",
            ),
            (
                json!({"url": "https://x/", "canary_token_file": "/nonexistent"}),
                "`canary_token_file`",
            ),
            (
                json!({"url": "https://x/", "timeout": 1}),
                "unknown config key `timeout`",
            ),
        ];
        for (config, expected) in cases {
            let err = Config::parse(config.clone()).unwrap_err();
            assert!(err.contains(expected), "{config}: {err}");
        }
    }

    #[test]
    fn display_url_drops_the_query() {
        let url = url::Url::parse("https://idp.example.test:8443/certs?token=secret").unwrap();
        assert_eq!(display_url(&url), "https://idp.example.test:8443/certs");
    }
}
