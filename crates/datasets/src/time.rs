//! Formatting Unix times as RFC 3339 text, without a clock or a date library.

use model::UnixNanos;

/// `2026-03-19T12:00:00.000Z`: UTC with milliseconds, as JavaScript's `Date.toISOString` writes it
/// (the toad-eye export uses that form for `exported_at`).
pub fn format_rfc3339_millis(time_ns: UnixNanos) -> String {
    let secs = time_ns / 1_000_000_000;
    let millis = (time_ns / 1_000_000) % 1000;
    let days = secs / 86_400;
    let secs_of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs_of_day / 3600,
        (secs_of_day / 60) % 60,
        secs_of_day % 60
    )
}

/// Year, month and day of a day count since 1970-01-01 in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
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
