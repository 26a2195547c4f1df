//! The plugin's `[check.config]` section: parsing, defaults and validation.
//!
//! Parsed by hand from the JSON value rather than through serde derive so that
//! every error names the full key path (`memory.warning`, `excluded_mounts[2]`).

use serde_json::{Map, Value};

use crate::mounts::{DEFAULT_EXCLUDED_FS_TYPES, MountFilter};

/// Why a config section was rejected; each message names the offending key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A key the plugin does not know, usually a typo.
    #[error("unknown key `{key}` (expected one of: {expected})")]
    UnknownKey {
        /// Full path of the key.
        key: String,
        /// The keys allowed at that level.
        expected: &'static str,
    },
    /// A value of the wrong JSON type.
    #[error("`{key}` must be {expected}, got {got}")]
    WrongType {
        /// Full path of the key.
        key: String,
        /// What the key accepts.
        expected: &'static str,
        /// The JSON type that was given.
        got: &'static str,
    },
    /// A threshold outside its allowed range.
    #[error("`{key}` must be {range}, got {got}")]
    OutOfRange {
        /// Full path of the key.
        key: String,
        /// The allowed range in words.
        range: &'static str,
        /// The value given.
        got: f64,
    },
    /// A warning threshold above the critical one of the same resource.
    #[error(
        "`{resource}.warning` ({warning}) must not be above `{resource}.critical` ({critical})"
    )]
    WarningAboveCritical {
        /// The resource section, e.g. `memory`.
        resource: &'static str,
        /// The warning level in effect.
        warning: f64,
        /// The critical level in effect.
        critical: f64,
    },
    /// An empty string where a name or path is needed.
    #[error("`{key}` must not be empty")]
    Empty {
        /// Full path of the key.
        key: String,
    },
}

/// Warning and critical levels of one resource; `None` disables that level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// Crossed when the value is at or above it.
    pub warning: Option<f64>,
    /// Crossed when the value is at or above it.
    pub critical: Option<f64>,
}

/// Thresholds for every resource the check judges.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// CPU busy ratio over the measured interval.
    pub cpu: Threshold,
    /// Memory used ratio (total minus available, over total).
    pub memory: Threshold,
    /// Swap used ratio; not judged on hosts without swap.
    pub swap: Threshold,
    /// Used ratio of each selected filesystem.
    pub disk: Threshold,
    /// Five-minute load average divided by the CPU count.
    pub load_per_cpu: Threshold,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            // A busy CPU slows work down but breaks nothing by itself, so only warn.
            cpu: Threshold {
                warning: Some(0.90),
                critical: None,
            },
            memory: Threshold {
                warning: Some(0.90),
                critical: Some(0.95),
            },
            // Linux keeps cold pages in swap long after pressure is gone, so a
            // full swap alone is worth a look, not a page; memory covers the rest.
            swap: Threshold {
                warning: Some(0.80),
                critical: None,
            },
            disk: Threshold {
                warning: Some(0.90),
                critical: Some(0.95),
            },
            // What load is normal depends too much on the workload for a default.
            load_per_cpu: Threshold {
                warning: None,
                critical: None,
            },
        }
    }
}

/// The whole validated config.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Threshold levels.
    pub thresholds: Thresholds,
    /// Which mounts count as disks.
    pub mounts: MountFilter,
}

const TOP_KEYS: &str = "cpu, memory, swap, disk, load_per_cpu, excluded_fs_types, \
                        additional_excluded_fs_types, excluded_mounts, excluded_mount_prefixes";
const THRESHOLD_KEYS: &str = "warning, critical";

/// Which range a threshold accepts.
#[derive(Debug, Clone, Copy)]
enum Range {
    /// A ratio, 0 to 1 inclusive.
    Ratio,
    /// Any finite number from 0 up.
    NonNegative,
}

