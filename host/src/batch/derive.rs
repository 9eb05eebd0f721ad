//! Parts of a row's event time that a batch app may read or group by as if they were columns
//! (`month`, `year`, ...): how "per calendar month across years" is said without a new contract.

use crate::time::{civil_from_days, days_from_civil};

const MS_PER_DAY: i64 = 86_400_000;

/// A calendar part of the event time (UTC), offered as an integer column named after it when
/// the table has no column of that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePart {
    Year,
    /// 1 (January) ..= 12.
    Month,
    /// 1 ..= 31.
    DayOfMonth,
    /// 1 ..= 366.
    DayOfYear,
    /// ISO 8601 week of its ISO year, 1 ..= 53.
    Week,
    /// ISO 8601: 1 (Monday) ..= 7 (Sunday).
    Weekday,
}

impl TimePart {
    /// Every part, as named in an app's inputs or key.
    pub const ALL: [(&'static str, TimePart); 6] = [
        ("year", TimePart::Year),
        ("month", TimePart::Month),
        ("day_of_month", TimePart::DayOfMonth),
        ("day_of_year", TimePart::DayOfYear),
        ("week", TimePart::Week),
        ("weekday", TimePart::Weekday),
    ];

    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }

    /// This part of a time in ms since the epoch.
    pub fn of(self, ms: i64) -> i64 {
        let days = ms.div_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        match self {
            TimePart::Year => year,
            TimePart::Month => i64::from(month),
            TimePart::DayOfMonth => i64::from(day),
            TimePart::DayOfYear => days - days_from_civil(year, 1, 1) + 1,
            TimePart::Weekday => weekday(days),
            TimePart::Week => {
                // The ISO week is the week of its Thursday, counted in the Thursday's year.
                let thursday = days - weekday(days) + 4;
                let (iso_year, _, _) = civil_from_days(thursday);
                (thursday - days_from_civil(iso_year, 1, 1)) / 7 + 1
            }
        }
    }
}

/// 1 (Monday) ..= 7 (Sunday); 1970-01-01 was a Thursday.
fn weekday(days: i64) -> i64 {
    (days + 3).rem_euclid(7) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, m: u32, d: u32) -> i64 {
        days_from_civil(y, m, d) * MS_PER_DAY
    }

    #[test]
    fn calendar_parts_of_known_days() {
        // (date, year, month, day, day of year, ISO week, weekday), from a printed calendar.
        let cases = [
            ((2015, 3, 1), 2015, 3, 1, 60, 9, 7),
            ((2016, 12, 31), 2016, 12, 31, 366, 52, 6),
            ((2015, 12, 31), 2015, 12, 31, 365, 53, 4),
            ((2021, 1, 3), 2021, 1, 3, 3, 53, 7),
            ((2021, 1, 4), 2021, 1, 4, 4, 1, 1),
            ((1969, 12, 31), 1969, 12, 31, 365, 1, 3),
        ];
        for ((y, m, d), year, month, day, doy, week, wd) in cases {
            let t = at(y, m, d) + 13 * 3_600_000;
            let got = [
                TimePart::Year,
                TimePart::Month,
                TimePart::DayOfMonth,
                TimePart::DayOfYear,
                TimePart::Week,
                TimePart::Weekday,
            ]
            .map(|p| p.of(t));
            assert_eq!(got, [year, month, day, doy, week, wd], "{y}-{m}-{d}");
        }
    }

    #[test]
    fn names_are_found() {
        assert_eq!(TimePart::named("month"), Some(TimePart::Month));
        assert_eq!(TimePart::named("Month"), None);
    }
}
