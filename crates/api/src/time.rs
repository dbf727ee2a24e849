//! Times in query parameters: RFC 3339 (`2024-05-22T10:01:03Z`, offsets and fractions allowed),
//! Unix nanoseconds (`1716372063000000000`), or relative to now (`15m`, `1h`, `7d`, `now`).
//! Also the durations used for buckets (`1m`, `1h`).

use model::UnixNanos;

const NS_PER_SEC: u64 = 1_000_000_000;

/// Parses a point in time; relative forms count back from `now_ns`.
pub fn parse_time(text: &str, now_ns: UnixNanos) -> Result<UnixNanos, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(now_ns);
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| format!("time {text:?} is out of range"));
    }
    if let Ok(duration) = parse_duration(text.strip_suffix(" ago").unwrap_or(text)) {
        return Ok(now_ns.saturating_sub(duration));
    }
    parse_rfc3339(text).ok_or_else(|| {
        format!(
            "cannot read time {text:?}: use RFC 3339 (2024-05-22T10:01:03Z), unix nanoseconds, \
             or a relative time such as 15m, 1h, 7d"
        )
    })
}

/// Parses `500ms`, `30s`, `15m`, `1h`, `7d`, `2w` (also `us`, `ns`) into nanoseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("cannot read duration {text:?}"))?;
    let unit_ns: u64 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => NS_PER_SEC,
        "m" => 60 * NS_PER_SEC,
        "h" => 3_600 * NS_PER_SEC,
        "d" => 86_400 * NS_PER_SEC,
        "w" => 7 * 86_400 * NS_PER_SEC,
        _ => return Err(format!("cannot read duration {text:?}: use a unit of ms, s, m, h, d, w")),
    };
    number.checked_mul(unit_ns).ok_or_else(|| format!("duration {text:?} is too long"))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, before 1970 refused.
fn parse_rfc3339(text: &str) -> Option<UnixNanos> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes().all(|b| b.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    if bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos: i64 = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let n_digits = fraction.find(|c: char| !c.is_ascii_digit()).unwrap_or(fraction.len());
        if n_digits == 0 {
            return None;
        }
        let digits = &fraction[..n_digits.min(9)];
        nanos = digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32);
        rest = &fraction[n_digits..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let hours: i64 = rest[1..3].parse().ok()?;
            let minutes: i64 = rest[4..6].parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_secs;
    let total = i128::from(secs) * i128::from(NS_PER_SEC) + i128::from(nanos);
    u64::try_from(total).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month_index = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// RFC 3339 in UTC with nanoseconds, for display.
pub fn format_rfc3339(ns: UnixNanos) -> String {
    model::time::format_rfc3339_nanos(ns)
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    #[test]
    fn times_in_every_accepted_form() {
        let now = 1_716_370_863_120_000_000;
        let mut res = String::new();
        for text in [
            "2024-05-22T09:41:03.12Z",
            "2024-05-22T11:41:03.120+02:00",
            "1716370863120000000",
            "1h",
            "15m ago",
            "now",
            "1969-12-31T23:59:59Z",
            "yesterday",
            "2024-13-01T00:00:00Z",
        ] {
            let outcome = parse_time(text, now).map(format_rfc3339);
            res.push_str(&format!("{text} -> {outcome:?}\n"));
        }
        expect![[r#"
            2024-05-22T09:41:03.12Z -> Ok("2024-05-22T09:41:03.120000000Z")
            2024-05-22T11:41:03.120+02:00 -> Ok("2024-05-22T09:41:03.120000000Z")
            1716370863120000000 -> Ok("2024-05-22T09:41:03.120000000Z")
            1h -> Ok("2024-05-22T08:41:03.120000000Z")
            15m ago -> Ok("2024-05-22T09:26:03.120000000Z")
            now -> Ok("2024-05-22T09:41:03.120000000Z")
            1969-12-31T23:59:59Z -> Err("cannot read time \"1969-12-31T23:59:59Z\": use RFC 3339 (2024-05-22T10:01:03Z), unix nanoseconds, or a relative time such as 15m, 1h, 7d")
            yesterday -> Err("cannot read time \"yesterday\": use RFC 3339 (2024-05-22T10:01:03Z), unix nanoseconds, or a relative time such as 15m, 1h, 7d")
            2024-13-01T00:00:00Z -> Err("cannot read time \"2024-13-01T00:00:00Z\": use RFC 3339 (2024-05-22T10:01:03Z), unix nanoseconds, or a relative time such as 15m, 1h, 7d")
        "#]]
        .assert_eq(&res);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("150ms"), Ok(150_000_000));
        assert_eq!(parse_duration("2d"), Ok(2 * 86_400 * NS_PER_SEC));
        assert!(parse_duration("2 parsecs").is_err());
        assert!(parse_duration("99999999999999w").is_err());
    }
}
