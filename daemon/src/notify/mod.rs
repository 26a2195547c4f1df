//! Notifications: routing handed-over alerts to notifiers, a durable outbox
//! in the state database, and delivery to Slack, PagerDuty, webhooks and
//! Alertmanager with retries.
//!
//! The flow: the rule engine hands every firing and newly resolved alert to
//! [`NotifySink`] after each evaluation; the dispatcher routes the batch
//! ([`router`]) and writes the resulting messages and the record of what
//! was notified to the outbox ([`outbox`]) in one transaction; one worker
//! per notifier ([`deliver`]) sends them ([`send`], [`format`]) in order,
//! retrying with backoff, and removes each once delivered, refused or
//! expired.

pub mod deliver;
pub mod format;
mod matcher;
pub mod message;
pub mod metrics;
pub mod outbox;
pub mod router;
pub mod send;
mod service;

pub use matcher::{MatchOp, Matcher};
pub use service::{Notifications, NotifySink, StartError, register_metrics, start};

#[cfg(test)]
mod tests;
