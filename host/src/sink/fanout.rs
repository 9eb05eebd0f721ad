//! Every sink of one app together: each step's output goes to all of them, rows one sink
//! refuses for good go to the dead letters in the same attempt, and an attempt commits or
//! aborts everywhere at once. Under exactly-once the Kafka transaction is the commit point.

use std::sync::Arc;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::TopicPartitionList;
use serde_json::{Map, Value};

use super::kafka::AppOutputs;
use super::{Emitted, Output, Sink, SinkError};
use crate::plugin::AppSpec;
use crate::source::kafka::KafkaError;

/// Late and dead-letter records of the open attempt: they count in status and metrics once it
/// commits, so a replayed attempt does not count them twice.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub late: u64,
    pub dead_letters: u64,
}

/// An app's sinks.
pub struct Sinks {
    /// The results, late and dead-letter topics.
    kafka: AppOutputs,
    /// The results table, and any further sink.
    others: Vec<Box<dyn Sink>>,
    counts: Counts,
}

impl Sinks {
    pub fn new(kafka: AppOutputs, others: Vec<Box<dyn Sink>>) -> Self {
        Self {
            kafka,
            others,
            counts: Counts::default(),
        }
    }

    /// The sinks other than Kafka, for a later connection: the producer closes here.
    pub fn into_others(self) -> Vec<Box<dyn Sink>> {
        self.others
    }

    /// Hands one step's output to every sink; `None` when it was empty.
    pub fn deliver(&mut self, out: Output) -> Result<Option<Arc<Output>>, SinkError> {
        if out.is_empty() {
            return Ok(None);
        }
        self.counts.late += out.late.len() as u64;
        self.counts.dead_letters += out.dead_letters.len() as u64;
        let out = Arc::new(out);
        self.kafka.write(&out)?;
        for sink in &mut self.others {
            sink.write(&out)?;
        }
        Ok(Some(out))
    }

    /// Waits until every sink has what it was handed; refused rows become dead letters.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        for sink in &mut self.others {
            for refused in sink.flush()? {
                tracing::warn!(reason = %refused.reason, "result row refused by a sink");
                if let Some(emitted) = refused.output.emitted.get(refused.batch) {
                    self.kafka.refused(emitted, refused.row, refused.reason);
                    self.counts.dead_letters += 1;
                }
            }
        }
        Ok(())
    }

    /// Makes everything handed over so far durable and visible (without offsets: at-least-once,
    /// and the end of a drain).
    pub fn commit(&mut self) -> Result<(), SinkError> {
        self.flush()?;
        for sink in &mut self.others {
            sink.commit()?;
        }
        self.kafka.commit()?;
        Ok(())
    }

    /// Exactly-once: the attempt's outputs and the input offsets they cover commit in one
    /// Kafka transaction. Everything else must be flushed before.
    pub fn commit_with_offsets(
        &mut self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
        again: impl FnMut(&KafkaError) -> bool,
    ) -> Result<(), KafkaError> {
        self.kafka.commit_with_offsets(offsets, group, again)
    }

    /// Drops the open attempt where the sinks allow it; it is replayed from the last checkpoint.
    pub fn abort(&mut self) -> Result<(), SinkError> {
        self.flush()?;
        for sink in &mut self.others {
            sink.abort()?;
        }
        self.kafka.abort()?;
        self.counts = Counts::default();
        Ok(())
    }

    /// A new build took over: every sink learns its outputs. On a refusal the sinks that had
    /// already learned them are told the running build's again.
    pub fn reopen(&mut self, spec: &AppSpec, running: &AppSpec) -> Result<(), SinkError> {
        for i in 0..self.others.len() {
            if let Err(error) = self.others[i].reopen(spec) {
                for sink in &mut self.others[..i] {
                    if let Err(again) = sink.reopen(running) {
                        tracing::warn!(%again, "restoring a sink for the running build");
                    }
                }
                return Err(error);
            }
        }
        self.kafka.reopen(spec)
    }

    /// Whether every attempt is one Kafka transaction (exactly-once).
    pub fn transactional(&self) -> bool {
        self.kafka.transactional()
    }

    /// The counts of the attempt just committed; the next attempt counts from zero.
    pub fn take_counts(&mut self) -> Counts {
        std::mem::take(&mut self.counts)
    }

    /// A result row as the results topic carries it: for the dashboard.
    pub fn row(&self, emitted: &Emitted, row: usize) -> Map<String, Value> {
        self.kafka.row(emitted, row)
    }
}
