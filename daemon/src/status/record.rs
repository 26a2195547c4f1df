//! What one run of a check produced, as the daemon keeps it.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;
use warden_plugin_api::{CheckResult, Metric, Reason, Status};

/// The outcome of a run: the plugin's status, or what the daemon saw when the
/// plugin gave none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Status `ok`.
    Ok,
    /// Status `warning`.
    Warning,
    /// Status `critical`.
    Critical,
    /// Status `unknown`.
    Unknown,
    /// No result before the deadline.
    Timeout,
    /// The plugin failed, crashed or returned garbage.
    Error,
}

impl Outcome {
    /// Every outcome, for pre-creating metric series.
    pub const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::Warning,
        Outcome::Critical,
        Outcome::Unknown,
        Outcome::Timeout,
        Outcome::Error,
    ];

    /// The lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Warning => "warning",
            Outcome::Critical => "critical",
            Outcome::Unknown => "unknown",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }

    /// The Nagios status it counts as: timeouts and errors are critical.
    pub const fn status(self) -> Status {
        match self {
            Outcome::Ok => Status::Ok,
            Outcome::Warning => Status::Warning,
            Outcome::Critical | Outcome::Timeout | Outcome::Error => Status::Critical,
            Outcome::Unknown => Status::Unknown,
        }
    }

    /// Whether the run counts towards `fall` rather than `rise`. `unknown`
    /// fails: a check that cannot tell is not evidence of health.
    pub const fn is_failure(self) -> bool {
        !matches!(self, Outcome::Ok | Outcome::Warning)
    }
}

/// Most metrics kept from one result (the `/metrics` exposition keeps
/// fewer); a runaway plugin must not grow the board without bound.
pub(super) const MAX_METRICS: usize = 1000;
/// Longest message kept, in bytes.
pub(super) const MAX_MESSAGE_BYTES: usize = 4096;

/// A plugin's message as one bounded line: control characters (newlines,
/// escapes, NUL) become spaces, so a message can neither forge log lines nor
/// break a status page, and it is cut at a character boundary.
pub fn one_line(message: &str) -> String {
    let spaced: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = spaced.trim().to_owned();
    if out.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

/// One finished run.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// What happened.
    pub outcome: Outcome,
    /// One line for people.
    pub message: String,
    /// Why it failed, when it did.
    pub reason: Option<Reason>,
    /// Measurements, finite values only, at most `MAX_METRICS` of them.
    pub metrics: Vec<Metric>,
    /// Finite measurements the plugin reported, kept or not, so what was
    /// cut can be counted.
    pub metrics_reported: usize,
    /// Wall-clock start, for display.
    pub started_at: SystemTime,
    /// Monotonic end, for staleness.
    pub finished: Instant,
    /// How long the run took.
    pub duration: Duration,
}

impl RunRecord {
    /// A record from a plugin's result.
    pub fn from_result(result: CheckResult, started_at: SystemTime, duration: Duration) -> Self {
        let outcome = match result.status {
            Status::Ok => Outcome::Ok,
            Status::Warning => Outcome::Warning,
            Status::Critical => Outcome::Critical,
            Status::Unknown => Outcome::Unknown,
        };
        let mut metrics: Vec<Metric> = result
            .metrics
            .into_iter()
            .filter(|m| m.value.is_finite())
            .collect();
        let metrics_reported = metrics.len();
        if metrics_reported > MAX_METRICS {
            metrics.truncate(MAX_METRICS);
            metrics.shrink_to_fit();
        }
        RunRecord {
            outcome,
            message: one_line(&result.message),
            reason: result.reason,
            metrics,
            metrics_reported,
            started_at,
            finished: Instant::now(),
            duration,
        }
    }

    /// A record for a run that produced no result.
    ///
    /// The message is made one bounded line, like a plugin's.
    pub fn failed(
        outcome: Outcome,
        reason: Reason,
        message: String,
        started_at: SystemTime,
        duration: Duration,
    ) -> Self {
        RunRecord {
            outcome,
            message: one_line(&message),
            reason: Some(reason),
            metrics: Vec::new(),
            metrics_reported: 0,
            started_at,
            finished: Instant::now(),
            duration,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_become_one_bounded_line() {
        assert_eq!(
            one_line(" a\nforged line\u{1b}[31m\0 "),
            "a forged line [31m"
        );
        let long = "é".repeat(5000);
        let cut = one_line(&long);
        assert!(cut.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8() && cut.ends_with('…'));
    }
}
