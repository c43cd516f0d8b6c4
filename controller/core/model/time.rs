//! Points in time as plain values, so the planner never reads a clock.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Duration;

/// Milliseconds since the Unix epoch; RFC 3339 in YAML and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This time plus a duration (saturating).
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d.as_millis()))
    }

    /// This time minus a duration (saturating at the epoch).
    pub fn minus(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(d.as_millis()))
    }

    /// Parses RFC 3339 (`2026-11-25T10:00:00Z`).
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        let t = humantime::parse_rfc3339_weak(s.trim()).map_err(|source| TimestampError {
            text: s.to_string(),
            source,
        })?;
        Ok(Self::from_system(t))
    }

    /// From a system time (the caller reads the clock, not the model).
    pub fn from_system(t: SystemTime) -> Self {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self(ms)
    }
}

/// A timestamp that is not RFC 3339.
#[derive(Debug, thiserror::Error)]
#[error("invalid timestamp {text:?}: {source}")]
pub struct TimestampError {
    /// The text given.
    pub text: String,
    /// Why it does not parse.
    pub source: humantime::TimestampError,
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = UNIX_EPOCH + StdDuration::from_millis(self.0);
        if self.0.is_multiple_of(1000) {
            write!(f, "{}", humantime::format_rfc3339_seconds(t))
        } else {
            write!(f, "{}", humantime::format_rfc3339_millis(t))
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "date-time"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc3339() {
        let t = Timestamp::parse("2026-11-25T10:00:00Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-25T10:00:00Z");
        assert_eq!(
            t.plus(Duration::from_secs(90)).to_string(),
            "2026-11-25T10:01:30Z"
        );
    }
}
