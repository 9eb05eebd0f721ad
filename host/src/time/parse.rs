//! Reading event times from the formats an app can declare, without allocation.

use super::EventTime;
use crate::plugin::TimeFormat;

/// Why a field's text is not a time in the declared format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("`{0}` is not a date as YYYY-MM-DD")]
    NotADate(String),
    #[error("`{0}` is not an RFC 3339 date and time")]
    NotRfc3339(String),
    #[error("`{0}` is not a whole number of {1}")]
    NotEpoch(String, &'static str),
    #[error("`{text}` ({shown}) is outside the years 0000 to 9999 that event times may take")]
    OutOfRange { text: String, shown: String },
}

/// The earliest event time a field may hold: 0000-01-01T00:00:00Z. Times outside the four-digit
/// years are bad input: they would only make windows and watermarks meaningless.
pub const EARLIEST_TIME: EventTime = EventTime::from_millis(-62_167_219_200_000);

/// The latest event time a field may hold: 9999-12-31T23:59:59.999Z.
pub const LATEST_TIME: EventTime = EventTime::from_millis(253_402_300_799_999);

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day counted from 1970-01-01 (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

/// `YYYY-MM-DD` → days since 1970-01-01, checking the calendar (no February 30th).
pub fn date_days(s: &[u8]) -> Option<i64> {
    if s.len() != 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let (y, m, d) = (
        i64::from(digits(&s[0..4])?),
        digits(&s[5..7])?,
        digits(&s[8..10])?,
    );
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

fn rfc3339(s: &[u8]) -> Option<i64> {
    if s.len() < 20 || !matches!(s[10], b'T' | b't' | b' ') || s[13] != b':' || s[16] != b':' {
        return None;
    }
    let days = date_days(&s[..10])?;
    let (h, mi, sec) = (
        digits(&s[11..13])?,
        digits(&s[14..16])?,
        digits(&s[17..19])?,
    );
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let scale = [100, 10, 1];
        for (i, d) in frac[..n.min(3)].iter().enumerate() {
            millis += i64::from(d - b'0') * scale[i];
        }
        rest = &frac[n..];
    }
    let offset_min: i64 = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), hh1, hh2, b':', mm1, mm2] => {
            let hh = i64::from(digits(&[*hh1, *hh2])?);
            let mm = i64::from(digits(&[*mm1, *mm2])?);
            let minutes = hh * 60 + mm;
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    let seconds = i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(sec) - offset_min * 60;
    Some(days * MS_PER_DAY + seconds * 1000 + millis)
}

fn lossy(s: &[u8]) -> String {
    String::from_utf8_lossy(&s[..s.len().min(64)]).into_owned()
}

/// Parses a field's raw text (a JSON string's contents or a JSON number) as an event time.
pub fn parse_time(format: TimeFormat, s: &[u8]) -> Result<EventTime, TimeError> {
    let ms = match format {
        TimeFormat::Date => date_days(s)
            .map(|d| d * MS_PER_DAY)
            .ok_or_else(|| TimeError::NotADate(lossy(s)))?,
        TimeFormat::Rfc3339 => rfc3339(s).ok_or_else(|| TimeError::NotRfc3339(lossy(s)))?,
        TimeFormat::EpochMillis => std::str::from_utf8(s)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or_else(|| TimeError::NotEpoch(lossy(s), "milliseconds"))?,
        TimeFormat::EpochSeconds => std::str::from_utf8(s)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(|t| t.checked_mul(1000))
            .ok_or_else(|| TimeError::NotEpoch(lossy(s), "seconds"))?,
    };
    let time = EventTime::from_millis(ms);
    if !(EARLIEST_TIME..=LATEST_TIME).contains(&time) {
        return Err(TimeError::OutOfRange {
            text: lossy(s),
            shown: shown_far(ms),
        });
    }
    Ok(time)
}

/// A time outside the four-digit years, in words: its year.
fn shown_far(ms: i64) -> String {
    let (y, _, _) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    format!("year {y}")
}

