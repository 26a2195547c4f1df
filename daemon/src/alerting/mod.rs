//! Alerting: rules evaluated over the daemon's own series, and the alerts
//! they produce.
//!
//! - `config`: `[alerting]`, `[[rule]]` and `rule_files`, validated at load.
//! - `feed`: the daemon's metric families into the series store.
//! - `lifecycle`: pending, firing and resolved, as Prometheus.
//! - `engine`: rules, series and alert state, one evaluation at a time.
//! - `service`: the evaluation task; `persist`: alert state in the store.
//! - `sink`: the hand-over to notification.
//! - `export`, `unit`: `warden rules export` and `warden rules test`.
//! - `lint`: warnings for rules that can never match a series.

mod alert;
pub mod cli;
pub mod config;
pub mod engine;
mod export;
mod feed;
mod json;
mod lifecycle;
pub mod lint;
mod metrics;
pub mod persist;
pub mod service;
mod sink;
mod template;
mod unit;
pub mod wiring;

pub use alert::{Alert, AlertState, fingerprint};
pub use config::{AlertingConfig, RuleConfig};
pub use engine::Engine;
pub use json::alerts_json;
pub use metrics::RuleMetrics;
pub use service::{ActiveAlerts, Clock, Inputs, Service};
pub use sink::{AlertSink, LogSink};
