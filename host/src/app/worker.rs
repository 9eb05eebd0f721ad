//! The worker thread of one app: it owns the partition reader, the operator and the sinks,
//! makes only synchronous calls, and runs one step at a time: read a batch, process it, hand
//! the results to the sinks, checkpoint when due. Requests from operators are answered between
//! steps; failures go to the supervisor (`supervisor.rs`), checkpoints to `checkpointing.rs`.
//!
//! An enriched app's batches wait for their service's answers in the processor's queue while
//! the worker goes on: it reads the next batch while the queue has room, applies answered
//! batches in the order they were read, closes the windows the waiting records cannot reach,
//! and answers operators. A checkpoint, a swap, a remove and the end of a drain need the queue
//! empty: until it is, nothing more is read (the input waits in Kafka) and they wait for it.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::CommitMode;
use tokio::runtime::Handle;

use super::cpu::{CpuBudget, CpuShare};
use super::handle::{AppHandle, AppState, Control};
use super::links::{Connection, Links};
use super::operator::Operator;
use super::processor::{Processor, Quotas};
use crate::admin::metrics::AppMetrics;
use crate::admin::recent::{now_ms, RESULTS_KEPT};
use crate::checkpoint::CheckpointStore;
use crate::enrich::BreakerState;
use crate::enrich::{EnrichManifest, Services};
use crate::names::AppTopics;
use crate::plugin::{CompiledApp, PluginError};
use crate::sink::{Output, SinkError, Sinks};
use crate::source::kafka::Wakeup;
use crate::source::{BatchRanges, Offsets, PartitionReader, ReadError};

/// Tuning of the worker loop.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub batch_max: usize,
    pub batch_wait: Duration,
    pub idle_partition_timeout: Duration,
    /// An app idle this long lets go of its Kafka clients until its input moves.
    pub hibernate_after: Option<Duration>,
    pub checkpoint_interval: Duration,
    /// Saved windows of an incompatible build are dropped (offsets and watermark still resume).
    pub reset_state: bool,
    /// This many plugin failures within `failure_window` stop the app.
    pub max_failures: usize,
    pub failure_window: Duration,
    /// What the app may hold and how far ahead of the clock its records may be.
    pub quotas: Quotas,
    /// How long a Cassandra outage is waited out before the app stops.
    pub outage_patience: Duration,
    /// The worker's priority and CPU cap.
    pub cpu: CpuShare,
}

/// Everything the worker owns.
pub struct Runner {
    pub handle: Arc<AppHandle>,
    pub processor: Processor,
    /// How to connect again after hibernating.
    pub links: Links,
    /// What ends the worker's idle sleep: the consumer's queues, the operator's requests and
    /// the host's watch over a hibernating app's input.
    pub wakeup: Wakeup,
    pub topics: AppTopics,
    pub runtime: Handle,
    pub control: Receiver<Control>,
    pub settings: RunnerSettings,
    /// The running build, and the one before it for a rollback.
    pub current: CompiledApp,
    pub previous: Option<CompiledApp>,
    /// The enrich declarations the current and the previous build run with (a file beside
    /// the `.wasm`, else the `[enrich]` the build carries).
    pub manifests: (Option<EnrichManifest>, Option<EnrichManifest>),
    /// The operator's services, for a new build's enrich declaration (a hot swap).
    pub services: Services,
    /// Where checkpoints go; `None` for at-most-once apps.
    pub store: Option<Arc<CheckpointStore>>,
}

/// Why a step of the worker did not complete, and so what happens next.
pub(super) enum StepError {
    /// The plugin failed: the instance is rebuilt from the last checkpoint.
    Plugin(PluginError),
    /// The open attempt cannot be committed (the group rebalanced under it): its outputs are
    /// aborted and the owned partitions resume from the last committed checkpoint.
    Replay(String),
    /// Anything else stops the app, with the reason in its status. Transient trouble with
    /// the sinks was already waited out under the retry policy (`sink::retry`).
    Fatal(String),
}

