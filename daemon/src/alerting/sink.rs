//! The hand-over from rule evaluation to notification.
//!
//! After every evaluation the rule engine calls [`AlertSink::dispatch`] once
//! with every alert that is firing and every alert that resolved since the
//! previous call (state [`AlertState::Resolved`]), as Prometheus hands alerts
//! to Alertmanager. The batch may be empty; an alert that is still firing is
//! passed again on every evaluation, so the receiver decides about repeats.
//! Pending alerts are never passed.
//!
//! `dispatch` is called from the evaluation task and must not block for long:
//! a receiver that sends over the network queues the batch (for example into
//! its outbox or a channel) and returns.

use super::{Alert, AlertState};

/// Receives alerts after every rule evaluation.
pub trait AlertSink: Send + Sync + std::fmt::Debug + 'static {
    /// Takes one evaluation's firing alerts and newly resolved ones.
    fn dispatch(&self, alerts: Vec<Alert>);
}

/// The sink used while no notifier is configured: logs each firing or
/// resolved alert at debug level and drops it.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogSink;

impl AlertSink for LogSink {
    fn dispatch(&self, alerts: Vec<Alert>) {
        for alert in &alerts {
            let state = match alert.state {
                AlertState::Pending => "pending",
                AlertState::Firing => "firing",
                AlertState::Resolved => "resolved",
            };
            tracing::debug!(
                alertname = alert.name(),
                state,
                fingerprint = alert.fingerprint(),
                value = alert.value,
                "alert handed over"
            );
        }
    }
}
