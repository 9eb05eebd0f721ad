//! The heart of an app: decoded records in, windows assigned, the plugin called once per batch,
//! results out. No I/O here, so it can be benchmarked and tested with fixed interleavings.

mod carry;
mod enrich_queue;
mod quotas;

pub use self::carry::{compatible, SwapError, Swapped};
pub use self::quotas::{system_clock, Quotas, WallClock};

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::enrich_queue::Queued;
use super::operator::Operator;
use crate::admin::metrics::{AppMetrics, PluginCall};
use crate::checkpoint::PartitionCheckpoint;
use crate::enrich::Enricher;
use crate::plugin::{AppInstance, AppSpec, Batch, Column, PluginError};
use crate::sink::{Emitted, Output, Rejected, RowFormat};
use crate::source::{Decoder, Offsets};
use crate::time::{format_rfc3339, format_span, EventTime, Watermarks};
use crate::window::{Live, SessionChanges, SlotId, SlotTable, Window};

/// One Kafka message as the processor needs it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    /// The Kafka timestamp, ms.
    pub timestamp: Option<i64>,
}

/// The windows and keys this batch's rows will open, counted exactly once the table nears a
/// quota; until then an upper bound (every on-time window new) is enough and costs no lookup.
#[derive(Default)]
struct Opening {
    windows_bound: usize,
    keys_bound: usize,
    exact: Option<Exact>,
}

/// The windows and keys this batch opens that the table does not hold yet.
#[derive(Default)]
struct Exact {
    windows: HashSet<(Box<str>, EventTime)>,
    keys: HashSet<Box<str>>,
}

/// Per-batch scratch, kept to avoid allocating on every batch.
#[derive(Default)]
struct Scratch {
    keys: String,
    key_ends: Vec<usize>,
    times: Vec<EventTime>,
    /// The watermark each row was judged against.
    watermarks: Vec<EventTime>,
    partitions: Vec<i32>,
    slots: Vec<u32>,
    rows: Vec<u32>,
    /// Session windows: what the batch's records did to their keys' sessions.
    sessions: SessionChanges,
    /// Each row's message, kept only when the app is enriched: a row the enrichment fails
    /// for goes to the dead letters as it came.
    origins: Vec<Rejected>,
}

impl Scratch {
    /// Ready for the next batch, its allocations kept.
    fn clear(&mut self) {
        self.origins.clear();
        self.keys.clear();
        self.key_ends.clear();
        self.times.clear();
        self.watermarks.clear();
        self.partitions.clear();
    }
}

/// Processing state of one app on one host.
pub struct Processor {
    spec: Arc<AppSpec>,
    decoder: Decoder,
    watermarks: Watermarks,
    table: SlotTable,
    instance: AppInstance,
    metrics: Arc<AppMetrics>,
    last_update: Instant,
    scratch: Scratch,
    mismatches: usize,
    /// Messages taken since the last flush; published once per batch, not per record.
    pushed: usize,
    batch_started: Option<Instant>,
    quotas: Quotas,
    wall_clock: WallClock,
    /// The wall clock when the current batch started.
    batch_wall: EventTime,
    opening: Opening,
    /// The newest event time accepted so far: the dashboard shows the watermark against it.
    newest: EventTime,
    /// The enrich stage, when the app calls a service.
    enricher: Option<Enricher>,
    /// Batches waiting for their service's answers, oldest first; applied in this order.
    queue: VecDeque<Queued>,
    /// The watermark when the current batch's first record was taken.
    batch_hold: EventTime,
}

/// Where an app's open windows live: sessions need the table that can merge them.
fn slot_table(spec: &AppSpec) -> SlotTable {
    if spec.assigner.merges() {
        SlotTable::for_sessions()
    } else {
        SlotTable::new()
    }
}

fn reject(message: &Message<'_>, reason: String) -> Rejected {
    Rejected {
        key: message.key.map(<[u8]>::to_vec),
        payload: message.payload.unwrap_or_default().to_vec(),
        reason,
        source: format!("{}/{}@{}", message.topic, message.partition, message.offset),
    }
}

