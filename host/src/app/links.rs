//! An app's Kafka clients: made when it starts, let go while it hibernates, made again when it
//! wakes. Each client has threads of its own that wake every second even when idle, so an app
//! with nothing to do holds none (see `source::InputWatch`).

use std::sync::Arc;

use crate::access::KafkaAccess;
use crate::names::AppTopics;
use crate::plugin::AppSpec;
use crate::sink::kafka::AppOutputs;
use crate::sink::{Sink, Sinks};
use crate::source::kafka::{consumer, ensure_topics, AppConsumer, KafkaError, Wakeup};
use crate::source::InputWatch;

/// What an app connects to Kafka with.
pub struct Links {
    pub kafka: KafkaAccess,
    pub topics: AppTopics,
    /// This host's name: the consumer's static membership and the producer's transactions.
    pub instance: String,
    /// Exactly-once apps' transactional id: the same at every connection, so a new producer
    /// fences off what an earlier one left open.
    pub transactional_id: Option<String>,
    /// The host's watch over hibernating apps' inputs.
    pub watch: InputWatch,
    /// How many partitions a topic the platform makes for the app gets.
    pub partitions: i32,
}

/// The app's consumer, and its sinks with a producer of their own.
pub struct Connection {
    pub consumer: Arc<AppConsumer>,
    pub sinks: Sinks,
}

impl Links {
    /// A consumer in the app's group that wakes `wakeup`, and a producer for `spec`'s outputs
    /// beside the `others` sinks.
    pub fn connect(
        &self,
        spec: &AppSpec,
        wakeup: &Wakeup,
        others: Vec<Box<dyn Sink>>,
    ) -> Result<Connection, KafkaError> {
        let mut consumer = consumer(&self.kafka, &self.topics.group, &self.instance)?;
        wakeup.watch_consumer(&mut consumer);
        let outputs = AppOutputs::new(
            &self.kafka,
            self.topics.clone(),
            spec,
            self.transactional_id.as_deref(),
        )?;
        Ok(Connection {
            consumer: Arc::new(consumer),
            sinks: Sinks::new(outputs, others),
        })
    }

    /// Makes the alerts topic when `spec` raises alerts: a hot swap may bring the app's first
    /// alert column, and its alerts must not fail the transaction that carries them.
    pub async fn ensure_alerts_topic(&self, spec: &AppSpec) -> Result<(), KafkaError> {
        if crate::alerts::raises_alerts(spec) {
            ensure_topics(&self.kafka, &[self.topics.alerts.as_str()], self.partitions).await?;
        }
        Ok(())
    }
}
