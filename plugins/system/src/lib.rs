//! The `system` check plugin: CPU, memory, swap, load and disk usage of the
//! host, judged against warning and critical thresholds. It runs on every
//! host by default, so an empty config must give a useful check.
//!
//! Modules: [`config`] parses and validates the config section, [`mounts`]
//! picks the filesystems to report, [`sample`] reads the host through
//! sysinfo, [`evaluate`] turns the figures into a result.

pub mod config;
pub mod evaluate;
pub mod mounts;
pub mod sample;

use warden_plugin_api::{CheckResult, Host, Plugin, RunContext};

use crate::config::Config;
use crate::sample::Sampler;

/// One configured `system` check.
#[derive(Debug)]
pub struct SystemCheck {
    config: Config,
    sampler: Sampler,
}

impl Plugin for SystemCheck {
    fn create(config: serde_json::Value, _host: Host) -> Result<Self, String> {
        let config = Config::parse(&config).map_err(|e| e.to_string())?;
        let sampler = Sampler::new().map_err(|e| e.to_string())?;
        Ok(SystemCheck { config, sampler })
    }

    fn check(&mut self, ctx: &RunContext) -> CheckResult {
        let snapshot = self.sampler.sample(ctx, &self.config.mounts);
        evaluate::evaluate(&snapshot, &self.config.thresholds)
    }
}