impl Processor {
    pub fn new(
        spec: Arc<AppSpec>,
        instance: AppInstance,
        metrics: Arc<AppMetrics>,
        idle_timeout: Duration,
        now: Instant,
    ) -> Self {
        Self {
            decoder: Decoder::new(&spec),
            watermarks: Watermarks::new(spec.watermark_delay_ms, idle_timeout),
            table: slot_table(&spec),
            instance,
            metrics,
            last_update: now,
            scratch: Scratch::default(),
            mismatches: 0,
            pushed: 0,
            batch_started: None,
            quotas: Quotas::default(),
            wall_clock: system_clock,
            batch_wall: EventTime::MIN,
            opening: Opening::default(),
            newest: EventTime::MIN,
            enricher: None,
            queue: VecDeque::new(),
            batch_hold: EventTime::MIN,
            spec,
        }
    }

    /// The app's quotas, in place of the defaults.
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// Another wall clock, for tests and replays that must not depend on today's date.
    pub fn with_wall_clock(mut self, clock: WallClock) -> Self {
        self.wall_clock = clock;
        self
    }

    pub fn watermark(&self) -> EventTime {
        self.watermarks.current()
    }

    /// The watermark that has closed a partition's windows: saved with its checkpoint.
    pub fn closing(&self, partition: i32) -> EventTime {
        self.watermarks.closing(partition)
    }

    pub fn watermarks_mut(&mut self) -> &mut Watermarks {
        &mut self.watermarks
    }

    fn timed<T>(
        &mut self,
        call: PluginCall,
        f: impl FnOnce(&mut AppInstance) -> Result<T, PluginError>,
    ) -> Result<T, PluginError> {
        let started = Instant::now();
        let result = f(&mut self.instance);
        self.metrics.plugin_call(call, started.elapsed());
        result
    }

    /// The newest event time seen on a partition: consumption reads the slowest partition
    /// first, so no partition runs far ahead of the others in event time.
    pub fn clock(&self, partition: i32) -> EventTime {
        self.watermarks.clock(partition)
    }

