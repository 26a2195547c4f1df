//! Turns one snapshot of host figures into a check result: metrics, the
//! worst crossed threshold, and the one-line message. Pure, so the verdict
//! logic is tested on hand-made snapshots as well as on the real host.

use warden_plugin_api::{CheckResult, Metric, Reason, Status};

use crate::config::{Threshold, Thresholds};

/// Physical memory figures, read only when the total is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Memory {
    /// Installed memory in bytes, above zero.
    pub total: u64,
    /// Memory that can be handed out without swapping, page cache included.
    pub available: u64,
}

/// Swap figures; both zero on a host without swap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Swap {
    /// Swap size in bytes.
    pub total: u64,
    /// Swap in use in bytes.
    pub used: u64,
}

/// Load averages over 1, 5 and 15 minutes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// One-minute average.
    pub one: f64,
    /// Five-minute average.
    pub five: f64,
    /// Fifteen-minute average.
    pub fifteen: f64,
}

/// Space on one selected filesystem.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskSpace {
    /// The mount point, used as the `mount` label.
    pub mount: String,
    /// Size in bytes, above zero.
    pub total: u64,
    /// Bytes an unprivileged user can still write.
    pub available: u64,
    /// Free bytes reserved for root: neither used nor available to others.
    pub reserved: u64,
}

/// Everything measured in one run; `None` means the figure could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// CPU busy ratio over the measured interval.
    pub cpu_usage: Option<f64>,
    /// Logical CPUs.
    pub cpu_count: Option<usize>,
    /// Physical memory.
    pub memory: Option<Memory>,
    /// Swap.
    pub swap: Swap,
    /// Load averages (not available on Windows).
    pub load: Option<Load>,
    /// Selected filesystems, sorted by mount point.
    pub disks: Vec<DiskSpace>,
}

/// `part / whole`, or `None` when `whole` is zero; `part` is capped at
/// `whole` so a racy read never gives a ratio above 1.
pub fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part.min(whole) as f64 / whole as f64)
}

impl Memory {
    /// Used share, counting reclaimable cache as free.
    pub fn used_ratio(&self) -> Option<f64> {
        ratio(self.total.saturating_sub(self.available), self.total)
    }
}

impl Swap {
    /// Used share, `None` without swap.
    pub fn used_ratio(&self) -> Option<f64> {
        ratio(self.used, self.total)
    }
}

impl DiskSpace {
    /// Used share as `df` computes it: used over what users can have, so
    /// the blocks reserved for root count neither as used nor as free.
    pub fn used_ratio(&self) -> Option<f64> {
        let usable = self.total.saturating_sub(self.reserved);
        ratio(usable.saturating_sub(self.available), usable)
    }
}

/// A threshold crossed by one value.
#[derive(Debug)]
struct Crossing {
    status: Status,
    text: String,
}

/// How a value is written in the message.
#[derive(Debug, Clone, Copy)]
enum Style {
    Percent,
    Plain,
}

impl Style {
    fn exact(self, value: f64) -> String {
        match self {
            Style::Percent => format!("{}%", trim_zeros(format!("{:.1}", value * 100.0))),
            Style::Plain => trim_zeros(format!("{value:.2}")),
        }
    }
}

