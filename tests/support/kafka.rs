//! Creating topics and reading a whole topic back, as a tenant would see it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::access::{kafka_client, kafka_client_for};
use crate::{block_on, unique_tenant_id};

const METADATA_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// One message read back from a topic.
#[derive(Debug, Clone)]
pub struct KafkaRecord {
    pub partition: i32,
    pub offset: i64,
    /// Empty when the message has no key.
    pub key: Vec<u8>,
    /// Empty when the message has no value.
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl KafkaRecord {
    /// The first header named `name`, as text (lossy).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
    }

    /// The value parsed as JSON, with the message's place in the error.
    pub fn value_json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.value).with_context(|| {
            format!(
                "message at partition {} offset {} is not JSON: {}",
                self.partition,
                self.offset,
                String::from_utf8_lossy(&self.value)
            )
        })
    }
}

/// A consumer in the platform's `group` (to read what the platform committed).
fn consumer(group: &str) -> Result<BaseConsumer> {
    configure(kafka_client()?, group, "read_committed")
}

/// A consumer of `topic` as its tenant would read it, in a new group of its own (`purpose`
/// names it) under the tenant's prefix.
fn reader(topic: &str, purpose: &str, isolation: &str) -> Result<BaseConsumer> {
    let (client, prefix) = kafka_client_for(topic)?;
    let group = format!("{prefix}-{purpose}-{}", unique_tenant_id());
    configure(client, &group, isolation)
}

fn configure(
    mut client: rdkafka::ClientConfig,
    group: &str,
    isolation: &str,
) -> Result<BaseConsumer> {
    client
        .set("group.id", group)
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create()
        .context("cannot create a Kafka consumer")
}

/// The partition ids of `topic`; fails when the topic does not exist, so that a topic the
/// platform should have created is reported as missing rather than read as empty.
pub fn topic_partitions(topic: &str) -> Result<Vec<i32>> {
    partitions_of(&reader(topic, "meta", "read_committed")?, topic)
}

fn partitions_of(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .with_context(|| format!("cannot fetch the metadata of topic {topic}"))?;
    let entry = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| anyhow!("topic {topic} is not in the metadata"))?;
    if let Some(error) = entry.error() {
        bail!("topic {topic}: {:?}", RDKafkaErrorCode::from(error));
    }
    let mut ids: Vec<i32> = entry.partitions().iter().map(|p| p.id()).collect();
    if ids.is_empty() {
        bail!("topic {topic} has no partitions");
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Whether `topic` exists, as the operator sees it.
pub fn topic_exists(topic: &str) -> Result<bool> {
    let operator = consumer(&format!("mysimbdp-tests-meta-{}", unique_tenant_id()))?;
    let metadata = operator
        .fetch_metadata(None, METADATA_TIMEOUT)
        .context("cannot fetch the topics' metadata")?;
    Ok(metadata.topics().iter().any(|t| t.name() == topic))
}

/// Creates `topic` with `partitions` partitions (replication 1), or accepts it if it exists, and
/// waits until its metadata shows it, so that a producer started next finds every partition.
/// As the platform: the operator creates a tenant's streams (`mysimbdp tenant stream`), since
/// tenants may not create topics.
pub fn create_topic(topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = kafka_client()?
        .create()
        .context("cannot create a Kafka admin client")?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    let results = block_on(admin.create_topics([&new_topic], &options))?
        .with_context(|| format!("cannot create topic {topic}"))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("cannot create topic {name}: {code:?}"),
        }
    }
    let deadline = Instant::now() + METADATA_TIMEOUT;
    let operator = consumer(&format!("mysimbdp-tests-meta-{}", unique_tenant_id()))?;
    loop {
        match partitions_of(&operator, topic) {
            Ok(ids) if ids.len() >= partitions as usize => return Ok(()),
            result if Instant::now() >= deadline => {
                bail!("topic {topic} did not show {partitions} partitions in time: {result:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Every message of `topic` from offset 0 up to the end offsets as of the call (read_committed,
/// as a tenant's consumer would), in partition order and offset order within a partition.
/// Completion is judged by the consumer's position, which also steps over transaction markers;
/// a transaction still open holds the read back until it commits or the broker aborts it.
pub fn read_topic(topic: &str) -> Result<Vec<KafkaRecord>> {
    let consumer = reader(topic, "read", "read_committed")?;
    // The end is the high watermark, which a read_committed client would not report: it
    // answers with the last stable offset, which stops short of any open transaction.
    let ends_reader = reader(topic, "ends", "read_uncommitted")?;
    let partitions = partitions_of(&consumer, topic)?;
    let mut ends = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        let (low, high) = ends_reader
            .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
            .with_context(|| format!("cannot fetch the watermarks of {topic}/{partition}"))?;
        if high > low {
            ends.insert(partition, high);
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .with_context(|| format!("cannot assign {topic}/{partition}"))?;
        }
    }
    let mut records = Vec::new();
    if ends.is_empty() {
        return Ok(records);
    }
    consumer
        .assign(&assignment)
        .with_context(|| format!("cannot assign {topic}"))?;
    let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let mut last_error = None;
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let headers = message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                next_offset.insert(message.partition(), message.offset() + 1);
                records.push(KafkaRecord {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().unwrap_or_default().to_vec(),
                    value: message.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
            Some(Err(error)) => last_error = Some(error),
            None => {}
        }
        let positions = consumer
            .position()
            .context("cannot read the consumer's position")?;
        let reached = |partition: i32| {
            let position = match positions
                .find_partition(topic, partition)
                .map(|p| p.offset())
            {
                Some(Offset::Offset(offset)) => offset,
                _ => 0,
            };
            position.max(next_offset.get(&partition).copied().unwrap_or(0))
        };
        let behind: Vec<String> = ends
            .iter()
            .filter(|(&partition, &end)| reached(partition) < end)
            .map(|(partition, end)| format!("{partition}: at {} of {end}", reached(*partition)))
            .collect();
        if behind.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "could not read {topic} to its end within {READ_TIMEOUT:?} (partitions behind: \
                 {}; last consumer error: {last_error:?})",
                behind.join(", ")
            );
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}

/// How many messages `topic` holds in all its partitions (the sum of its end offsets, read
/// uncommitted): a reader that has read this many has read everything sent so far.
pub fn end_offsets_total(topic: &str) -> Result<i64> {
    let reader = reader(topic, "ends", "read_uncommitted")?;
    let mut total = 0;
    for partition in partitions_of(&reader, topic)? {
        let (_, high) = reader
            .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
            .with_context(|| format!("cannot fetch the watermarks of {topic}/{partition}"))?;
        total += high;
    }
    Ok(total)
}

/// The offsets a consumer group has committed on `topic`, per partition (partitions it never
/// committed are left out).
pub fn committed_offsets(group: &str, topic: &str) -> Result<BTreeMap<i32, i64>> {
    let reader = consumer(group)?;
    let mut list = TopicPartitionList::new();
    for partition in partitions_of(&reader, topic)? {
        list.add_partition(topic, partition);
    }
    // Longer than the platform's transaction timeout (30 s) and the broker's check for expired
    // ones (10 s): after a kill -9 between the offsets' commit and the transaction's, the broker
    // answers only once it has aborted that transaction.
    let committed = reader
        .committed_offsets(list, Duration::from_secs(90))
        .with_context(|| format!("cannot read the offsets group {group} committed on {topic}"))?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(offset) => Some((e.partition(), offset)),
            _ => None,
        })
        .collect())
}

