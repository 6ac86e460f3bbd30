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
    fn durations() {
        let mut s = String::new();
        write_seconds_micros(&mut s, 1_500_000_999);
        assert_eq!(s, "1.500000");
        s.clear();
        write_seconds_micros(&mut s, 0);
        assert_eq!(s, "0.000000");
    }
}
