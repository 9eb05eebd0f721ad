//! Windows: which stretch of event time a record counts toward, and the table that maps each
//! open (key, window) to the guest slot holding its accumulator.

mod slots;

pub use slots::{KeyId, Live, SessionChanges, SlotId, SlotTable};

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

    /// Whether the two share a moment: two sessions of a key that do are one session.
    #[inline]
    pub fn intersects(&self, other: &Window) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The smallest window holding both.
    pub fn cover(&self, other: &Window) -> Window {
        Window {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// How records are grouped in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigner {
    Tumbling {
        size_ms: u64,
    },
    Sliding {
        size_ms: u64,
        slide_ms: u64,
    },
    /// Per key, records less than `gap_ms` apart are one session: a record at `t` opens
    /// `[t, t + gap)`, and sessions it touches merge into one.
    Session {
        gap_ms: u64,
    },
}

/// How a tenant reads its app's windows back (`app build`): the sizes in ms, as declared.
impl std::fmt::Display for Assigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Assigner::Tumbling { size_ms } => write!(f, "tumbling {size_ms} ms"),
            Assigner::Sliding { size_ms, slide_ms } => {
                write!(f, "sliding {size_ms} ms every {slide_ms} ms")
            }
            Assigner::Session { gap_ms } => write!(f, "session after a {gap_ms} ms gap"),
        }
    }
}

/// A window length or slide as the `i64` arithmetic of event times needs it: above zero, and at
/// most `i64::MAX` (the spec bounds them far lower; this keeps the assigner total regardless).
#[inline]
fn span(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX).max(1)
}

impl Assigner {
    /// The most windows one record can fall in: what the spec bounds, so that a record never
    /// costs the host more than that many slots.
    pub fn max_windows_per_record(&self) -> u64 {
        match *self {
            Assigner::Tumbling { .. } | Assigner::Session { .. } => 1,
            Assigner::Sliding { size_ms, slide_ms } => size_ms.div_ceil(slide_ms.max(1)),
        }
    }

    /// Whether windows of a key merge as records arrive.
    pub fn merges(&self) -> bool {
        matches!(self, Assigner::Session { .. })
    }

