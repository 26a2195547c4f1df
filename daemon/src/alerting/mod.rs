//! Alerting: rules evaluated over the daemon's own series, and the alerts
//! they produce.

mod alert;

pub use alert::{Alert, AlertState, fingerprint};
