//! Capture timestamps: nanoseconds since the Unix epoch, printed as RFC 3339 UTC.

use std::fmt::Write as _;

/// Writes `ns` (nanoseconds since 1970-01-01T00:00:00Z) as `YYYY-MM-DDTHH:MM:SS.ffffffZ`
/// (microseconds, truncated toward the past).
pub fn write_rfc3339_micros(out: &mut String, ns: i64) {
    let micros = ns.div_euclid(1_000);
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
}

/// Formats a duration in nanoseconds as seconds with 6 decimals (truncated toward zero).
pub fn write_seconds_micros(out: &mut String, ns: i64) {
    let micros = ns / 1_000;
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let _ = write!(out, "{sign}{}.{:06}", m / 1_000_000, m % 1_000_000);
}

/// Reads back what [`write_rfc3339_micros`] writes (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, any
/// number of fraction digits up to 9), as nanoseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || *b.last()? != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut ns = 0i64;
    let rest = &s[19..s.len() - 1];
    if let Some(frac) = rest.strip_prefix('.') {
        if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        ns = frac.parse::<i64>().ok()? * 10i64.pow(9 - frac.len() as u32);
    } else if !rest.is_empty() {
        return None;
    }
    let days = days_from_civil(y, m as u32, d as u32);
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000) + ns)
}

/// A proleptic Gregorian date to days since 1970-01-01 (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
/// Howard Hinnant's `civil_from_days` algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(ns: i64) -> String {
        let mut s = String::new();
        write_rfc3339_micros(&mut s, ns);
        s
    }

    #[test]
    fn epoch_and_known_dates() {
        assert_eq!(fmt(0), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29 leap day, 12:34:56.789012345
        assert_eq!(fmt(951_827_696_789_012_345), "2000-02-29T12:34:56.789012Z");
        assert_eq!(
            fmt(1_700_000_000_000_001_000),
            "2023-11-14T22:13:20.000001Z"
        );
        assert_eq!(fmt(-1_000), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn parse_reads_back_what_write_writes() {
        for ns in [
            0,
            951_827_696_789_012_000,
            1_700_000_000_000_001_000,
            -1_000,
            4_102_444_800_123_456_000,
        ] {
            assert_eq!(parse_rfc3339(&fmt(ns)), Some(ns), "{}", fmt(ns));
        }
        assert_eq!(
            parse_rfc3339("2000-02-29T12:34:56.789012345Z"),
            Some(951_827_696_789_012_345)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T12:34:56Z"),
            Some(951_827_696_000_000_000)
        );
        for bad in ["", "2000-02-29 12:34:56Z", "2000-13-01T00:00:00Z", "x"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        let mut s = String::new();
        write_seconds_micros(&mut s, 1_500_000_999);
        assert_eq!(s, "1.500000");
        s.clear();
        write_seconds_micros(&mut s, 0);
        assert_eq!(s, "0.000000");
    }
}