fn trim_zeros(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// The worst level `value` reaches; crossing means at or above the level, so
/// a level of 0 always fires.
fn judge(label: &str, value: f64, threshold: &Threshold, style: Style) -> Option<Crossing> {
    let (status, level, word) = if let Some(level) = threshold.critical.filter(|&c| value >= c) {
        (Status::Critical, level, "critical")
    } else if let Some(level) = threshold.warning.filter(|&w| value >= w) {
        (Status::Warning, level, "warning")
    } else {
        return None;
    };
    let text = format!(
        "{label} {} >= {word} {}",
        style.exact(value),
        style.exact(level)
    );
    Some(Crossing { status, text })
}

fn percent(value: f64) -> String {
    format!("{:.0}%", value * 100.0)
}

fn gauge(name: &str, value: f64, unit: Option<&str>) -> Option<Metric> {
    // The host drops non-finite values anyway; never send them.
    value.is_finite().then(|| {
        let metric = Metric::new(name, value);
        match unit {
            Some(unit) => metric.unit(unit),
            None => metric,
        }
    })
}

/// Judges `snapshot` against `thresholds`.
pub fn evaluate(snapshot: &Snapshot, thresholds: &Thresholds) -> CheckResult {
    let mut metrics = Vec::new();
    let mut crossings = Vec::new();
    let mut summary = Vec::new();
    let mut problems = Vec::new();

    match snapshot.cpu_usage {
        Some(usage) => {
            metrics.extend(gauge("cpu_usage_ratio", usage, Some("ratio")));
            crossings.extend(judge("cpu", usage, &thresholds.cpu, Style::Percent));
            summary.push(format!("cpu {}", percent(usage)));
        }
        None => summary.push("cpu n/a".to_owned()),
    }
    if let Some(count) = snapshot.cpu_count {
        metrics.extend(gauge("cpus", count as f64, None));
    }

    match snapshot.memory.and_then(|m| Some((m, m.used_ratio()?))) {
        Some((memory, used)) => {
            metrics.extend(gauge("memory_used_ratio", used, Some("ratio")));
            metrics.extend(gauge(
                "memory_available_bytes",
                memory.available as f64,
                Some("bytes"),
            ));
            metrics.extend(gauge(
                "memory_total_bytes",
                memory.total as f64,
                Some("bytes"),
            ));
            crossings.extend(judge("memory", used, &thresholds.memory, Style::Percent));
            summary.push(format!("memory {}", percent(used)));
        }
        None => {
            problems.push("memory figures unavailable".to_owned());
            summary.push("memory n/a".to_owned());
        }
    }

    let swap = snapshot.swap;
    if let Some(used) = swap.used_ratio() {
        metrics.extend(gauge("swap_used_ratio", used, Some("ratio")));
        crossings.extend(judge("swap", used, &thresholds.swap, Style::Percent));
        summary.push(format!("swap {}", percent(used)));
    } else {
        summary.push("swap none".to_owned());
    }
    metrics.extend(gauge(
        "swap_used_bytes",
        swap.used.min(swap.total) as f64,
        Some("bytes"),
    ));
    metrics.extend(gauge("swap_total_bytes", swap.total as f64, Some("bytes")));

    match snapshot.load {
        Some(load) => {
            metrics.extend(gauge("load1", load.one, None));
            metrics.extend(gauge("load5", load.five, None));
            metrics.extend(gauge("load15", load.fifteen, None));
            if let Some(cpus) = snapshot.cpu_count.filter(|&n| n > 0) {
                let per_cpu = load.five / cpus as f64;
                crossings.extend(judge(
                    "load5 per cpu",
                    per_cpu,
                    &thresholds.load_per_cpu,
                    Style::Plain,
                ));
            }
            summary.push(format!("load {:.2}", load.one));
        }
        None => summary.push("load n/a".to_owned()),
    }

    let mut disk_parts = Vec::new();
    for disk in &snapshot.disks {
        let Some(used) = disk.used_ratio() else {
            continue;
        };
        let labelled = |metric: Option<Metric>| metric.map(|m| m.label("mount", &disk.mount));
        metrics.extend(labelled(gauge("disk_used_ratio", used, Some("ratio"))));
        metrics.extend(labelled(gauge(
            "disk_available_bytes",
            disk.available as f64,
            Some("bytes"),
        )));
        metrics.extend(labelled(gauge(
            "disk_total_bytes",
            disk.total as f64,
            Some("bytes"),
        )));
        let label = format!("disk {}", disk.mount);
        crossings.extend(judge(&label, used, &thresholds.disk, Style::Percent));
        disk_parts.push(format!("{} {}", disk.mount, percent(used)));
    }
    if disk_parts.is_empty() {
        summary.push("disk none".to_owned());
    } else {
        summary.push(format!("disk {}", disk_parts.join(", ")));
    }

    // Critical crossings lead the message; the sort is stable so the order
    // within a level stays cpu, memory, swap, load, disks.
    crossings.sort_by_key(|c| std::cmp::Reverse(c.status));
    let worst = crossings
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Ok);

    let mut message = String::new();
    for lead in problems.iter().chain(crossings.iter().map(|c| &c.text)) {
        if !message.is_empty() {
            message.push_str(", ");
        }
        message.push_str(lead);
    }
    if !message.is_empty() {
        message.push_str("; ");
    }
    message.push_str(&summary.join(", "));

    let (status, reason) = if !problems.is_empty() {
        (Status::Unknown, Some(Reason::Error))
    } else if worst != Status::Ok {
        (worst, Some(Reason::Threshold))
    } else {
        (Status::Ok, None)
    };
    let result = CheckResult::new(status, message).with_metrics(metrics);
    match reason {
        Some(reason) => result.with_reason(reason),
        None => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn snapshot() -> Snapshot {
        Snapshot {
            cpu_usage: Some(0.12),
            cpu_count: Some(4),
            memory: Some(Memory {
                total: 16 * GIB,
                available: 12 * GIB,
            }),
            swap: Swap {
                total: 2 * GIB,
                used: 0,
            },
            load: Some(Load {
                one: 0.52,
                five: 0.4,
                fifteen: 0.3,
            }),
            disks: vec![
                DiskSpace {
                    mount: "/".to_owned(),
                    total: 100 * GIB,
                    available: 45 * GIB,
                    reserved: 0,
                },
                DiskSpace {
                    mount: "/var".to_owned(),
                    total: 10 * GIB,
                    available: GIB / 2,
                    reserved: 0,
                },
            ],
        }
    }

    fn quiet() -> Thresholds {
        let off = Threshold {
            warning: None,
            critical: None,
        };
        Thresholds {
            cpu: off,
            memory: off,
            swap: off,
            disk: off,
            load_per_cpu: off,
        }
    }

    fn value_of(result: &CheckResult, name: &str) -> Option<f64> {
        result
            .metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    #[test]
    fn below_every_threshold_is_ok_with_a_summary() {
        let result = evaluate(&snapshot(), &quiet());
        assert_eq!(result.status, Status::Ok);
        assert_eq!(result.reason, None);
        assert_eq!(
            result.message,
            "cpu 12%, memory 25%, swap 0%, load 0.52, disk / 55%, /var 95%"
        );
        assert_eq!(value_of(&result, "memory_used_ratio"), Some(0.25));
        assert_eq!(value_of(&result, "swap_used_ratio"), Some(0.0));
    }

    #[test]
    fn critical_crossings_lead_the_message_before_warnings() {
        let mut thresholds = quiet();
        thresholds.memory = Threshold {
            warning: Some(0.2),
            critical: Some(0.9),
        };
        thresholds.disk = Threshold {
            warning: Some(0.9),
            critical: Some(0.95),
        };
        let result = evaluate(&snapshot(), &thresholds);
        assert_eq!(result.status, Status::Critical);
        assert_eq!(result.reason, Some(Reason::Threshold));
        assert_eq!(
            result.message,
            "disk /var 95% >= critical 95%, memory 25% >= warning 20%; \
             cpu 12%, memory 25%, swap 0%, load 0.52, disk / 55%, /var 95%"
        );
    }

    #[test]
    fn warning_only_gives_warning_with_threshold_reason() {
        let mut thresholds = quiet();
        thresholds.cpu = Threshold {
            warning: Some(0.1),
            critical: None,
        };
        let result = evaluate(&snapshot(), &thresholds);
        assert_eq!(result.status, Status::Warning);
        assert_eq!(result.reason, Some(Reason::Threshold));
        assert!(
            result.message.starts_with("cpu 12% >= warning 10%; "),
            "{}",
            result.message
        );
    }

    #[test]
    fn load_is_judged_per_cpu_on_the_five_minute_average() {
        let mut thresholds = quiet();
        thresholds.load_per_cpu = Threshold {
            warning: Some(0.1),
            critical: Some(2.0),
        };
        let result = evaluate(&snapshot(), &thresholds);
        assert_eq!(result.status, Status::Warning);
        assert!(
            result
                .message
                .starts_with("load5 per cpu 0.1 >= warning 0.1; "),
            "{}",
            result.message
        );
    }

    #[test]
    fn host_without_swap_has_no_swap_ratio_and_is_not_judged_on_it() {
        let mut snap = snapshot();
        snap.swap = Swap { total: 0, used: 0 };
        let mut thresholds = quiet();
        thresholds.swap = Threshold {
            warning: Some(0.0),
            critical: Some(0.0),
        };
        let result = evaluate(&snap, &thresholds);
        assert_eq!(result.status, Status::Ok);
        assert_eq!(value_of(&result, "swap_used_ratio"), None);
        assert_eq!(value_of(&result, "swap_total_bytes"), Some(0.0));
        assert!(result.message.contains("swap none"), "{}", result.message);
        assert!(result.metrics.iter().all(|m| m.value.is_finite()));
    }

    #[test]
    fn unreadable_memory_is_unknown_with_error_reason() {
        let mut snap = snapshot();
        snap.memory = None;
        snap.cpu_usage = None;
        let result = evaluate(&snap, &quiet());
        assert_eq!(result.status, Status::Unknown);
        assert_eq!(result.reason, Some(Reason::Error));
        assert!(
            result
                .message
                .starts_with("memory figures unavailable; cpu n/a, memory n/a")
        );
        assert_eq!(value_of(&result, "memory_total_bytes"), None);
        assert_eq!(value_of(&result, "cpu_usage_ratio"), None);
    }

    #[test]
    fn disks_carry_the_mount_label() {
        let result = evaluate(&snapshot(), &quiet());
        let var: Vec<&Metric> = result
            .metrics
            .iter()
            .filter(|m| m.labels.get("mount").map(String::as_str) == Some("/var"))
            .collect();
        let names: Vec<&str> = var.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "disk_used_ratio",
                "disk_available_bytes",
                "disk_total_bytes"
            ]
        );
        assert_eq!(var[1].value, (GIB / 2) as f64);
    }

    #[test]
    fn ratio_is_none_for_zero_whole_and_capped_at_one() {
        assert_eq!(ratio(5, 0), None);
        assert_eq!(ratio(7, 5), Some(1.0));
    }
}

#[cfg(test)]
mod disk_ratio_tests {
    use super::DiskSpace;

    #[test]
    fn root_reserved_blocks_count_as_neither_used_nor_free() {
        // df: 100 blocks, 30 free of which 10 reserved: used 70 / (70 + 20).
        let disk = DiskSpace {
            mount: "/".into(),
            total: 100,
            available: 20,
            reserved: 10,
        };
        let ratio = disk.used_ratio().unwrap();
        assert!((ratio - 70.0 / 90.0).abs() < 1e-12, "{ratio}");
    }
}
