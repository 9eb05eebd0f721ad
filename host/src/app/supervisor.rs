//! What keeps an app alive through change and failure: partitions gained and lost, resuming
//! from checkpoints, plugin failures (the record at fault found and quarantined, the instance
//! rebuilt from the last checkpoint), and a new build taking over.

use std::time::{Duration, Instant};

use super::handle::Deployed;
use super::operator::Operator;
use super::processor::Processor;
use super::worker::{StepError, Worker};
use crate::admin::metrics::AppMetrics;
use crate::admin::recent::{now_ms, Change};
use crate::checkpoint::{crash_point, CrashPoint, Epoch, Pick};
use crate::enrich::{EnrichManifest, Enricher};
use crate::plugin::{CompiledApp, PluginError};
use crate::sink::retry::MAX_PAUSE;
use crate::source::kafka::PartitionChange;
use crate::source::Quarantined;

impl Worker {
    /// Partitions assigned hold the watermark from now on and resume from their checkpoint;
    /// revoked ones are forgotten here, their new owner resumes them from the checkpoint store.
    pub(super) fn rebalance(
        &mut self,
        changes: Vec<PartitionChange>,
        paused: bool,
    ) -> Result<(), StepError> {
        let mut revoked = false;
        for change in changes {
            tracing::info!(?change, "rebalance");
            match change {
                PartitionChange::Assigned(p) => {
                    crash_point(CrashPoint::Rebalance);
                    if paused {
                        self.reader.hold(&[p], true)?;
                    }
                    self.resume(p)?;
                    // Its idle timeout counts from when it can be read: loading its checkpoint
                    // may have waited out a dead host's transaction.
                    self.r.processor.assign(p, Instant::now());
                    self.reader.assigned(p);
                }
                PartitionChange::Revoked(p) => {
                    revoked = true;
                    self.r.processor.revoke(p)?;
                    self.reader.revoked(p);
                }
            }
        }
        if revoked && self.sinks.transactional() {
            // The open transaction holds outputs of the revoked partitions, which their new
            // owner produces again from the last committed checkpoint: this attempt must not
            // commit.
            return Err(StepError::Replay(
                "partitions were revoked while a transaction was open".into(),
            ));
        }
        if revoked && self.r.processor.queued() > 0 {
            // Batches waiting for their service may hold records of the revoked partitions.
            return Err(StepError::Replay(
                "partitions were revoked while batches waited for the app's service".into(),
            ));
        }
        Ok(())
    }

    /// Loads a partition's checkpoint, if it has one: its windows (under the hot-swap rules),
    /// its clock and watermark, and the offset to resume from.
    fn resume(&mut self, partition: i32) -> Result<(), StepError> {
        let Some(store) = self.r.store.clone() else {
            return Ok(());
        };
        let (tenant, app) = (self.r.handle.tenant.clone(), self.r.handle.app.clone());
        let pick = if self.sinks.transactional() {
            self.reader
                .committed_metadata(partition)?
                .and_then(|metadata| Epoch::from_metadata(&metadata))
                .map_or(Pick::Legacy, Pick::Committed)
        } else {
            Pick::Newest
        };
        let loaded = self
            .r
            .runtime
            .block_on(store.load(&tenant, &app, partition, pick))
            .map_err(|e| e.to_string())?;
        let Some(checkpoint) = loaded else {
            return Ok(());
        };
        let windows = self
            .r
            .processor
            .restore(&checkpoint, self.r.settings.reset_state, Instant::now())
            .map_err(|refused| {
                StepError::Fatal(format!(
                    "cannot resume partition {partition} from its checkpoint: {refused}"
                ))
            })?;
        self.reader
            .intake
            .next_offsets
            .insert(partition, checkpoint.next_offset);
        tracing::info!(
            partition,
            offset = checkpoint.next_offset,
            windows,
            saved_by = %checkpoint.saved_by.version,
            "resumed from checkpoint"
        );
        Ok(())
    }

