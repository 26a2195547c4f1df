//! One delivery attempt over HTTP, and what its answer means: delivered,
//! worth retrying (and when), or refused for good.

use std::time::{Duration, SystemTime};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Client, StatusCode};

use super::format::{self, Context};
use super::message::{Notification, truncate_chars};
use crate::config::{NotifierConfig, NotifierKind};

/// How much of a refusing receiver's answer is kept for the log.
const MAX_ANSWER: usize = 512;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver accepted it.
    Sent,
    /// Try again: after `after` if the receiver said so, else by backoff.
    Retry {
        /// The receiver's `Retry-After`.
        after: Option<Duration>,
        /// What went wrong, one line.
        reason: String,
    },
    /// Never try again.
    Permanent {
        /// The status and the receiver's answer, truncated.
        reason: String,
    },
}

/// Sends notifications; one client (and connection pool) for all notifiers.
#[derive(Debug, Clone)]
pub struct Sender {
    client: Client,
    cx: Context,
}

impl Sender {
    /// A sender mentioning `cx` in its messages.
    pub fn new(cx: Context) -> Result<Sender, String> {
        // The daemon's rustls uses ring; an error only means a provider is
        // already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::builder()
            // A POST redirected would turn into a GET or go elsewhere; a
            // receiver that redirects is misconfigured, and says so.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Sender { client, cx })
    }

    /// Makes one attempt to deliver `notification` through `notifier`.
    pub async fn send(&self, notifier: &NotifierConfig, notification: &Notification) -> Outcome {
        let (url, bodies) = match notifier.kind {
            NotifierKind::Slack => (
                notifier.url.expose().to_owned(),
                vec![format::slack::body(notification, &self.cx)],
            ),
            NotifierKind::Webhook => (
                notifier.url.expose().to_owned(),
                vec![format::webhook::body(notification, &self.cx)],
            ),
            NotifierKind::Alertmanager => (
                format::alertmanager::endpoint(notifier),
                vec![format::alertmanager::body(notification, &self.cx)],
            ),
            NotifierKind::Pagerduty => {
                let key = notifier.routing_key.as_ref().map_or("", |k| k.expose());
                let events = notification
                    .alerts
                    .iter()
                    .map(|alert| format::pagerduty::body(alert, key, &self.cx))
                    .collect();
                (notifier.url.expose().to_owned(), events)
            }
        };
        // Several PagerDuty events go one by one; a retry repeats them all,
        // which their dedup_key makes harmless.
        for body in bodies {
            let outcome = self.post(notifier, &url, &body).await;
            if outcome != Outcome::Sent {
                return outcome;
            }
        }
        Outcome::Sent
    }

    async fn post(
        &self,
        notifier: &NotifierConfig,
        url: &str,
        body: &serde_json::Value,
    ) -> Outcome {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in &notifier.headers {
            // Both were validated with the config.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value.expose()),
            ) {
                headers.insert(name, value);
            }
        }
        let request = self
            .client
            .post(url)
            .headers(headers)
            .timeout(notifier.timeout)
            .body(serde_json::to_vec(body).unwrap_or_default());
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                return Outcome::Retry {
                    after: None,
                    reason: error_chain(&error.without_url()),
                };
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let answer = if status.is_success() {
            String::new()
        } else {
            // Reading the answer is bounded by the request's timeout.
            response.text().await.unwrap_or_default()
        };
        classify(status, retry_after.as_deref(), &answer, SystemTime::now())
    }
}

/// What an HTTP answer means for delivery.
pub fn classify(
    status: StatusCode,
    retry_after: Option<&str>,
    answer: &str,
    now: SystemTime,
) -> Outcome {
    if status.is_success() {
        return Outcome::Sent;
    }
    let answer = truncate_chars(answer.trim(), MAX_ANSWER).replace(['\n', '\r'], " ");
    let reason = if answer.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {answer}", status.as_u16())
    };
    let retryable = status.is_server_error()
        || matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT
        );
    if retryable {
        Outcome::Retry {
            after: retry_after.and_then(|v| parse_retry_after(v, now)),
            reason,
        }
    } else {
        Outcome::Permanent { reason }
    }
}

/// `Retry-After` as delay-seconds or an HTTP date; a date in the past means
/// now.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// The error and its causes on one line.
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_like_their_apis_document() {
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(classify(StatusCode::ACCEPTED, None, "", now), Outcome::Sent);
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, Some("3"), "slow down", now),
            Outcome::Retry {
                after: Some(Duration::from_secs(3)),
                reason: "HTTP 429: slow down".into()
            }
        );
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, None, "", now),
            Outcome::Retry { after: None, .. }
        ));
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, None, "invalid_payload\n", now),
            Outcome::Permanent {
                reason: "HTTP 400: invalid_payload".into()
            }
        );
        assert!(matches!(
            classify(StatusCode::MOVED_PERMANENTLY, None, "", now),
            Outcome::Permanent { .. }
        ));
        let long = "x".repeat(5000);
        let Outcome::Permanent { reason } = classify(StatusCode::FORBIDDEN, None, &long, now)
        else {
            panic!("403 is permanent");
        };
        assert!(reason.chars().count() < MAX_ANSWER + 20);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
