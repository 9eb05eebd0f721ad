//! The partition reader: one queue per input partition, read slowest-first in event time, the
//! offset each partition resumes from, the offsets set aside as quarantined, and the partitions
//! this host gains and loses in rebalances. It hands records to an operator and reports
//! assignment changes; what a change means for state is the worker's business.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::{Offset, TopicPartitionList};

use super::end_offsets::EndOffsets;
use super::fetch_queue::{FetchQueue, Served, Serving};
use super::kafka::{partition_count, AppConsumer, Assignments, PartitionChange, Wakeup};
use crate::app::{Message, Operator};
use crate::sink::Output;

/// The next offset to read per partition: updated for every record, so a cheap hash.
pub type Offsets = HashMap<i32, i64, foldhash::fast::RandomState>;

/// First and last offset per partition of one batch.
pub type BatchRanges = HashMap<i32, (i64, i64), foldhash::fast::RandomState>;

/// Messages read from one partition before the slowest partition is chosen again.
const CHUNK: usize = 32;

/// Kafka refused or did not answer a request of the reader.
#[derive(Debug, thiserror::Error)]
#[error("{doing}: {source}")]
pub struct ReadError {
    doing: String,
    source: KafkaError,
}

fn failed(doing: impl Into<String>) -> impl FnOnce(KafkaError) -> ReadError {
    let doing = doing.into();
    move |source| ReadError { doing, source }
}

/// Offsets the plugin failed on. A suspect range is the batch a failure happened in: replayed
/// one record per batch, so that the record at fault shows itself; that record is then
/// quarantined alone and goes to the dead-letter topic with the reason instead of the plugin.
pub struct Quarantined {
    pub partition: i32,
    pub first: i64,
    pub last: i64,
    pub reason: String,
    pub suspect: bool,
    /// A suspect range whose record at fault was found: another failing record in it is a
    /// failure of its own.
    pub found: bool,
}

/// What the reader has read: where each partition resumes, what the batch being filled spans,
/// and which offsets are quarantined.
#[derive(Default)]
pub struct Intake {
    pub next_offsets: Offsets,
    /// First and last offset per partition of the batch being filled: updated for every
    /// record, so a cheap hash like `Offsets`.
    pub batch: BatchRanges,
    pub quarantine: Vec<Quarantined>,
    /// Partitions the consumer cannot read past, with librdkafka's reason: their records wait
    /// in Kafka (they show as lag) until a record of theirs is read again.
    unreadable: BTreeMap<i32, String>,
}

impl Intake {
    /// Whether a suspect range lies ahead of the read position: until it is passed, batches
    /// hold one record.
    pub fn isolating(&self) -> bool {
        self.quarantine.iter().any(|q| {
            q.suspect
                && self
                    .next_offsets
                    .get(&q.partition)
                    .is_none_or(|next| *next <= q.last)
        })
    }

    /// Hands one message to the operator and notes the offset to resume from. A message below
    /// that offset is already counted in the state (Kafka re-delivers from its committed
    /// offset, which may trail the checkpoint), and is skipped.
    fn take(
        &mut self,
        m: &Message<'_>,
        operator: &mut impl Operator,
        now: Instant,
        out: &mut Output,
    ) {
        let (partition, offset) = (m.partition, m.offset);
        if !self.unreadable.is_empty() {
            self.unreadable.remove(&partition);
        }
        let next = self.next_offsets.entry(partition).or_insert(offset);
        if offset < *next {
            return;
        }
        *next = offset + 1;
        if let Some(q) = self.quarantine.iter().find(|q| {
            !q.suspect && q.partition == partition && (q.first..=q.last).contains(&offset)
        }) {
            operator.quarantine(m, q.reason.clone(), out);
            return;
        }
        self.batch
            .entry(partition)
            .and_modify(|range| range.1 = offset)
            .or_insert((offset, offset));
        operator.push(m, now, out);
    }