    /// Decodes, windows and accumulates a batch of messages; rejected ones go to `out`.
    pub fn process(
        &mut self,
        messages: &[Message<'_>],
        now: Instant,
        out: &mut Output,
    ) -> Result<(), PluginError> {
        for message in messages {
            self.push(message, now, out);
        }
        self.flush(out)
    }

    /// Takes one message into the current batch: decoded, checked against the quotas and the
    /// wall clock, judged late or not against the watermark of this moment, and its partition's
    /// clock advanced. A refused record never moves a watermark.
    pub fn push(&mut self, message: &Message<'_>, now: Instant, out: &mut Output) {
        self.pushed += 1;
        if self.batch_started.is_none() {
            self.batch_started = Some(Instant::now());
            self.batch_wall = (self.wall_clock)();
            self.batch_hold = self.watermarks.current();
        }
        let Some(payload) = message.payload else {
            self.dead(out, message, "the message has no value".into());
            return;
        };
        let size = payload.len() + message.key.map_or(0, <[u8]>::len);
        if size > self.quotas.max_record_bytes {
            let reason = format!(
                "the message is {size} bytes (value and key); at most {} are allowed ([limits] max_record_bytes)",
                self.quotas.max_record_bytes
            );
            self.over_quota(out, message, reason);
            return;
        }
        let ingestion = EventTime::from_millis(message.timestamp.unwrap_or(0));
        let decoded = match self.decoder.decode(payload, ingestion) {
            Ok(decoded) => decoded,
            Err(error) => {
                self.dead(out, message, error.to_string());
                return;
            }
        };
        let time = decoded.time;
        let ahead = i128::from(time.millis()) - i128::from(self.batch_wall.millis());
        if ahead > i128::from(self.quotas.max_event_time_ahead_ms) {
            self.decoder.discard_last();
            AppMetrics::count(&self.metrics.future_records, 1);
            let ahead = u64::try_from(ahead).unwrap_or(u64::MAX);
            let reason = format!(
                "event time {} is {} ahead of the platform's clock ({}; at most {} allowed, [limits] max_event_time_ahead_ms)",
                format_rfc3339(time),
                format_span(ahead),
                format_rfc3339(self.batch_wall),
                format_span(self.quotas.max_event_time_ahead_ms),
            );
            self.dead(out, message, reason);
            return;
        }
        self.newest = self.newest.max(time);
        let key_bytes = self.decoder.key().len();
        if key_bytes > self.quotas.max_key_bytes {
            self.decoder.discard_last();
            let reason = format!(
                "the key `{}` is {key_bytes} bytes; at most {} are allowed ([limits] max_key_bytes)",
                self.spec.key_field, self.quotas.max_key_bytes
            );
            self.over_quota(out, message, reason);
            return;
        }
        let watermark = self.watermarks.closing(message.partition);
        let lateness = self.spec.allowed_lateness_ms;
        let (mut on_time, mut late_window) = (0, None);
        let (table, key) = (&self.table, self.decoder.key());
        let live = Live {
            watermark,
            allowed_lateness_ms: lateness,
        };
        self.spec.assigner.assign(time, |window| {
            // A record whose own session would be late still counts in a live session it
            // joins.
            if window.is_late(lateness, watermark) && !table.touches_session(key, window, live) {
                late_window = Some(window);
            } else {
                on_time += 1;
            }
        });
        if on_time > 0 {
            if let Err(reason) = self.reserve(time, watermark, on_time) {
                self.decoder.discard_last();
                self.over_quota(out, message, reason);
                return;
            }
        }
        if self.watermarks.observe(message.partition, time, now) {
            self.watermarks.advance(now);
        }
        if let (Some(window), 0) = (late_window, on_time) {
            self.decoder.discard_last();
            let reason = format!(
                "late: event time {} is in window [{}, {}), which closed when the watermark reached {} (allowed lateness {} ms)",
                format_rfc3339(time),
                format_rfc3339(window.start),
                format_rfc3339(window.end),
                format_rfc3339(watermark),
                lateness,
            );
            out.late.push(reject(message, reason));
            return;
        }
        let key = self.decoder.key();
        if message.key.is_some_and(|k| k != key.as_bytes()) {
            self.mismatches += 1;
        }
        let s = &mut self.scratch;
        s.keys.push_str(key);
        s.key_ends.push(s.keys.len());
        s.times.push(time);
        s.watermarks.push(watermark);
        s.partitions.push(message.partition);
        if self.enricher.is_some() {
            s.origins.push(reject(message, String::new()));
        }
    }

    /// Makes room for the windows and key the decoded record opens, or says which quota it
    /// would cross. Far from the quotas this is two additions; near them, exact lookups.
    fn reserve(
        &mut self,
        time: EventTime,
        watermark: EventTime,
        on_time: usize,
    ) -> Result<(), String> {
        let q = self.quotas;
        let o = &mut self.opening;
        let (open, keys) = (self.table.open_windows(), self.table.keys());
        if o.exact.is_none()
            && open + o.windows_bound + on_time <= q.max_open_windows
            && keys + o.keys_bound < q.max_keys
        {
            o.windows_bound += on_time;
            o.keys_bound += 1;
            return Ok(());
        }
        let (table, spec, scratch) = (&self.table, &self.spec, &self.scratch);
        let lateness = spec.allowed_lateness_ms;
        let Exact {
            windows,
            keys: new_keys,
        } = o.exact.get_or_insert_with(|| {
            // The rows taken so far in this batch, counted exactly once.
            let (mut windows, mut new_keys) = (HashSet::new(), HashSet::new());
            for row in 0..scratch.times.len() {
                let start = if row == 0 {
                    0
                } else {
                    scratch.key_ends[row - 1]
                };
                let key = &scratch.keys[start..scratch.key_ends[row]];
                let watermark = scratch.watermarks[row];
                spec.assigner.assign(scratch.times[row], |w| {
                    if !w.is_late(lateness, watermark) && !table.is_open(key, w.start) {
                        windows.insert((Box::from(key), w.start));
                    }
                });
                if !table.has_key(key) {
                    new_keys.insert(Box::from(key));
                }
            }
            Exact {
                windows,
                keys: new_keys,
            }
        });
        let key = self.decoder.key();
        let mut opens = Vec::new();
        spec.assigner.assign(time, |w| {
            if !w.is_late(lateness, watermark)
                && !table.is_open(key, w.start)
                && !windows.contains(&(Box::from(key), w.start))
            {
                opens.push(w.start);
            }
        });
        let new_key = !table.has_key(key) && !new_keys.contains(key);
        if open + windows.len() + opens.len() > q.max_open_windows {
            return Err(format!(
                "the app has {} open windows and this record would open {} more; at most {} are allowed ([limits] max_open_windows)",
                open + windows.len(),
                opens.len(),
                q.max_open_windows
            ));
        }
        if new_key && keys + new_keys.len() >= q.max_keys {
            return Err(format!(
                "the app has {} keys with open windows and this record's key is new; at most {} are allowed ([limits] max_keys)",
                keys + new_keys.len(),
                q.max_keys
            ));
        }
        for start in opens {
            windows.insert((Box::from(key), start));
        }
        if new_key {
            new_keys.insert(Box::from(key));
        }
        Ok(())
    }

    fn over_quota(&mut self, out: &mut Output, message: &Message<'_>, reason: String) {
        AppMetrics::count(&self.metrics.over_quota, 1);
        self.dead(out, message, reason);
    }

    /// A record of a batch the plugin failed on goes to the dead-letter topic, not the plugin.
    pub fn quarantine(&mut self, message: &Message<'_>, reason: String, out: &mut Output) {
        self.pushed += 1;
        AppMetrics::count(&self.metrics.quarantined, 1);
        self.dead(out, message, reason);
    }

    /// Late and dead-letter records count in metrics once the attempt that sent them commits.
    fn dead(&mut self, out: &mut Output, message: &Message<'_>, reason: String) {
        out.dead_letters.push(reject(message, reason));
    }

    /// Rows pushed since the last flush.
    pub fn pending(&self) -> usize {
        self.scratch.times.len()
    }

    /// Ends the batch: the filter and the accumulator each get one call for all its rows.
    pub fn flush(&mut self, out: &mut Output) -> Result<(), PluginError> {
        AppMetrics::count(&self.metrics.records_in, std::mem::take(&mut self.pushed));
        if self.mismatches > 0 {
            AppMetrics::count(&self.metrics.key_mismatches, self.mismatches);
            tracing::warn!(
                app = %self.spec.name,
                mismatches = self.mismatches,
                key = %self.spec.key_field,
                "messages whose Kafka key is not their app key: partial aggregates of one key may be split across hosts"
            );
            self.mismatches = 0;
        }
        self.opening = Opening::default();
        let batch = self.decoder.take_batch();
        if let Some(enricher) = &self.enricher {
            if batch.rows > 0 {
                // The rows wait, with their batch, for the service; the worker goes on.
                let calls = enricher.submit(&batch);
                self.queue.push_back(Queued {
                    scratch: std::mem::take(&mut self.scratch),
                    batch,
                    calls,
                    hold: self.batch_hold,
                    started: self.batch_started.take(),
                });
                return Ok(());
            }
        }
        let mut s = std::mem::take(&mut self.scratch);
        let result = self.accumulate(&mut s, batch, Vec::new(), out);
        s.clear();
        self.scratch = s;
        if let Some(started) = self.batch_started.take() {
            self.metrics.batch_duration.observe(started.elapsed());
        }
        self.publish_gauges();
        result
    }

    /// The batch's rows into their windows and the app: `failed` names the rows the enrich
    /// stage sends to the dead letters instead.
    fn accumulate(
        &mut self,
        s: &mut Scratch,
        mut batch: Batch,
        failed: Vec<Option<String>>,
        out: &mut Output,
    ) -> Result<(), PluginError> {
        if batch.rows == 0 {
            return Ok(());
        }
        let mut keep = if self.spec.has_filter {
            let keep = self.timed(PluginCall::Filter, |i| i.filter(&batch))?;
            AppMetrics::count(
                &self.metrics.filtered_out,
                keep.iter().filter(|k| !**k).count(),
            );
            Some(keep)
        } else {
            None
        };
        for (row, reason) in failed.into_iter().enumerate() {
            let Some(reason) = reason else { continue };
            let keep = keep.get_or_insert_with(|| vec![true; batch.rows as usize]);
            keep[row] = false;
            if let Some(origin) = s.origins.get(row) {
                out.dead_letters.push(Rejected {
                    reason,
                    ..origin.clone()
                });
            }
        }
        let lateness = self.spec.allowed_lateness_ms;
        s.slots.clear();
        s.rows.clear();
        for row in 0..s.times.len() {
            if keep.as_ref().is_some_and(|k| !k[row]) {
                continue;
            }
            let start = if row == 0 { 0 } else { s.key_ends[row - 1] };
            let key = &s.keys[start..s.key_ends[row]];
            let (watermark, partition) = (s.watermarks[row], s.partitions[row]);
            let (table, slots, rows) = (&mut self.table, &mut s.slots, &mut s.rows);
            let sessions = &mut s.sessions;
            let merges = self.spec.assigner.merges();
            let live = Live {
                watermark,
                allowed_lateness_ms: lateness,
            };
            self.spec.assigner.assign(s.times[row], |window| {
                if merges {
                    if !window.is_late(lateness, watermark)
                        || table.touches_session(key, window, live)
                    {
                        slots.push(
                            table
                                .session_for(key, window, partition, live, sessions)
                                .get(),
                        );
                        rows.push(row as u32);
                    }
                } else if !window.is_late(lateness, watermark) {
                    slots.push(table.slot_for(key, window, partition).get());
                    rows.push(row as u32);
                }
            });
        }
        self.merge_sessions(s, out)?;
        if s.slots.is_empty() {
            return Ok(());
        }
        let identity = s.rows.len() == batch.rows as usize
            && s.rows.iter().enumerate().all(|(i, r)| *r as usize == i);
        if !identity {
            batch = gather(&batch, &s.rows);
        }
        let slots = std::mem::take(&mut s.slots);
        let result = self.timed(PluginCall::Accumulate, |i| i.accumulate(&slots, &batch));
        s.slots = slots;
        result?;
        AppMetrics::count(&self.metrics.records_processed, s.rows.len());
        Ok(())
    }

    /// Carries out the session merges of a batch before its rows are added: the plugin folds
    /// each merged-away session into the one it joined, rows assigned to a merged-away slot
    /// follow it there, and the rows written for sessions that are gone are retracted (only
    /// apps that emit updates have written any before a session closes).
    fn merge_sessions(&mut self, s: &mut Scratch, out: &mut Output) -> Result<(), PluginError> {
        let changes = std::mem::take(&mut s.sessions);
        if changes.merges.is_empty() && changes.gone.is_empty() {
            return Ok(());
        }
        if !changes.merges.is_empty() {
            let forward: HashMap<u32, u32> = changes
                .merges
                .iter()
                .map(|(into, from)| (from.get(), into.get()))
                .collect();
            for slot in &mut s.slots {
                // A session merged away can itself have joined another later in the batch; the
                // chain ends at an open session (merges only go to the oldest start).
                while let Some(&next) = forward.get(slot) {
                    *slot = next;
                }
            }
            let (into, from): (Vec<u32>, Vec<u32>) = changes
                .merges
                .iter()
                .map(|(into, from)| (into.get(), from.get()))
                .unzip();
            self.timed(PluginCall::Merge, |i| i.merge(&into, &from))?;
        }
        self.table.settle();
        if self.spec.emit.updates() {
            out.retracted.extend(changes.gone);
        }
        Ok(())
    }

    /// Advances the watermark, closes the windows it passed, and emits updates when due.
    /// While batches wait for their service, windows close only up to the watermark the oldest
    /// of them started under: its rows were judged on time against a watermark at least that
    /// high, so no window they belong to closes before they reach it.
    pub fn tick(&mut self, now: Instant, out: &mut Output) -> Result<(), PluginError> {
        self.watermarks.advance(now);
        let hold = self
            .queue
            .iter()
            .map(|q| q.hold)
            .min()
            .unwrap_or(EventTime::MAX);
        let watermarks = &self.watermarks;
        let closed = self.table.closed_by(
            |partition| watermarks.closing(partition).min(hold),
            watermarks.highest().min(hold),
            self.spec.allowed_lateness_ms,
        );
        self.close(&closed, out)?;
        if now.duration_since(self.last_update) >= self.spec.update_interval {
            self.last_update = now;
            self.emit_changed(out)?;
        }
        self.publish_gauges();
        Ok(())
    }

    /// When `tick` next has work that no record brings: the end of an update interval with
    /// windows changed, or the watermark moving as a partition goes idle. `None`: nothing until
    /// a record arrives. An idle worker sleeps until then.
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        let update = (self.spec.emit.updates() && self.table.any_changed())
            .then(|| self.last_update + self.spec.update_interval);
        update
            .into_iter()
            .chain(self.watermarks.next_change(now))
            .min()
    }

