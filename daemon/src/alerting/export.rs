//! `warden rules export`: the rules as a Prometheus rule file, one group
//! `warden` evaluated at the daemon's `evaluation_interval`, so the same
//! rules run on Prometheus unchanged.
//!
//! Annotations are translated to Go templates where the minijinja source
//! only prints `labels.x`, `value` or `name`; anything else is exported as
//! literal text, with a warning.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::config::AlertingConfig;
use super::template;

#[derive(Debug, Serialize)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Debug, Serialize)]
struct Group {
    name: &'static str,
    interval: String,
    rules: Vec<PromRule>,
}

#[derive(Debug, Serialize)]
struct PromRule {
    alert: String,
    expr: String,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    for_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_firing_for: Option<String>,
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// A Prometheus duration (`1h30m`, `250ms`); `0s` for zero.
pub(crate) fn prometheus_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// The YAML rule file and one warning per annotation exported as literal text.
pub(crate) fn export(config: &AlertingConfig) -> (String, Vec<String>) {
    let mut warnings = Vec::new();
    let rules = config
        .rules
        .iter()
        .map(|rule| {
            let mut labels = rule.labels.clone();
            labels.insert("severity".to_owned(), rule.severity.clone());
            let annotations = rule
                .annotations
                .iter()
                .map(|(key, source)| {
                    let text = template::to_go_template(source, &rule.name).unwrap_or_else(|why| {
                        warnings.push(format!(
                            "rule {:?}: annotation `{key}` exported as literal text: {why}",
                            rule.name
                        ));
                        template::go_literal(source)
                    });
                    (key.clone(), text)
                })
                .collect();
            let nonzero = |d: Duration| (!d.is_zero()).then(|| prometheus_duration(d));
            PromRule {
                alert: rule.name.clone(),
                expr: rule.expr.source().to_owned(),
                for_: nonzero(rule.for_),
                keep_firing_for: nonzero(rule.keep_firing_for),
                labels,
                annotations,
            }
        })
        .collect();
    let file = RuleFile {
        groups: vec![Group {
            name: "warden",
            interval: prometheus_duration(config.evaluation_interval),
            rules,
        }],
    };
    let yaml = serde_yaml_ng::to_string(&file).expect("plain structs serialise");
    (yaml, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_prometheus_units() {
        assert_eq!(prometheus_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(prometheus_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(prometheus_duration(Duration::ZERO), "0s");
        assert_eq!(prometheus_duration(Duration::from_secs(86_400 * 2)), "2d");
    }
}
