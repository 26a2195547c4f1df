//! Request bodies, one module per receiver kind. Each turns a
//! [`Notification`](super::Notification) into exactly the JSON its receiver
//! documents.

pub mod alertmanager;
pub mod pagerduty;
pub mod slack;
pub mod webhook;

/// What every format may mention besides the alerts.
#[derive(Debug, Clone)]
pub struct Context {
    /// This host's name (PagerDuty's `source`).
    pub source: String,
    /// Where this Warden answers HTTP, e.g. `http://127.0.0.1:9731`.
    pub external_url: String,
}

impl Context {
    /// Where alerts can be looked at: the daemon's list of alerts.
    pub fn generator_url(&self) -> String {
        format!("{}/alerts", self.external_url.trim_end_matches('/'))
    }
}

/// This host's name, from the kernel; `localhost` if it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
