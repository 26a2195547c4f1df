//! `[[notifier]]`, `[[route]]` and `[notify]`: where alerts are sent, which
//! alerts go where, and how the outbox retries.
//!
//! Cross-references (a route naming a notifier) are checked after every
//! section is read, so the order of tables in the file does not matter.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{Config, ConfigDuration, Diagnostic, Loader, Position, Secret};
use crate::notify::Matcher;

/// What a notifier talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifierKind {
    /// A Slack incoming webhook.
    Slack,
    /// PagerDuty Events API v2.
    Pagerduty,
    /// Any receiver of Alertmanager's webhook payload.
    Webhook,
    /// Prometheus Alertmanager's API v2.
    Alertmanager,
}

impl NotifierKind {
    /// The name as written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifierKind::Slack => "slack",
            NotifierKind::Pagerduty => "pagerduty",
            NotifierKind::Webhook => "webhook",
            NotifierKind::Alertmanager => "alertmanager",
        }
    }
}

/// One `[[notifier]]`.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Unique name, used by routes, metrics and logs.
    pub name: String,
    /// What it talks to.
    pub kind: NotifierKind,
    /// Where requests go; for `alertmanager` the server's base URL.
    pub url: Secret,
    /// PagerDuty integration key (32 characters).
    pub routing_key: Option<Secret>,
    /// Extra request headers (`webhook` and `alertmanager` only).
    pub headers: BTreeMap<String, Secret>,
    /// Deadline of one request.
    pub timeout: Duration,
    /// Where its `name` is, for later errors.
    pub position: Position,
}

/// One `[[route]]`.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// All must match an alert's labels; none matches every alert.
    pub matchers: Vec<Matcher>,
    /// Names of the notifiers that get matching alerts.
    pub notifiers: Vec<String>,
    /// A still-firing alert is sent again after this long.
    pub repeat_interval: Duration,
    /// Whether resolved alerts are sent.
    pub send_resolved: bool,
    /// Labels whose values form a group; `["..."]` groups by every label.
    pub group_by: Vec<String>,
    /// How long a new group waits for more alerts before its first message.
    pub group_wait: Duration,
    /// Where each of `notifiers` is written, for reference errors.
    pub notifier_positions: Vec<Position>,
}

/// `[notify]`: outbox settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyConfig {
    /// An entry not delivered within this long is dropped and counted.
    pub max_age: Duration,
    /// First retry delay; it doubles per attempt, with jitter.
    pub retry_initial: Duration,
    /// Longest delay between two attempts (a `Retry-After` may ask more).
    pub retry_max: Duration,
    /// How often firing alerts are re-sent to an Alertmanager.
    pub alertmanager_resend: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            max_age: Duration::from_secs(24 * 3600),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            alertmanager_resend: Duration::from_secs(60),
        }
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_REPEAT: Duration = Duration::from_secs(4 * 3600);
/// A PagerDuty integration key's length.
const ROUTING_KEY_LEN: usize = 32;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotifier {
    name: Spanned<String>,
    kind: Spanned<NotifierKind>,
    url: Spanned<Secret>,
    #[serde(default)]
    routing_key: Option<Spanned<Secret>>,
    #[serde(default)]
    headers: Option<Spanned<BTreeMap<String, Secret>>>,
    #[serde(default)]
    timeout: Option<Spanned<ConfigDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[serde(default)]
    matchers: Vec<Spanned<String>>,
    notifiers: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    repeat_interval: Option<Spanned<ConfigDuration>>,
    #[serde(default)]
    send_resolved: Option<bool>,
    #[serde(default)]
    group_by: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    group_wait: Option<Spanned<ConfigDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    #[serde(default)]
    max_age: Option<Spanned<ConfigDuration>>,
    #[serde(default)]
    retry_initial: Option<Spanned<ConfigDuration>>,
    #[serde(default)]
    retry_max: Option<Spanned<ConfigDuration>>,
    #[serde(default)]
    alertmanager_resend: Option<Spanned<ConfigDuration>>,
}