impl Config {
    /// Builds the config from the check's JSON section; `null` and `{}` give the defaults.
    pub fn parse(value: &Value) -> Result<Self, ConfigError> {
        let empty = Map::new();
        let object = match value {
            Value::Null => &empty,
            Value::Object(map) => map,
            other => {
                return Err(ConfigError::WrongType {
                    key: "config".to_owned(),
                    expected: "a table",
                    got: type_name(other),
                });
            }
        };

        let mut thresholds = Thresholds::default();
        let mut fs_types: Option<Vec<String>> = None;
        let mut additional_fs_types = Vec::new();
        let mut excluded_mounts = Vec::new();
        let mut excluded_prefixes = Vec::new();

        for (key, value) in object {
            match key.as_str() {
                "cpu" => parse_threshold("cpu", value, Range::Ratio, &mut thresholds.cpu)?,
                "memory" => {
                    parse_threshold("memory", value, Range::Ratio, &mut thresholds.memory)?;
                }
                "swap" => parse_threshold("swap", value, Range::Ratio, &mut thresholds.swap)?,
                "disk" => parse_threshold("disk", value, Range::Ratio, &mut thresholds.disk)?,
                "load_per_cpu" => parse_threshold(
                    "load_per_cpu",
                    value,
                    Range::NonNegative,
                    &mut thresholds.load_per_cpu,
                )?,
                "excluded_fs_types" => fs_types = Some(string_list(key, value)?),
                "additional_excluded_fs_types" => additional_fs_types = string_list(key, value)?,
                "excluded_mounts" => excluded_mounts = string_list(key, value)?,
                "excluded_mount_prefixes" => excluded_prefixes = string_list(key, value)?,
                _ => {
                    return Err(ConfigError::UnknownKey {
                        key: key.clone(),
                        expected: TOP_KEYS,
                    });
                }
            }
        }

        let fs_types = fs_types.unwrap_or_else(|| {
            DEFAULT_EXCLUDED_FS_TYPES
                .iter()
                .map(|&name| name.to_owned())
                .collect()
        });
        let mounts = MountFilter::new(
            fs_types
                .iter()
                .chain(&additional_fs_types)
                .map(String::as_str),
            excluded_mounts,
            excluded_prefixes,
        );
        Ok(Config { thresholds, mounts })
    }
}

/// Applies one `{warning, critical}` table over the defaults in `slot`.
fn parse_threshold(
    resource: &'static str,
    value: &Value,
    range: Range,
    slot: &mut Threshold,
) -> Result<(), ConfigError> {
    let Value::Object(map) = value else {
        return Err(ConfigError::WrongType {
            key: resource.to_owned(),
            expected: "a table with `warning` and/or `critical`",
            got: type_name(value),
        });
    };
    for (key, level) in map {
        let path = format!("{resource}.{key}");
        let target = match key.as_str() {
            "warning" => &mut slot.warning,
            "critical" => &mut slot.critical,
            _ => {
                return Err(ConfigError::UnknownKey {
                    key: path,
                    expected: THRESHOLD_KEYS,
                });
            }
        };
        *target = parse_level(path, level, range)?;
    }
    if let (Some(warning), Some(critical)) = (slot.warning, slot.critical)
        && warning > critical
    {
        return Err(ConfigError::WarningAboveCritical {
            resource,
            warning,
            critical,
        });
    }
    Ok(())
}

/// One threshold level: a number in range, or `false`/`null` to disable it
/// (`false` because TOML has no null).
fn parse_level(key: String, value: &Value, range: Range) -> Result<Option<f64>, ConfigError> {
    let (expected, range_text) = match range {
        Range::Ratio => (
            "a number between 0 and 1, or false to disable",
            "between 0 and 1",
        ),
        Range::NonNegative => ("a number of 0 or more, or false to disable", "0 or more"),
    };
    let number = match value {
        Value::Null | Value::Bool(false) => return Ok(None),
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    let Some(number) = number else {
        return Err(ConfigError::WrongType {
            key,
            expected,
            got: type_name(value),
        });
    };
    let in_range = match range {
        Range::Ratio => (0.0..=1.0).contains(&number),
        Range::NonNegative => number >= 0.0 && number.is_finite(),
    };
    if !in_range {
        return Err(ConfigError::OutOfRange {
            key,
            range: range_text,
            got: number,
        });
    }
    Ok(Some(number))
}

/// An array of non-empty strings.
fn string_list(key: &str, value: &Value) -> Result<Vec<String>, ConfigError> {
    let Value::Array(items) = value else {
        return Err(ConfigError::WrongType {
            key: key.to_owned(),
            expected: "an array of strings",
            got: type_name(value),
        });
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::String(s) if s.trim().is_empty() => Err(ConfigError::Empty {
                key: format!("{key}[{index}]"),
            }),
            Value::String(s) => Ok(s.trim().to_owned()),
            other => Err(ConfigError::WrongType {
                key: format!("{key}[{index}]"),
                expected: "a string",
                got: type_name(other),
            }),
        })
        .collect()
}