    /// `take` for a message from the consumer's own queue (partitions not split off).
    fn take_borrowed(
        &mut self,
        message: &BorrowedMessage<'_>,
        operator: &mut impl Operator,
        now: Instant,
        out: &mut Output,
    ) {
        let m = Message {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key(),
            payload: message.payload(),
            timestamp: message.timestamp().to_millis(),
        };
        self.take(&m, operator, now, out);
    }

    /// Takes the messages `queue` serves, at most `max` records; says how many, and whether
    /// the partition's end came last.
    fn serve(
        &mut self,
        queue: &FetchQueue,
        topic: &str,
        max: usize,
        operator: &mut impl Operator,
        now: Instant,
        out: &mut Output,
    ) -> Serving {
        queue.serve(topic, max, &mut |served| match served {
            Served::Record(message) => self.take(&message, operator, now, out),
            Served::End => {}
            Served::Error {
                partition,
                offset,
                reason,
            } => self.note_unreadable(topic, partition, offset, reason),
        })
    }

    /// Notes a partition the consumer cannot read; said once in the log, not at every retry.
    fn note_unreadable(&mut self, topic: &str, partition: i32, offset: i64, reason: String) {
        let reason = format!("{topic} partition {partition} at offset {offset}: {reason}");
        if self.unreadable.get(&partition) != Some(&reason) {
            tracing::warn!(%reason, "the input cannot be read; its records wait in Kafka");
            self.unreadable.insert(partition, reason);
        }
    }

    /// Why partitions cannot be read, one line each.
    pub fn unreadable_reasons(&self) -> Vec<String> {
        self.unreadable.values().cloned().collect()
    }

    /// Forgets a partition this host no longer owns; its new owner finds any record at fault
    /// on its own.
    fn forget(&mut self, partition: i32) {
        self.next_offsets.remove(&partition);
        self.unreadable.remove(&partition);
        self.batch.remove(&partition);
        self.quarantine.retain(|q| q.partition != partition);
    }
}

/// One input partition's own queue of fetched records.
struct InputQueue {
    partition: i32,
    /// Read through this handle; before `_split`, which holds the consumer, so dropped first.
    fetch: FetchQueue,
    /// Keeps the partition apart from the consumer's queue, with its arrival callback.
    _split: PartitionQueue<Assignments>,
    assigned: bool,
    /// Reached the partition's end offset, and nothing arrived since.
    at_end: bool,
}

impl InputQueue {
    /// Takes `partition` out of the consumer's queue into its own, watched by `wakeup`.
    fn split(
        consumer: &Arc<AppConsumer>,
        input: &str,
        partition: i32,
        wakeup: &Wakeup,
    ) -> Option<Self> {
        // The handle first: a partition split off without one would be read by nobody.
        let fetch = FetchQueue::of(consumer, input, partition)?;
        let mut queue = consumer.split_partition_queue(input, partition)?;
        wakeup.watch(&mut queue);
        Some(Self {
            partition,
            fetch,
            _split: queue,
            assigned: false,
            at_end: false,
        })
    }
}

/// How one fill of a batch ended.
pub struct Filled {
    /// Messages taken.
    pub taken: usize,
    /// Partitions gained or lost while reading: the batch ended there, and rows already taken
    /// belong to the partitions as they were.
    pub changes: Vec<PartitionChange>,
}

/// Lag over the partitions this host owns.
pub struct Lag {
    pub records: i64,
    pub caught_up: bool,
    pub partitions: Vec<i32>,
}

/// The app's input, as this host reads it.
pub struct PartitionReader {
    /// Before `consumer`: dropped first, so that the consumer closes here, not on its thread.
    end_offsets: EndOffsets,
    consumer: Arc<AppConsumer>,
    input: String,
    queues: Vec<InputQueue>,
    /// Signalled when records arrive on a partition's queue: an idle reader sleeps on it.
    wakeup: Wakeup,
    pub intake: Intake,
}