/// A label name Alertmanager and Prometheus accept.
pub(crate) fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Loader<'_> {
    /// Reads every `[[notifier]]`.
    pub(super) fn notifiers(&mut self, value: Spanned<DeValue<'_>>, config: &mut Config) {
        for item in self.tables(value, "notifier") {
            // Kept even when invalid (the config is then refused anyway),
            // so routes naming it are not also reported as unknown.
            if let Some(raw) = self.deserialize::<RawNotifier>(item) {
                let notifier = self.notifier(raw, &mut config.secrets);
                config.notifiers.push(notifier);
            }
        }
    }

    /// Reads every `[[route]]`.
    pub(super) fn routes(&mut self, value: Spanned<DeValue<'_>>, config: &mut Config) {
        for item in self.tables(value, "route") {
            if let Some(raw) = self.deserialize::<RawRoute>(item) {
                let route = self.route(raw);
                config.routes.push(route);
            }
        }
    }

    /// Reads `[notify]`.
    pub(super) fn notify(&mut self, value: Spanned<DeValue<'_>>, config: &mut Config) {
        let Some(raw) = self.deserialize::<RawNotify>(value) else {
            return;
        };
        let defaults = NotifyConfig::default();
        let mut get =
            |field: &Option<Spanned<ConfigDuration>>, key: &str, default: Duration| match field {
                Some(d) if d.get_ref().get().is_zero() => {
                    self.error(
                        d.span(),
                        format!("`notify.{key}` must be greater than zero"),
                    );
                    default
                }
                Some(d) => d.get_ref().get(),
                None => default,
            };
        let notify = NotifyConfig {
            max_age: get(&raw.max_age, "max_age", defaults.max_age),
            retry_initial: get(&raw.retry_initial, "retry_initial", defaults.retry_initial),
            retry_max: get(&raw.retry_max, "retry_max", defaults.retry_max),
            alertmanager_resend: get(
                &raw.alertmanager_resend,
                "alertmanager_resend",
                defaults.alertmanager_resend,
            ),
        };
        if let Some(d) = &raw.retry_max
            && notify.retry_max < notify.retry_initial
        {
            self.error(
                d.span(),
                "`notify.retry_max` must not be less than `notify.retry_initial`",
            );
        }
        config.notify = notify;
    }

    /// Checks that routes name configured notifiers, once all are read.
    pub(super) fn validate_routes(&mut self, config: &Config) {
        let mut seen: BTreeMap<&str, Position> = BTreeMap::new();
        for notifier in &config.notifiers {
            if let Some(first) = seen.insert(&notifier.name, notifier.position) {
                let message = format!(
                    "notifier {:?} is defined twice (first at line {})",
                    notifier.name, first.line
                );
                self.diagnostics
                    .push(Diagnostic::new(self.origin, notifier.position, message));
            }
        }
        for route in &config.routes {
            for (name, position) in route.notifiers.iter().zip(&route.notifier_positions) {
                if !seen.contains_key(name.as_str()) {
                    let known: Vec<&str> = seen.keys().copied().collect();
                    let message = format!(
                        "route: `notifiers`: unknown notifier {name:?} (configured: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    );
                    self.diagnostics
                        .push(Diagnostic::new(self.origin, *position, message));
                }
            }
        }
    }

    fn tables<'a>(&mut self, value: Spanned<DeValue<'a>>, key: &str) -> Vec<Spanned<DeValue<'a>>> {
        let span = value.span();
        match value.into_inner() {
            DeValue::Array(items) => items.into_iter().collect(),
            _ => {
                self.error(
                    span,
                    format!("`{key}` must be an array of tables: write [[{key}]]"),
                );
                Vec::new()
            }
        }
    }

    fn notifier(&mut self, raw: RawNotifier, secrets: &mut Vec<String>) -> NotifierConfig {
        let name = raw.name.get_ref().clone();
        let label = format!("notifier {name:?}");
        if name.is_empty() || name.chars().any(|c| c.is_control()) {
            self.error(
                raw.name.span(),
                format!("{label}: `name` must be non-empty, without control characters"),
            );
        }
        let kind = *raw.kind.get_ref();

        let url = raw.url.get_ref();
        secrets.push(url.expose().to_owned());
        // The URL may be a secret (Slack's is), so messages never quote it.
        match url::Url::parse(url.expose()) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {}
            Ok(parsed) => self.error(
                raw.url.span(),
                format!(
                    "{label}: `url` must be an http or https URL with a host, not {:?}",
                    parsed.scheme()
                ),
            ),
            Err(e) => self.error(
                raw.url.span(),
                format!("{label}: `url` is not a valid URL: {e}"),
            ),
        }

        match (&raw.routing_key, kind) {
            (None, NotifierKind::Pagerduty) => self.error(
                raw.kind.span(),
                format!("{label}: `routing_key` is required for kind \"pagerduty\""),
            ),
            (Some(key), NotifierKind::Pagerduty) => {
                secrets.push(key.get_ref().expose().to_owned());
                let len = key.get_ref().expose().chars().count();
                if len != ROUTING_KEY_LEN {
                    self.error(
                        key.span(),
                        format!(
                            "{label}: `routing_key` must be a {ROUTING_KEY_LEN}-character \
                             PagerDuty integration key, got {len} characters"
                        ),
                    );
                }
            }
            (Some(key), other) => self.error(
                key.span(),
                format!(
                    "{label}: `routing_key` is only for kind \"pagerduty\", not {:?}",
                    other.as_str()
                ),
            ),
            (None, _) => {}
        }

        let headers = match raw.headers {
            None => BTreeMap::new(),
            Some(headers) => {
                let span = headers.span();
                let headers = headers.into_inner();
                if !matches!(kind, NotifierKind::Webhook | NotifierKind::Alertmanager) {
                    self.error(
                        span.clone(),
                        format!(
                            "{label}: `headers` are only for kinds \"webhook\" and \"alertmanager\""
                        ),
                    );
                }
                for (header, value) in &headers {
                    secrets.push(value.expose().to_owned());
                    if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                        self.error(
                            span.clone(),
                            format!("{label}: `headers`: {header:?} is not a valid header name"),
                        );
                    } else if reqwest::header::HeaderValue::from_str(value.expose()).is_err() {
                        self.error(
                            span.clone(),
                            format!("{label}: `headers.{header}` is not a valid header value"),
                        );
                    }
                }
                headers
            }
        };

        let timeout = match &raw.timeout {
            Some(d) if d.get_ref().get().is_zero() => {
                self.error(
                    d.span(),
                    format!("{label}: `timeout` must be greater than zero"),
                );
                DEFAULT_TIMEOUT
            }
            Some(d) => d.get_ref().get(),
            None => DEFAULT_TIMEOUT,
        };

        NotifierConfig {
            name,
            kind,
            url: raw.url.into_inner(),
            routing_key: raw.routing_key.map(Spanned::into_inner),
            headers,
            timeout,
            position: self.position(raw.name.span().start),
        }
    }

    fn route(&mut self, raw: RawRoute) -> RouteConfig {
        let mut matchers = Vec::with_capacity(raw.matchers.len());
        for text in &raw.matchers {
            match Matcher::parse(text.get_ref()) {
                Ok(matcher) => matchers.push(matcher),
                Err(message) => self.error(text.span(), format!("route: `matchers`: {message}")),
            }
        }

        let names_span = raw.notifiers.span();
        let notifiers: Vec<String> = raw
            .notifiers
            .get_ref()
            .iter()
            .map(|n| n.get_ref().clone())
            .collect();
        if notifiers.is_empty() {
            self.error(
                names_span,
                "route: `notifiers` must name at least one notifier",
            );
        }
        let notifier_positions = raw
            .notifiers
            .get_ref()
            .iter()
            .map(|n| self.position(n.span().start))
            .collect();

        let repeat_interval = match &raw.repeat_interval {
            Some(d) if d.get_ref().get().is_zero() => {
                self.error(
                    d.span(),
                    "route: `repeat_interval` must be greater than zero",
                );
                DEFAULT_REPEAT
            }
            Some(d) => d.get_ref().get(),
            None => DEFAULT_REPEAT,
        };

        let group_by = match raw.group_by {
            None => vec!["alertname".to_owned()],
            Some(labels) => {
                let mut unique = BTreeSet::new();
                for label in &labels {
                    let name = label.get_ref();
                    if name == "..." && labels.len() > 1 {
                        self.error(
                            label.span(),
                            "route: `group_by`: \"...\" (every label) must stand alone",
                        );
                    } else if name != "..." && !valid_label_name(name) {
                        self.error(
                            label.span(),
                            format!("route: `group_by`: {name:?} is not a valid label name"),
                        );
                    }
                    unique.insert(name.clone());
                }
                unique.into_iter().collect()
            }
        };

        RouteConfig {
            matchers,
            notifiers,
            repeat_interval,
            send_resolved: raw.send_resolved.unwrap_or(true),
            group_by,
            group_wait: raw.group_wait.map_or(Duration::ZERO, |d| d.get_ref().get()),
            notifier_positions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Diagnostics, Origin};
    use super::*;

    fn parse(text: &str) -> Result<Config, Diagnostics> {
        Config::parse(text, Origin::File("warden.toml".into()))
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn reads_notifiers_routes_and_defaults() {
        let config = parse(
            r#"
[[route]]
matchers = ['severity="critical"', 'team=~"db|ops"']
notifiers = ["pd", "chat"]

[[notifier]]
name = "chat"
kind = "slack"
url = { env = "WARDEN_TEST_SLACK_URL_UNUSED_FALLBACK" }

[[notifier]]
name = "pd"
kind = "pagerduty"
url = "http://127.0.0.1:1/v2/enqueue"
routing_key = "0123456789abcdef0123456789abcdef"
timeout = "3s"

[[notifier]]
name = "am"
kind = "alertmanager"
url = "http://127.0.0.1:9093"
headers = { Authorization = "Bearer x" }

[[route]]
notifiers = ["am"]
repeat_interval = "1h"
send_resolved = false
group_by = ["..."]
group_wait = "5s"

[notify]
max_age = "1h"
retry_max = "30s"
"#
            .replace(
                "{ env = \"WARDEN_TEST_SLACK_URL_UNUSED_FALLBACK\" }",
                "\"https://127.0.0.1/services/T/B/X\"",
            )
            .as_str(),
        )
        .unwrap();
        assert_eq!(config.notifiers.len(), 3);
        let pd = &config.notifiers[1];
        assert_eq!(pd.kind, NotifierKind::Pagerduty);
        assert_eq!(pd.timeout, Duration::from_secs(3));
        assert_eq!(config.notifiers[0].timeout, DEFAULT_TIMEOUT);
        assert_eq!(
            config.notifiers[2].headers["Authorization"].expose(),
            "Bearer x"
        );
        let first = &config.routes[0];
        assert_eq!(first.matchers.len(), 2);
        assert_eq!(first.repeat_interval, DEFAULT_REPEAT);
        assert!(first.send_resolved);
        assert_eq!(first.group_by, ["alertname"]);
        assert_eq!(first.group_wait, Duration::ZERO);
        let second = &config.routes[1];
        assert_eq!(second.group_by, ["..."]);
        assert!(!second.send_resolved);
        assert_eq!(config.notify.max_age, Duration::from_secs(3600));
        assert_eq!(config.notify.retry_max, Duration::from_secs(30));
        assert_eq!(
            config.notify.retry_initial,
            NotifyConfig::default().retry_initial
        );
        // Secrets are remembered for redaction.
        assert!(
            config
                .secrets
                .iter()
                .any(|s| s == "0123456789abcdef0123456789abcdef")
        );
    }

    #[test]
    fn every_mistake_is_reported_at_its_key() {
        let found = errors(
            r#"[[notifier]]
name = "pd"
kind = "pagerduty"
url = "ftp://127.0.0.1/x"
routing_key = "short"

[[notifier]]
name = "chat"
kind = "slack"
url = "not a url"
headers = { X = "y" }

[[notifier]]
name = "chat"
kind = "teams"
url = "http://127.0.0.1/"

[[route]]
matchers = ['severity=critical']
notifiers = ["pd", "nobody"]
group_by = ["bad-label"]
repeat_interval = "0s"

[notify]
retry_initial = "10s"
retry_max = "1s"
"#,
        );
        let expected = [
            "warden.toml:4:7: notifier \"pd\": `url` must be an http or https URL with a host, not \"ftp\"",
            "warden.toml:5:15: notifier \"pd\": `routing_key` must be a 32-character PagerDuty integration key, got 5 characters",
            "warden.toml:10:7: notifier \"chat\": `url` is not a valid URL: relative URL without a base",
            "warden.toml:11:11: notifier \"chat\": `headers` are only for kinds \"webhook\" and \"alertmanager\"",
            "warden.toml:15:8: `kind`: unknown variant `teams`, expected one of `slack`, `pagerduty`, `webhook`, `alertmanager`",
            "warden.toml:19:13: route: `matchers`: matcher \"severity=critical\": the value must be one double-quoted string",
            "warden.toml:20:20: route: `notifiers`: unknown notifier \"nobody\" (configured: chat, pd)",
            "warden.toml:21:13: route: `group_by`: \"bad-label\" is not a valid label name",
            "warden.toml:22:19: route: `repeat_interval` must be greater than zero",
            "warden.toml:26:13: `notify.retry_max` must not be less than `notify.retry_initial`",
        ];
        assert_eq!(found, expected);
    }

    #[test]
    fn duplicate_notifiers_and_wrong_table_shapes_are_refused() {
        let found = errors(
            r#"[[notifier]]
name = "a"
kind = "webhook"
url = "http://127.0.0.1/"

[[notifier]]
name = "a"
kind = "webhook"
url = "http://127.0.0.1/"
routing_key = "0123456789abcdef0123456789abcdef"

[route]
notifiers = ["a"]
"#,
        );
        assert_eq!(
            found,
            [
                "warden.toml:7:8: notifier \"a\" is defined twice (first at line 2)",
                "warden.toml:10:15: notifier \"a\": `routing_key` is only for kind \"pagerduty\", not \"webhook\"",
                "warden.toml:12:1: `route` must be an array of tables: write [[route]]",
            ]
        );
    }
}