warden_plugin_api::export_plugin!(SystemCheck, name = "system");

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use warden_plugin_api::{Metric, Reason, Status};

    use super::*;
    use crate::mounts::DEFAULT_EXCLUDED_FS_TYPES;

    fn run(config: serde_json::Value) -> CheckResult {
        let mut check = SystemCheck::create(config, Host::detached()).expect("config is valid");
        check.check(&RunContext::with_timeout(Duration::from_secs(10)))
    }

    fn metric<'a>(result: &'a CheckResult, name: &str) -> Option<&'a Metric> {
        result.metrics.iter().find(|m| m.name == name)
    }

    /// Mount points of real filesystems at `/` per /proc/mounts, read here
    /// independently of sysinfo.
    #[cfg(target_os = "linux")]
    fn root_is_a_real_filesystem() -> bool {
        let mounts = std::fs::read_to_string("/proc/mounts").expect("/proc/mounts is readable");
        mounts.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 2 && fields[1] == "/" && !DEFAULT_EXCLUDED_FS_TYPES.contains(&fields[2])
        })
    }

    #[test]
    fn default_config_gives_plausible_real_figures() {
        let result = run(json!({}));
        assert_ne!(result.status, Status::Unknown, "{}", result.message);
        if result.status != Status::Ok {
            // A busy build host may cross the cpu warning; that must say why.
            assert_eq!(result.reason, Some(Reason::Threshold), "{}", result.message);
        }

        let memory_total = metric(&result, "memory_total_bytes")
            .expect("memory total")
            .value;
        assert!(memory_total > 0.0);
        let available = metric(&result, "memory_available_bytes")
            .expect("memory available")
            .value;
        assert!(available <= memory_total);
        let cpu = metric(&result, "cpu_usage_ratio").expect("cpu measured on the first run");
        assert!(cpu.value.is_finite());
        assert!(metric(&result, "cpus").expect("cpu count").value >= 1.0);
        for m in &result.metrics {
            assert!(m.value.is_finite() && m.value >= 0.0, "{m:?}");
            if m.name.ends_with("_ratio") {
                assert!((0.0..=1.0).contains(&m.value), "{m:?}");
                assert_eq!(m.unit.as_deref(), Some("ratio"), "{m:?}");
            }
        }
        let swap_total = metric(&result, "swap_total_bytes")
            .expect("swap total")
            .value;
        assert_eq!(
            metric(&result, "swap_used_ratio").is_some(),
            swap_total > 0.0
        );
        #[cfg(unix)]
        assert!(metric(&result, "load1").is_some() && metric(&result, "load15").is_some());

        let disks: Vec<&Metric> = result
            .metrics
            .iter()
            .filter(|m| m.name == "disk_total_bytes")
            .collect();
        assert!(
            disks
                .iter()
                .all(|m| m.value > 0.0 && m.labels.contains_key("mount"))
        );
        #[cfg(target_os = "linux")]
        if root_is_a_real_filesystem() {
            assert!(
                disks.iter().any(|m| m.labels["mount"] == "/"),
                "root filesystem missing: {}",
                result.message
            );
        }
        // Pseudo filesystems never show up with the default config.
        let mut mounts: Vec<&str> = disks.iter().map(|m| m.labels["mount"].as_str()).collect();
        assert!(
            !mounts
                .iter()
                .any(|m| m.starts_with("/proc") || m.starts_with("/sys"))
        );
        let count = mounts.len();
        mounts.dedup();
        assert_eq!(mounts.len(), count, "each mount reported once");
    }

    #[test]
    fn later_runs_measure_cpu_since_the_previous_run() {
        let mut check = SystemCheck::create(json!({}), Host::detached()).unwrap();
        let ctx = || RunContext::with_timeout(Duration::from_secs(10));
        let first = check.check(&ctx());
        let second = check.check(&ctx());
        for result in [&first, &second] {
            let cpu = metric(result, "cpu_usage_ratio").expect("cpu measured");
            assert!((0.0..=1.0).contains(&cpu.value));
        }
        let names = |r: &CheckResult| r.metrics.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&first), names(&second));
    }

    #[test]
    fn no_time_to_wait_leaves_cpu_out_instead_of_reporting_zero() {
        let mut check = SystemCheck::create(json!({}), Host::detached()).unwrap();
        let result = check.check(&RunContext::with_timeout(Duration::ZERO));
        assert!(metric(&result, "cpu_usage_ratio").is_none());
        assert!(result.message.contains("cpu n/a"), "{}", result.message);
        // The baseline from that run makes the next one measurable.
        let next = check.check(&RunContext::with_timeout(Duration::from_secs(10)));
        assert!(
            metric(&next, "cpu_usage_ratio").is_some(),
            "{}",
            next.message
        );
    }

    #[test]
    fn zero_thresholds_make_the_check_critical() {
        let zero = json!({"warning": 0, "critical": 0});
        let result = run(json!({"cpu": zero, "memory": zero, "disk": zero}));
        assert_eq!(result.status, Status::Critical);
        assert_eq!(result.reason, Some(Reason::Threshold));
        assert!(result.message.starts_with("cpu "), "{}", result.message);
        assert!(result.message.contains("memory ") && result.message.contains(">= critical 0%"));
    }

    #[test]
    fn warning_only_crossing_is_a_warning() {
        let result = run(json!({
            "cpu": {"warning": false, "critical": false},
            "disk": {"warning": false, "critical": false},
            "memory": {"warning": 0, "critical": false},
        }));
        assert_eq!(result.status, Status::Warning, "{}", result.message);
        assert_eq!(result.reason, Some(Reason::Threshold));
        assert!(result.message.starts_with("memory "), "{}", result.message);
    }

    #[test]
    fn excluded_mount_prefix_removes_every_disk() {
        let result = run(json!({"excluded_mount_prefixes": ["/"]}));
        assert!(metric(&result, "disk_used_ratio").is_none());
        assert!(result.message.ends_with("disk none"), "{}", result.message);
    }

    #[test]
    fn invalid_config_is_rejected_naming_the_key() {
        let error = SystemCheck::create(json!({"disk": {"critical": 2}}), Host::detached())
            .expect_err("out of range");
        assert_eq!(error, "`disk.critical` must be between 0 and 1, got 2");
        let error =
            SystemCheck::create(json!({"mounts": []}), Host::detached()).expect_err("unknown key");
        assert!(error.starts_with("unknown key `mounts`"), "{error}");
    }
}
