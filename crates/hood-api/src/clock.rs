//! Time on the wire: RFC 3339 rendering and parsing. The clock itself is
//! `hood-clock`'s (re-exported as [`now`]).

use hood_domain::Timestamp;

pub use hood_clock::now;

/// RFC 3339 rendering for API responses.
pub fn rfc3339(ts: Timestamp) -> String {
    let nanos = i128::from(ts.millis()) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ts.millis().to_string())
}

/// Parses an RFC 3339 instant.
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(ms).ok().map(Timestamp::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_milliseconds() {
        let ts = Timestamp::from_millis(1_767_225_600_123);
        let s = rfc3339(ts);
        assert_eq!(s, "2026-01-01T00:00:00.123Z");
        assert_eq!(parse_rfc3339(&s), Some(ts));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
