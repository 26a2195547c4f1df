//! The JSON a plugin returns from a check, shared by the SDK and the daemon.
//!
//! ```json
//! {"status":"ok","message":"SELECT 1 ok","reason":null,
//!  "metrics":[{"name":"query_seconds","value":0.002,"unit":"seconds","labels":{}}]}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Check status with the Nagios meanings; [`Status::exit_code`] gives 0 to 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Everything is as it should be.
    Ok,
    /// Working, but a threshold or a soft condition is crossed.
    Warning,
    /// Not working.
    Critical,
    /// The state could not be determined.
    Unknown,
}

impl Status {
    /// The Nagios exit code: 0 ok, 1 warning, 2 critical, 3 unknown.
    pub const fn exit_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    /// The lowercase name used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Unknown => "unknown",
        }
    }
}

/// Why a check failed, from a small fixed set so metrics and notifications
/// can group by it. Values a host does not know read as [`Reason::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// The connection was refused.
    Refused,
    /// A name did not resolve.
    Dns,
    /// The TLS handshake or certificate verification failed.
    Tls,
    /// Credentials were rejected.
    Auth,
    /// The run did not finish before its deadline.
    Timeout,
    /// The peer answered something that is not its protocol.
    Protocol,
    /// A measured value crossed a configured threshold.
    Threshold,
    /// The plugin or its process crashed.
    Crashed,
    /// The resource is up but out of capacity (for example no free slots).
    Exhausted,
    /// The plugin itself failed (bad result, internal error).
    Error,
    /// Any other reason.
    #[serde(other)]
    Other,
}

impl Reason {
    /// The lowercase name used in JSON and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Refused => "refused",
            Reason::Dns => "dns",
            Reason::Tls => "tls",
            Reason::Auth => "auth",
            Reason::Timeout => "timeout",
            Reason::Protocol => "protocol",
            Reason::Threshold => "threshold",
            Reason::Crashed => "crashed",
            Reason::Exhausted => "exhausted",
            Reason::Error => "error",
            Reason::Other => "other",
        }
    }
}

/// One named number measured by a check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Snake-case name with its unit, e.g. `memory_available_bytes`.
    pub name: String,
    /// The value; NaN and infinities are dropped by the host.
    pub value: f64,
    /// Unit, e.g. `bytes`, `seconds`, `ratio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Extra labels, e.g. `{"mount": "/"}`; kept few and bounded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Metric {
    /// A metric without unit or labels.
    pub fn new(name: impl Into<String>, value: f64) -> Self {
        Metric {
            name: name.into(),
            value,
            unit: None,
            labels: BTreeMap::new(),
        }
    }

    /// Sets the unit.
    #[must_use]
    pub fn unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = Some(unit.into());
        self
    }

    /// Adds a label.
    #[must_use]
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(name.into(), value.into());
        self
    }
}

/// What one check run found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The verdict.
    pub status: Status,
    /// One line for people.
    #[serde(default)]
    pub message: String,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// What was measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
}

impl CheckResult {
    /// A result with the given status and message and nothing else.
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        CheckResult {
            status,
            message: message.into(),
            reason: None,
            metrics: Vec::new(),
        }
    }

    /// An `ok` result.
    pub fn ok(message: impl Into<String>) -> Self {
        Self::new(Status::Ok, message)
    }

    /// A `warning` result.
    pub fn warning(message: impl Into<String>) -> Self {
        Self::new(Status::Warning, message)
    }

    /// A `critical` result with its reason.
    pub fn critical(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(Status::Critical, message).with_reason(reason)
    }

    /// An `unknown` result.
    pub fn unknown(message: impl Into<String>) -> Self {
        Self::new(Status::Unknown, message)
    }

    /// Sets the reason.
    #[must_use]
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Adds metrics.
    #[must_use]
    pub fn with_metrics(mut self, metrics: impl IntoIterator<Item = Metric>) -> Self {
        self.metrics.extend(metrics);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values_cross_json_unchanged() {
        // Without serde_json's exact float parsing these came back one unit
        // in the last place off.
        for value in [
            8_999_999_999_999_999.0,
            1.5e-300,
            0.1,
            123_456.789e10,
            f64::MAX,
        ] {
            let result = CheckResult::ok("fine").with_metrics([Metric::new("m", value)]);
            let json = serde_json::to_string(&result).unwrap();
            let back: CheckResult = serde_json::from_str(&json).unwrap();
            assert_eq!(back.metrics[0].value.to_bits(), value.to_bits(), "{json}");
        }
    }

    #[test]
    fn round_trips_through_json() {
        let result = CheckResult::critical(Reason::Refused, "connection refused").with_metrics([
            Metric::new("connect_seconds", 0.5)
                .unit("seconds")
                .label("step", "tcp"),
        ]);
        let json = serde_json::to_string(&result).unwrap();
        assert_eq!(
            json,
            r#"{"status":"critical","message":"connection refused","reason":"refused","metrics":[{"name":"connect_seconds","value":0.5,"unit":"seconds","labels":{"step":"tcp"}}]}"#
        );
        assert_eq!(serde_json::from_str::<CheckResult>(&json).unwrap(), result);
    }

    #[test]
    fn unknown_reason_reads_as_other_and_unknown_status_is_refused() {
        let parsed: CheckResult =
            serde_json::from_str(r#"{"status":"warning","reason":"cosmic-rays"}"#).unwrap();
        assert_eq!(parsed.reason, Some(Reason::Other));
        assert_eq!(parsed.message, "");
        assert!(serde_json::from_str::<CheckResult>(r#"{"status":"fine"}"#).is_err());
    }
}