    /// Emits the windows changed since the last update now, when the app emits updates: a
    /// checkpoint covers only what the sinks have seen.
    pub fn emit_changed(&mut self, out: &mut Output) -> Result<(), PluginError> {
        if !self.spec.emit.updates() {
            return Ok(());
        }
        let changed = self.table.take_changed();
        if !changed.is_empty() {
            self.emit(&changed, false, out)?;
        }
        Ok(())
    }

    /// End of input: the watermark goes to the end of time and every open window closes.
    pub fn finish(&mut self, out: &mut Output) -> Result<(), PluginError> {
        self.watermarks.finish();
        let open = self.table.all_open();
        self.close(&open, out)?;
        self.publish_gauges();
        Ok(())
    }

    fn close(&mut self, closed: &[SlotId], out: &mut Output) -> Result<(), PluginError> {
        if closed.is_empty() {
            return Ok(());
        }
        self.emit(closed, true, out)?;
        let numbers: Vec<u32> = closed.iter().map(|s| s.get()).collect();
        self.timed(PluginCall::Close, |i| i.close(&numbers))?;
        self.table.release(closed);
        Ok(())
    }

    /// The rows of `slots` from the app, for the sinks; a row too large for them goes to the
    /// dead letters instead, with its size and the limit.
    fn emit(
        &mut self,
        slots: &[SlotId],
        closed: bool,
        out: &mut Output,
    ) -> Result<(), PluginError> {
        let numbers: Vec<u32> = slots.iter().map(|s| s.get()).collect();
        let spec = self.spec.clone();
        let outputs = self.timed(PluginCall::Emit, |i| i.emit(&numbers, &spec.outputs))?;
        let windows: Vec<(String, Window)> = slots
            .iter()
            .map(|&slot| {
                let (key, window) = self.table.describe(slot);
                (key.to_owned(), window)
            })
            .collect();
        AppMetrics::count(&self.metrics.rows_emitted, windows.len());
        let emitted = Emitted {
            windows,
            outputs,
            closed,
        };
        let fitting = self.without_oversized(emitted, out);
        out.emitted.push(fitting);
        Ok(())
    }

