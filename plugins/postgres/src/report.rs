//! Collects a run's findings and metrics and folds them into one result:
//! the worst finding sets the status and reason, findings come first in the
//! message, then a one-line summary of what was measured.

use warden_plugin_api::{CheckResult, Metric, Reason, Status};

use crate::classify::Failure;

/// What a run found so far.
#[derive(Debug, Default)]
pub(crate) struct Report {
    findings: Vec<(Status, Reason, String)>,
    pub(crate) metrics: Vec<Metric>,
}

impl Report {
    /// Records a warning or critical finding.
    pub(crate) fn finding(&mut self, status: Status, reason: Reason, text: impl Into<String>) {
        self.findings.push((status, reason, text.into()));
    }

    /// Adds a metric.
    pub(crate) fn metric(&mut self, metric: Metric) {
        self.metrics.push(metric);
    }

    /// A critical result for a failed connection or liveness query.
    pub(crate) fn fail(self, failure: Failure) -> CheckResult {
        CheckResult::critical(failure.reason, failure.message).with_metrics(self.metrics)
    }

    /// The final result with `summary` after the findings.
    pub(crate) fn finish(mut self, summary: String) -> CheckResult {
        // Stable sort: the worst first, in the order they were found.
        self.findings.sort_by_key(|f| std::cmp::Reverse(f.0));
        let mut parts: Vec<String> = self
            .findings
            .iter()
            .map(|(_, _, text)| text.clone())
            .collect();
        parts.push(summary);
        let message = parts.join("; ");
        let result = match self.findings.first() {
            Some((status, reason, _)) => CheckResult::new(*status, message).with_reason(*reason),
            None => CheckResult::ok(message),
        };
        result.with_metrics(self.metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_finding_wins_and_leads_the_message() {
        let mut report = Report::default();
        report.finding(Status::Warning, Reason::Error, "query a failed");
        report.finding(
            Status::Critical,
            Reason::Threshold,
            "slots nearly exhausted",
        );
        let result = report.finish("primary".into());
        assert_eq!(result.status, Status::Critical);
        assert_eq!(result.reason, Some(Reason::Threshold));
        assert_eq!(
            result.message,
            "slots nearly exhausted; query a failed; primary"
        );
        assert_eq!(
            Report::default().finish("fine".into()),
            CheckResult::ok("fine")
        );
    }
}
