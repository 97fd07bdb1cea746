//! RFC 3339 UTC timestamps without a date-time dependency.
//!
//! Every event time is written as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds, always six
//! digits, always `Z`), so stored times sort lexicographically in time order and a filter
//! can compare them as strings.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{AuditError, Result};

/// Microseconds since the Unix epoch (negative before 1970).
pub type Micros = i64;

/// Microseconds since the epoch for `t` (saturating far outside the supported range).
pub fn micros(t: SystemTime) -> Micros {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// The current time in microseconds since the epoch.
pub fn now_micros() -> Micros {
    micros(SystemTime::now())
}

/// Formats `us` (microseconds since the epoch) as canonical RFC 3339 UTC.
pub fn format(us: Micros) -> String {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Formats a `SystemTime` as canonical RFC 3339 UTC.
pub fn format_system(t: SystemTime) -> String {
    format(micros(t))
}

/// Parses RFC 3339 (`2026-01-31T12:00:00Z`, `…T12:00:00.5+02:00`) or a bare date
/// (`2026-01-31`, meaning midnight UTC) into microseconds since the epoch.
pub fn parse(text: &str) -> Result<Micros> {
    parse_inner(text.trim()).ok_or_else(|| AuditError::InvalidTime(text.to_owned()))
}

/// Converts microseconds since the epoch back to a `SystemTime`.
pub fn to_system(us: Micros) -> SystemTime {
    if us >= 0 {
        UNIX_EPOCH + Duration::from_micros(us.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_micros(us.unsigned_abs())
    }
}

fn parse_inner(s: &str) -> Option<Micros> {
    let b = s.as_bytes();
    let year = digits(b, 0, 4)?;
    let month = digits_after(b, 4, b'-', 2)?;
    let day = digits_after(b, 7, b'-', 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return days.checked_mul(86_400_000_000);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = digits(b, 11, 2)?;
    let minute = digits_after(b, 13, b':', 2)?;
    let second = digits_after(b, 16, b':', 2)?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut pos = 19;
    let mut frac_us = 0i64;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            if pos - start < 6 {
                frac_us = frac_us * 10 + i64::from(b[pos] - b'0');
            }
            pos += 1;
        }
        let n = pos - start;
        if n == 0 {
            return None;
        }
        for _ in n..6 {
            frac_us *= 10;
        }
    }
    let offset_secs = match b.get(pos) {
        Some(b'Z' | b'z') if pos + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if pos + 6 == b.len() => {
            let oh = digits(b, pos + 1, 2)?;
            let om = digits_after(b, pos + 3, b':', 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    secs.checked_mul(1_000_000)?.checked_add(frac_us)
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let slice = b.get(at..at + n)?;
    slice.iter().try_fold(0i64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn digits_after(b: &[u8], at: usize, sep: u8, n: usize) -> Option<i64> {
    (b.get(at) == Some(&sep)).then_some(())?;
    digits(b, at + 1, n)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(format(1_767_225_599_999_999), "2025-12-31T23:59:59.999999Z");
        assert_eq!(format(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn parse_round_trips_and_accepts_offsets_and_dates() {
        for us in [
            0,
            1,
            951_782_400_000_000,
            1_767_225_599_999_999,
            -86_400_000_001,
        ] {
            assert_eq!(parse(&format(us)).unwrap(), us);
        }
        assert_eq!(parse("2000-02-29").unwrap(), 951_782_400_000_000);
        assert_eq!(
            parse("2000-02-29T02:00:00.5+02:00").unwrap(),
            951_782_400_500_000
        );
        assert_eq!(
            parse("2000-02-28T19:00:00-05:00").unwrap(),
            951_782_400_000_000
        );
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in [
            "",
            "2001-02-29",
            "2000-13-01",
            "2000-01-01T25:00:00Z",
            "2000-01-01T00:00:00",
            "2000-01-01T00:00:00.Z",
            "yesterday",
            "2000-01-01T00:00:00Zjunk",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn format_sorts_like_time() {
        let a = format(now_micros());
        let b = format(now_micros() + 1_000);
        assert!(a < b);
        assert!(to_system(5) > to_system(4));
    }
}