impl StepError {
    /// The failure in words, for an answer or a status.
    pub(super) fn into_reason(self) -> String {
        match self {
            StepError::Plugin(error) => error.to_string(),
            StepError::Replay(reason) | StepError::Fatal(reason) => reason,
        }
    }
}

impl From<String> for StepError {
    fn from(reason: String) -> Self {
        StepError::Fatal(reason)
    }
}

impl From<PluginError> for StepError {
    fn from(error: PluginError) -> Self {
        StepError::Plugin(error)
    }
}

impl From<SinkError> for StepError {
    fn from(error: SinkError) -> Self {
        StepError::Fatal(error.to_string())
    }
}

impl From<ReadError> for StepError {
    fn from(error: ReadError) -> Self {
        StepError::Fatal(error.to_string())
    }
}

/// The longest an idle worker sleeps: a safety net, every timer it knows of is earlier.
const MAX_IDLE: Duration = Duration::from_secs(5);

/// The longest a hibernating app sleeps between looks at its requests and its watch: a
/// safety net, both wake it.
const MAX_HIBERNATION_WAIT: Duration = Duration::from_secs(60);

/// How long a request that woke a hibernating app waits for the group to give its partitions
/// back before it is served anyway (another host may own them all).
const ASSIGNMENT_WAIT: Duration = Duration::from_secs(15);

/// How often the input and processing rates are reported while they move.
const RATE_INTERVAL: Duration = Duration::from_secs(1);

/// How often the lag is looked at while this host is behind or held.
const LAG_INTERVAL: Duration = Duration::from_secs(2);

pub(super) struct Worker {
    pub(super) r: Runner,
    pub(super) reader: PartitionReader,
    pub(super) sinks: Sinks,
    drain_target: Option<Offsets>,
    /// Plugin failures rebuilt from the same checkpoint: they slow the next rebuild.
    pub(super) rebuilds_since_checkpoint: u32,
    cpu: CpuBudget,
    last_assignment_check: Instant,
    /// Whether the last look at the lag found this host caught up: the figure changes only
    /// when records arrive, which wake the worker, so it need not look again until then.
    settled: bool,
    last_rate: (Instant, u64, u64, Duration),
    busy: Duration,
    pub(super) last_checkpoint: Instant,
    /// Offsets covered by the last checkpoint.
    pub(super) checkpointed: Offsets,
    pub(super) failures: VecDeque<Instant>,
    drained: bool,
    /// The state to go back to on `Resume`, while an operator holds the app.
    paused: Option<AppState>,
    /// Outputs were handed to the sinks since the last checkpoint: the next one commits them
    /// even if no input offset moved (windows closed by an idle partition's timeout).
    pub(super) uncommitted: bool,
    /// The offsets of each batch in the processor's enrich queue, oldest first: a plugin
    /// failure on one makes it the suspect batch.
    pub(super) queued: VecDeque<BatchRanges>,
    /// A take-over or remove that waits for the enrich queue to empty, or the request that
    /// woke a hibernating app.
    deferred: Option<Control>,
    /// When the worker last read a record or served a request: hibernation counts from here.
    last_active: Instant,
    /// When this worker connected.
    started: Instant,
}

impl Runner {
    /// Runs with the clients made at launch until stopped or failed; the final state is in
    /// the handle's status.
    pub fn run(self, connection: Connection) {
        let handle = self.handle.clone();
        let tenant = handle.tenant.to_string();
        let app = handle.app.clone();
        let span = tracing::info_span!("app", %tenant, %app);
        let _entered = span.enter();
        handle.update(|s| s.state = AppState::Running);
        match self.serve(connection) {
            Ok(state) => handle.update(|s| s.state = state),
            Err(error) => {
                tracing::error!(%error, "app stopped");
                handle
                    .metrics
                    .failed
                    .store(1, std::sync::atomic::Ordering::Relaxed);
                handle.update(|s| {
                    s.state = AppState::Failed;
                    s.last_error = Some(error);
                });
            }
        }
    }