    /// `emitted` without its rows over `max_result_bytes`, which become dead letters.
    fn without_oversized(&mut self, emitted: Emitted, out: &mut Output) -> Emitted {
        let max = self.quotas.max_result_bytes;
        // JSON can at most sextuple a text (\u escapes): only rows that near the limit are
        // measured exactly.
        let near = |row: usize| emitted.row_bytes(row).saturating_mul(6) > max;
        if !(0..emitted.len()).any(near) {
            return emitted;
        }
        let format = RowFormat::of(&self.spec);
        let mut json = Vec::new();
        let mut kept = Vec::with_capacity(emitted.len());
        for row in 0..emitted.len() {
            if near(row) {
                format.json(&emitted, row, &mut json);
                if json.len() > max {
                    AppMetrics::count(&self.metrics.over_quota, 1);
                    let reason = format!(
                        "the result row is {} bytes as JSON; at most {max} are allowed ([limits] \
                         max_result_bytes): it was written to neither Cassandra nor the results topic",
                        json.len()
                    );
                    out.dead_letters.push(format.refused(&emitted, row, reason));
                    continue;
                }
            }
            kept.push(row as u32);
        }
        Emitted {
            windows: kept
                .iter()
                .map(|&r| emitted.windows[r as usize].clone())
                .collect(),
            outputs: gather(&emitted.outputs, &kept),
            closed: emitted.closed,
        }
    }

