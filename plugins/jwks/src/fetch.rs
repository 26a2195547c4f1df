//! Fetches the JWK Set: bounded redirects, and a body limit enforced while
//! reading, so an oversized answer is cut off rather than buffered.

use std::cell::Cell;
use std::error::Error as _;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use reqwest::{Client, StatusCode};
use warden_plugin_api::Reason;

use crate::config::{Config, display_url};

/// The step a run is in, for the timeout message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Request,
    Body,
}

/// Progress shared with the caller, which reads it after a timeout.
#[derive(Debug)]
pub(crate) struct Progress {
    pub(crate) step: Cell<Step>,
    pub(crate) body_bytes: Cell<usize>,
}

/// What a run could not get past.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) reason: Reason,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(reason: Reason, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
        }
    }
}

/// A fetched answer with a 2xx status.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<String>,
    pub(crate) cache_max_age: Option<u64>,
    pub(crate) body: Vec<u8>,
    pub(crate) elapsed: Duration,
}

/// Builds the HTTP client; kept across runs so connections are reused.
pub(crate) fn client(config: &Config) -> Result<Client, String> {
    let policy = match config.max_redirects {
        0 => reqwest::redirect::Policy::none(),
        n => reqwest::redirect::Policy::limited(n),
    };
    let mut builder = Client::builder()
        .redirect(policy)
        .no_proxy()
        .user_agent(concat!("warden-jwks/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(1);
    if let Some(pem) = &config.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("`ca_file`: not PEM certificates: {e}"))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Sends the request and reads the body up to the configured limit.
pub(crate) async fn fetch(
    client: &Client,
    config: &Config,
    progress: &Progress,
) -> Result<Fetched, Failure> {
    let url = display_url(&config.url);
    let started = Instant::now();
    progress.step.set(Step::Request);
    let mut response = client
        .get(config.url.clone())
        .header(ACCEPT, "application/jwk-set+json, application/json;q=0.9")
        .send()
        .await
        .map_err(|e| request_failure(&e, &url, config.max_redirects))?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let shown_type = content_type.as_deref().unwrap_or("none");
    if !status.is_success() {
        let reason = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Reason::Auth,
            _ => Reason::Protocol,
        };
        let hint = if status.is_redirection() {
            format!(
                " (redirect not followed, max_redirects = {})",
                config.max_redirects
            )
        } else {
            String::new()
        };
        let message = format!(
            "{}: HTTP {status} from {url}{hint}, content type {shown_type}",
            reason.as_str()
        );
        return Err(Failure::new(reason, message));
    }
    let limit = config.max_body_bytes;
    if let Some(declared) = response.content_length()
        && declared > limit as u64
    {
        let message = format!(
            "protocol: {url} declares a {declared}-byte body, over the limit of {limit} bytes (max_body_bytes)"
        );
        return Err(Failure::new(Reason::Protocol, message));
    }
    let cache_max_age = response
        .headers()
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);

    progress.step.set(Step::Body);
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Failure::new(Reason::Protocol, format!("protocol: reading body: {e}")))?
    {
        if body.len() + chunk.len() > limit {
            // Stop here: the rest is never read, and dropping the response
            // closes the connection instead of draining it.
            let message = format!(
                "protocol: {url} body exceeds the limit of {limit} bytes (max_body_bytes); stopped reading"
            );
            return Err(Failure::new(Reason::Protocol, message));
        }
        body.extend_from_slice(&chunk);
        progress.body_bytes.set(body.len());
    }
    Ok(Fetched {
        status,
        content_type,
        cache_max_age,
        body,
        elapsed: started.elapsed(),
    })
}

/// `max-age` from a Cache-Control value.
pub(crate) fn max_age(value: &str) -> Option<u64> {
    value.split(',').find_map(|directive| {
        let (name, seconds) = directive.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| seconds.trim().trim_matches('"'))?
            .parse()
            .ok()
    })
}

fn request_failure(err: &reqwest::Error, url: &str, max_redirects: usize) -> Failure {
    if err.is_redirect() {
        return Failure::new(
            Reason::Protocol,
            format!("protocol: {url}: more than {max_redirects} redirects (max_redirects)"),
        );
    }
    let chain = error_chain(err);
    let mut source = err.source();
    while let Some(e) = source {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return Failure::new(Reason::Tls, format!("tls: {url}: {chain}"));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return Failure::new(Reason::Refused, format!("refused: {url}: {chain}"));
            }
            if let Some(inner) = io.get_ref()
                && inner.downcast_ref::<rustls::Error>().is_some()
            {
                return Failure::new(Reason::Tls, format!("tls: {url}: {chain}"));
            }
        }
        source = e.source();
    }
    if err.is_connect() && chain.contains("dns error") {
        return Failure::new(Reason::Dns, format!("dns: {url}: {chain}"));
    }
    if err.is_connect() {
        return Failure::new(Reason::Refused, format!("connect: {url}: {chain}"));
    }
    Failure::new(Reason::Protocol, format!("protocol: {url}: {chain}"))
}

/// The causes of a request error on one line. reqwest's own top-level
/// message embeds the full URL (query included), so it is left out.
fn error_chain(err: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = e.source();
    }
    if parts.is_empty() {
        parts.push("request failed".to_owned());
    }
    parts.join(": ")
}
