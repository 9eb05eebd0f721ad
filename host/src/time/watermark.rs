//! Per-partition watermarks. Each Kafka partition is ordered on its own, so each gets its own
//! clock; the app's watermark is the slowest active partition's, and a partition that has been
//! silent for the idle timeout stops holding everyone back.
//!
//! Silence counts while the input flows: when the whole input paused (nothing on any partition
//! for half the idle timeout), a partition that had records just before the pause gets the full
//! timeout again from the first record after it, and every partition does from the first record
//! this host reads at all (an app started, or paused, long before its input began). Otherwise a
//! partition whose next records reached this host a moment after another's backlog found its
//! windows closed by a watermark it had been silent for only because everyone was.
//!
//! Each partition also keeps the watermark that has closed its windows so far (they hold only
//! its own keys), and that never goes back. In steady state it is the same for every partition;
//! it differs when a partition arrives from another host, resumed from a checkpoint far behind
//! this host's own partitions: its records are judged against its own closing watermark, not
//! against the windows this host already closed for other keys.

use std::time::{Duration, Instant};

use super::EventTime;

#[derive(Debug, Clone)]
struct PartitionClock {
    partition: i32,
    max_seen: EventTime,
    /// Its last record, or when it could first be read.
    last_record: Instant,
    /// From when its silence counts: its last record, or the input's resuming after a pause.
    silent_from: Instant,
    /// The watermark that has closed this partition's windows: it never goes back.
    closed: EventTime,
}

/// The watermarks of one app on one host: over the partitions it owns.
#[derive(Debug)]
pub struct Watermarks {
    delay_ms: u64,
    idle_timeout: Duration,
    partitions: Vec<PartitionClock>,
    /// The last record on any partition, and when the input last resumed after a pause.
    last_any: Option<Instant>,
    flowing_since: Option<Instant>,
    finished: bool,
}

impl Watermarks {
    pub fn new(delay_ms: u64, idle_timeout: Duration) -> Self {
        Self {
            delay_ms,
            idle_timeout,
            partitions: Vec::new(),
            last_any: None,
            flowing_since: None,
            finished: false,
        }
    }

    /// The app's watermark on this host: the lowest closing watermark of its partitions.
    pub fn current(&self) -> EventTime {
        if self.finished {
            return EventTime::MAX;
        }
        self.partitions
            .iter()
            .map(|p| p.closed)
            .min()
            .unwrap_or(EventTime::MIN)
    }

    /// The watermark a record of this partition is judged against: windows that end at or
    /// before it (plus the allowed lateness) are closed.
    pub fn closing(&self, partition: i32) -> EventTime {
        if self.finished {
            return EventTime::MAX;
        }
        self.partitions
            .iter()
            .find(|p| p.partition == partition)
            .map_or(EventTime::MIN, |p| p.closed)
    }

    /// The highest closing watermark: no window ending after it (plus lateness) can close.
    pub fn highest(&self) -> EventTime {
        if self.finished {
            return EventTime::MAX;
        }
        self.partitions
            .iter()
            .map(|p| p.closed)
            .max()
            .unwrap_or(EventTime::MIN)
    }

    /// The newest event time seen on a partition.
    pub fn clock(&self, partition: i32) -> EventTime {
        self.partitions
            .iter()
            .find(|p| p.partition == partition)
            .map_or(EventTime::MIN, |p| p.max_seen)
    }

    /// A partition was assigned, or can be read from `now` on (its checkpoint loaded): until it
    /// shows a record or stays silent for the idle timeout from then, it holds the watermark.
    pub fn assign(&mut self, partition: i32, now: Instant) {
        match self
            .partitions
            .iter_mut()
            .find(|p| p.partition == partition)
        {
            Some(p) => {
                p.last_record = p.last_record.max(now);
                p.silent_from = p.silent_from.max(now);
            }
            None => self.partitions.push(PartitionClock {
                partition,
                max_seen: EventTime::MIN,
                last_record: now,
                silent_from: now,
                closed: EventTime::MIN,
            }),
        }
    }

