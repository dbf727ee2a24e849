//! Unix nanoseconds as RFC 3339 text in UTC: the one calendar conversion the API, the CLI and the
//! exports share (pure arithmetic, no clock).

use crate::UnixNanos;

/// `2024-05-22T09:41:03.120000000Z`: UTC with nanoseconds.
pub fn format_rfc3339_nanos(time_ns: UnixNanos) -> String {
    let (date_time, nanos) = split(time_ns);
    format!("{date_time}.{nanos:09}Z")
}

/// `2024-05-22T09:41:03.120Z`: UTC with milliseconds, as JavaScript's `Date.toISOString` writes
/// it.
pub fn format_rfc3339_millis(time_ns: UnixNanos) -> String {
    let (date_time, nanos) = split(time_ns);
    format!("{date_time}.{:03}Z", nanos / 1_000_000)
}

/// `YYYY-MM-DDTHH:MM:SS` and the nanoseconds past that second.
fn split(time_ns: UnixNanos) -> (String, u64) {
    let secs = time_ns / 1_000_000_000;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let secs_of_day = secs % 86_400;
    let date_time = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    );
    (date_time, time_ns % 1_000_000_000)
}

/// Year, month and day of a day count since 1970-01-01 in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_utc() {
        assert_eq!(format_rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_nanos(1_716_370_863_120_000_000),
            "2024-05-22T09:41:03.120000000Z"
        );
        assert_eq!(format_rfc3339_millis(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_rfc3339_millis(1_773_921_600_000_999_999), "2026-03-19T12:00:00.000Z");
    }
}
