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

/// The latest time RFC 3339 can write (four-digit years):
/// 9999-12-31T23:59:59.999Z, in Unix ms.
pub const MAX_RFC3339_MS: i64 = 253_402_300_799_999;

/// The earliest: 0000-01-01T00:00:00.000Z, in Unix ms.
pub const MIN_RFC3339_MS: i64 = -62_167_219_200_000;

/// Formats Unix milliseconds as RFC 3339 UTC with millisecond precision
/// (`2026-11-22T10:15:30.123Z`). Values outside four-digit years clamp to
/// [`MIN_RFC3339_MS`]..=[`MAX_RFC3339_MS`], so the result always parses as
/// an OpenAPI `date-time`.
pub fn format_iso_ms(ms: i64) -> String {
    let ms = ms.clamp(MIN_RFC3339_MS, MAX_RFC3339_MS);
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
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

    #[test]
    fn times_past_four_digit_years_clamp() {
        let far = parse_rfc3339_ms("+10000-01-01T00:00:00Z").unwrap_or(MAX_RFC3339_MS + 1);
        assert_eq!(format_iso_ms(far), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_iso_ms(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_iso_ms(i64::MIN), "0000-01-01T00:00:00.000Z");
        assert_eq!(format_iso_ms(MAX_RFC3339_MS), "9999-12-31T23:59:59.999Z");
    }
}
