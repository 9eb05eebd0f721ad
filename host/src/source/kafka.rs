//! Kafka plumbing shared by the source and the sinks: client settings, and creating the topics
//! a tenant app needs.

use std::sync::{Arc, Condvar};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use std::sync::Mutex;

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::access::KafkaAccess;

/// Kafka failed, with what we were doing at the time.
#[derive(Debug, thiserror::Error)]
#[error("Kafka at {}: {}: {}", .0.bootstrap, .0.doing, .0.source)]
pub struct KafkaError(Box<Failure>);

#[derive(Debug)]
pub struct Failure {
    bootstrap: String,
    doing: String,
    source: rdkafka::error::KafkaError,
}

impl KafkaError {
    /// Whether the failure aborts the open transaction but not the producer: the attempt is
    /// dropped and replayed from the last committed checkpoint (e.g. the group rebalanced
    /// while the transaction was open, so its input offsets were refused).
    pub fn requires_abort(&self) -> bool {
        matches!(&self.0.source, rdkafka::error::KafkaError::Transaction(e) if e.txn_requires_abort())
    }

    /// Whether the same transactional call may succeed when made again (a timeout, a broker
    /// not reachable for a moment).
    pub fn retriable(&self) -> bool {
        matches!(&self.0.source, rdkafka::error::KafkaError::Transaction(e) if e.is_retriable())
    }

    /// Whether the broker refused the client's user the operation (an ACL), so that a caller
    /// can say whose right is missing.
    pub fn not_authorized(&self) -> bool {
        matches!(
            self.0.source.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::ClusterAuthorizationFailed
            )
        )
    }

    pub fn new(
        bootstrap: &str,
        doing: impl Into<String>,
        source: rdkafka::error::KafkaError,
    ) -> Self {
        Self(Box::new(Failure {
            bootstrap: bootstrap.into(),
            doing: doing.into(),
            source,
        }))
    }
}

fn client(kafka: &KafkaAccess) -> ClientConfig {
    let mut config = kafka.client_config();
    config.set("client.id", "mysimbdp");
    config
}

/// Asks the cluster for its metadata before anything else uses it, so that a start that cannot
/// reach Kafka fails at once with librdkafka's own reason (a certificate not signed by
/// `kafka.ca_file`, a refused login), not with a timeout in whatever used Kafka first.
pub fn check_reachable(kafka: &KafkaAccess, patience: Duration) -> Result<(), KafkaError> {
    let bootstrap = kafka.bootstrap.as_str();
    let consumer: BaseConsumer<Refusals> =
        client(kafka)
            .create_with_context(Refusals::default())
            .map_err(|e| KafkaError::new(bootstrap, "creating a client", e))?;
    let deadline = std::time::Instant::now() + patience;
    loop {
        let error = match consumer.fetch_metadata(None, Duration::from_secs(1)) {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        // Serves the client's events, which is when librdkafka reports its errors.
        let _ = consumer.poll(Duration::ZERO);
        let refused = consumer.context().refused();
        if refused.is_some() || std::time::Instant::now() >= deadline {
            let doing = match refused {
                Some(reason) => format!("reaching the cluster: {reason}"),
                None => format!("reaching the cluster within {patience:?}"),
            };
            return Err(KafkaError::new(bootstrap, doing, error));
        }
    }
}

/// Keeps the first error that waiting will not mend: a TLS handshake or a login the brokers
/// refused, with the setting to check.
#[derive(Default)]
struct Refusals {
    first: Mutex<Option<String>>,
}

impl Refusals {
    fn refused(&self) -> Option<String> {
        self.first.lock().ok().and_then(|first| first.clone())
    }
}

impl ClientContext for Refusals {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let fix = match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::SSL) => {
                "is `kafka.ca_file` the CA that signed the brokers' certificates, and the \
                 bootstrap address their TLS listener?"
            }
            Some(RDKafkaErrorCode::Authentication) => {
                "check `kafka.user`, its password and `kafka.sasl_mechanism`"
            }
            _ => return,
        };
        if let Ok(mut first) = self.first.lock() {
            first.get_or_insert_with(|| format!("{reason} ({fix})"));
        }
    }
}

impl ConsumerContext for Refusals {}

/// A change of the partitions this host owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionChange {
    Assigned(i32),
    Revoked(i32),
}

/// Records rebalances as they happen inside `poll`, so that a newly assigned partition holds
/// the watermark back before any of its records is processed.
#[derive(Default)]
pub struct Assignments {
    changes: Mutex<Vec<PartitionChange>>,
}

impl Assignments {
    /// The changes since the last call, in order.
    pub fn take(&self) -> Vec<PartitionChange> {
        self.changes
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }
}

impl ClientContext for Assignments {
    /// Reaching a partition's end is how event-time alignment knows a partition is caught up,
    /// not an error worth a log line.
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF) {
            tracing::warn!(%error, reason, "Kafka client error");
        }
    }
}

impl ConsumerContext for Assignments {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (list, change): (_, fn(i32) -> PartitionChange) = match rebalance {
            Rebalance::Assign(list) => (list, PartitionChange::Assigned),
            Rebalance::Revoke(list) => (list, PartitionChange::Revoked),
            Rebalance::Error(error) => {
                tracing::warn!(%error, "rebalance failed");
                return;
            }
        };
        if let Ok(mut changes) = self.changes.lock() {
            changes.extend(list.elements().iter().map(|e| change(e.partition())));
        }
    }
}

/// The consumer every app worker uses.
pub type AppConsumer = BaseConsumer<Assignments>;

