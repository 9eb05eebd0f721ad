//! The commit protocol: where every owned partition stands is saved in the order that makes
//! each sink see every record once (see `docs/architecture.md`).

use std::time::Instant;

use rdkafka::consumer::CommitMode;

use super::operator::Operator;
use super::worker::{StepError, Worker};
use crate::admin::metrics::AppMetrics;
use crate::admin::recent::now_ms;
use crate::checkpoint::{crash_point, CrashPoint, Epoch};
use crate::sink::cassandra::CassandraError;
use crate::sink::retry::Outage;
use crate::sink::Output;

impl Worker {
    /// Saves a checkpoint:
    ///
    /// 1. the changed windows are emitted and every sink has acknowledged the step's output;
    /// 2. each partition's checkpoint is saved in Cassandra as a new version (an epoch);
    /// 3. exactly-once: the Kafka transaction commits the step's results, late and dead-letter
    ///    records together with the input offsets, and the epoch in their metadata. That commit
    ///    is the one point where the attempt becomes real; a crash before it aborts the
    ///    transaction and the restart resumes the version the last commit named, so nothing
    ///    repeats on the topics; a crash after it resumes the new version, so nothing is read
    ///    twice. At-least-once: the outputs are flushed before the checkpoint is saved;
    /// 4. versions older than the committed one are dropped.
    pub(super) fn checkpoint(&mut self) -> Result<(), StepError> {
        let started = Instant::now();
        self.last_checkpoint = started;
        if self.reader.intake.next_offsets == self.checkpointed && !self.uncommitted {
            return Ok(());
        }
        let Some(store) = self.r.store.clone() else {
            // At-most-once: offsets are committed as read, whatever the sinks have.
            self.reader.commit_offsets(CommitMode::Async);
            self.committed();
            return Ok(());
        };
        let transactional = self.sinks.transactional();
        let mut out = Output::default();
        self.r.processor.emit_changed(&mut out)?;
        self.deliver(out)?;
        let checkpoints = self
            .r
            .processor
            .snapshot(&self.reader.intake.next_offsets)?;
        self.sinks.flush()?;
        crash_point(CrashPoint::BeforeCheckpoint);
        if !transactional {
            self.sinks.commit()?;
        }
        let (tenant, app) = (self.r.handle.tenant.clone(), self.r.handle.app.clone());
        let now = now_ms();
        let epoch = Epoch::new(now);
        let save = |c| store.save(&tenant, &app, c, epoch, now);
        if let Some((first, rest)) = checkpoints.split_first() {
            self.patiently(|| save(first))?;
            crash_point(CrashPoint::MidCheckpoint);
            self.patiently(|| async {
                for result in futures::future::join_all(rest.iter().map(save)).await {
                    result?;
                }
                Ok(())
            })?;
        }
        crash_point(CrashPoint::BeforeCommit);
        if transactional {
            self.commit_with_offsets(epoch)?;
        }
        crash_point(CrashPoint::AfterCommit);
        let prunes = checkpoints
            .iter()
            .map(|c| store.prune(&tenant, &app, c.partition, epoch));
        for result in self.r.runtime.block_on(futures::future::join_all(prunes)) {
            if let Err(error) = result {
                tracing::warn!(%error, "dropping older checkpoints; retried at the next one");
            }
        }
        if !transactional {
            self.reader.commit_offsets(CommitMode::Async);
        }
        let covered = &self.reader.intake.next_offsets;
        self.reader
            .intake
            .quarantine
            .retain(|q| covered.get(&q.partition).is_none_or(|next| q.last >= *next));
        self.committed();
        self.rebuilds_since_checkpoint = 0;
        self.count_checkpoint(started);
        tracing::debug!(elapsed = ?started.elapsed(), partitions = checkpoints.len(), %epoch, "checkpoint committed");
        Ok(())
    }

    /// The attempt is committed: its offsets are covered, and its late and dead-letter
    /// records count in status and metrics now (a replayed attempt does not count them twice).
    fn committed(&mut self) {
        self.checkpointed = self.reader.intake.next_offsets.clone();
        self.uncommitted = false;
        let counts = self.sinks.take_counts();
        let metrics = &self.r.handle.metrics;
        // The worker processes nothing while it checkpoints: every record processed so far is
        // covered.
        metrics.records_committed.store(
            AppMetrics::get(&metrics.records_processed),
            std::sync::atomic::Ordering::Relaxed,
        );
        AppMetrics::count(&metrics.late, counts.late as usize);
        AppMetrics::count(&metrics.dead_letters, counts.dead_letters as usize);
    }

    /// One more checkpoint in status and metrics.
    fn count_checkpoint(&self, started: Instant) {
        let metrics = &self.r.handle.metrics;
        AppMetrics::count(&metrics.checkpoints, 1);
        metrics.checkpoint_duration.observe(started.elapsed());
        metrics
            .last_checkpoint_ms
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
        self.r.handle.update(|s| s.checkpoints += 1);
    }

    /// Commits the open transaction with the input offsets the checkpoint `epoch` covers. A
    /// refusal that only aborts the transaction (this host lost partitions in a rebalance)
    /// replays from the last committed checkpoint; a retriable one is tried again under the
    /// retry policy; anything else stops the app.
    fn commit_with_offsets(&mut self, epoch: Epoch) -> Result<(), StepError> {
        let offsets = self.reader.offsets_with(&epoch.to_metadata())?;
        let group = self
            .reader
            .group_metadata()
            .ok_or_else(|| "the consumer has no group metadata to commit with".to_owned())?;
        let mut outage = Outage::new(&*self.r.handle, self.r.settings.outage_patience);
        let runtime = self.r.runtime.clone();
        let committed = self.sinks.commit_with_offsets(&offsets, &group, |error| {
            runtime.block_on(outage.wait(error))
        });
        outage.over();
        match committed {
            Ok(()) => Ok(()),
            Err(error) if error.requires_abort() => Err(StepError::Replay(error.to_string())),
            Err(error) => Err(StepError::Fatal(error.to_string())),
        }
    }

    /// Runs a Cassandra step of the worker to completion under the retry policy (`sink::retry`).
    fn patiently<T, F, Fut>(&self, step: F) -> Result<T, StepError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CassandraError>>,
    {
        let outage = Outage::new(&*self.r.handle, self.r.settings.outage_patience);
        self.r
            .runtime
            .block_on(outage.patiently(step))
            .map_err(|e| StepError::Fatal(e.to_string()))
    }
}