    fn publish_gauges(&self) {
        use std::sync::atomic::Ordering;
        self.metrics
            .watermark_ms
            .store(self.watermarks.current().millis(), Ordering::Relaxed);
        self.metrics
            .open_windows
            .store(self.table.open_windows() as u64, Ordering::Relaxed);
        if self.newest > EventTime::MIN {
            self.metrics
                .max_event_ms
                .store(self.newest.millis(), Ordering::Relaxed);
        }
    }
}

/// The rows of a batch at the given indices, repeats allowed (a record in several windows).
fn gather(batch: &Batch, rows: &[u32]) -> Batch {
    fn pick<T: Clone>(values: &[T], rows: &[u32]) -> Vec<T> {
        rows.iter().map(|&r| values[r as usize].clone()).collect()
    }
    let columns = batch
        .columns
        .iter()
        .map(|column| match column {
            Column::Booleans(v) => Column::Booleans(pick(v, rows)),
            Column::Integers(v) => Column::Integers(pick(v, rows)),
            Column::Doubles(v) => Column::Doubles(pick(v, rows)),
            Column::Texts(v) => Column::Texts(pick(v, rows)),
            Column::Timestamps(v) => Column::Timestamps(pick(v, rows)),
        })
        .collect();
    Batch {
        rows: rows.len() as u32,
        columns,
    }
}