    /// Works while connected; hibernates when the worker finds nothing to do for long enough,
    /// and connects again when the input moves or an operator asks something.
    fn serve(mut self, mut connection: Connection) -> Result<AppState, String> {
        let mut carried = Carried::default();
        loop {
            let reader = PartitionReader::open(
                connection.consumer,
                &self.topics.input,
                self.wakeup.clone(),
            )?;
            let mut worker = Worker::new(self, reader, connection.sinks, carried);
            let ending = worker.run();
            let flushed = worker.sinks.flush().map_err(|e| e.to_string());
            let (runner, sinks, kept) = worker.into_parts();
            let positions = match ending.and_then(|ending| flushed.map(|()| ending))? {
                Ending::Ended(state) => return Ok(state),
                Ending::Hibernate(positions) => positions,
            };
            self = runner;
            carried = kept;
            // The producer closes here, the consumer closed with the reader.
            let others = sinks.into_others();
            match self.hibernate(positions) {
                Woken::Stop => return Ok(AppState::Stopped),
                Woken::Input => {}
                Woken::Request(control) => carried.pending = Some(control),
            }
            connection = self
                .links
                .connect(&self.current.spec, &self.wakeup, others)
                .map_err(|e| format!("connecting again after hibernating: {e}"))?;
            tracing::info!("awake: Kafka clients open again");
        }
    }

    /// Sleeps without Kafka clients until the input moves past `positions` or an operator
    /// sends a request.
    fn hibernate(&self, positions: Vec<(i32, i64)>) -> Woken {
        let metrics = &self.handle.metrics;
        metrics
            .hibernating
            .store(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            ?positions,
            "hibernating: Kafka clients closed until the input moves"
        );
        let watching = self
            .links
            .watch
            .watch(&self.topics.input, positions, self.wakeup.clone());
        let woken = loop {
            match self.control.try_recv() {
                Ok(Control::Stop) | Err(TryRecvError::Disconnected) => break Woken::Stop,
                Ok(control) => break Woken::Request(control),
                Err(TryRecvError::Empty) => {}
            }
            if watching.moved() {
                break Woken::Input;
            }
            self.wakeup.wait(MAX_HIBERNATION_WAIT);
        };
        metrics
            .hibernating
            .store(0, std::sync::atomic::Ordering::Relaxed);
        woken
    }
}

/// How a hibernating app woke.
enum Woken {
    Input,
    Request(Control),
    Stop,
}

/// How a connected worker's run ended.
enum Ending {
    /// For good, in this state.
    Ended(AppState),
    /// Idle long enough: its partitions were given up after a checkpoint, and the input is
    /// watched from these positions.
    Hibernate(Vec<(i32, i64)>),
}

/// What one connected worker leaves to the next after a hibernation.
#[derive(Default)]
struct Carried {
    failures: VecDeque<Instant>,
    rebuilds_since_checkpoint: u32,
    drained: bool,
    /// The request that woke the app.
    pending: Option<Control>,
}

impl Worker {
    fn new(r: Runner, reader: PartitionReader, sinks: Sinks, carried: Carried) -> Self {
        let cpu = CpuBudget::start(r.settings.cpu);
        Self {
            r,
            reader,
            sinks,
            drain_target: None,
            rebuilds_since_checkpoint: carried.rebuilds_since_checkpoint,
            cpu,
            last_assignment_check: Instant::now() - Duration::from_secs(10),
            settled: false,
            last_rate: (Instant::now(), 0, 0, Duration::ZERO),
            busy: Duration::ZERO,
            last_checkpoint: Instant::now(),
            checkpointed: Offsets::default(),
            failures: carried.failures,
            drained: carried.drained,
            paused: None,
            uncommitted: false,
            queued: VecDeque::new(),
            deferred: carried.pending,
            last_active: Instant::now(),
            started: Instant::now(),
        }
    }

