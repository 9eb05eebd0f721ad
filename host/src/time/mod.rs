//! Event time: when a record happened, as opposed to when it reached us, and the watermark
//! that says how far event time has safely progressed.

mod parse;
mod watermark;

pub use parse::{
    civil_from_days, date_days, days_from_civil, format_date, format_rfc3339, parse_time,
    write_rfc3339, TimeError, EARLIEST_TIME, LATEST_TIME,
};
pub use watermark::Watermarks;

/// Milliseconds since the Unix epoch, UTC, of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventTime(i64);

impl EventTime {
    /// Before any record: the watermark of a stream that has seen nothing.
    pub const MIN: EventTime = EventTime(i64::MIN);
    /// After every record: the watermark of a drained stream.
    pub const MAX: EventTime = EventTime(i64::MAX);

    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    pub fn saturating_add(self, ms: u64) -> Self {
        Self(self.0.saturating_add_unsigned(ms))
    }

    pub fn saturating_sub(self, ms: u64) -> Self {
        Self(self.0.saturating_sub_unsigned(ms))
    }
}

/// Ten years of 365.25 days: the longest window, gap, delay or lateness an app may declare,
/// far inside the `i64` milliseconds that times live in, so sums of them never overflow.
pub const TEN_YEARS_MS: u64 = 10 * YEAR_MS;

/// A year of 365.25 days, in milliseconds.
pub const YEAR_MS: u64 = 31_557_600_000;

/// A span of milliseconds in the largest unit that fits, rounded down ("30 days", "2914 years"),
/// for reasons people read; exact values go beside it where they matter.
pub fn format_span(ms: u64) -> String {
    const UNITS: [(u64, &str); 6] = [
        (YEAR_MS, "year"),
        (86_400_000, "day"),
        (3_600_000, "hour"),
        (60_000, "minute"),
        (1_000, "second"),
        (1, "ms"),
    ];
    let (size, unit) = UNITS
        .iter()
        .copied()
        .find(|(size, _)| ms >= *size)
        .unwrap_or((1, "ms"));
    let n = ms / size;
    if unit == "ms" || n == 1 {
        format!("{n} {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_in_the_largest_unit() {
        assert_eq!(format_span(0), "0 ms");
        assert_eq!(format_span(1), "1 ms");
        assert_eq!(format_span(999), "999 ms");
        assert_eq!(format_span(1_000), "1 second");
        assert_eq!(format_span(86_400_000), "1 day");
        assert_eq!(format_span(30 * 86_400_000), "30 days");
        assert_eq!(format_span(TEN_YEARS_MS), "10 years");
        assert_eq!(format_span(TEN_YEARS_MS - 1), "9 years");
        assert_eq!(format_span(u64::MAX), "584542046 years");
    }
}