/// Sends `(key, value)` messages to `topic` as its tenant and waits until all are acknowledged.
pub fn produce(topic: &str, messages: impl IntoIterator<Item = (String, String)>) -> Result<usize> {
    send_acknowledged(topic, None, messages)
}

/// As `produce`, every message to one partition: a test that needs one partition's records
/// to arrive before another's.
pub fn produce_to_partition(
    topic: &str,
    partition: i32,
    messages: impl IntoIterator<Item = (String, String)>,
) -> Result<usize> {
    send_acknowledged(topic, Some(partition), messages)
}

fn send_acknowledged(
    topic: &str,
    partition: Option<i32>,
    messages: impl IntoIterator<Item = (String, String)>,
) -> Result<usize> {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let producer: ThreadedProducer<DefaultProducerContext> = kafka_client_for(topic)?
        .0
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .context("cannot create a Kafka producer")?;
    let mut sent = 0;
    for (key, value) in messages {
        let mut record = BaseRecord::to(topic).key(&key).payload(&value);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    back,
                )) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((error, _)) => bail!("cannot send to {topic}: {error}"),
            }
        }
        sent += 1;
    }
    producer
        .flush(Duration::from_secs(120))
        .with_context(|| format!("cannot flush to {topic}"))?;
    Ok(sent)
}

/// Delivery outcomes, as the broker reported them.
#[derive(Default)]
struct Deliveries(std::sync::Mutex<Vec<Option<RDKafkaErrorCode>>>);

impl rdkafka::ClientContext for Deliveries {}

impl rdkafka::producer::ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        let outcome = result
            .as_ref()
            .err()
            .and_then(|(e, _)| e.rdkafka_error_code());
        if let Ok(mut all) = self.0.lock() {
            all.push(outcome);
        }
    }
}

/// Sends `messages` to `topic` with `client` (a tenant's login, say); the broker's answer for
/// each (None: delivered), so that a test can show a refusal.
pub fn send_as(
    client: &rdkafka::ClientConfig,
    topic: &str,
    messages: &[(String, String)],
) -> Result<Vec<Option<RDKafkaErrorCode>>> {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer<Deliveries> = client
        .clone()
        .set("message.timeout.ms", "30000")
        .create_with_context(Deliveries::default())
        .context("cannot create a producer")?;
    for (key, value) in messages {
        producer
            .send(BaseRecord::to(topic).key(key).payload(value))
            .map_err(|(e, _)| e)
            .with_context(|| format!("cannot queue a message for {topic}"))?;
    }
    let _ = producer.flush(Duration::from_secs(60));
    let outcomes = producer
        .context()
        .0
        .lock()
        .map(|o| o.clone())
        .unwrap_or_default();
    Ok(outcomes)
}