/// The JSON type of a value, in words for error messages.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(true) => "true",
        Value::Bool(false) => "false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn error_of(value: Value) -> String {
        Config::parse(&value)
            .expect_err("config should be rejected")
            .to_string()
    }

    #[test]
    fn empty_and_null_give_defaults() {
        let from_empty = Config::parse(&json!({})).unwrap();
        assert_eq!(from_empty, Config::parse(&Value::Null).unwrap());
        assert_eq!(from_empty.thresholds, Thresholds::default());
        assert!(from_empty.mounts.excludes_fs_type("tmpfs"));
        assert!(!from_empty.mounts.excludes_fs_type("ext4"));
    }

    #[test]
    fn partial_table_keeps_other_default_level() {
        let config = Config::parse(&json!({"memory": {"warning": 0.5}})).unwrap();
        assert_eq!(
            config.thresholds.memory,
            Threshold {
                warning: Some(0.5),
                critical: Some(0.95)
            }
        );
    }

    #[test]
    fn false_and_null_disable_a_level() {
        let config = Config::parse(&json!({"disk": {"warning": false, "critical": null}})).unwrap();
        assert_eq!(
            config.thresholds.disk,
            Threshold {
                warning: None,
                critical: None
            }
        );
    }

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let top = error_of(json!({"memroy": {}}));
        assert!(top.starts_with("unknown key `memroy`"), "{top}");
        let nested = error_of(json!({"memory": {"warn": 0.5}}));
        assert!(nested.starts_with("unknown key `memory.warn`"), "{nested}");
    }

    #[test]
    fn out_of_range_ratio_is_named() {
        assert_eq!(
            error_of(json!({"disk": {"critical": 1.5}})),
            "`disk.critical` must be between 0 and 1, got 1.5"
        );
        assert_eq!(
            error_of(json!({"cpu": {"warning": -0.1}})),
            "`cpu.warning` must be between 0 and 1, got -0.1"
        );
        assert_eq!(
            error_of(json!({"load_per_cpu": {"warning": -1}})),
            "`load_per_cpu.warning` must be 0 or more, got -1"
        );
    }

    #[test]
    fn load_per_cpu_may_exceed_one() {
        let config =
            Config::parse(&json!({"load_per_cpu": {"warning": 1.5, "critical": 3}})).unwrap();
        assert_eq!(
            config.thresholds.load_per_cpu,
            Threshold {
                warning: Some(1.5),
                critical: Some(3.0)
            }
        );
    }

    #[test]
    fn warning_above_critical_is_named_including_against_a_default() {
        assert_eq!(
            error_of(json!({"swap": {"warning": 0.9, "critical": 0.5}})),
            "`swap.warning` (0.9) must not be above `swap.critical` (0.5)"
        );
        // Only warning given: compared with the default critical of 0.95.
        assert_eq!(
            error_of(json!({"memory": {"warning": 0.97}})),
            "`memory.warning` (0.97) must not be above `memory.critical` (0.95)"
        );
    }

    #[test]
    fn wrong_types_are_named() {
        assert_eq!(
            error_of(json!({"memory": {"critical": "95%"}})),
            "`memory.critical` must be a number between 0 and 1, or false to disable, got a string"
        );
        assert_eq!(
            error_of(json!({"cpu": true})),
            "`cpu` must be a table with `warning` and/or `critical`, got true"
        );
        assert_eq!(
            error_of(json!({"excluded_mounts": "/boot"})),
            "`excluded_mounts` must be an array of strings, got a string"
        );
        assert_eq!(
            error_of(json!({"excluded_fs_types": ["tmpfs", 3]})),
            "`excluded_fs_types[1]` must be a string, got a number"
        );
        assert_eq!(
            error_of(json!([1])),
            "`config` must be a table, got an array"
        );
    }

    #[test]
    fn empty_strings_are_named() {
        assert_eq!(
            error_of(json!({"excluded_mount_prefixes": ["/mnt", " "]})),
            "`excluded_mount_prefixes[1]` must not be empty"
        );
    }

    #[test]
    fn fs_type_lists_replace_and_extend_the_default() {
        let replaced = Config::parse(&json!({"excluded_fs_types": ["NFS"]})).unwrap();
        assert!(replaced.mounts.excludes_fs_type("nfs"));
        assert!(!replaced.mounts.excludes_fs_type("tmpfs"));

        let extended = Config::parse(&json!({"additional_excluded_fs_types": ["vfat"]})).unwrap();
        assert!(extended.mounts.excludes_fs_type("vfat"));
        assert!(extended.mounts.excludes_fs_type("tmpfs"));
    }
}
