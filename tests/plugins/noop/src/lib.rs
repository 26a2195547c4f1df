//! A test plugin that does nothing: every check returns `ok` with no
//! metrics, so a benchmark of it measures the host's call path alone.
//!
//! Config: `{}` (any other key is refused).

use warden_plugin_api::{CheckResult, Host, Plugin, RunContext};

/// The no-op check.
#[derive(Debug)]
pub struct Noop;

impl Plugin for Noop {
    fn create(config: serde_json::Value, _host: Host) -> Result<Self, String> {
        match config.as_object() {
            Some(keys) if keys.is_empty() => Ok(Noop),
            Some(keys) => Err(format!(
                "unknown key `{}`: the noop plugin takes no config",
                keys.keys().next().map(String::as_str).unwrap_or_default()
            )),
            None => Err("config must be a table".to_owned()),
        }
    }

    fn check(&mut self, _ctx: &RunContext) -> CheckResult {
        CheckResult::ok("noop")
    }
}

warden_plugin_api::export_plugin!(Noop, name = "noop");
