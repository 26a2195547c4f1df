//! Notifications: routing handed-over alerts to notifiers, a durable outbox
//! in the state database, and delivery to Slack, PagerDuty, webhooks and
//! Alertmanager with retries.

mod matcher;

pub use matcher::{MatchOp, Matcher};