impl PartitionReader {
    /// Splits every partition of `input` into its own queue before any record is fetched, so
    /// that reading is aligned on event time from the very first record, and joins the group.
    pub fn open(consumer: Arc<AppConsumer>, input: &str, wakeup: Wakeup) -> Result<Self, String> {
        let partitions = partition_count(&consumer, input)
            .ok_or_else(|| format!("cannot read the partitions of {input}"))?;
        let queues = (0..partitions as i32)
            .filter_map(|p| InputQueue::split(&consumer, input, p, &wakeup))
            .collect();
        consumer
            .subscribe(&[input])
            .map_err(|e| format!("subscribing to {input}: {e}"))?;
        Ok(Self {
            consumer,
            input: input.to_owned(),
            queues,
            wakeup,
            end_offsets: EndOffsets::default(),
            intake: Intake::default(),
        })
    }

    /// Fills a batch of at most `max` messages within `wait`, reading first from the partition
    /// that is furthest behind in event time, so that one partition racing ahead cannot make
    /// another's on-time records look late. While no partition has anything to read, it sleeps
    /// until woken (records, a rebalance, an operator's request), for at most `idle` (or
    /// `wait`, if longer). The batch is not flushed here.
    pub fn fill(
        &mut self,
        operator: &mut impl Operator,
        max: usize,
        (wait, idle): (Duration, Duration),
        out: &mut Output,
    ) -> Filled {
        let max = if self.intake.isolating() { 1 } else { max };
        let now = Instant::now();
        let deadline = now + wait;
        let idle_until = now + idle.max(wait);
        let mut taken = 0;
        let Self {
            consumer,
            input,
            queues,
            wakeup,
            intake,
            ..
        } = self;
        loop {
            while taken < max {
                match consumer.poll(Duration::ZERO) {
                    Some(Ok(message)) => {
                        intake.take_borrowed(&message, operator, now, out);
                        taken += 1;
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) => {}
                    Some(Err(error)) => tracing::warn!(%error, "consumer error"),
                    None => break,
                }
            }
            let changes = consumer.context().take();
            if !changes.is_empty() {
                return Filled { taken, changes };
            }
            if taken >= max {
                break;
            }
            // A partition that reached its end may have new records: take one to refresh its
            // clock, so that a stale clock neither holds the watermark back nor starves it.
            for q in queues.iter_mut().filter(|q| q.assigned && q.at_end) {
                let served = intake.serve(&q.fetch, input, 1, operator, now, out);
                if served.records > 0 {
                    q.at_end = served.at_end;
                    taken += served.records;
                }
            }
            // The slowest partition this host owns that has not reached its end. When its
            // records have not arrived yet, the batch ends and waits for them rather than
            // letting the others run ahead (further than the operator's read-ahead).
            let slowest = queues
                .iter()
                .enumerate()
                .filter(|(_, q)| q.assigned && !q.at_end)
                .min_by_key(|(_, q)| operator.clock(q.partition))
                .map(|(i, _)| i);
            let Some(i) = slowest else {
                let at = Instant::now();
                if taken == 0 && at < idle_until {
                    // Whatever woke it (records, a rebalance, an operator's request), the
                    // worker looks at it first: staying here, a request waited out the sleep.
                    wakeup.wait(idle_until - at);
                }
                break;
            };
            let q = &mut queues[i];
            let want = CHUNK.min(max - taken);
            let served = intake.serve(&q.fetch, input, want, operator, now, out);
            taken += served.records;
            q.at_end = served.at_end;
            let waiting = served.records < want && !q.at_end;
            if waiting {
                // Partitions close behind it in event time (level with it, in a stream whose
                // partitions keep pace) are read meanwhile: waiting for the one chosen first
                // among equals stalled a live stream while the others' queues were full.
                let limit = operator
                    .clock(q.partition)
                    .saturating_add(operator.read_ahead_ms());
                let mut meanwhile = 0;
                for (j, other) in queues.iter_mut().enumerate() {
                    let want = CHUNK.min(max - taken);
                    if j == i
                        || !other.assigned
                        || other.at_end
                        || operator.clock(other.partition) > limit
                        || want == 0
                    {
                        continue;
                    }
                    let served = intake.serve(&other.fetch, input, want, operator, now, out);
                    taken += served.records;
                    meanwhile += served.records;
                    other.at_end = served.at_end;
                }
                if meanwhile > 0 {
                    continue;
                }
                let at = Instant::now();
                if taken > 0 || at >= deadline {
                    break;
                }
                // Woken when records arrive: a millisecond's sleep in a loop cost a syscall and
                // a context switch each time.
                wakeup.wait(deadline - at);
            }
        }
        Filled {
            taken,
            changes: Vec::new(),
        }
    }

