//! Alerting: rules evaluated over the daemon's own series, and the alerts
//! they produce.

mod alert;
mod sink;

pub use alert::{Alert, AlertState, fingerprint};
pub use sink::{AlertSink, LogSink};