    /// A plugin failure: the batch it failed on becomes suspect, the instance is rebuilt from
    /// the last checkpoint and the input replayed from there, the suspect records one by one;
    /// the one that fails again is quarantined alone. Too many failures in a short time stop
    /// the app; finding the record at fault does not count as another failure.
    pub(super) fn recover(&mut self, error: PluginError) -> Result<(), String> {
        let reason = error.to_string();
        let intake = &mut self.reader.intake;
        let single: Vec<(i32, i64)> = intake
            .batch
            .iter()
            .filter(|(_, (first, last))| first == last)
            .map(|(p, (o, _))| (*p, *o))
            .collect();
        let isolated = intake.batch.len() == 1
            && single.len() == 1
            && intake.quarantine.iter().any(|q| {
                q.suspect && q.partition == single[0].0 && (q.first..=q.last).contains(&single[0].1)
            });
        if isolated {
            let (partition, offset) = single[0];
            tracing::warn!(partition, offset, %reason, "record quarantined");
            // The first record at fault in a failed batch is what that failure was; each one
            // after it counts again, so an app that fails on every record is stopped rather
            // than replayed one record at a time for ever.
            let again = intake
                .quarantine
                .iter_mut()
                .find(|q| {
                    q.suspect && q.partition == partition && (q.first..=q.last).contains(&offset)
                })
                .is_some_and(|q| std::mem::replace(&mut q.found, true));
            intake.batch.clear();
            intake.quarantine.push(Quarantined {
                partition,
                first: offset,
                last: offset,
                reason: format!("quarantined: the app failed on this record: {reason}"),
                suspect: false,
                found: false,
            });
            if again {
                self.count_failure(&reason)?;
            } else {
                AppMetrics::count(&self.r.handle.metrics.plugin_failures, 1);
            }
            self.pause_before_rebuild();
            return self.rebuild();
        }
        self.count_failure(&reason)?;
        let intake = &mut self.reader.intake;
        for (partition, (first, last)) in intake.batch.drain() {
            tracing::warn!(partition, first, last, %reason, "batch suspect: replaying it record by record");
            intake.quarantine.push(Quarantined {
                partition,
                first,
                last,
                reason: reason.clone(),
                suspect: true,
                found: false,
            });
        }
        self.pause_before_rebuild();
        self.rebuild()
    }

    /// Rebuilds after plugin failures come ever more slowly while they keep coming (none for
    /// the first since the last checkpoint, then 100 ms doubled per failure, at most 5 s): each
    /// rebuild reads the checkpoint back from Cassandra and the input again from Kafka, so an
    /// app that fails again and again would otherwise spend the shared services its neighbours
    /// need.
    fn pause_before_rebuild(&mut self) {
        let n = self.rebuilds_since_checkpoint;
        self.rebuilds_since_checkpoint = n.saturating_add(1);
        if n == 0 {
            return;
        }
        let pause = (Duration::from_millis(100) * 2u32.pow((n - 1).min(6))).min(MAX_PAUSE);
        tracing::info!(
            ?pause,
            rebuilds = n,
            "pausing before rebuilding the failed app"
        );
        std::thread::sleep(pause);
    }

