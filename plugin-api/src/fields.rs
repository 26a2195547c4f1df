//! A reader for a plugin's config section: key by key, so every error names
//! its key (which `warden check-config` shows the operator), and keys nobody
//! asked for are refused.
//!
//! ```
//! use warden_plugin_api::Fields;
//! let mut fields = Fields::new(serde_json::json!({"port": 6379, "tls": true}))?;
//! assert_eq!(fields.int("port", 1, 65535)?, Some(6379));
//! assert_eq!(fields.bool("tls")?, Some(true));
//! fields.finish()?;
//! # Ok::<(), String>(())
//! ```

use serde_json::{Map, Value};

/// The config object being read; call [`Fields::finish`] last.
#[derive(Debug)]
pub struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    /// Starts reading `config`, which must be a JSON object.
    pub fn new(config: Value) -> Result<Self, String> {
        match config {
            Value::Object(map) => Ok(Fields { map }),
            Value::Null => Ok(Fields { map: Map::new() }),
            other => Err(format!("config must be a table, got {}", kind(&other))),
        }
    }

    /// An optional string.
    pub fn string(&mut self, key: &str) -> Result<Option<String>, String> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("`{key}` must be a string, got {}", kind(&other))),
        }
    }

    /// An optional boolean.
    pub fn bool(&mut self, key: &str) -> Result<Option<bool>, String> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(format!(
                "`{key}` must be true or false, got {}",
                kind(&other)
            )),
        }
    }

    /// An optional whole number within `min..=max`.
    pub fn int(&mut self, key: &str, min: i64, max: i64) -> Result<Option<i64>, String> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
                _ => Err(format!(
                    "`{key}` must be a whole number from {min} to {max}, got {n}"
                )),
            },
            Some(other) => Err(format!("`{key}` must be a number, got {}", kind(&other))),
        }
    }

    /// An optional number within `min..=max`.
    pub fn float(&mut self, key: &str, min: f64, max: f64) -> Result<Option<f64>, String> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
                _ => Err(format!("`{key}` must be between {min} and {max}, got {n}")),
            },
            Some(other) => Err(format!("`{key}` must be a number, got {}", kind(&other))),
        }
    }

    /// An optional list of strings.
    pub fn strings(&mut self, key: &str) -> Result<Option<Vec<String>>, String> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    other => Err(format!("`{key}` must list strings, got {}", kind(&other))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(format!(
                "`{key}` must be a list of strings, got {}",
                kind(&other)
            )),
        }
    }

    /// Fails on the first key that was not read.
    pub fn finish(self) -> Result<(), String> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(key) => Err(format!("unknown config key `{key}`")),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}
