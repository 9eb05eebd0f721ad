//! Windows: which stretch of event time a record counts toward, and the table that maps each
//! open (key, window) to the guest slot holding its accumulator.

mod slots;

pub use slots::{KeyId, SlotId, SlotTable};

use crate::time::EventTime;

/// A half-open stretch of event time, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub start: EventTime,
    pub end: EventTime,
}

impl Window {
    /// Whether a record in this window is late: its window ended, plus the allowed lateness,
    /// at or before the watermark.
    #[inline]
    pub fn is_late(&self, allowed_lateness_ms: u64, watermark: EventTime) -> bool {
        self.end.saturating_add(allowed_lateness_ms) <= watermark
    }
}

/// How records are grouped in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigner {
    Tumbling { size_ms: u64 },
    Sliding { size_ms: u64, slide_ms: u64 },
}

impl Assigner {
    /// Calls `each` with every window the time falls in, oldest first.
    #[inline]
    pub fn assign(&self, time: EventTime, mut each: impl FnMut(Window)) {
        let t = time.millis();
        match *self {
            Assigner::Tumbling { size_ms } => {
                let start = t - t.rem_euclid(size_ms as i64);
                let start = EventTime::from_millis(start);
                each(Window {
                    start,
                    end: start.saturating_add(size_ms),
                });
            }
            Assigner::Sliding { size_ms, slide_ms } => {
                let (size, slide) = (size_ms as i64, slide_ms as i64);
                let last_start = t - t.rem_euclid(slide);
                let mut start = last_start - (size - 1).div_euclid(slide) * slide;
                while start <= last_start {
                    if t < start + size {
                        let s = EventTime::from_millis(start);
                        each(Window {
                            start: s,
                            end: s.saturating_add(size_ms),
                        });
                    }
                    start += slide;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn windows(a: Assigner, t: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        a.assign(EventTime::from_millis(t), |w| {
            out.push((w.start.millis(), w.end.millis()))
        });
        out
    }

    #[test]
    fn tumbling_days_start_at_utc_midnight() {
        let a = Assigner::Tumbling {
            size_ms: DAY as u64,
        };
        assert_eq!(windows(a, 0), vec![(0, DAY)]);
        assert_eq!(windows(a, DAY - 1), vec![(0, DAY)]);
        assert_eq!(windows(a, DAY), vec![(DAY, 2 * DAY)]);
        assert_eq!(windows(a, -1), vec![(-DAY, 0)], "before 1970 too");
    }

    #[test]
    fn sliding_windows_overlap() {
        let a = Assigner::Sliding {
            size_ms: 10,
            slide_ms: 5,
        };
        assert_eq!(windows(a, 7), vec![(0, 10), (5, 15)]);
        assert_eq!(windows(a, 10), vec![(5, 15), (10, 20)]);
        let gaps = Assigner::Sliding {
            size_ms: 5,
            slide_ms: 10,
        };
        assert_eq!(windows(gaps, 7), vec![], "between hopping windows");
        assert_eq!(windows(gaps, 12), vec![(10, 15)]);
    }

    #[test]
    fn lateness_is_decided_at_the_boundary() {
        let w = Window {
            start: EventTime::from_millis(0),
            end: EventTime::from_millis(DAY),
        };
        assert!(!w.is_late(0, EventTime::from_millis(DAY - 1)));
        assert!(
            w.is_late(0, EventTime::from_millis(DAY)),
            "end == watermark is late"
        );
        assert!(
            !w.is_late(1, EventTime::from_millis(DAY)),
            "allowed lateness extends it"
        );
        assert!(!w.is_late(0, EventTime::MIN));
    }
}