    /// The runner and sinks back, and what the next connected worker goes on with; the reader,
    /// and with it the consumer, closes here.
    fn into_parts(self) -> (Runner, Sinks, Carried) {
        let carried = Carried {
            failures: self.failures,
            rebuilds_since_checkpoint: self.rebuilds_since_checkpoint,
            drained: self.drained,
            pending: None,
        };
        (self.r, self.sinks, carried)
    }

    fn run(&mut self) -> Result<Ending, String> {
        loop {
            if let Some(control) = self.take_deferred() {
                self.last_active = Instant::now();
                if let Some(ended) = self.serve(control)? {
                    return Ok(Ending::Ended(ended));
                }
            }
            match self.r.control.try_recv() {
                Ok(Control::Stop) | Err(TryRecvError::Disconnected) => {
                    return Ok(Ending::Ended(AppState::Stopped))
                }
                Ok(control) => {
                    self.last_active = Instant::now();
                    if let Some(ended) = self.serve(control)? {
                        return Ok(Ending::Ended(ended));
                    }
                }
                Err(TryRecvError::Empty) => {}
            }
            self.sync_assignment();
            match self.step() {
                Ok(()) => {}
                Err(StepError::Fatal(reason)) => return Err(reason),
                Err(StepError::Plugin(error)) => self.recover(error)?,
                Err(StepError::Replay(reason)) => {
                    tracing::warn!(%reason, "replaying from the last committed checkpoint");
                    self.rebuild()?;
                }
            }
            let owed = self.cpu.overdraft();
            if !owed.is_zero() {
                self.cpu.sleep(owed);
                AppMetrics::count(
                    &self.r.handle.metrics.cpu_throttled_ms,
                    owed.as_millis() as usize,
                );
            }
            if let Some(positions) = self.may_hibernate(Instant::now()) {
                self.give_up_partitions().map_err(StepError::into_reason)?;
                return Ok(Ending::Hibernate(positions));
            }
        }
    }

    /// The request waiting to be served, once it may be: a request that woke the app waits
    /// until the group gave the partitions back (a remove closes their windows), for at most
    /// `ASSIGNMENT_WAIT`.
    fn take_deferred(&mut self) -> Option<Control> {
        // Looked at only when a request waits: `owned` collects the partitions.
        let assigning = self.deferred.is_some()
            && self.started.elapsed() < ASSIGNMENT_WAIT
            && self.reader.owned().is_empty();
        if assigning {
            None
        } else {
            self.deferred.take()
        }
    }

    /// The positions to watch the input from, when the app may hibernate now: idle for
    /// `hibernate_after`, caught up on every partition of its input (no other host shares
    /// it), everything saved, no timer due and nobody waiting on it.
    fn may_hibernate(&self, now: Instant) -> Option<Vec<(i32, i64)>> {
        let after = self.r.settings.hibernate_after?;
        let quiet = now.saturating_duration_since(self.last_active) >= after
            && self.settled
            && self.r.store.is_some()
            && self.paused.is_none()
            && self.deferred.is_none()
            && self.r.processor.queued() == 0
            && (self.drain_target.is_none() || self.drained)
            && !self.uncommitted
            && self.reader.intake.next_offsets == self.checkpointed
            && !self.reader.intake.isolating()
            && self.r.processor.next_due(now).is_none();
        quiet.then(|| self.reader.caught_up_positions()).flatten()
    }