    /// While paused: nothing is read from the partition queues, but the consumer is still
    /// polled, so that the group keeps this host as a member and rebalances are seen.
    pub fn serve_events(&mut self, operator: &mut impl Operator, out: &mut Output) -> Filled {
        let now = Instant::now();
        let mut taken = 0;
        // Partitions never split into their own queue deliver here; they are held like the rest.
        while let Some(polled) = self.consumer.poll(Duration::ZERO) {
            if let Ok(message) = polled {
                self.intake.take_borrowed(&message, operator, now, out);
                taken += 1;
            }
        }
        Filled {
            taken,
            changes: self.consumer.context().take(),
        }
    }

    /// Sleeps until woken (a rebalance, an operator's request) or for `timeout`: a paused
    /// reader's wait.
    pub fn wait(&self, timeout: Duration) {
        self.wakeup.wait(timeout);
    }

    /// Notes that this host owns `partition` now and reads it from its own queue.
    pub fn assigned(&mut self, partition: i32) {
        match self.queues.iter_mut().find(|q| q.partition == partition) {
            Some(q) => {
                q.assigned = true;
                q.at_end = false;
            }
            None => {
                if let Some(mut queue) =
                    InputQueue::split(&self.consumer, &self.input, partition, &self.wakeup)
                {
                    queue.assigned = true;
                    self.queues.push(queue);
                }
            }
        }
    }

    /// Forgets a partition another host owns now.
    pub fn revoked(&mut self, partition: i32) {
        self.intake.forget(partition);
        if let Some(q) = self.queues.iter_mut().find(|q| q.partition == partition) {
            q.assigned = false;
        }
    }

    /// The input partitions this host owns now.
    pub fn owned(&self) -> Vec<i32> {
        self.queues
            .iter()
            .filter(|q| q.assigned)
            .map(|q| q.partition)
            .collect()
    }

    /// Stops (`hold = true`) or restarts Kafka's fetching of `partitions`.
    pub fn hold(&self, partitions: &[i32], hold: bool) -> Result<(), ReadError> {
        let mut list = TopicPartitionList::new();
        for &p in partitions {
            list.add_partition(&self.input, p);
        }
        let done = if hold {
            self.consumer.pause(&list)
        } else {
            self.consumer.resume(&list)
        };
        done.map_err(failed(format!("pausing or resuming {partitions:?}")))
    }

    /// Reads every owned partition again from `offsets` (from the beginning where a partition
    /// has none): the replay after a rebuild.
    pub fn rewind(&mut self, partitions: &[i32]) -> Result<(), ReadError> {
        for &p in partitions {
            let offset = self
                .intake
                .next_offsets
                .get(&p)
                .map_or(Offset::Beginning, |o| Offset::Offset(*o));
            self.consumer
                .seek(&self.input, p, offset, Duration::from_secs(30))
                .map_err(failed(format!("rewinding partition {p} to {offset:?}")))?;
        }
        for q in &mut self.queues {
            q.at_end = false;
        }
        Ok(())
    }

