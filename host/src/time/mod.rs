//! Event time: when a record happened, as opposed to when it reached us, and the watermark
//! that says how far event time has safely progressed.

mod parse;
mod watermark;

pub use parse::{date_days, format_date, format_rfc3339, parse_time, TimeError};
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
