//! What one app may hold and send on one host, and the wall clock its event times are checked
//! against.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::time::EventTime;

/// What one app may hold on one host, and how far ahead of the wall clock its records may be
/// dated (`[limits]` in the config). A record that crosses one goes to the dead-letter topic
/// with the reason; the app goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Event times more than this ahead of the wall clock are refused: one such record would
    /// otherwise drag its partition's watermark ahead for good.
    pub max_event_time_ahead_ms: u64,
    /// Open (key, window) pairs: each holds a slot in the host and an accumulator in the guest.
    pub max_open_windows: usize,
    /// Distinct keys with an open window.
    pub max_keys: usize,
    /// Bytes of a record's key field: it becomes a Cassandra partition key and a Kafka key.
    pub max_key_bytes: usize,
    /// Bytes of a message's value and key, checked before it is decoded.
    pub max_record_bytes: usize,
    /// Bytes of a result row as JSON: it must fit a Kafka message and a Cassandra mutation.
    pub max_result_bytes: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_event_time_ahead_ms: 86_400_000,
            max_open_windows: 1_000_000,
            max_keys: 1_000_000,
            max_key_bytes: 1024,
            max_record_bytes: 256 << 10,
            max_result_bytes: 512 << 10,
        }
    }
}

/// The wall clock, in event-time milliseconds: read once per batch, never per record.
pub type WallClock = fn() -> EventTime;

/// The system's wall clock; a clock before 1970 reads as the epoch.
pub fn system_clock() -> EventTime {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    EventTime::from_millis(ms)
}
