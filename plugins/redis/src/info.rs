//! Parses the text of `INFO` and turns the fields the check cares about into
//! findings and metrics.

use warden_plugin_api::{Metric, Reason, Status};

/// The `INFO` sections that hold every field in [`FIELDS`], asked for by name
/// so the server renders and sends only those.
pub(crate) const SECTIONS: [&str; 6] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
];

/// The fields [`assess`] reads; [`Info::parse`] keeps these and skips the
/// rest of the reply (some 150 lines) without copying it.
const FIELDS: [&str; 13] = [
    "uptime_in_seconds",
    "connected_clients",
    "blocked_clients",
    "used_memory",
    "maxmemory",
    "loading",
    "rejected_connections",
    "evicted_keys",
    "role",
    "master_host",
    "master_port",
    "master_link_status",
    "master_link_down_since_seconds",
];

/// The fields of an `INFO` reply that the check reads.
#[derive(Debug, Clone, Default)]
pub struct Info {
    values: [Option<String>; FIELDS.len()],
}

impl Info {
    /// Parses `INFO` text: `field:value` lines; section headers, blank
    /// lines and fields the check does not read are skipped.
    pub fn parse(text: &str) -> Self {
        let mut info = Info::default();
        for line in text.lines() {
            let Some((key, value)) = line.trim().split_once(':') else {
                continue;
            };
            if let Some(i) = FIELDS.iter().position(|field| *field == key) {
                info.values[i] = Some(value.to_owned());
            }
        }
        info
    }

    /// A field the check reads; `None` when absent from the reply, and for
    /// any field the check does not read.
    pub fn get(&self, key: &str) -> Option<&str> {
        let i = FIELDS.iter().position(|field| *field == key)?;
        self.values[i].as_deref()
    }

    fn number(&self, key: &str) -> Option<f64> {
        self.get(key)?.parse().ok()
    }
}

/// One thing `INFO` says is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// How bad.
    pub status: Status,
    /// Why, for grouping.
    pub reason: Reason,
    /// For people.
    pub message: String,
}

/// What the check concludes from `INFO`.
#[derive(Debug, Clone, Default)]
pub struct Assessment {
    /// Problems, worst first is not guaranteed.
    pub findings: Vec<Finding>,
    /// Metrics read from `INFO`.
    pub metrics: Vec<Metric>,
    /// A short summary for the ok message.
    pub summary: String,
}

/// Memory thresholds on `used_memory / maxmemory`.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Warning at or above this ratio.
    pub warning: f64,
    /// Critical at or above this ratio.
    pub critical: f64,
}

