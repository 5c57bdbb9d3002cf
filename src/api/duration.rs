//! Durations as written in manifests: `90s`, `15m`, `1h30m`, `30d`.

use std::{fmt, time::Duration};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A duration written as a sequence of `<integer><unit>` with units `s`, `m`, `h`, `d`.
///
/// Kept as the user wrote it (spec is the user's: we never rewrite it) and parsed on use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DurationString(pub String);

/// Why a duration string does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    #[error("must be a duration such as 90s, 15m, 1h30m or 30d, got {0:?}")]
    Syntax(String),
    #[error("must be greater than zero")]
    Zero,
    /// Longer than any lifetime this server accepts: expiry times must stay far from
    /// overflowing.
    #[error("must be at most 3650d, got {0:?}")]
    TooLong(String),
}

/// The longest duration anywhere in a manifest or flag: ten years.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

impl DurationString {
    pub fn parse(&self) -> Result<Duration, DurationError> {
        parse_duration(&self.0)
    }
}

impl fmt::Display for DurationString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for DurationString {
    fn from(s: &str) -> Self {
        DurationString(s.to_string())
    }
}

impl JsonSchema for DurationString {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^([0-9]+[smhd])+$",
            "maxLength": 32,
            "description": "A duration such as 90s, 15m, 1h30m or 30d."
        })
    }
}

/// Parses `<integer><unit>` groups (s, m, h, d); rejects empty, signed, fractional and zero.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let syntax = || DurationError::Syntax(s.to_string());
    if s.is_empty() {
        return Err(syntax());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(syntax()),
        };
        if digits.is_empty() {
            return Err(syntax());
        }
        let n: u64 = digits.parse().map_err(|_| syntax())?;
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(syntax)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(syntax());
    }
    if total == 0 {
        return Err(DurationError::Zero);
    }
    if total > MAX_DURATION.as_secs() {
        return Err(DurationError::TooLong(s.to_string()));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sequences() {
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("30d").unwrap().as_secs(), 30 * 86_400);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in ["", "15", "m", "1.5h", "-1h", "1w", "1h 30m", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} must not parse");
        }
        assert_eq!(parse_duration("0s"), Err(DurationError::Zero));
    }

    #[test]
    fn bounded_so_that_expiry_times_cannot_overflow() {
        assert_eq!(parse_duration("3650d").unwrap(), MAX_DURATION);
        assert_eq!(parse_duration("3650d1s"), Err(DurationError::TooLong("3650d1s".into())));
        // Fits u64 seconds but not `i64` once added to now: refused, not wrapped.
        assert!(matches!(parse_duration("106751991167300d"), Err(DurationError::TooLong(_))));
    }
}
