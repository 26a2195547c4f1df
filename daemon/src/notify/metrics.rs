//! Notification metrics: `warden_notifications_total{notifier,outcome}` and
//! `warden_outbox_entries`.

use prometheus::core::Collector;
use prometheus::{IntCounterVec, IntGauge, Opts};

/// Outcomes counted per notifier.
pub const OUTCOMES: [&str; 4] = ["sent", "retried", "failed", "expired"];

/// Handles to the notification metrics.
#[derive(Debug, Clone)]
pub struct NotifyMetrics {
    notifications: IntCounterVec,
    outbox: IntGauge,
}

impl Default for NotifyMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl NotifyMetrics {
    /// Creates the metrics, not yet registered anywhere.
    pub fn new() -> NotifyMetrics {
        NotifyMetrics {
            notifications: IntCounterVec::new(
                Opts::new(
                    "warden_notifications_total",
                    "Delivery attempts by notifier and outcome: sent, retried (a failed \
                     attempt that will be repeated), failed (refused for good) or expired.",
                ),
                &["notifier", "outcome"],
            )
            .expect("valid metric"),
            outbox: IntGauge::new(
                "warden_outbox_entries",
                "Notifications written to the outbox and not yet delivered, refused or expired.",
            )
            .expect("valid metric"),
        }
    }

    /// The collectors, for the daemon's registry.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.notifications.clone()),
            Box::new(self.outbox.clone()),
        ]
    }

    /// Makes a notifier's series read 0 rather than absent.
    pub fn register_notifier(&self, notifier: &str) {
        for outcome in OUTCOMES {
            self.notifications.with_label_values(&[notifier, outcome]);
        }
    }

    /// Counts one outcome.
    pub fn count(&self, notifier: &str, outcome: &'static str) {
        self.notifications
            .with_label_values(&[notifier, outcome])
            .inc();
    }

    /// The current count of one outcome.
    pub fn get(&self, notifier: &str, outcome: &str) -> u64 {
        self.notifications
            .with_label_values(&[notifier, outcome])
            .get()
    }

    /// Sets the outbox size.
    pub fn set_outbox(&self, entries: u64) {
        self.outbox.set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    /// The outbox size last set.
    pub fn outbox(&self) -> i64 {
        self.outbox.get()
    }
}