    /// The metadata the app's group committed with `partition`'s offset (the checkpoint
    /// epoch, under exactly-once).
    pub fn committed_metadata(&self, partition: i32) -> Result<Option<String>, ReadError> {
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.input, partition);
        // Longer than the transaction timeout: while a crashed host's commit of this
        // partition's offsets is pending, the broker answers only once it is committed or
        // aborted.
        let committed = self
            .consumer
            .committed_offsets(list, Duration::from_secs(60))
            .map_err(failed(format!(
                "reading the committed offset of partition {partition}"
            )))?;
        Ok(committed
            .find_partition(&self.input, partition)
            .map(|element| element.metadata().to_owned()))
    }

    /// The input offsets read so far, with `metadata` on each: what a transaction commits.
    pub fn offsets_with(&self, metadata: &str) -> Result<TopicPartitionList, ReadError> {
        let mut list = TopicPartitionList::new();
        for (&partition, &next) in &self.intake.next_offsets {
            list.add_partition_offset(&self.input, partition, Offset::Offset(next))
                .map_err(failed("listing the offsets to commit"))?;
            if metadata.is_empty() {
                continue;
            }
            if let Some(mut element) = list.find_partition(&self.input, partition) {
                element.set_metadata(metadata);
            }
        }
        Ok(list)
    }

    /// The group's membership, for a transaction that commits input offsets.
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        self.consumer.group_metadata()
    }

    /// Tells Kafka how far the group has read, for tools that show its lag.
    pub fn commit_offsets(&self, mode: CommitMode) {
        match self.offsets_with("") {
            Ok(list) if list.count() > 0 => {
                if let Err(error) = self.consumer.commit(&list, mode) {
                    tracing::warn!(%error, "committing offsets to Kafka");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "committing offsets to Kafka"),
        }
    }

    /// Every partition's end offset as of now: where a drain stops.
    pub fn end_offsets(&self) -> Result<Offsets, ReadError> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(&self.input), Duration::from_secs(30))
            .map_err(failed(format!("reading metadata of {}", self.input)))?;
        // One question for every partition (the latest offset: `Offset::End`, timestamp -1):
        // each question waits behind the consumer's long-poll fetch on the same connection, and
        // one per partition held a drain up for seconds.
        let mut latest = TopicPartitionList::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            latest
                .add_partition_offset(&self.input, partition.id(), Offset::End)
                .map_err(failed(format!(
                    "asking for the end of partition {}",
                    partition.id()
                )))?;
        }
        let answered = self
            .consumer
            .offsets_for_times(latest, Duration::from_secs(30))
            .map_err(failed(format!("reading end offsets of {}", self.input)))?;
        let mut ends = Offsets::default();
        for element in answered.elements() {
            let doing = format!(
                "reading the end offset of partition {}",
                element.partition()
            );
            element.error().map_err(failed(doing.clone()))?;
            let Offset::Offset(high) = element.offset() else {
                return Err(ReadError {
                    doing: format!("{doing}: Kafka answered {:?}", element.offset()),
                    source: KafkaError::OffsetFetch(RDKafkaErrorCode::Fail),
                });
            };
            ends.insert(element.partition(), high);
        }
        Ok(ends)
    }

    /// Whether every owned partition was read up to `ends` (at least one owned).
    pub fn reached(&self, ends: &Offsets) -> bool {
        // Only the partitions this host owns: another host drains the others.
        let mut owned = self.queues.iter().filter(|q| q.assigned).peekable();
        owned.peek().is_some()
            && owned.all(|q| {
                let high = ends.get(&q.partition).copied().unwrap_or(0);
                high <= 0
                    || self
                        .intake
                        .next_offsets
                        .get(&q.partition)
                        .is_some_and(|next| *next >= high)
            })
    }

    /// Where this host reads each partition of the input next, when it owns every one and has
    /// read each to its end: the positions a hibernating app's input is watched from.
    pub fn caught_up_positions(&self) -> Option<Vec<(i32, i64)>> {
        if self.queues.is_empty() || !self.queues.iter().all(|q| q.assigned) {
            return None;
        }
        self.queues
            .iter()
            .map(|q| {
                let high = self
                    .end_offsets
                    .of(&self.consumer, &self.input, q.partition)?;
                let next = self
                    .intake
                    .next_offsets
                    .get(&q.partition)
                    .copied()
                    .unwrap_or(0);
                (high >= 0 && next >= high).then_some((q.partition, next))
            })
            .collect()
    }

    /// Lag and caught-up state over the partitions the group gave this host, from the end
    /// offsets last read (see `EndOffsets`). Fresh ones are asked for meanwhile while the
    /// input is `held` or behind: otherwise the consumer's own fetches keep them current, and
    /// an idle app asks the broker nothing.
    pub fn lag(&mut self, held: bool) -> Option<Lag> {
        let assignment = self.consumer.assignment().ok()?;
        let partitions: Vec<i32> = assignment
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();
        let mut records = 0i64;
        let mut caught_up = !partitions.is_empty();
        for element in assignment.elements() {
            let high = self
                .end_offsets
                .of(&self.consumer, element.topic(), element.partition())
                .unwrap_or(-1);
            let next = self
                .intake
                .next_offsets
                .get(&element.partition())
                .copied()
                .unwrap_or(0);
            if high < 0 || next < high {
                caught_up = false;
            }
            records += (high - next).max(0);
        }
        if held || !caught_up {
            self.end_offsets
                .refresh(&self.consumer, &self.input, &partitions);
        }
        Some(Lag {
            records,
            caught_up,
            partitions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::processor::SwapError;
    use crate::checkpoint::PartitionCheckpoint;
    use crate::plugin::PluginError;
    use crate::time::EventTime;

    /// Counts the records it is handed.
    #[derive(Default)]
    struct Counting(usize);

    impl Operator for Counting {
        fn push(&mut self, _: &Message<'_>, _: Instant, _: &mut Output) {
            self.0 += 1;
        }
        fn quarantine(&mut self, _: &Message<'_>, _: String, _: &mut Output) {}
        fn clock(&self, _: i32) -> EventTime {
            EventTime::from_millis(0)
        }
        fn flush(&mut self, _: &mut Output) -> Result<(), PluginError> {
            Ok(())
        }
        fn pending(&self) -> usize {
            self.0
        }
        fn snapshot(&mut self, _: &Offsets) -> Result<Vec<PartitionCheckpoint>, PluginError> {
            Ok(Vec::new())
        }
        fn restore(
            &mut self,
            _: &PartitionCheckpoint,
            _: bool,
            _: Instant,
        ) -> Result<usize, SwapError> {
            Ok(0)
        }
    }

    fn record(partition: i32, offset: i64) -> Message<'static> {
        Message {
            topic: "t.reviews",
            partition,
            offset,
            key: None,
            payload: Some(b"{}"),
            timestamp: None,
        }
    }

    #[test]
    fn an_unreadable_partition_is_listed_once_until_it_is_read_again() {
        let mut intake = Intake::default();
        let codec = "Decompression (codec 0x4) of message at 40 failed: Local: Not implemented";
        intake.note_unreadable("t.reviews", 2, 40, codec.into());
        intake.note_unreadable("t.reviews", 2, 40, codec.into());
        intake.note_unreadable(
            "t.reviews",
            0,
            7,
            "Broker: Topic authorization failed".into(),
        );
        assert_eq!(
            intake.unreadable_reasons(),
            [
                "t.reviews partition 0 at offset 7: Broker: Topic authorization failed".to_owned(),
                format!("t.reviews partition 2 at offset 40: {codec}"),
            ]
        );
        let (mut operator, mut out) = (Counting::default(), Output::default());
        intake.take(&record(2, 41), &mut operator, Instant::now(), &mut out);
        assert_eq!(operator.0, 1);
        assert_eq!(
            intake.unreadable_reasons().len(),
            1,
            "partition 2 is read again"
        );
        intake.forget(0);
        assert!(
            intake.unreadable_reasons().is_empty(),
            "partition 0 is no longer owned"
        );
    }
}