/// The `YYYY-MM-DD` form of a day counted from 1970-01-01 (inverse of [`date_days`]).
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `2015-01-31T00:00:00Z`: how times appear in results and reasons people read.
pub fn format_rfc3339(t: EventTime) -> String {
    let mut out = Vec::with_capacity(24);
    write_rfc3339(t, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// As [`format_rfc3339`], appended to `out` without allocating: a result row carries two.
pub fn write_rfc3339(t: EventTime, out: &mut Vec<u8>) {
    match t {
        EventTime::MIN => out.extend_from_slice(b"-infinity"),
        EventTime::MAX => out.extend_from_slice(b"+infinity"),
        _ => {
            let ms = t.millis();
            let (days, rem) = (ms.div_euclid(MS_PER_DAY), ms.rem_euclid(MS_PER_DAY));
            let (y, m, d) = civil_from_days(days);
            let (h, mi, s, milli) = (
                rem / 3_600_000,
                rem / 60_000 % 60,
                rem / 1000 % 60,
                rem % 1000,
            );
            if (0..=9999).contains(&y) {
                put_digits(out, y, 4);
            } else {
                // Years outside 0..=9999 keep their sign and every digit.
                use std::io::Write;
                let _ = write!(out, "{y:04}");
            }
            out.push(b'-');
            put_digits(out, m.into(), 2);
            out.push(b'-');
            put_digits(out, d.into(), 2);
            out.push(b'T');
            put_digits(out, h, 2);
            out.push(b':');
            put_digits(out, mi, 2);
            out.push(b':');
            put_digits(out, s, 2);
            if milli != 0 {
                out.push(b'.');
                put_digits(out, milli, 3);
            }
            out.push(b'Z');
        }
    }
}

/// `value` (0 ≤ value < 10^width) as exactly `width` decimal digits.
fn put_digits(out: &mut Vec<u8>, value: i64, width: u32) {
    let mut div = 10i64.pow(width - 1);
    while div > 0 {
        out.push(b'0' + (value / div % 10) as u8);
        div /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> Result<i64, TimeError> {
        parse_time(TimeFormat::Date, s.as_bytes()).map(EventTime::millis)
    }

    #[test]
    fn dates_are_utc_midnight() {
        assert_eq!(date("1970-01-01"), Ok(0));
        assert_eq!(date("2015-08-31"), Ok(1_440_979_200_000));
        assert_eq!(date("2016-02-29"), Ok(1_456_704_000_000));
    }

    #[test]
    fn impossible_dates_are_refused() {
        for bad in [
            "2015-02-29",
            "2015-13-01",
            "2015-00-10",
            "2015-1-1",
            "not-a-date",
            "",
        ] {
            assert!(date(bad).is_err(), "{bad}");
        }
        assert_eq!(
            date("2015-02-30").unwrap_err().to_string(),
            "`2015-02-30` is not a date as YYYY-MM-DD"
        );
    }

    #[test]
    fn rfc3339_honours_offsets_and_fractions() {
        let t = |s: &str| parse_time(TimeFormat::Rfc3339, s.as_bytes()).map(EventTime::millis);
        assert_eq!(t("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(t("1970-01-01T01:00:00.250+01:00"), Ok(250));
        assert!(t("1970-01-01T00:00:00").is_err());
    }

    #[test]
    fn times_outside_the_four_digit_years_are_refused() {
        let t = |f: TimeFormat, s: &str| parse_time(f, s.as_bytes()).map(EventTime::millis);
        // The bounds, computed independently: 719_528 days from 0000-01-01 to 1970-01-01 and
        // 2_932_897 days from 1970-01-01 to 10000-01-01.
        assert_eq!(EARLIEST_TIME.millis(), -719_528 * MS_PER_DAY);
        assert_eq!(LATEST_TIME.millis(), 2_932_897 * MS_PER_DAY - 1);
        assert_eq!(
            t(TimeFormat::Date, "0000-01-01"),
            Ok(EARLIEST_TIME.millis())
        );
        assert_eq!(
            t(TimeFormat::Rfc3339, "9999-12-31T23:59:59.999Z"),
            Ok(LATEST_TIME.millis())
        );
        let millis = TimeFormat::EpochMillis;
        assert_eq!(t(millis, "253402300799999"), Ok(LATEST_TIME.millis()));
        assert_eq!(t(millis, "-62167219200000"), Ok(EARLIEST_TIME.millis()));
        assert_eq!(
            t(millis, "253402300800000").unwrap_err().to_string(),
            "`253402300800000` (year 10000) is outside the years 0000 to 9999 that event times may take"
        );
        assert!(t(millis, "-62167219200001").is_err());
        assert!(t(millis, "9223372036854775807").is_err(), "i64::MAX");
        assert!(t(millis, "-9223372036854775808").is_err(), "i64::MIN");
        assert!(t(millis, "9223372036854775808").is_err(), "beyond i64");
        let seconds = TimeFormat::EpochSeconds;
        assert_eq!(t(seconds, "253402300799"), Ok(253_402_300_799_000));
        assert!(t(seconds, "253402300800").is_err());
        assert!(
            t(seconds, "9223372036854775").is_err(),
            "fits i64 as ms, year far out"
        );
        assert!(
            t(seconds, "9223372036854775807").is_err(),
            "overflows as ms"
        );
        assert!(
            t(TimeFormat::Rfc3339, "0000-01-01T00:00:00+00:01").is_err(),
            "an offset cannot move it before year 0"
        );
    }

    #[test]
    fn formatting_round_trips() {
        for s in [
            "2015-08-31T00:00:00Z",
            "1969-12-31T23:59:59.999Z",
            "2000-02-29T12:34:56Z",
        ] {
            let t = parse_time(TimeFormat::Rfc3339, s.as_bytes()).unwrap();
            assert_eq!(format_rfc3339(t), s);
        }
    }

    #[test]
    fn times_past_the_four_digit_years_keep_every_digit() {
        let next = EventTime::from_millis(253_402_300_800_000);
        assert_eq!(format_rfc3339(next), "10000-01-01T00:00:00Z");
        let before = EventTime::from_millis(-62_167_219_200_001);
        assert_eq!(format_rfc3339(before), "-001-12-31T23:59:59.999Z");
        assert_eq!(format_rfc3339(EventTime::MIN), "-infinity");
        let mut out = b"x".to_vec();
        write_rfc3339(EventTime::from_millis(1_000), &mut out);
        assert_eq!(out, b"x1970-01-01T00:00:01Z");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const FORMATS: [TimeFormat; 4] = [
            TimeFormat::Date,
            TimeFormat::Rfc3339,
            TimeFormat::EpochMillis,
            TimeFormat::EpochSeconds,
        ];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases(4000)))]

            #[test]
            fn any_text_is_a_time_in_range_or_refused(
                bytes in proptest::collection::vec(any::<u8>(), 0..40),
                format in 0..4usize,
            ) {
                if let Ok(t) = parse_time(FORMATS[format], &bytes) {
                    prop_assert!((EARLIEST_TIME..=LATEST_TIME).contains(&t));
                }
            }

            #[test]
            fn epoch_millis_are_accepted_exactly_within_the_years(ms in any::<i64>()) {
                let text = ms.to_string();
                let inside = (-62_167_219_200_000..=253_402_300_799_999).contains(&ms);
                let parsed = parse_time(TimeFormat::EpochMillis, text.as_bytes());
                prop_assert_eq!(parsed.is_ok(), inside, "{}", text);
                if inside {
                    prop_assert_eq!(parsed.map(EventTime::millis), Ok(ms));
                }
            }

            #[test]
            fn rfc3339_text_round_trips_within_the_years(
                ms in -62_167_219_200_000..=253_402_300_799_999i64,
            ) {
                let t = EventTime::from_millis(ms);
                prop_assert_eq!(parse_time(TimeFormat::Rfc3339, format_rfc3339(t).as_bytes()), Ok(t));
            }
        }
    }
}