    /// Calls `each` with every window the time falls in, oldest first (for sessions, the
    /// record's own session before any merge). Total for every `i64`
    /// time: a window whose start would lie before `i64::MIN` is left out, an end past
    /// `i64::MAX` is held there, and the calls are at most [`Self::max_windows_per_record`].
    #[inline]
    pub fn assign(&self, time: EventTime, mut each: impl FnMut(Window)) {
        let t = time.millis();
        match *self {
            Assigner::Tumbling { size_ms } => {
                // rem_euclid by a positive divisor cannot overflow; the start can fall below
                // i64::MIN only for a time within one window of it.
                if let Some(start) = t.checked_sub(t.rem_euclid(span(size_ms))) {
                    let start = EventTime::from_millis(start);
                    each(Window {
                        start,
                        end: start.saturating_add(size_ms),
                    });
                }
            }
            Assigner::Session { gap_ms } => {
                each(Window {
                    start: time,
                    end: time.saturating_add(gap_ms),
                });
            }
            Assigner::Sliding { size_ms, slide_ms } => {
                let (size, slide) = (span(size_ms), span(slide_ms));
                // In i128 the starts cannot overflow: they lie within `size` of `t`.
                let t_wide = i128::from(t);
                let last_start = t_wide - i128::from(t.rem_euclid(slide));
                let slide_wide = i128::from(slide);
                let mut start = last_start - i128::from((size - 1) / slide) * slide_wide;
                while start <= last_start {
                    if t_wide < start + i128::from(size) {
                        if let Ok(s) = i64::try_from(start) {
                            let s = EventTime::from_millis(s);
                            each(Window {
                                start: s,
                                end: s.saturating_add(size_ms),
                            });
                        }
                    }
                    start += slide_wide;
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
    fn a_session_starts_at_its_record_and_lasts_a_gap() {
        let a = Assigner::Session { gap_ms: 10 };
        assert_eq!(windows(a, 7), vec![(7, 17)]);
        assert_eq!(windows(a, i64::MAX), vec![(i64::MAX, i64::MAX)]);
        let w = |s, e| Window {
            start: EventTime::from_millis(s),
            end: EventTime::from_millis(e),
        };
        assert!(w(7, 17).intersects(&w(16, 26)));
        assert!(
            !w(7, 17).intersects(&w(17, 27)),
            "a gap apart: two sessions"
        );
        assert_eq!(w(7, 17).cover(&w(16, 26)), w(7, 26));
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

    /// The windows of `t`, computed independently of the assigner: every multiple of `slide`
    /// in `(t - size, t]` that is an `i64`, ends held at `i64::MAX`.
    fn expected(size: u64, slide: u64, t: i64) -> Vec<(i64, i64)> {
        let (size, slide, t) = (i128::from(size), i128::from(slide), i128::from(t));
        let first = (t - size).div_euclid(slide) + 1;
        let last = t.div_euclid(slide);
        (first..=last)
            .map(|k| k * slide)
            .filter(|s| *s >= i128::from(i64::MIN))
            .map(|s| {
                let end = (s + size).min(i128::from(i64::MAX));
                (i64::try_from(s).unwrap(), i64::try_from(end).unwrap())
            })
            .collect()
    }

    #[test]
    fn the_ends_of_time_neither_wrap_nor_loop() {
        let day = DAY as u64;
        let tumbling = Assigner::Tumbling { size_ms: day };
        let sliding = Assigner::Sliding {
            size_ms: 3 * day,
            slide_ms: day,
        };
        for t in [
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
            i64::MAX - 1,
            -1,
            0,
            1,
            DAY - 1,
            DAY,
            DAY + 1,
        ] {
            assert_eq!(windows(tumbling, t), expected(day, day, t), "tumbling {t}");
            assert_eq!(
                windows(sliding, t),
                expected(3 * day, day, t),
                "sliding {t}"
            );
        }
        // i64::MAX = 106751991167 days + 25_975_807 ms: its day starts at a multiple of DAY.
        let last_day = 106_751_991_167 * DAY;
        assert_eq!(windows(tumbling, i64::MAX), vec![(last_day, i64::MAX)]);
        assert_eq!(windows(sliding, i64::MAX).len(), 3);
        // i64::MIN = -106751991168 days + 60_424_192 ms: every window holding it starts before
        // i64::MIN, so it has none; the next day has its own.
        assert_eq!(windows(tumbling, i64::MIN), vec![]);
        assert_eq!(windows(sliding, i64::MIN), vec![]);
        let first_day = -106_751_991_167 * DAY;
        assert_eq!(
            windows(tumbling, first_day),
            vec![(first_day, first_day + DAY)]
        );
        assert_eq!(
            windows(sliding, first_day),
            vec![(first_day, first_day + 3 * DAY)],
            "the two windows starting earlier are not representable"
        );
    }

    #[test]
    fn huge_sizes_and_slides_stay_total() {
        for (size, slide) in [
            (u64::MAX, u64::MAX),
            (1 << 63, 1 << 63),
            (u64::MAX, u64::MAX - 1),
            (1, u64::MAX),
            (i64::MAX as u64, i64::MAX as u64),
        ] {
            let a = Assigner::Sliding {
                size_ms: size,
                slide_ms: slide,
            };
            for t in [i64::MIN, -1, 0, 1, i64::MAX] {
                assert!(windows(a, t).len() <= 2, "{size}/{slide} at {t}");
            }
        }
        let a = Assigner::Tumbling { size_ms: u64::MAX };
        assert_eq!(windows(a, 5), vec![(0, i64::MAX)]);
        // -5 - rem_euclid(-5, i64::MAX) = -(i64::MAX): the start is still an i64.
        assert_eq!(windows(a, -5), vec![(i64::MIN + 1, i64::MAX)]);
        assert_eq!(
            Assigner::Tumbling { size_ms: 0 }.max_windows_per_record(),
            1
        );
    }

    #[test]
    fn windows_per_record_is_the_rounded_up_ratio() {
        let w =
            |size_ms, slide_ms| Assigner::Sliding { size_ms, slide_ms }.max_windows_per_record();
        assert_eq!(w(10, 5), 2);
        assert_eq!(w(10, 3), 4);
        assert_eq!(w(5, 10), 1);
        assert_eq!(w(30 * DAY as u64, 1), 2_592_000_000);
        assert_eq!(
            w(10, 0),
            10,
            "a zero slide is refused by the spec; no division by zero"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Sizes and slides the spec accepts: up to ten years, at most 1000 windows per record.
        fn geometry() -> impl Strategy<Value = (u64, u64)> {
            (1..=crate::time::TEN_YEARS_MS).prop_flat_map(|size| {
                let min_slide = size.div_ceil(1000).max(1);
                (Just(size), min_slide..=crate::time::TEN_YEARS_MS)
            })
        }

        /// Times anywhere in i64, with extra weight at both ends and around zero.
        fn time() -> impl Strategy<Value = i64> {
            prop_oneof![
                any::<i64>(),
                (0..1_000_000_000_000i64).prop_map(|d| i64::MIN + d),
                (0..1_000_000_000_000i64).prop_map(|d| i64::MAX - d),
                -1_000_000_000_000..1_000_000_000_000i64,
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases(4000)))]

            #[test]
            fn sliding_assignment_is_exact_and_bounded((size, slide) in geometry(), t in time()) {
                let a = Assigner::Sliding { size_ms: size, slide_ms: slide };
                let got = windows(a, t);
                prop_assert!(got.len() as u64 <= a.max_windows_per_record());
                prop_assert_eq!(got, expected(size, slide, t));
            }

            #[test]
            fn tumbling_assignment_is_exact(size in 1..=crate::time::TEN_YEARS_MS, t in time()) {
                let got = windows(Assigner::Tumbling { size_ms: size }, t);
                prop_assert_eq!(got, expected(size, size, t));
            }

            #[test]
            fn any_size_and_slide_terminate(
                size in any::<u64>(),
                ratio in 1..=1000u64,
                t in any::<i64>(),
            ) {
                // Whatever the values, the number of windows is bounded by size/slide.
                let slide = (size / ratio).max(1);
                let a = Assigner::Sliding { size_ms: size, slide_ms: slide };
                prop_assert!(windows(a, t).len() as u64 <= a.max_windows_per_record());
                let tumbling = Assigner::Tumbling { size_ms: size };
                prop_assert!(windows(tumbling, t).len() <= 1);
            }
        }
    }
}