    /// One more plugin failure in status and metrics; too many within the failure window stop
    /// the app, with the reason.
    fn count_failure(&mut self, reason: &str) -> Result<(), String> {
        let now = Instant::now();
        let settings = &self.r.settings;
        self.failures.push_back(now);
        while self
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > settings.failure_window)
        {
            self.failures.pop_front();
        }
        AppMetrics::count(&self.r.handle.metrics.plugin_failures, 1);
        self.r.handle.update(|s| {
            s.failures += 1;
            s.last_error = Some(reason.to_owned());
        });
        if self.failures.len() >= settings.max_failures {
            return Err(format!(
                "the app failed {} times within {} s and was stopped; last failure: {reason}",
                self.failures.len(),
                settings.failure_window.as_secs()
            ));
        }
        Ok(())
    }

    /// A fresh instance of the running build, state from the last checkpoint, every owned
    /// partition read again from the checkpoint's offset. Outputs of the aborted attempt are
    /// dropped where the sink allows (the Kafka transaction) and overwritten where it does not.
    pub(super) fn rebuild(&mut self) -> Result<(), String> {
        let started = Instant::now();
        self.sinks.abort().map_err(|e| e.to_string())?;
        let instance = self.r.current.instantiate().map_err(|e| e.to_string())?;
        let enricher = self.r.processor.take_enricher();
        self.r.processor = Processor::new(
            self.r.current.spec.clone(),
            instance,
            self.r.handle.metrics.clone(),
            self.r.settings.idle_partition_timeout,
            started,
        )
        .with_quotas(self.r.settings.quotas);
        self.r.processor.set_enricher(enricher);
        self.reader.intake.batch.clear();
        self.queued.clear();
        let owned = self.reader.owned();
        for &p in &owned {
            self.r.processor.assign(p, started);
        }
        if self.r.store.is_some() {
            for &p in &owned {
                self.reader.intake.next_offsets.remove(&p);
                self.resume(p).map_err(|e| {
                    format!("restoring the last checkpoint failed: {}", e.into_reason())
                })?;
            }
            self.reader.rewind(&owned).map_err(|e| e.to_string())?;
        }
        self.checkpointed = self.reader.intake.next_offsets.clone();
        self.uncommitted = false;
        tracing::warn!(elapsed = ?started.elapsed(), partitions = ?owned, "instance rebuilt from the last checkpoint; replaying");
        Ok(())
    }

    /// Keeps a take-over's outcome in the app's history; the answer for the operator.
    pub(super) fn noted(
        &self,
        action: &'static str,
        to: String,
        answer: Result<(String, Duration), String>,
    ) -> Result<String, String> {
        let (from, pause, outcome) = match &answer {
            Ok((text, pause)) => (
                self.r.previous.as_ref().map(|p| p.spec.version.clone()),
                Some(pause.as_secs_f64() * 1000.0),
                text.clone(),
            ),
            Err(reason) => (
                Some(self.r.current.spec.version.clone()),
                None,
                reason.clone(),
            ),
        };
        self.r.handle.recent.change(Change {
            at_ms: now_ms(),
            action,
            from,
            to,
            pause_ms: pause,
            ok: answer.is_ok(),
            outcome,
        });
        answer.map(|(text, _)| text)
    }

    /// A new build takes over between batches: open windows carry their state (or, when it
    /// cannot be carried and `reset_state` allows, are dropped), the sinks learn its outputs,
    /// and its own enrich declaration (`manifest` given beside its `.wasm`, else the one it
    /// carries) replaces the running one, under the checks of a start: the service defined by
    /// the operator and allowed to the tenant, the fields the build's inputs. On failure the
    /// running build stays.
    pub(super) fn take_over(
        &mut self,
        app: CompiledApp,
        manifest: Option<EnrichManifest>,
        reset_state: bool,
    ) -> Result<(String, Duration), String> {
        let started = Instant::now();
        let manifest = match manifest {
            Some(manifest) => Some(manifest),
            None => EnrichManifest::embedded(&app.spec).map_err(|e| e.to_string())?,
        };
        let enrich_change = describe_enrich(self.r.manifests.0.as_ref(), manifest.as_ref());
        let metrics = self.r.handle.metrics.enrich.clone();
        let enricher = match &manifest {
            Some(declared) => Some(
                Enricher::build(
                    self.r.handle.tenant.as_str(),
                    &app.spec,
                    declared,
                    &self.r.services,
                    metrics.clone(),
                    self.r.runtime.clone(),
                )
                .map_err(|e| format!("the new version's enrich declaration is refused: {e}"))?,
            ),
            None => None,
        };
        let instance = app.instantiate().map_err(|e| e.to_string())?;
        self.r
            .runtime
            .block_on(self.r.links.ensure_alerts_topic(&app.spec))
            .map_err(|e| format!("the new version's alerts topic: {e}"))?;
        self.sinks
            .reopen(&app.spec, &self.r.current.spec)
            .map_err(|e| e.to_string())?;
        let swapped = match self
            .r
            .processor
            .swap(app.spec.clone(), instance, reset_state, enricher)
        {
            Ok(swapped) => swapped,
            Err(refused) => {
                match self.r.processor.enrich_service() {
                    Some(service) => metrics.set_service(service),
                    None => metrics.clear_service(),
                }
                if let Err(error) = self.sinks.reopen(&self.r.current.spec, &app.spec) {
                    tracing::warn!(%error, "restoring the sinks for the running build");
                }
                return Err(refused.to_string());
            }
        };
        let (from, to) = (
            self.r.current.spec.version.clone(),
            app.spec.version.clone(),
        );
        let mut deployed = Deployed::of(&app);
        deployed.swaps = self.r.handle.deployed().swaps + 1;
        if let Ok(mut d) = self.r.handle.deployed.lock() {
            *d = deployed;
        }
        self.r.previous = Some(std::mem::replace(&mut self.r.current, app));
        let before = std::mem::replace(&mut self.r.manifests.0, manifest);
        self.r.manifests.1 = before;
        if self.r.processor.enrich_service().is_none() {
            metrics.clear_service();
        }
        // The next checkpoint saves the new build's state, even if no record arrives before it.
        self.checkpointed.clear();
        let pause = started.elapsed();
        let what = if swapped.carried {
            format!(
                "{} open windows carried ({} bytes of state)",
                swapped.windows, swapped.state_bytes
            )
        } else {
            let span = swapped.span.map_or(String::new(), |(first, last)| {
                format!(
                    ", starting from {} to {}",
                    crate::time::format_rfc3339(first),
                    crate::time::format_rfc3339(last)
                )
            });
            format!(
                "{} open windows of {} keys start fresh{span}: their state was dropped, and each is written again only once a record reaches it",
                swapped.windows, swapped.keys
            )
        };
        tracing::info!(%from, %to, ?pause, windows = swapped.windows, carried = swapped.carried, "new version took over");
        let answer = format!(
            "version {to} took over from {from} in {} ms: {what}{enrich_change}",
            pause.as_millis()
        );
        Ok((answer, pause))
    }
}

/// What a take-over does to the enrich declaration, for the operator's answer: nothing when
/// it stays the same.
fn describe_enrich(before: Option<&EnrichManifest>, after: Option<&EnrichManifest>) -> String {
    match (before, after) {
        (Some(b), Some(a)) if b == a => String::new(),
        (None, None) => String::new(),
        (_, Some(a)) => format!(
            "; enrich: the new build's declaration runs (service `{}`, batch_size {})",
            a.service, a.batch_size
        ),
        (Some(_), None) => "; enrich: the new build declares none, so no service is called".into(),
    }
}
