//! An enriched app's batches between the read and the app: each waits here, in the order it was
//! read, until its service answered every call of it; what may be read meanwhile is bounded by
//! the calls in flight and the batches waiting.

use std::time::{Duration, Instant};

use super::{Processor, Scratch};
use crate::enrich::{Enricher, InFlight};
use crate::plugin::{Batch, PluginError};
use crate::sink::Output;
use crate::source::Decoder;
use crate::time::EventTime;

/// The batches an enriched app may have waiting for their service at once: with the calls in
/// flight they bound the records held in memory to this many batches of `[runner] batch_max`.
const MAX_QUEUED: usize = 4;

/// A batch sent to its service: its rows wait here, in order, until every call is answered.
pub(super) struct Queued {
    pub(super) scratch: Scratch,
    pub(super) batch: Batch,
    pub(super) calls: InFlight,
    /// The watermark when the batch's first record was taken: until the batch reaches the app,
    /// no window closes beyond it, so none of its rows can find its window closed.
    pub(super) hold: EventTime,
    pub(super) started: Option<Instant>,
}

impl Processor {
    /// Calls a service for every batch, whose answers fill the app's returned input fields.
    pub fn with_enricher(mut self, enricher: Enricher) -> Self {
        self.set_enricher(Some(enricher));
        self
    }

    /// Installs (or removes) the enrich stage, between batches; batches still waiting for the
    /// old one are dropped (a rebuild replays them).
    pub fn set_enricher(&mut self, enricher: Option<Enricher>) {
        self.queue.clear();
        self.decoder = match &enricher {
            Some(enricher) => Decoder::new(&self.spec).supplied(&enricher.plan().supplied()),
            None => Decoder::new(&self.spec),
        };
        self.enricher = enricher;
    }

    /// The service the enrich stage calls, if the app has one.
    pub fn enrich_service(&self) -> Option<&str> {
        self.enricher.as_ref().map(|e| e.plan().service.as_str())
    }

    /// The enrich stage, handed to the processor that replaces this one.
    pub fn take_enricher(&mut self) -> Option<Enricher> {
        self.enricher.take()
    }

    /// Batches waiting for their service: no checkpoint, swap or final close until none is.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Records in the batches waiting for their service: read from Kafka, not yet processed.
    pub fn queued_records(&self) -> usize {
        self.queue.iter().map(|q| q.batch.rows as usize).sum()
    }

    /// Whether another batch may be read and sent: fewer than `max_in_flight` calls are
    /// unanswered and fewer than [`MAX_QUEUED`] batches wait. Otherwise the input waits in
    /// Kafka.
    pub fn accepts_more(&self) -> bool {
        let Some(enricher) = &self.enricher else {
            return true;
        };
        let unanswered: usize = self.queue.iter().map(|q| q.calls.unanswered()).sum();
        self.queue.len() < MAX_QUEUED && unanswered < enricher.max_in_flight()
    }

    /// The most records one batch of an enriched app takes from Kafka: what fills every slot
    /// in flight once (`batch_size` × `max_in_flight`). More would wait in memory rather than
    /// in Kafka, and add to every record's latency.
    pub fn read_limit(&self) -> Option<usize> {
        self.enricher
            .as_ref()
            .map(|e| (e.plan().batch_size * e.max_in_flight()).max(1))
    }

    /// Waits at most `timeout` for one of the waiting batches' calls to be answered.
    pub fn wait_for_answers(&self, timeout: Duration) {
        match &self.enricher {
            Some(enricher) if !self.queue.is_empty() => enricher.wait(timeout),
            _ => std::thread::sleep(timeout),
        }
    }

    /// Hands the oldest waiting batch to the app once its service answered every call of it;
    /// true when one was. One at a time, so the worker knows which batch a failure was in.
    pub fn apply_next(&mut self, out: &mut Output) -> Result<bool, PluginError> {
        if !self.queue.front().is_some_and(|q| q.calls.ready()) {
            return Ok(false);
        }
        let (Some(queued), Some(enricher)) = (self.queue.pop_front(), &self.enricher) else {
            return Ok(false);
        };
        let Queued {
            mut scratch,
            mut batch,
            calls,
            started,
            ..
        } = queued;
        let failed = enricher.complete(calls, &mut batch);
        let result = self.accumulate(&mut scratch, batch, failed, out);
        if let Some(started) = started {
            self.metrics.batch_duration.observe(started.elapsed());
        }
        self.publish_gauges();
        result.map(|()| true)
    }
}
