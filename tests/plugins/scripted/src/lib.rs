//! A test plugin whose every run does what a file says, so end-to-end tests
//! can drive the daemon through any sequence of results.
//!
//! Config: `{"file": "/path/to/script"}`. The file holds either a bare status
//! word (`ok`, `warning`, `critical`, `unknown`) or a JSON object:
//! `{"status": "ok", "message": "...", "sleep_ms": 0, "panic": false,
//!   "metrics": [{"name": "x", "value": 1}]}`.
//! `"crash": "segv" | "abort"` kills the process (for process isolation
//! tests, never in-process); `"report_env": "NAME"` puts `NAME=value` (or
//! `NAME unset`) in the message; `"stderr": "text"` prints the text on
//! stderr.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use warden_plugin_api::{CheckResult, Host, Metric, Plugin, RunContext, Status};

#[derive(Debug)]
pub struct Scripted {
    file: PathBuf,
    host: Host,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Script {
    status: Status,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    panic: bool,
    #[serde(default)]
    log: Option<String>,
    #[serde(default)]
    metrics: Vec<Metric>,
    #[serde(default)]
    crash: Option<Crash>,
    #[serde(default)]
    report_env: Option<String>,
    #[serde(default)]
    stderr: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Crash {
    Segv,
    Abort,
}

/// Kills the process the way a buggy plugin would.
#[allow(unsafe_code, reason = "a deliberate null dereference for crash tests")]
fn crash(how: Crash) -> ! {
    // A deliberate crash must not leave core files wherever the test ran.
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads a valid, initialised struct.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
    match how {
        Crash::Segv => {
            // SAFETY: not sound, on purpose: this writes through a null
            // pointer so the kernel kills the process with SIGSEGV, which is
            // what process isolation tests need to observe.
            unsafe { std::ptr::null_mut::<i32>().write_volatile(1) };
            // Unreachable in practice; abort rather than return if it were not.
            std::process::abort()
        }
        Crash::Abort => std::process::abort(),
    }
}

impl Plugin for Scripted {
    fn create(config: serde_json::Value, host: Host) -> Result<Self, String> {
        let config: Config = serde_json::from_value(config).map_err(|e| e.to_string())?;
        Ok(Scripted {
            file: config.file,
            host,
        })
    }

    fn check(&mut self, _ctx: &RunContext) -> CheckResult {
        let text = match std::fs::read_to_string(&self.file) {
            Ok(text) => text,
            Err(e) => return CheckResult::unknown(format!("cannot read script: {e}")),
        };
        let text = text.trim();
        let script: Script = if text.starts_with('{') {
            match serde_json::from_str(text) {
                Ok(s) => s,
                Err(e) => return CheckResult::unknown(format!("bad script: {e}")),
            }
        } else {
            match serde_json::from_value(serde_json::Value::String(text.to_owned())) {
                Ok(status) => Script {
                    status,
                    message: None,
                    sleep_ms: 0,
                    panic: false,
                    log: None,
                    metrics: Vec::new(),
                    crash: None,
                    report_env: None,
                    stderr: None,
                },
                Err(e) => return CheckResult::unknown(format!("bad script: {e}")),
            }
        };
        if let Some(line) = &script.log {
            self.host.info(line);
        }
        if let Some(line) = &script.stderr {
            eprintln!("{line}");
        }
        std::thread::sleep(Duration::from_millis(script.sleep_ms));
        if script.panic {
            panic!("scripted panic");
        }
        if let Some(how) = script.crash {
            crash(how);
        }
        let message = match &script.report_env {
            Some(name) => match std::env::var(name) {
                Ok(value) => format!("{name}={value}"),
                Err(_) => format!("{name} unset"),
            },
            None => script
                .message
                .unwrap_or_else(|| format!("scripted {}", script.status.as_str())),
        };
        CheckResult::new(script.status, message).with_metrics(script.metrics)
    }
}

warden_plugin_api::export_plugin!(Scripted, name = "scripted");