    /// A partition resumes from a checkpoint: its clock and closing watermark as saved, so
    /// windows closed before the save stay closed.
    pub fn restore(&mut self, partition: i32, clock: EventTime, closed: EventTime, now: Instant) {
        self.assign(partition, now);
        if let Some(p) = self
            .partitions
            .iter_mut()
            .find(|p| p.partition == partition)
        {
            p.max_seen = p.max_seen.max(clock);
            if closed != EventTime::MAX {
                p.closed = p.closed.max(closed);
            }
        }
    }

    /// A partition moved to another host: it no longer holds the watermark here.
    pub fn revoke(&mut self, partition: i32) {
        self.partitions.retain(|p| p.partition != partition);
    }

    /// Notes a record's event time on its partition; true when the partition's clock moved,
    /// so the watermark may advance.
    #[inline]
    pub fn observe(&mut self, partition: i32, time: EventTime, now: Instant) -> bool {
        if self.last_any != Some(now) {
            self.note_input(now);
        }
        let clock = match self
            .partitions
            .iter_mut()
            .find(|p| p.partition == partition)
        {
            Some(clock) => clock,
            None => {
                self.assign(partition, now);
                let last = self.partitions.len() - 1;
                &mut self.partitions[last]
            }
        };
        clock.last_record = now;
        clock.silent_from = now;
        if time > clock.max_seen {
            clock.max_seen = time;
            true
        } else {
            false
        }
    }

    /// A record arrives at `now`. After a pause of the whole input, the partitions that had
    /// records before it (since the input last resumed) are silent from now on, not from then;
    /// before the first record, none was silent while the input flowed.
    fn note_input(&mut self, now: Instant) {
        let paused = self
            .last_any
            .is_none_or(|last| now.saturating_duration_since(last) >= self.idle_timeout / 2);
        if paused {
            let flowed_since = self.flowing_since;
            for p in self
                .partitions
                .iter_mut()
                .filter(|p| flowed_since.is_none_or(|since| p.last_record >= since))
            {
                p.silent_from = p.silent_from.max(now);
            }
            self.flowing_since = Some(now);
        }
        self.last_any = Some(now);
    }

    /// Recomputes the watermark from the active partitions and raises every partition's
    /// closing watermark to it; returns the app's watermark.
    pub fn advance(&mut self, now: Instant) -> EventTime {
        let slowest = self
            .partitions
            .iter()
            .filter(|p| self.idle_at(p).is_none_or(|idle_at| idle_at > now))
            .map(|p| p.max_seen)
            .min();
        if let Some(slowest) = slowest.filter(|s| *s != EventTime::MIN) {
            let watermark = slowest.saturating_sub(self.delay_ms);
            for p in &mut self.partitions {
                p.closed = p.closed.max(watermark);
            }
        }
        self.current()
    }

    /// When the watermark may next move without a record arriving: a partition that receives
    /// nothing more stops holding it back `idle_timeout` after its last record, which only
    /// matters while another partition is still active. An idle worker sleeps until then.
    pub fn next_change(&self, now: Instant) -> Option<Instant> {
        let mut active = self
            .partitions
            .iter()
            .filter_map(|p| self.idle_at(p))
            .filter(|idle_at| *idle_at > now);
        let (first, second) = (active.next()?, active.next()?);
        Some(active.fold(first.min(second), Instant::min))
    }

    /// When a partition stops holding the watermark back unless another record arrives;
    /// `None` for a timeout too long to fall within the clock's range (never).
    fn idle_at(&self, partition: &PartitionClock) -> Option<Instant> {
        partition.silent_from.checked_add(self.idle_timeout)
    }

    /// A new app version may declare another delay; the watermark still never goes back.
    pub fn set_delay(&mut self, delay_ms: u64) {
        self.delay_ms = delay_ms;
    }

