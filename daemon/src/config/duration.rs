//! Durations written as strings: `"250ms"`, `"10s"`, `"1h30m"`.
//!
//! A bare number is refused on purpose: `interval = 10` could mean seconds or
//! milliseconds, and a monitor that guesses wrong checks a thousand times too
//! often or too rarely.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Longer durations are refused: no schedule needs them, and adding one to
/// a clock reading could overflow.
const MAX: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A duration read from config, printed back in the same notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    /// Parses `"1h30m"`-style text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.starts_with('-') {
            return Err(format!("duration {text:?} is negative"));
        }
        if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(format!(
                "duration {text:?} has no unit; write e.g. \"{trimmed}s\""
            ));
        }
        let duration = humantime::parse_duration(trimmed)
            .map_err(|e| format!("invalid duration {text:?}: {e}"))?;
        if duration > MAX {
            return Err(format!(
                "duration {text:?} is longer than the 10-year limit"
            ));
        }
        Ok(ConfigDuration(duration))
    }

    /// The inner [`Duration`].
    pub const fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        write!(
            f,
            "{}",
            humantime::format_duration(self.0)
                .to_string()
                .replace(' ', "")
        )
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = ConfigDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"250ms\", \"10s\" or \"1h30m\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                ConfigDuration::parse(v).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(DurationVisitor)
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(
            ConfigDuration::parse("250ms").unwrap().get(),
            Duration::from_millis(250)
        );
        assert_eq!(
            ConfigDuration::parse("10s").unwrap().get(),
            Duration::from_secs(10)
        );
        assert_eq!(
            ConfigDuration::parse("1h30m").unwrap().get(),
            Duration::from_secs(5400)
        );
        assert_eq!(ConfigDuration::parse("0s").unwrap().get(), Duration::ZERO);
    }

    #[test]
    fn refuses_bare_numbers_negatives_and_garbage() {
        assert!(ConfigDuration::parse("10").unwrap_err().contains("no unit"));
        assert!(
            ConfigDuration::parse("-5s")
                .unwrap_err()
                .contains("negative")
        );
        assert!(
            ConfigDuration::parse("soon")
                .unwrap_err()
                .contains("invalid duration")
        );
    }

    #[test]
    fn prints_back_compactly() {
        assert_eq!(ConfigDuration::parse("1h30m").unwrap().to_string(), "1h30m");
        assert_eq!(ConfigDuration(Duration::ZERO).to_string(), "0s");
    }
}