impl Operator for Processor {
    fn push(&mut self, message: &Message<'_>, now: Instant, out: &mut Output) {
        Processor::push(self, message, now, out);
    }

    fn quarantine(&mut self, message: &Message<'_>, reason: String, out: &mut Output) {
        Processor::quarantine(self, message, reason, out);
    }

    fn clock(&self, partition: i32) -> EventTime {
        Processor::clock(self, partition)
    }

    /// The watermark delay: with the slowest partition at clock `c`, the watermark is at most
    /// `c - delay`; another partition read up to `c + delay` can raise it to no more than `c`
    /// even once the slowest goes idle.
    fn read_ahead_ms(&self) -> u64 {
        self.spec.watermark_delay_ms
    }

    fn flush(&mut self, out: &mut Output) -> Result<(), PluginError> {
        Processor::flush(self, out)
    }

    fn pending(&self) -> usize {
        Processor::pending(self)
    }

    fn tick(&mut self, now: Instant, out: &mut Output) -> Result<(), PluginError> {
        Processor::tick(self, now, out)
    }

    fn emit_changed(&mut self, out: &mut Output) -> Result<(), PluginError> {
        Processor::emit_changed(self, out)
    }

    fn assign(&mut self, partition: i32, now: Instant) {
        self.watermarks.assign(partition, now);
    }

    fn revoke(&mut self, partition: i32) -> Result<(), PluginError> {
        self.forget_partition(partition)
    }

    fn snapshot(&mut self, offsets: &Offsets) -> Result<Vec<PartitionCheckpoint>, PluginError> {
        let mut windows = self.save_windows()?;
        let saved_by = self.saved_by();
        Ok(offsets
            .iter()
            .map(|(&partition, &next_offset)| {
                let at = windows.iter().position(|(p, _)| *p == partition);
                PartitionCheckpoint {
                    partition,
                    next_offset,
                    clock: self.clock(partition),
                    watermark: self.closing(partition),
                    saved_by: saved_by.clone(),
                    windows: at.map(|i| windows.swap_remove(i).1).unwrap_or_default(),
                }
            })
            .collect())
    }

    fn restore(
        &mut self,
        checkpoint: &PartitionCheckpoint,
        reset_state: bool,
        now: Instant,
    ) -> Result<usize, SwapError> {
        let windows = match self.check_saved(&checkpoint.saved_by) {
            Ok(()) => &checkpoint.windows[..],
            Err(refused) if reset_state => {
                tracing::warn!(
                    partition = checkpoint.partition,
                    windows = checkpoint.windows.len(),
                    saved_by = %checkpoint.saved_by.version,
                    %refused,
                    "--reset-state: the saved open windows of this partition are dropped"
                );
                &[]
            }
            Err(refused) => return Err(refused),
        };
        self.restore_partition(
            checkpoint.partition,
            checkpoint.clock,
            checkpoint.watermark,
            windows,
            now,
        )?;
        Ok(windows.len())
    }

    fn finish(&mut self, out: &mut Output) -> Result<(), PluginError> {
        Processor::finish(self, out)
    }
}