    /// End of input: every window may close.
    pub fn finish(&mut self) {
        self.finished = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn t(days: i64) -> EventTime {
        EventTime::from_millis(days * DAY)
    }

    #[test]
    fn the_slowest_partition_sets_the_watermark() {
        let now = Instant::now();
        let mut w = Watermarks::new(2 * DAY as u64, Duration::from_secs(30));
        w.assign(0, now);
        w.assign(1, now);
        w.observe(0, t(10), now);
        assert_eq!(
            w.advance(now),
            EventTime::MIN,
            "partition 1 has seen nothing yet"
        );
        w.observe(1, t(5), now);
        assert_eq!(w.advance(now), t(3));
        w.observe(1, t(20), now);
        assert_eq!(w.advance(now), t(8));
    }

    #[test]
    fn the_next_change_is_when_one_of_two_active_partitions_goes_idle() {
        let start = Instant::now();
        let timeout = Duration::from_secs(30);
        let mut w = Watermarks::new(0, timeout);
        w.assign(0, start);
        assert_eq!(
            w.next_change(start),
            None,
            "one partition alone never moves it"
        );
        w.assign(1, start + Duration::from_secs(5));
        // The input begins at 10 s: partition 1 is silent from then on.
        w.observe(0, t(1), start + Duration::from_secs(10));
        w.observe(0, t(2), start + Duration::from_secs(20));
        assert_eq!(w.next_change(start), Some(start + Duration::from_secs(40)));
        let later = start + Duration::from_secs(41);
        assert_eq!(
            w.next_change(later),
            None,
            "only partition 0 is still active"
        );
    }

    #[test]
    fn a_partition_is_not_idle_while_its_checkpoint_was_loading() {
        let start = Instant::now();
        let timeout = Duration::from_secs(30);
        let mut w = Watermarks::new(0, timeout);
        w.assign(0, start);
        w.observe(0, t(50), start);
        // Partition 1 is assigned, but its checkpoint takes 29 s to load (the committed offsets
        // wait for a dead host's transaction); it resumes with an older clock.
        w.assign(1, start);
        let loaded = start + Duration::from_secs(29);
        w.restore(1, t(10), EventTime::MIN, loaded);
        w.observe(0, t(60), loaded);
        assert_eq!(
            w.advance(start + Duration::from_secs(31)),
            t(10),
            "partition 1 holds the watermark for a full timeout after it could be read"
        );
        w.observe(0, t(70), start + Duration::from_secs(40));
        w.observe(0, t(80), start + Duration::from_secs(50));
        assert_eq!(w.advance(loaded + timeout), t(80));
    }

    #[test]
    fn a_partition_active_before_the_input_paused_holds_it_when_the_input_resumes() {
        let start = Instant::now();
        let timeout = Duration::from_secs(30);
        let at = |s: u64| start + Duration::from_secs(s);
        let mut w = Watermarks::new(0, timeout);
        for p in 0..3 {
            w.assign(p, start);
        }
        // Partitions 0 and 1 have records; partition 2 never has any.
        w.observe(0, t(10), at(1));
        w.observe(1, t(10), at(2));
        assert_eq!(w.advance(at(2)), EventTime::MIN, "partition 2 holds it");
        assert_eq!(w.advance(at(31)), t(10), "partition 2 was silent for 31 s");
        // The whole input pauses for 40 s; then partition 0's backlog arrives first.
        w.observe(0, t(30), at(42));
        assert_eq!(
            w.advance(at(42)),
            t(10),
            "partition 1 was silent only while everyone was"
        );
        w.observe(1, t(11), at(43));
        assert_eq!(w.advance(at(43)), t(11));
        w.observe(0, t(40), at(55));
        assert_eq!(w.advance(at(55)), t(11), "partition 1 is still active");
        assert_eq!(
            w.advance(at(74)),
            t(40),
            "silent for 31 s while partition 0 had records"
        );
    }

    #[test]
    fn every_partition_holds_it_when_the_input_begins_long_after_they_were_assigned() {
        let start = Instant::now();
        let timeout = Duration::from_secs(30);
        let at = |s: u64| start + Duration::from_secs(s);
        let mut w = Watermarks::new(0, timeout);
        for p in 0..3 {
            w.assign(p, start);
        }
        // Nothing for 10 minutes (an empty topic, or an app paused while its input was
        // written); then partition 0's backlog arrives a moment before the others'.
        w.observe(0, t(30), at(600));
        assert_eq!(
            w.advance(at(600)),
            EventTime::MIN,
            "partitions 1 and 2 were silent only while the input had not begun"
        );
        w.observe(1, t(10), at(601));
        w.observe(2, t(12), at(601));
        assert_eq!(w.advance(at(601)), t(10));
        w.observe(0, t(40), at(615));
        w.observe(2, t(20), at(615));
        assert_eq!(
            w.advance(at(632)),
            t(20),
            "partition 1, silent for 31 s while the others had records, no longer holds it"
        );
    }

    #[test]
    fn a_partition_that_stops_gets_one_more_timeout_after_a_pause_not_more() {
        let start = Instant::now();
        let timeout = Duration::from_secs(30);
        let at = |s: u64| start + Duration::from_secs(s);
        let mut w = Watermarks::new(0, timeout);
        w.observe(0, t(1), at(0));
        w.observe(1, t(1), at(0));
        // Partition 1 stops; partition 0 has a record every 20 s, each after a pause.
        let mut now = 0;
        for day in 2..10 {
            now += 20;
            w.observe(0, t(day), at(now));
        }
        assert_eq!(
            w.advance(at(now)),
            t(9),
            "partition 1 went idle within two pauses of its last record"
        );
    }

    #[test]
    fn a_timeout_past_the_clocks_range_never_makes_a_partition_idle() {
        let start = Instant::now();
        let mut w = Watermarks::new(0, Duration::MAX);
        w.assign(0, start);
        w.assign(1, start);
        w.observe(0, t(1), start);
        w.observe(1, t(5), start);
        assert_eq!(w.next_change(start), None);
        assert_eq!(w.advance(start + Duration::from_secs(3600)), t(1));
    }

    #[test]
    fn an_idle_partition_stops_holding_it_back() {
        let start = Instant::now();
        let mut w = Watermarks::new(0, Duration::from_secs(30));
        w.assign(0, start);
        w.assign(1, start);
        w.observe(0, t(1), start);
        w.observe(1, t(1), start);
        assert_eq!(w.advance(start), t(1));
        w.observe(0, t(5), start + Duration::from_secs(10));
        w.observe(0, t(7), start + Duration::from_secs(20));
        let later = start + Duration::from_secs(31);
        w.observe(0, t(9), later);
        assert_eq!(w.advance(later), t(9), "partition 1 went idle 31 s ago");
        w.observe(1, t(2), later);
        assert_eq!(w.advance(later), t(9), "a watermark never goes back");
    }

    #[test]
    fn with_every_partition_idle_the_watermark_stays() {
        let start = Instant::now();
        let mut w = Watermarks::new(0, Duration::from_secs(1));
        w.observe(0, t(4), start);
        assert_eq!(w.advance(start), t(4));
        assert_eq!(w.advance(start + Duration::from_secs(5)), t(4));
    }

    #[test]
    fn a_partition_taken_over_far_behind_keeps_its_own_closing_watermark() {
        let now = Instant::now();
        let mut w = Watermarks::new(0, Duration::from_secs(30));
        w.observe(0, t(100), now);
        assert_eq!(w.advance(now), t(100));
        w.restore(1, t(40), t(38), now);
        assert_eq!(
            w.closing(1),
            t(38),
            "its records are judged by its own windows"
        );
        assert_eq!(w.closing(0), t(100), "the windows closed here stay closed");
        w.observe(1, t(60), now);
        w.advance(now);
        assert_eq!(w.closing(1), t(60));
        assert_eq!(w.closing(0), t(100));
        assert_eq!(w.highest(), t(100));
        assert_eq!(w.current(), t(60));
    }
}