/// Wakes an app's worker when records arrive on one of its input partitions, when its consumer
/// has an event (a rebalance), or when an operator asks something: a worker with nothing to do
/// sleeps until one of these or its next timer, instead of looking every few milliseconds.
#[derive(Clone, Default)]
pub struct Wakeup(Arc<(Mutex<bool>, Condvar)>);

impl Wakeup {
    /// Called by librdkafka's thread when `queue` goes from empty to not empty.
    pub fn watch(&self, queue: &mut PartitionQueue<Assignments>) {
        let wakeup = self.clone();
        queue.set_nonempty_callback(move || wakeup.wake());
    }

    /// Called by librdkafka's thread when the consumer's own queue (rebalances, errors, and
    /// records of partitions not split off) goes from empty to not empty.
    pub fn watch_consumer(&self, consumer: &mut AppConsumer) {
        let wakeup = self.clone();
        consumer.set_nonempty_callback(move || wakeup.wake());
    }

    /// Ends the worker's current or next wait.
    pub fn wake(&self) {
        let (arrived, condvar) = &*self.0;
        if let Ok(mut arrived) = arrived.lock() {
            *arrived = true;
            condvar.notify_one();
        }
    }

    /// Returns when woken since the last call, or after `timeout`.
    pub fn wait(&self, timeout: Duration) {
        let (arrived, condvar) = &*self.0;
        let Ok(guard) = arrived.lock() else {
            return;
        };
        if let Ok((mut arrived, _)) = condvar.wait_timeout_while(guard, timeout, |a| !*a) {
            *arrived = false;
        }
    }
}

/// A partition's end offset as of the consumer's last fetch from it, without asking the broker:
/// every fetch answer carries it. `None` before the first answer. A query to the broker would
/// wait behind the consumer's own long-poll fetch on the same connection (up to
/// `fetch.wait.max.ms`), and the worker would wait with it.
pub fn known_end_offset(consumer: &AppConsumer, topic: &str, partition: i32) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer lives as long as `consumer`; librdkafka only reads the topic
    // name and writes the two offsets, which outlive the call.
    let code = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (code == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

/// A consumer in the app's group that commits only when told to: offsets are committed when the
/// results they produced are safely written. It is a static member named after the host, so a
/// host that restarts gets its partitions back at once instead of after the session timeout.
pub fn consumer(
    kafka: &KafkaAccess,
    group: &str,
    instance: &str,
) -> Result<AppConsumer, KafkaError> {
    client(kafka)
        .set("group.id", group)
        .set("group.instance.id", instance)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        // A fetch brings up to 1 MiB a partition: fewer, larger fetches cost the broker thread
        // and Kafka less per record; a partition's prefetch is still bounded by the queue below.
        .set("max.partition.fetch.bytes", "1048576")
        // How long the broker holds a fetch when there is nothing new (it answers at once when
        // there is): librdkafka's default. At 50 ms an idle app's consumer fetched 20 times a
        // second, a cost to the platform and to Kafka that grew with the number of apps.
        .set("fetch.wait.max.ms", "500")
        .set("queued.max.messages.kbytes", "8192")
        // Once a partition's queue is over that bound, librdkafka fetches it again only after
        // this pause (default 1 s): the worker emptied the queue in a fraction of that and then
        // waited, so a backlog drained in steps of one queue a second.
        .set("fetch.queue.backoff.ms", "10")
        .set("partition.assignment.strategy", "cooperative-sticky")
        // A host that died hands its partitions over after this long.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "2000")
        .create_with_context(Assignments::default())
        .map_err(|source| {
            KafkaError::new(
                &kafka.bootstrap,
                format!("creating a consumer in group {group}"),
                source,
            )
        })
}

/// Settings for a producer that neither loses nor duplicates what it was handed.
pub fn producer_config(kafka: &KafkaAccess) -> ClientConfig {
    let mut config = client(kafka);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "120000");
    config
}

/// Whether `ensure_topics` made a topic or found it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicState {
    Created,
    Existed,
}

/// Creates the topics that do not exist yet, with `partitions` partitions each and the
/// cluster's default replication factor; says for each topic, in order, which it was.
pub async fn ensure_topics(
    kafka: &KafkaAccess,
    topics: &[&str],
    partitions: i32,
) -> Result<Vec<TopicState>, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = client(kafka)
        .create()
        .map_err(|source| KafkaError::new(&kafka.bootstrap, "creating an admin client", source))?;
    ensure_topics_with(&admin, &kafka.bootstrap, topics, partitions).await
}

/// [`ensure_topics`] through an admin client already logged in to the cluster at `bootstrap`.
pub async fn ensure_topics_with(
    admin: &AdminClient<DefaultClientContext>,
    bootstrap: &str,
    topics: &[&str],
    partitions: i32,
) -> Result<Vec<TopicState>, KafkaError> {
    let err = |doing: String| {
        let bootstrap = bootstrap.to_owned();
        move |source| KafkaError::new(&bootstrap, doing, source)
    };
    // -1: the broker's default replication factor (1 on the local single broker).
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(-1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new, &options)
        .await
        .map_err(err(format!("creating topics {topics:?}")))?;
    let mut existed = Vec::new();
    for result in results {
        match result {
            Ok(_) => {}
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => existed.push(topic),
            Err((topic, code)) => {
                return Err(KafkaError::new(
                    bootstrap,
                    format!("creating topic {topic}"),
                    rdkafka::error::KafkaError::AdminOp(code),
                ))
            }
        }
    }
    Ok(topics
        .iter()
        .map(|t| {
            if existed.iter().any(|e| e == t) {
                TopicState::Existed
            } else {
                TopicState::Created
            }
        })
        .collect())
}

/// How many partitions a topic has, asking the broker.
pub fn partition_count<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Option<usize> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .ok()?;
    metadata.topics().first().map(|t| t.partitions().len())
}
