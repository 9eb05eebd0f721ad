//! The app's Kafka outputs: results back to the tenant in near real time, and the late and
//! dead-letter topics, which keep every record the windows could not use, with the reason.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use rdkafka::TopicPartitionList;
use serde_json::{Map, Value};

use super::{Emitted, Output, Refused, Rejected, RowFormat, Sink, SinkError};
use crate::access::KafkaAccess;
use crate::alerts::AlertFormat;
use crate::names::AppTopics;
use crate::plugin::AppSpec;
use crate::source::kafka::{producer_config, KafkaError};
use crate::window::Window;
use std::sync::Arc;

/// Counts deliveries that failed after the producer's own retries.
#[derive(Default)]
pub struct Deliveries {
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            // An aborted transaction purges what it held: dropped on purpose, not lost.
            if matches!(
                error.rdkafka_error_code(),
                Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
            ) {
                return;
            }
            self.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(error.to_string());
            }
        }
    }
}

/// Header names on late and dead-letter records.
pub const REASON_HEADER: &str = "mysimbdp-reason";
pub const SOURCE_HEADER: &str = "mysimbdp-source";
/// On a late or dead-letter record cut to fit: how much of the original it keeps.
pub const TRUNCATED_HEADER: &str = "mysimbdp-truncated";

/// A late or dead-letter record keeps at most this much of the original value, and of its key,
/// so that it always fits a topic with Kafka's default 1 MiB message limit: a record that fits
/// the input topic but not its dead-letter copy would otherwise fail the transaction, and with
/// it the app, at every replay.
const MAX_REJECTED_BYTES: usize = 512 * 1024;
const MAX_REJECTED_KEY: usize = 64 * 1024;
/// A reason may quote what the record held; it is cut to this many bytes.
const MAX_REASON_BYTES: usize = 4096;

/// The text cut at a character boundary to at most `max` bytes, marked when cut.
fn bounded(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end]).into()
}

/// Writes one app's Kafka outputs.
pub struct AppOutputs {
    producer: Arc<BaseProducer<Deliveries>>,
    topics: AppTopics,
    rows: RowFormat,
    bootstrap: String,
    failures_seen: u64,
    transactional: bool,
    alerts: Option<AlertFormat>,
}

/// How long a transaction may stay open before the broker aborts it: after a crash, a
/// `read_committed` reader waits at most this long (a restart with the same id aborts it at once).
const TRANSACTION_TIMEOUT_MS: &str = "30000";
const COMMIT_TIMEOUT: Duration = Duration::from_secs(60);