    /// Before hibernating: the partitions' state is in the last checkpoint, from which they
    /// resume when the group gives them back, here or to another host.
    /// The status still counts the windows the checkpoint holds open.
    fn give_up_partitions(&mut self) -> Result<(), StepError> {
        let open = &self.r.handle.metrics.open_windows;
        let held = open.load(std::sync::atomic::Ordering::Relaxed);
        for partition in self.reader.owned() {
            self.r.processor.revoke(partition)?;
            self.reader.revoked(partition);
        }
        open.store(held, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// An operator's request; the state the app ends in when it ends it. A take-over or a
    /// remove while batches wait for the app's service waits for them (nothing more is read
    /// meanwhile), unless the service cannot be reached: then it is refused at once.
    fn serve(&mut self, control: Control) -> Result<Option<AppState>, String> {
        let quiet = matches!(
            control,
            Control::Deploy { .. } | Control::Rollback { .. } | Control::Remove { .. }
        );
        if quiet && self.r.processor.queued() > 0 {
            let breaker = self.r.handle.metrics.enrich.breaker();
            if self.deferred.is_some() {
                refuse(
                    control,
                    "another take-over or remove waits for the app's service; try again once it is done",
                );
            } else if breaker == BreakerState::Closed {
                let what = match control {
                    Control::Remove { .. } => "a remove",
                    _ => "a take-over",
                };
                let waiting = format!(
                    "{what} waits for {} batches at the app's service; nothing more is read meanwhile",
                    self.r.processor.queued()
                );
                self.r.handle.update(|s| s.waiting = Some(waiting));
                self.deferred = Some(control);
            } else {
                refuse(
                    control,
                    "batches wait for the app's service, which cannot be reached (its breaker is open): try again once it answers (the app's state and offsets are not saved meanwhile)",
                );
            }
            return Ok(None);
        }
        if quiet {
            self.r.handle.update(|s| s.waiting = None);
        }
        if let Control::Remove { reply } = control {
            let answer = self.remove();
            let removed = answer.is_ok();
            let _ = reply.send(answer);
            return Ok(removed.then_some(AppState::Removed));
        }
        self.answer(control)?;
        Ok(None)
    }

    /// An operator's request that leaves the app running.
    fn answer(&mut self, control: Control) -> Result<(), String> {
        match control {
            Control::Drain => self.start_drain()?,
            Control::Deploy {
                app,
                manifest,
                reset_state,
                reply,
            } => {
                let to = app.spec.version.clone();
                let answer = self.take_over(*app, manifest, reset_state);
                let _ = reply.send(self.noted("deploy", to, answer));
            }
            Control::Rollback { reset_state, reply } => {
                let (to, answer) = match self.r.previous.clone() {
                    Some(previous) => (
                        previous.spec.version.clone(),
                        self.take_over(previous, self.r.manifests.1.clone(), reset_state),
                    ),
                    None => (
                        String::new(),
                        Err("there is no previous version to roll back to".into()),
                    ),
                };
                let _ = reply.send(self.noted("rollback", to, answer));
            }
            Control::Pause { reply } => {
                let _ = reply.send(self.pause());
            }
            Control::Resume { reply } => {
                let _ = reply.send(self.unpause());
            }
            Control::Remove { .. } | Control::Stop => {}
        }
        Ok(())
    }

    /// One batch read and processed, windows closed and updates emitted, results handed to
    /// the sinks, and a checkpoint when one is due. On a plugin failure nothing of the step
    /// reaches the sinks: the replay produces it again.
    fn step(&mut self) -> Result<(), StepError> {
        let mut out = Output::default();
        let polled = self.poll_batch(&mut out)?;
        self.apply_answered(&mut out)?;
        let now = Instant::now();
        self.r.processor.tick(now, &mut out)?;
        let quiet = self.r.processor.queued() == 0;
        if !self.drained && quiet && self.drain_reached() {
            self.close_all(out)?;
            self.drained = true;
            // The status says caught up with the lag it has now, not two seconds ago.
            self.last_assignment_check = Instant::now() - Duration::from_secs(10);
            self.sync_assignment();
            self.set_state(AppState::Drained);
            tracing::info!("drained: every open window emitted and closed");
            return Ok(());
        }
        self.deliver(out)?;
        if quiet && self.checkpoint_due() {
            self.checkpoint()?;
        }
        self.report(now);
        if polled == 0 && self.drained {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn checkpoint_due(&self) -> bool {
        self.last_checkpoint.elapsed() >= self.r.settings.checkpoint_interval
    }

    /// How long the worker may sleep when nothing arrives: until its next timer (an update or
    /// a watermark move, a checkpoint of what it read, the rates and lag it reports while they
    /// move), at most `MAX_IDLE`. Records, rebalances and requests wake it earlier.
    fn idle_wait(&self, now: Instant) -> Duration {
        let settings = &self.r.settings;
        // A drain ends as soon as its target is reached: the check follows every read.
        let draining = self.drain_target.is_some() && !self.drained;
        if self.r.processor.queued() > 0 || draining {
            return settings.batch_wait;
        }
        let unsaved = self.reader.intake.next_offsets != self.checkpointed || self.uncommitted;
        // Rates not at zero are reported again a second later, until they are.
        let m = &self.r.handle.metrics;
        let moving = AppMetrics::get_rate(&m.input_rate) > 0.0
            || AppMetrics::get_rate(&m.process_rate) > 0.0;
        let timers = [
            self.r.processor.next_due(now),
            unsaved
                .then(|| {
                    self.last_checkpoint
                        .checked_add(settings.checkpoint_interval)
                })
                .flatten(),
            moving.then(|| self.last_rate.0 + RATE_INTERVAL),
            (!self.settled).then(|| self.last_assignment_check + LAG_INTERVAL),
            self.r
                .settings
                .hibernate_after
                .and_then(|after| self.last_active.checked_add(after))
                .filter(|at| *at > now),
        ];
        let until = timers.into_iter().flatten().min().unwrap_or(now + MAX_IDLE);
        until.saturating_duration_since(now).min(MAX_IDLE)
    }

    /// Hands the enriched batches whose answers are all in to the app, in the order they were
    /// read. A plugin failure makes the batch it happened in the suspect one.
    fn apply_answered(&mut self, out: &mut Output) -> Result<(), StepError> {
        while self.r.processor.queued() > 0 {
            let started = Instant::now();
            match self.r.processor.apply_next(out) {
                Ok(true) => {
                    self.queued.pop_front();
                    self.busy += started.elapsed();
                }
                Ok(false) => break,
                Err(error) => {
                    self.reader.intake.batch = self.queued.pop_front().unwrap_or_default();
                    return Err(error.into());
                }
            }
        }
        Ok(())
    }

    /// Whether nothing more may be read for now: the enrich queue is full, or something that
    /// needs it empty (a checkpoint, a take-over, the end of a drain) waits for it.
    fn reading_held(&self) -> bool {
        let processor = &self.r.processor;
        if !processor.accepts_more() {
            return true;
        }
        processor.queued() > 0
            && (self.deferred.is_some()
                || self.checkpoint_due()
                || (!self.drained && self.drain_reached()))
    }

    /// Reads a batch (see `PartitionReader::fill`) and ends it at the operator; partitions
    /// gained or lost meanwhile are taken care of before the next. Returns the messages taken.
    /// While reading is held, the consumer is still served (the group keeps this host and
    /// rebalances are seen) and the worker waits a moment for its service's answers.
    fn poll_batch(&mut self, out: &mut Output) -> Result<usize, StepError> {
        let paused = self.paused.is_some();
        if self.reading_held() {
            let filled = self.reader.serve_events(&mut self.r.processor, out);
            if filled.taken > 0 {
                self.flush_batch(out)?;
            }
            if !filled.changes.is_empty() {
                self.rebalance(filled.changes, paused)?;
            }
            self.r
                .processor
                .wait_for_answers(self.r.settings.batch_wait);
            return Ok(filled.taken);
        }
        let settings = &self.r.settings;
        let filled = if paused {
            self.reader.serve_events(&mut self.r.processor, out)
        } else {
            let max = self
                .r
                .processor
                .read_limit()
                .map_or(settings.batch_max, |limit| limit.min(settings.batch_max));
            let idle = self.idle_wait(Instant::now());
            let settings = &self.r.settings;
            self.reader
                .fill(&mut self.r.processor, max, (settings.batch_wait, idle), out)
        };
        if filled.taken > 0 {
            let started = Instant::now();
            self.last_active = started;
            let first = &self.r.handle.metrics.first_record_ms;
            if first.load(std::sync::atomic::Ordering::Relaxed) == 0 {
                first.store(now_ms(), std::sync::atomic::Ordering::Relaxed);
            }
            self.flush_batch(out)?;
            self.busy += started.elapsed();
        } else if paused {
            self.reader.wait(self.idle_wait(Instant::now()));
        } else if self.r.processor.queued() > 0 {
            self.r
                .processor
                .wait_for_answers(self.r.settings.batch_wait);
        }
        if !filled.changes.is_empty() {
            self.rebalance(filled.changes, paused)?;
        }
        Ok(filled.taken)
    }

    /// Ends the batch at the operator: processed at once, or (an enriched app) queued for
    /// its service with the offsets it spans.
    fn flush_batch(&mut self, out: &mut Output) -> Result<(), StepError> {
        let before = self.r.processor.queued();
        self.r.processor.flush(out)?;
        let batch = std::mem::take(&mut self.reader.intake.batch);
        if self.r.processor.queued() > before {
            self.queued.push_back(batch);
        }
        Ok(())
    }

    /// Holds the input: Kafka stops fetching the owned partitions and nothing more is read.
    fn pause(&mut self) -> Result<String, String> {
        if self.paused.is_some() {
            return Ok("already paused".into());
        }
        let owned = self.reader.owned();
        self.reader.hold(&owned, true).map_err(|e| e.to_string())?;
        let state = self.r.handle.status().state;
        self.paused = Some(state);
        self.r.handle.update(|s| s.state = AppState::Paused);
        tracing::info!(partitions = ?owned, "paused: the input waits in Kafka");
        Ok(format!(
            "paused: the input of {} partitions waits in Kafka",
            owned.len()
        ))
    }

    /// Reads the input again, from where the pause left it.
    fn unpause(&mut self) -> Result<String, String> {
        let Some(state) = self.paused.take() else {
            return Ok("not paused".into());
        };
        let owned = self.reader.owned();
        self.reader.hold(&owned, false).map_err(|e| e.to_string())?;
        self.r.handle.update(|s| s.state = state);
        tracing::info!(partitions = ?owned, "resumed");
        Ok(format!("resumed: reading {} partitions again", owned.len()))
    }

    /// Moves the app to `state`; while it is paused, to `state` once it resumes.
    fn set_state(&mut self, state: AppState) {
        match &mut self.paused {
            Some(after) => *after = state,
            None => self.r.handle.update(|s| s.state = state),
        }
    }

    /// Hands results to the sinks (see `sink::Sinks`), and keeps the last ones for the
    /// dashboard.
    pub(super) fn deliver(&mut self, out: Output) -> Result<(), SinkError> {
        if let Some(out) = self.sinks.deliver(out)? {
            self.uncommitted = true;
            self.keep_recent(&out);
        }
        Ok(())
    }

    /// Keeps the step's last result rows and dead letters for the dashboard: a handful of rows
    /// per step, whoever looks.
    fn keep_recent(&self, out: &Output) {
        let recent = &self.r.handle.recent;
        let at = now_ms();
        if !out.dead_letters.is_empty() {
            recent.dead_letters(at, &out.dead_letters);
        }
        let mut rows = Vec::new();
        'newest: for emitted in out.emitted.iter().rev() {
            for row in (0..emitted.len()).rev() {
                if rows.len() == RESULTS_KEPT {
                    break 'newest;
                }
                rows.push(self.sinks.row(emitted, row));
            }
        }
        if !rows.is_empty() {
            rows.reverse();
            recent.results(at, rows);
        }
    }

    /// The end of the input or of the app: every open window is emitted as final (with what
    /// the step already produced), and everything is saved and committed.
    fn close_all(&mut self, mut out: Output) -> Result<(), StepError> {
        self.r.processor.finish(&mut out)?;
        self.deliver(out)?;
        self.checkpointed.clear();
        self.checkpoint()?;
        self.sinks.commit()?;
        if !self.sinks.transactional() {
            self.reader.commit_offsets(CommitMode::Sync);
        }
        Ok(())
    }

    /// The end of an app: every open window is emitted as final and the place in the input is
    /// saved, so that a later deploy of the app goes on from there.
    fn remove(&mut self) -> Result<String, String> {
        let open = self
            .r
            .handle
            .metrics
            .open_windows
            .load(std::sync::atomic::Ordering::Relaxed);
        self.close_all(Output::default())
            .map_err(StepError::into_reason)?;
        tracing::info!(windows = open, "removed: open windows emitted as final");
        Ok(format!(
            "{open} open windows emitted as final; the app is unloaded"
        ))
    }

    fn start_drain(&mut self) -> Result<(), String> {
        let target = self.reader.end_offsets().map_err(|e| e.to_string())?;
        tracing::info!(?target, "draining to the input's end offsets");
        self.drain_target = Some(target);
        self.set_state(AppState::Draining);
        Ok(())
    }

    fn drain_reached(&self) -> bool {
        self.drain_target
            .as_ref()
            .is_some_and(|target| self.reader.reached(target))
    }

    /// Lag and caught-up state over the partitions this host owns.
    fn sync_assignment(&mut self) {
        if self.last_assignment_check.elapsed() < LAG_INTERVAL {
            return;
        }
        self.last_assignment_check = Instant::now();
        let held = self.paused.is_some() || self.reading_held();
        let Some(lag) = self.reader.lag(held) else {
            return;
        };
        // Records waiting for their service were read but are not processed: they count.
        let queued = self.r.processor.queued_records();
        self.settled = lag.caught_up && queued == 0 && !held;
        self.r.handle.metrics.lag.store(
            lag.records + queued as i64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let unreadable = self.reader.intake.unreadable_reasons();
        self.r.handle.update(|s| {
            s.caught_up = lag.caught_up && queued == 0;
            s.partitions = lag.partitions;
            s.unreadable = unreadable;
        });
    }

    /// Input and process rates over the last second: the report's first two metrics.
    fn report(&mut self, now: Instant) {
        let (since, records_in, processed, busy) = self.last_rate;
        let elapsed = now.duration_since(since);
        if elapsed < RATE_INTERVAL {
            return;
        }
        let m = &self.r.handle.metrics;
        let (now_in, now_processed) = (
            AppMetrics::get(&m.records_in),
            AppMetrics::get(&m.records_processed),
        );
        AppMetrics::set_rate(
            &m.input_rate,
            (now_in - records_in) as f64 / elapsed.as_secs_f64(),
        );
        let busy_secs = (self.busy - busy).as_secs_f64();
        let process_rate = if busy_secs > 0.0 {
            (now_processed - processed) as f64 / busy_secs
        } else {
            0.0
        };
        AppMetrics::set_rate(&m.process_rate, process_rate);
        self.last_rate = (now, now_in, now_processed, self.busy);
    }
}

/// Answers a take-over or remove that cannot be carried out now.
fn refuse(control: Control, reason: &str) {
    match control {
        Control::Deploy { reply, .. }
        | Control::Rollback { reply, .. }
        | Control::Remove { reply }
        | Control::Pause { reply }
        | Control::Resume { reply } => {
            let _ = reply.send(Err(reason.to_owned()));
        }
        Control::Drain | Control::Stop => {}
    }
}