/// Evaluates `info` against `thresholds`.
pub fn assess(info: &Info, thresholds: Thresholds) -> Assessment {
    let mut out = Assessment::default();
    let mut summary = Vec::new();

    if info.get("loading") == Some("1") {
        // A loading server rejects nearly every command with -LOADING, so
        // clients cannot use it yet: not ready.
        out.findings.push(not_ready_loading());
    }
    if let Some(loading) = info.number("loading") {
        out.metrics.push(Metric::new("loading", loading));
    }

    let role = info.get("role").unwrap_or("unknown");
    // Redis still says "slave"; the docs and the metric say "replica".
    let shown = if role == "slave" { "replica" } else { role };
    summary.push(format!("role {shown}"));
    if matches!(role, "master" | "slave") {
        out.metrics
            .push(Metric::new("role", 1.0).label("role", shown));
    }
    if role == "slave" {
        let link = info.get("master_link_status").unwrap_or("unknown");
        let up = link == "up";
        out.metrics
            .push(Metric::new("master_link_up", if up { 1.0 } else { 0.0 }));
        if let Some(since) = info
            .number("master_link_down_since_seconds")
            .filter(|s| *s >= 0.0)
        {
            out.metrics
                .push(Metric::new("master_link_down_seconds", since).unit("seconds"));
        }
        let master = match (info.get("master_host"), info.get("master_port")) {
            (Some(h), Some(p)) => format!(" to {h}:{p}"),
            _ => String::new(),
        };
        if up {
            summary.push(format!("master link{master} up"));
        } else {
            out.findings.push(Finding {
                status: Status::Critical,
                reason: Reason::Other,
                message: format!("replica's master link{master} is {link}"),
            });
        }
    }

    let used = info.number("used_memory");
    let max = info.number("maxmemory");
    if let Some(used) = used {
        out.metrics
            .push(Metric::new("used_memory_bytes", used).unit("bytes"));
    }
    if let Some(max) = max.filter(|m| *m > 0.0) {
        out.metrics
            .push(Metric::new("maxmemory_bytes", max).unit("bytes"));
    }
    // maxmemory 0 means "no limit": the ratio is absent, not infinite.
    match (used, max) {
        (Some(used), Some(max)) if max > 0.0 => {
            let ratio = used / max;
            out.metrics
                .push(Metric::new("memory_used_ratio", ratio).unit("ratio"));
            summary.push(format!("memory {:.1}% of maxmemory", ratio * 100.0));
            let status = if ratio >= thresholds.critical {
                Some((Status::Critical, thresholds.critical))
            } else if ratio >= thresholds.warning {
                Some((Status::Warning, thresholds.warning))
            } else {
                None
            };
            if let Some((status, limit)) = status {
                out.findings.push(Finding {
                    status,
                    reason: Reason::Threshold,
                    message: format!(
                        "memory {:.1}% of maxmemory ({} of {} bytes), threshold {:.1}%",
                        ratio * 100.0,
                        used,
                        max,
                        limit * 100.0
                    ),
                });
            }
        }
        (Some(_), _) => summary.push("no maxmemory".to_owned()),
        _ => {}
    }

    for (field, metric, unit) in [
        ("connected_clients", "connected_clients", None),
        ("blocked_clients", "blocked_clients", None),
        ("rejected_connections", "rejected_connections_total", None),
        ("evicted_keys", "evicted_keys_total", None),
        ("uptime_in_seconds", "uptime_seconds", Some("seconds")),
    ] {
        if let Some(v) = info.number(field) {
            let m = Metric::new(metric, v);
            out.metrics.push(match unit {
                Some(u) => m.unit(u),
                None => m,
            });
        }
    }
    if let Some(clients) = info.number("connected_clients") {
        summary.push(format!("connected clients {clients}"));
    }
    out.summary = summary.join(", ");
    out
}

/// The finding for a server that is still loading its dataset.
pub(crate) fn not_ready_loading() -> Finding {
    Finding {
        status: Status::Critical,
        reason: Reason::Other,
        message: "not ready: loading the dataset into memory".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        warning: 0.8,
        critical: 0.95,
    };

    fn metric(a: &Assessment, name: &str) -> Option<f64> {
        a.metrics.iter().find(|m| m.name == name).map(|m| m.value)
    }

    #[test]
    fn ratio_absent_without_maxmemory_and_thresholds_apply_with_it() {
        let a = assess(
            &Info::parse("used_memory:1000\r\nmaxmemory:0\r\nrole:master\r\n"),
            T,
        );
        assert_eq!(metric(&a, "memory_used_ratio"), None);
        assert_eq!(metric(&a, "maxmemory_bytes"), None);
        assert!(a.findings.is_empty());

        let a = assess(&Info::parse("used_memory:900\r\nmaxmemory:1000\r\n"), T);
        assert_eq!(metric(&a, "memory_used_ratio"), Some(0.9));
        assert_eq!(a.findings[0].status, Status::Warning);
        assert_eq!(a.findings[0].reason, Reason::Threshold);

        let a = assess(&Info::parse("used_memory:990\r\nmaxmemory:1000\r\n"), T);
        assert_eq!(a.findings[0].status, Status::Critical);
    }

    #[test]
    fn replica_with_link_down_is_critical() {
        let text = "# Replication\r\nrole:slave\r\nmaster_host:10.0.0.9\r\nmaster_port:6379\r\n\
                    master_link_status:down\r\nmaster_link_down_since_seconds:12\r\n";
        let a = assess(&Info::parse(text), T);
        assert_eq!(metric(&a, "master_link_up"), Some(0.0));
        assert_eq!(metric(&a, "master_link_down_seconds"), Some(12.0));
        assert_eq!(a.findings.len(), 1);
        assert_eq!(a.findings[0].status, Status::Critical);
        assert!(
            a.findings[0].message.contains("10.0.0.9:6379 is down"),
            "{:?}",
            a.findings
        );
    }
}