impl AppOutputs {
    /// With a transactional id, everything sent between two `commit`s is one Kafka
    /// transaction; the id stays the same across restarts, so a restarted host fences off and
    /// aborts what its crashed predecessor left open.
    pub fn new(
        kafka: &KafkaAccess,
        topics: AppTopics,
        spec: &AppSpec,
        transactional_id: Option<&str>,
    ) -> Result<Self, KafkaError> {
        let bootstrap = kafka.bootstrap.as_str();
        let mut config = producer_config(kafka);
        // Only failures matter here (`Deliveries`): a report per delivered row cost a wake-up of
        // the producer's polling thread and a callback per row. A commit still waits for every
        // row and fails if one could not be delivered.
        config.set("delivery.report.only.error", "true");
        if let Some(id) = transactional_id {
            config
                .set("transactional.id", id)
                // Readers see the rows only when the checkpoint commits them (every second or
                // so): waiting longer to fill a produce request costs them nothing, and fewer,
                // larger requests cost the producer's thread and Kafka less per row.
                .set("linger.ms", "50")
                .set("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS)
                .set("message.timeout.ms", TRANSACTION_TIMEOUT_MS);
        }
        let producer: Arc<BaseProducer<Deliveries>> = Arc::new(
            config
                .create_with_context(Deliveries::default())
                .map_err(|source| KafkaError::new(bootstrap, "creating a producer", source))?,
        );
        super::delivery_poller::watch(&producer);
        if let Some(id) = transactional_id {
            producer
                .init_transactions(COMMIT_TIMEOUT)
                .and_then(|()| producer.begin_transaction())
                .map_err(|source| {
                    KafkaError::new(bootstrap, format!("starting transactions as {id}"), source)
                })?;
        }
        Ok(Self {
            transactional: transactional_id.is_some(),
            producer,
            alerts: AlertFormat::of(spec, &topics.alerts),
            topics,
            rows: RowFormat::of(spec),
            bootstrap: bootstrap.into(),
            failures_seen: 0,
        })
    }

    /// A new app version took over: its output columns and version from now on.
    pub fn describe(&mut self, spec: &AppSpec) {
        self.rows = RowFormat::of(spec);
        self.alerts = AlertFormat::of(spec, &self.topics.alerts);
    }

    fn send(&self, topic: &str, key: Option<&[u8]>, payload: &[u8], headers: Option<OwnedHeaders>) {
        let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        let mut record = record;
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    back,
                )) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((error, _)) => {
                    self.producer
                        .context()
                        .failed
                        .fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut last) = self.producer.context().last_error.lock() {
                        *last = Some(error.to_string());
                    }
                    return;
                }
            }
        }
    }

    /// Sends each emitted row to the results topic as JSON keyed by the row's key, and each
    /// closed window an app flags `alert` to the alerts topic, in the same transaction.
    pub fn results(&self, emitted: &Emitted) {
        let mut buffer = Vec::new();
        for (row, (key, _)) in emitted.windows.iter().enumerate() {
            self.rows.json(emitted, row, &mut buffer);
            self.send(&self.topics.results, Some(key.as_bytes()), &buffer, None);
        }
        for alert in self
            .alerts
            .iter()
            .flat_map(|a| a.alerts(&self.rows, emitted))
        {
            let id = alert.id.as_bytes();
            self.send(&self.topics.alerts, Some(id), &alert.payload, None);
        }
    }

    /// Tells the results topic that a session's row is gone (it merged into another, or its
    /// start moved): `{"<key>": …, "window_start": …, "window_end": …, "retracted": true}`.
    pub fn retracted(&self, key: &str, window: Window) {
        let buffer = self.rows.retraction(key, window);
        self.send(&self.topics.results, Some(key.as_bytes()), &buffer, None);
    }

    /// The dead-letter copy of a result row a sink refused.
    pub fn refused(&self, emitted: &Emitted, row: usize, reason: String) {
        self.dead_letter(&self.rows.refused(emitted, row, reason));
    }

    /// One emitted row as the results topic carries it (the dashboard shows the same).
    pub fn row(&self, emitted: &Emitted, row: usize) -> Map<String, Value> {
        self.rows.object(emitted, row)
    }

    fn rejected(&self, topic: &str, record: &Rejected) {
        let size = |key: Option<&[u8]>, payload: &[u8]| key.map_or(0, <[u8]>::len) + payload.len();
        let original = size(record.key.as_deref(), &record.payload);
        let key = record
            .key
            .as_deref()
            .map(|k| &k[..k.len().min(MAX_REJECTED_KEY)]);
        let payload = &record.payload[..record.payload.len().min(MAX_REJECTED_BYTES)];
        let kept = size(key, payload);
        let note = (kept < original).then(|| format!("kept the first {kept} of {original} bytes"));
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: REASON_HEADER,
                value: Some(bounded(&record.reason, MAX_REASON_BYTES).as_bytes()),
            })
            .insert(Header {
                key: SOURCE_HEADER,
                value: Some(record.source.as_bytes()),
            });
        if let Some(note) = &note {
            headers = headers.insert(Header {
                key: TRUNCATED_HEADER,
                value: Some(note.as_bytes()),
            });
        }
        self.send(topic, key, payload, Some(headers));
    }

    pub fn late(&self, record: &Rejected) {
        self.rejected(&self.topics.late, record);
    }

    pub fn dead_letter(&self, record: &Rejected) {
        self.rejected(&self.topics.dead_letters, record);
    }

    /// Makes everything sent so far durable and visible: the transaction commits (and the
    /// next begins), or, without transactions, every record is acknowledged.
    pub fn commit(&mut self) -> Result<(), KafkaError> {
        if !self.transactional {
            return self.flush(COMMIT_TIMEOUT);
        }
        self.producer
            .commit_transaction(COMMIT_TIMEOUT)
            .and_then(|()| self.producer.begin_transaction())
            .map_err(|source| {
                KafkaError::new(
                    &self.bootstrap,
                    "committing the outputs' transaction",
                    source,
                )
            })?;
        self.check_deliveries()
    }

    /// Whether everything sent between two commits is one Kafka transaction.
    pub fn transactional(&self) -> bool {
        self.transactional
    }

    /// Commits the open transaction together with the input offsets it covers, in the app's
    /// consumer group: outputs and offsets become visible at once or not at all. A host that
    /// lost its partitions in a rebalance has its offsets refused, and so its whole attempt. A
    /// step that fails retriably is made again, from where it failed, as long as `again` (the
    /// retry policy) says so.
    pub fn commit_with_offsets(
        &mut self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
        mut again: impl FnMut(&KafkaError) -> bool,
    ) -> Result<(), KafkaError> {
        let bootstrap = self.bootstrap.clone();
        let producer = &self.producer;
        let mut step = |doing: &str, call: &dyn Fn() -> rdkafka::error::KafkaResult<()>| loop {
            match call() {
                Ok(()) => return Ok(()),
                Err(source) => {
                    let error = KafkaError::new(&bootstrap, doing, source);
                    if !(error.retriable() && again(&error)) {
                        return Err(error);
                    }
                }
            }
        };
        step(
            "sending the input offsets to the outputs' transaction",
            &|| producer.send_offsets_to_transaction(offsets, group, COMMIT_TIMEOUT),
        )?;
        step(
            "committing the outputs' transaction with the input offsets",
            &|| producer.commit_transaction(COMMIT_TIMEOUT),
        )?;
        step("beginning the next transaction", &|| {
            producer.begin_transaction()
        })?;
        self.check_deliveries()
    }

    /// Drops what was sent since the last commit, where transactions allow it: an attempt
    /// that is replayed from the last checkpoint must not be seen twice.
    pub fn abort(&mut self) -> Result<(), KafkaError> {
        if !self.transactional {
            return Ok(());
        }
        self.producer
            .abort_transaction(COMMIT_TIMEOUT)
            .and_then(|()| self.producer.begin_transaction())
            .map_err(|source| {
                KafkaError::new(&self.bootstrap, "aborting the outputs' transaction", source)
            })
    }

    /// Waits until everything sent so far is acknowledged; fails if anything was lost.
    fn flush(&mut self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer
            .flush(timeout)
            .map_err(|source| KafkaError::new(&self.bootstrap, "flushing results", source))?;
        self.check_deliveries()
    }

    fn check_deliveries(&mut self) -> Result<(), KafkaError> {
        let failed = self.producer.context().failed.load(Ordering::Relaxed);
        if failed > self.failures_seen {
            self.failures_seen = failed;
            let last = self
                .producer
                .context()
                .last_error
                .lock()
                .ok()
                .and_then(|l| l.clone());
            return Err(KafkaError::new(
                &self.bootstrap,
                format!(
                    "delivering outputs ({failed} failed so far; last: {})",
                    last.unwrap_or_default()
                ),
                rdkafka::error::KafkaError::Canceled,
            ));
        }
        Ok(())
    }
}

impl Sink for AppOutputs {
    fn write(&mut self, out: &Arc<Output>) -> Result<(), SinkError> {
        for record in &out.dead_letters {
            self.dead_letter(record);
        }
        for record in &out.late {
            self.late(record);
        }
        for (key, window) in &out.retracted {
            self.retracted(key, *window);
        }
        for emitted in &out.emitted {
            self.results(emitted);
        }
        Ok(())
    }

    /// Records are acknowledged when the attempt commits.
    fn flush(&mut self) -> Result<Vec<Refused>, SinkError> {
        Ok(Vec::new())
    }

    fn commit(&mut self) -> Result<(), SinkError> {
        Ok(AppOutputs::commit(self)?)
    }

    fn abort(&mut self) -> Result<(), SinkError> {
        Ok(AppOutputs::abort(self)?)
    }

    fn reopen(&mut self, spec: &AppSpec) -> Result<(), SinkError> {
        self.describe(spec);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_at_a_character_boundary() {
        assert_eq!(bounded("short", 10), "short");
        let long = "é".repeat(10);
        let cut = bounded(&long, 9);
        assert!(cut.len() <= 9 && cut.ends_with("..."), "{cut}");
        assert!(cut.starts_with("éé"), "{cut}");
    }
}
