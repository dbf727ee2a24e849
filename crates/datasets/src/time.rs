//! Formatting Unix times as RFC 3339 text, without a clock or a date library.

use model::UnixNanos;

/// `2026-03-19T12:00:00.000Z`: UTC with milliseconds, as JavaScript's `Date.toISOString` writes it
/// (the toad-eye export uses that form for `exported_at`).
pub fn format_rfc3339_millis(time_ns: UnixNanos) -> String {
    model::time::format_rfc3339_millis(time_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_to_iso_string() {
        assert_eq!(format_rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339_millis(1_716_370_863_120_000_000), "2024-05-22T09:41:03.120Z");
        assert_eq!(format_rfc3339_millis(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_rfc3339_millis(1_773_921_600_000_999_999), "2026-03-19T12:00:00.000Z");
    }
}
