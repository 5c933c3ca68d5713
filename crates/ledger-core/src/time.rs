//! Millisecond timestamps: parsing RFC 3339 and formatting ISO-8601.
//!
//! All times in the ledger are `i64` milliseconds since the Unix epoch (UTC).

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// Parses an RFC 3339 timestamp into Unix milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
}

/// Formats Unix milliseconds as ISO-8601 UTC with millisecond precision
/// (`2026-11-22T10:15:30.123Z`). Out-of-range values clamp to the far ends.
pub fn format_iso_ms(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None if ms < 0 => "0000-01-01T00:00:00.000Z".to_string(),
        None => "9999-12-31T23:59:59.999Z".to_string(),
    }
}

/// One minute in milliseconds.
pub const MINUTE_MS: i64 = 60_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let ms = parse_rfc3339_ms("2026-11-22T10:15:30.123Z").unwrap();
        assert_eq!(ms, 1_795_342_530_123);
        assert_eq!(format_iso_ms(ms), "2026-11-22T10:15:30.123Z");
        assert_eq!(parse_rfc3339_ms("2026-11-22T11:15:30.123+01:00"), Some(ms));
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }
}
