//! RFC 3339 timestamps (UTC, nanosecond precision) from and to Unix nanoseconds.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Formats Unix nanoseconds as `2026-11-26T17:47:48.123456789Z`.
pub fn rfc3339_from_unix_nanos(nanos: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Parses an RFC 3339 timestamp back into Unix nanoseconds (`None` if malformed or before 1970).
pub fn unix_nanos_from_rfc3339(s: &str) -> Option<u64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_nanoseconds() {
        let n = 1_795_000_000_123_456_789u64;
        let s = rfc3339_from_unix_nanos(n);
        assert!(s.ends_with('Z'), "{s}");
        assert_eq!(unix_nanos_from_rfc3339(&s), Some(n));
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(unix_nanos_from_rfc3339("yesterday"), None);
    }
}
