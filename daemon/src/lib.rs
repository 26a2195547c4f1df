//! Warden: a host monitoring daemon. Check plugins loaded over a C ABI run on
//! a schedule; their results feed health status, metrics and HTTP answers.

pub mod alerting;
pub mod app;
pub mod cli;
pub mod config;
pub mod http;
pub mod isolation;
pub mod limits;
pub mod notify;
pub mod plugin;
pub mod redact;
pub mod reload;
pub mod scheduler;
pub mod signals;
pub mod status;
pub mod store;
pub mod systemd;
pub mod telemetry;
