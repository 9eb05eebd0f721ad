//! The worker thread of one app: it owns the Kafka consumer and the plugin instance, makes
//! only synchronous calls, and hands results to the sinks at batch boundaries.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::cpu::{CpuBudget, CpuShare};
use super::processor::{Message, Output, Processor};
use crate::admin::metrics::AppMetrics;
use crate::admin::recent::{Change, Recent, RESULTS_KEPT};
use crate::checkpoint::{
    crash_point, CheckpointStore, CrashPoint, Delivery, Epoch, PartitionCheckpoint, Pick,
};
use crate::names::{AppTopics, StreamName, TenantId};
use crate::plugin::{CompiledApp, PluginError};
use crate::sink::cassandra::{CassandraError, Refusal, ResultsTable};
use crate::sink::kafka::AppOutputs;
use crate::sink::Emitted;
use crate::source::kafka::{partition_count, AppConsumer, Assignments, PartitionChange};

/// Where an app is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppState {
    Starting,
    Running,
    Draining,
    Drained,
    /// Held by an operator: its input waits in Kafka until it is resumed.
    Paused,
    Failed,
    Stopped,
    /// Unloaded by an operator, after its open windows were emitted.
    Removed,
}

/// What an operator sees of an app.
#[derive(Debug, Clone, Serialize)]
pub struct AppStatus {
    pub state: AppState,
    pub caught_up: bool,
    pub last_error: Option<String>,
    /// Plugin failures survived by rebuilding the instance from the last checkpoint.
    pub failures: u64,
    /// Checkpoints saved since the platform started.
    pub checkpoints: u64,
    /// Input partitions this host owns.
    pub partitions: Vec<i32>,
    /// What the app is waiting out (a Cassandra outage), while it does.
    pub waiting: Option<String>,
    /// The enrich stage, when the app calls a service: its breaker and counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrich: Option<crate::enrich::EnrichStatus>,
}

/// The answer to a deploy or rollback: what happened, in words, or why it was refused.
pub type Reply = std::sync::mpsc::Sender<Result<String, String>>;

/// An operator's request to an app's worker.
pub enum Control {
    /// Process everything up to the input's end offsets as of now, then close every window.
    Drain,
    /// A compiled new version takes over at the next batch boundary.
    Deploy {
        app: Box<CompiledApp>,
        reset_state: bool,
        reply: Reply,
    },
    /// The version that ran before the last deploy takes over again, under the same rules.
    Rollback {
        reset_state: bool,
        reply: Reply,
    },
    /// Emit every open window as final, save, and stop for good.
    Remove {
        reply: Reply,
    },
    /// Stop reading the input (it waits in Kafka and shows as lag) until `Resume`; open windows,
    /// checkpoints and the consumer group membership are kept.
    Pause {
        reply: Reply,
    },
    /// Read the input again after a `Pause`.
    Resume {
        reply: Reply,
    },
    Stop,
}

/// Which build of an app is running.
#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    pub version: String,
    pub state_version: u32,
    /// SHA-256 of the running `.wasm`.
    pub digest: String,
    /// Versions that took over since the platform started.
    pub swaps: u64,
}

impl Deployed {
    pub fn of(app: &CompiledApp) -> Self {
        Self {
            version: app.spec.version.clone(),
            state_version: app.spec.state_version,
            digest: app.digest.clone(),
            swaps: 0,
        }
    }
}

/// The operator's side of a running app.
pub struct AppHandle {
    pub tenant: TenantId,
    pub app: String,
    /// Where it reads and what it promises: a failed app is started again with the same.
    pub stream: StreamName,
    pub delivery: Delivery,
    pub deployed: Mutex<Deployed>,
    pub metrics: Arc<AppMetrics>,
    pub status: Mutex<AppStatus>,
    pub control: Mutex<std::sync::mpsc::Sender<Control>>,
    /// Latest results, dead letters and deploys, for the dashboard.
    pub recent: Arc<Recent>,
    /// Set on `Stop`: an enrich call waiting for its service gives up, so the app can stop.
    pub halt: Arc<std::sync::atomic::AtomicBool>,
}

impl AppHandle {
    pub fn status(&self) -> AppStatus {
        let mut status = self
            .status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        status.enrich = self.metrics.enrich.status();
        status
    }

    fn update(&self, f: impl FnOnce(&mut AppStatus)) {
        match self.status.lock() {
            Ok(mut s) => f(&mut s),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Whether its worker has ended for good (failed or stopped): it answers no more requests,
    /// and a deploy starts the app again.
    pub fn ended(&self) -> bool {
        matches!(self.status().state, AppState::Failed | AppState::Stopped)
    }

    pub fn deployed(&self) -> Deployed {
        self.deployed
            .lock()
            .map(|d| d.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn send(&self, control: Control) -> bool {
        if matches!(control, Control::Stop) {
            self.halt.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.control
            .lock()
            .map(|c| c.send(control).is_ok())
            .unwrap_or(false)
    }
}

/// Tuning of the worker loop.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub batch_max: usize,
    pub batch_wait: Duration,
    pub idle_partition_timeout: Duration,
    pub checkpoint_interval: Duration,
    /// Saved windows of an incompatible build are dropped (offsets and watermark still resume).
    pub reset_state: bool,
    /// This many plugin failures within `failure_window` stop the app.
    pub max_failures: usize,
    pub failure_window: Duration,
    /// What the app may hold and how far ahead of the clock its records may be.
    pub quotas: super::processor::Quotas,
    /// How long a Cassandra outage is waited out before the app stops.
    pub outage_patience: Duration,
    /// The worker's priority and CPU cap.
    pub cpu: CpuShare,
}

/// Everything the worker owns.
pub struct Runner {
    pub handle: Arc<AppHandle>,
    pub processor: Processor,
    pub consumer: Arc<AppConsumer>,
    pub topics: AppTopics,
    pub outputs: AppOutputs,
    pub table: Arc<ResultsTable>,
    pub runtime: Handle,
    pub control: Receiver<Control>,
    pub settings: RunnerSettings,
    /// The running build, and the one before it for a rollback.
    pub current: CompiledApp,
    pub previous: Option<CompiledApp>,
    /// Where checkpoints go; `None` for at-most-once apps.
    pub store: Option<Arc<CheckpointStore>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The next offset to read per partition: updated for every record, so a cheap hash.
type Offsets = HashMap<i32, i64, foldhash::fast::RandomState>;

/// A Cassandra outage as one step of the worker lives through it: transient failures are
/// retried with a growing pause (at most `MAX_PAUSE`) for up to the configured patience, and show
/// in the app's status meanwhile (`waiting`); a failure that retrying cannot mend, or an outage
/// longer than the patience, stops the app with the reason.
#[derive(Default)]
struct Outage {
    since: Option<Instant>,
    attempts: u32,
}

const MAX_PAUSE: Duration = Duration::from_secs(5);

impl Outage {
    async fn back_off(
        &mut self,
        handle: &AppHandle,
        patience: Duration,
        error: CassandraError,
    ) -> Result<(), String> {
        let since = *self.since.get_or_insert_with(Instant::now);
        if !error.transient || since.elapsed() >= patience {
            return Err(error.to_string());
        }
        self.attempts += 1;
        AppMetrics::count(&handle.metrics.sink_errors, 1);
        tracing::warn!(%error, attempt = self.attempts, "Cassandra failed; retrying");
        let waiting = format!(
            "{error}; retrying for {} s (attempt {}, gives up after {} s)",
            since.elapsed().as_secs(),
            self.attempts,
            patience.as_secs()
        );
        handle.update(|s| s.waiting = Some(waiting));
        let pause = Duration::from_millis(200u64 << self.attempts.min(10)).min(MAX_PAUSE);
        tokio::time::sleep(pause).await;
        Ok(())
    }

    /// The step went through: the status stops saying it waits.
    fn over(self, handle: &AppHandle) {
        if self.since.is_some() {
            tracing::info!(attempts = self.attempts, "Cassandra answers again");
            handle.update(|s| s.waiting = None);
        }
    }
}

/// Offsets the plugin failed on. A suspect range is the batch a failure happened in: replayed
/// one record per batch, so that the record at fault shows itself; that record is then
/// quarantined alone and goes to the dead-letter topic with the reason instead of the plugin.
struct Quarantined {
    partition: i32,
    first: i64,
    last: i64,
    reason: String,
    suspect: bool,
    /// A suspect range whose record at fault was found: another failing record in it is a
    /// failure of its own.
    found: bool,
}

/// What the worker has read: where each partition resumes, what the batch being filled spans,
/// and which offsets are quarantined.
#[derive(Default)]
struct Intake {
    next_offsets: Offsets,
    /// First and last offset per partition of the batch being filled: updated for every
    /// record, so a cheap hash like `Offsets`.
    batch: HashMap<i32, (i64, i64), foldhash::fast::RandomState>,
    quarantine: Vec<Quarantined>,
}

impl Intake {
    /// Whether a suspect range lies ahead of the read position: until it is passed, batches
    /// hold one record.
    fn isolating(&self) -> bool {
        self.quarantine.iter().any(|q| {
            q.suspect
                && self
                    .next_offsets
                    .get(&q.partition)
                    .is_none_or(|next| *next <= q.last)
        })
    }
}

/// Why a step of the worker did not complete.
enum StepError {
    /// The plugin failed: the instance is rebuilt from the last checkpoint.
    Plugin(PluginError),
    /// The open attempt cannot be committed (the group rebalanced under it): its outputs are
    /// aborted and the owned partitions resume from the last committed checkpoint.
    Replay(String),
    /// Anything else stops the app, with the reason in its status.
    Fatal(String),
}

impl StepError {
    /// The failure in words, for an answer or a status.
    fn into_reason(self) -> String {
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

/// What a Cassandra write step did: its rows, and those refused for good (batch, row).
struct Written {
    emitted: Arc<Vec<Emitted>>,
    refused: Vec<(usize, Refusal)>,
}

#[derive(Default)]
struct Unpublished {
    late: u64,
    dead_letters: u64,
}

struct Worker {
    r: Runner,
    intake: Intake,
    drain_target: Option<Offsets>,
    pending_write: Option<JoinHandle<Result<Written, String>>>,
    /// Late and dead-letter records sent in the open attempt: counted once it commits.
    unpublished: Unpublished,
    /// Plugin failures rebuilt from the same checkpoint: they slow the next rebuild.
    rebuilds_since_checkpoint: u32,
    cpu: CpuBudget,
    queues: Vec<InputQueue>,
    last_assignment_check: Instant,
    last_rate: (Instant, u64, u64, Duration),
    busy: Duration,
    last_checkpoint: Instant,
    /// Offsets covered by the last checkpoint.
    checkpointed: Offsets,
    failures: VecDeque<Instant>,
    drained: bool,
    /// The state to go back to on `Resume`, while an operator holds the app.
    paused: Option<AppState>,
    /// Outputs were handed to the sinks since the last checkpoint: the next one commits them
    /// even if no input offset moved (windows closed by an idle partition's timeout).
    uncommitted: bool,
}

impl Runner {
    /// Runs until stopped or failed; the final state is in the handle's status.
    pub fn run(self) {
        let handle = self.handle.clone();
        let tenant = handle.tenant.to_string();
        let app = handle.app.clone();
        let span = tracing::info_span!("app", %tenant, %app);
        let _entered = span.enter();
        let cpu = CpuBudget::start(self.settings.cpu);
        let mut worker = Worker {
            r: self,
            intake: Intake::default(),
            drain_target: None,
            pending_write: None,
            unpublished: Unpublished::default(),
            rebuilds_since_checkpoint: 0,
            cpu,
            queues: Vec::new(),
            last_assignment_check: Instant::now() - Duration::from_secs(10),
            last_rate: (Instant::now(), 0, 0, Duration::ZERO),
            busy: Duration::ZERO,
            last_checkpoint: Instant::now(),
            checkpointed: Offsets::default(),
            failures: VecDeque::new(),
            drained: false,
            paused: None,
            uncommitted: false,
        };
        handle.update(|s| s.state = AppState::Running);
        let result = worker.run();
        let flushed = worker.finish_writes();
        match result.and_then(|state| flushed.map(|()| state)) {
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
}

/// One input partition's own queue of fetched records.
struct InputQueue {
    partition: i32,
    queue: PartitionQueue<Assignments>,
    assigned: bool,
    /// Reached the partition's end offset, and nothing arrived since.
    at_end: bool,
}

/// Messages read from one partition before the slowest partition is chosen again.
const CHUNK: usize = 32;

/// Hands one message to the processor and notes the offset to resume from. A message below
/// that offset is already counted in the state (Kafka re-delivers from its committed offset,
/// which may trail the checkpoint), and is skipped.
fn take(
    message: &BorrowedMessage<'_>,
    processor: &mut Processor,
    intake: &mut Intake,
    now: Instant,
    out: &mut Output,
) {
    let (partition, offset) = (message.partition(), message.offset());
    let next = intake.next_offsets.entry(partition).or_insert(offset);
    if offset < *next {
        return;
    }
    *next = offset + 1;
    let m = Message {
        topic: message.topic(),
        partition,
        offset,
        key: message.key(),
        payload: message.payload(),
        timestamp: message.timestamp().to_millis(),
    };
    if let Some(q) = intake
        .quarantine
        .iter()
        .find(|q| !q.suspect && q.partition == partition && (q.first..=q.last).contains(&offset))
    {
        processor.quarantine(&m, q.reason.clone(), out);
        return;
    }
    intake
        .batch
        .entry(partition)
        .and_modify(|range| range.1 = offset)
        .or_insert((offset, offset));
    processor.push(&m, now, out);
}

/// Loads a partition's checkpoint, if it has one, into the processor: its windows (under the
/// hot-swap rules), its clock and watermark, and the offset to resume from.
fn resume(r: &mut Runner, intake: &mut Intake, partition: i32) -> Result<(), StepError> {
    let Some(store) = r.store.clone() else {
        return Ok(());
    };
    let (tenant, app) = (r.handle.tenant.clone(), r.handle.app.clone());
    let pick = if r.outputs.transactional() {
        committed_epoch(r, partition)?.map_or(Pick::Legacy, Pick::Committed)
    } else {
        Pick::Newest
    };
    let loaded = r
        .runtime
        .block_on(store.load(&tenant, &app, partition, pick))
        .map_err(|e| e.to_string())?;
    let Some(checkpoint) = loaded else {
        return Ok(());
    };
    let windows = match r.processor.check_saved(&checkpoint.saved_by) {
        Ok(()) => &checkpoint.windows[..],
        Err(refused) if r.settings.reset_state => {
            tracing::warn!(
                partition,
                windows = checkpoint.windows.len(),
                saved_by = %checkpoint.saved_by.version,
                %refused,
                "--reset-state: the saved open windows of this partition start fresh"
            );
            &[]
        }
        Err(refused) => {
            return Err(StepError::Fatal(format!(
                "cannot resume partition {partition} from its checkpoint: {refused}"
            )))
        }
    };
    r.processor.restore_partition(
        partition,
        checkpoint.clock,
        checkpoint.watermark,
        windows,
        Instant::now(),
    )?;
    intake
        .next_offsets
        .insert(partition, checkpoint.next_offset);
    tracing::info!(
        partition,
        offset = checkpoint.next_offset,
        windows = windows.len(),
        saved_by = %checkpoint.saved_by.version,
        "resumed from checkpoint"
    );
    Ok(())
}

/// The checkpoint epoch that the app's group committed for `partition` with its offset, inside
/// the same Kafka transaction as the outputs that checkpoint covers.
fn committed_epoch(r: &Runner, partition: i32) -> Result<Option<Epoch>, StepError> {
    let mut list = TopicPartitionList::new();
    list.add_partition(&r.topics.input, partition);
    // Longer than the transaction timeout: while a crashed host's commit of this partition's
    // offsets is pending, the broker answers only once it is committed or aborted.
    let committed = r
        .consumer
        .committed_offsets(list, Duration::from_secs(60))
        .map_err(|e| format!("reading the committed offset of partition {partition}: {e}"))?;
    Ok(committed
        .find_partition(&r.topics.input, partition)
        .and_then(|element| Epoch::from_metadata(element.metadata())))
}

/// Partitions assigned in the last poll get their own queue, resume from their checkpoint and
/// hold the watermark from now on; revoked ones are forgotten here, their new owner resumes
/// them from the checkpoint store. Rows already taken belong to the partitions as they were,
/// so they are flushed first.
fn rebalance(
    r: &mut Runner,
    queues: &mut Vec<InputQueue>,
    intake: &mut Intake,
    out: &mut Output,
    paused: bool,
) -> Result<(), StepError> {
    let changes = r.consumer.context().take();
    if changes.is_empty() {
        return Ok(());
    }
    if r.processor.pending() > 0 {
        r.processor.flush(out)?;
        intake.batch.clear();
    }
    let now = Instant::now();
    let mut revoked = false;
    for change in changes {
        tracing::info!(?change, "rebalance");
        match change {
            PartitionChange::Assigned(p) => {
                crash_point(CrashPoint::Rebalance);
                if paused {
                    hold(r, &[p], true)?;
                }
                r.processor.watermarks_mut().assign(p, now);
                resume(r, intake, p)?;
                match queues.iter_mut().find(|q| q.partition == p) {
                    Some(q) => {
                        q.assigned = true;
                        q.at_end = false;
                    }
                    None => {
                        if let Some(queue) = r.consumer.split_partition_queue(&r.topics.input, p) {
                            queues.push(InputQueue {
                                partition: p,
                                queue,
                                assigned: true,
                                at_end: false,
                            });
                        }
                    }
                }
            }
            PartitionChange::Revoked(p) => {
                revoked = true;
                r.processor.forget_partition(p)?;
                intake.next_offsets.remove(&p);
                intake.batch.remove(&p);
                // Its new owner finds the record at fault on its own.
                intake.quarantine.retain(|q| q.partition != p);
                if let Some(q) = queues.iter_mut().find(|q| q.partition == p) {
                    q.assigned = false;
                }
            }
        }
    }
    if revoked && r.outputs.transactional() {
        // The open transaction holds outputs of the revoked partitions, which their new owner
        // produces again from the last committed checkpoint: this attempt must not commit.
        return Err(StepError::Replay(
            "partitions were revoked while a transaction was open".into(),
        ));
    }
    Ok(())
}

/// Stops (`hold = true`) or restarts Kafka's fetching of `partitions` of the input.
fn hold(r: &Runner, partitions: &[i32], hold: bool) -> Result<(), StepError> {
    let mut list = TopicPartitionList::new();
    for &p in partitions {
        list.add_partition(&r.topics.input, p);
    }
    let done = if hold {
        r.consumer.pause(&list)
    } else {
        r.consumer.resume(&list)
    };
    done.map_err(|e| StepError::Fatal(format!("pausing or resuming {partitions:?}: {e}")))
}

impl Worker {
    fn run(&mut self) -> Result<AppState, String> {
        let input = self.r.topics.input.clone();
        // Every partition gets its own queue before any record is fetched, so that reading is
        // aligned on event time from the very first record.
        let partitions = partition_count(&self.r.consumer, &input)
            .ok_or_else(|| format!("cannot read the partitions of {input}"))?;
        for p in 0..partitions as i32 {
            if let Some(queue) = self.r.consumer.split_partition_queue(&input, p) {
                self.queues.push(InputQueue {
                    partition: p,
                    queue,
                    assigned: false,
                    at_end: false,
                });
            }
        }
        self.r
            .consumer
            .subscribe(&[&input])
            .map_err(|e| format!("subscribing to {input}: {e}"))?;
        loop {
            match self.r.control.try_recv() {
                Ok(Control::Stop) | Err(TryRecvError::Disconnected) => {
                    return Ok(AppState::Stopped)
                }
                Ok(Control::Drain) => self.start_drain()?,
                Ok(Control::Deploy {
                    app,
                    reset_state,
                    reply,
                }) => {
                    let to = app.spec.version.clone();
                    let answer = self.take_over(*app, reset_state);
                    let _ = reply.send(self.noted("deploy", to, answer));
                }
                Ok(Control::Rollback { reset_state, reply }) => {
                    let (to, answer) = match self.r.previous.clone() {
                        Some(previous) => (
                            previous.spec.version.clone(),
                            self.take_over(previous, reset_state),
                        ),
                        None => (
                            String::new(),
                            Err("there is no previous version to roll back to".into()),
                        ),
                    };
                    let _ = reply.send(self.noted("rollback", to, answer));
                }
                Ok(Control::Pause { reply }) => {
                    let _ = reply.send(self.pause());
                }
                Ok(Control::Resume { reply }) => {
                    let _ = reply.send(self.unpause());
                }
                Ok(Control::Remove { reply }) => {
                    let answer = self.remove();
                    let removed = answer.is_ok();
                    let _ = reply.send(answer);
                    if removed {
                        return Ok(AppState::Removed);
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
        }
    }

    /// One batch read and processed, windows closed and updates emitted, results handed to
    /// the sinks, and a checkpoint when one is due. On a plugin failure nothing of the step
    /// reaches the sinks: the replay produces it again.
    fn step(&mut self) -> Result<(), StepError> {
        let mut out = Output::default();
        let polled = self.poll_batch(&mut out)?;
        if self.r.processor.stalled() {
            // The batch waits for its service: no window closes, nothing is saved, until it
            // is through. What its records already produced (dead letters) goes out.
            self.deliver(out)?;
            return Ok(());
        }
        let now = Instant::now();
        self.r.processor.tick(now, &mut out)?;
        if !self.drained && self.drain_reached() {
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
        if self.last_checkpoint.elapsed() >= self.r.settings.checkpoint_interval {
            self.checkpoint()?;
        }
        self.report(now);
        if polled == 0 && self.drained {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Fills a batch, reading first from the partition that is furthest behind in event time,
    /// so that one partition racing ahead cannot make another's on-time records look late;
    /// returns how many messages it took.
    fn poll_batch(&mut self, out: &mut Output) -> Result<usize, StepError> {
        if self.r.processor.stalled() {
            self.r.processor.flush(out)?;
            if !self.r.processor.stalled() {
                self.intake.batch.clear();
            }
            return Ok(0);
        }
        let paused = self.paused.is_some();
        let Worker {
            r, queues, intake, ..
        } = self;
        if paused {
            return Self::serve_events(r, queues, intake, out);
        }
        let max = if intake.isolating() {
            1
        } else {
            r.settings.batch_max
        };
        let deadline = Instant::now() + r.settings.batch_wait;
        let mut taken = 0;
        let now = Instant::now();
        loop {
            while taken < max {
                match r.consumer.poll(Duration::ZERO) {
                    Some(Ok(message)) => {
                        take(&message, &mut r.processor, intake, now, out);
                        taken += 1;
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) => {}
                    Some(Err(error)) => tracing::warn!(%error, "consumer error"),
                    None => break,
                }
            }
            rebalance(r, queues, intake, out, false)?;
            if taken >= max {
                break;
            }
            // A partition that reached its end may have new records: take one to refresh its
            // clock, so that a stale clock neither holds the watermark back nor starves it.
            for q in queues.iter_mut().filter(|q| q.assigned && q.at_end) {
                if let Some(Ok(message)) = q.queue.poll(Duration::ZERO) {
                    q.at_end = false;
                    take(&message, &mut r.processor, intake, now, out);
                    taken += 1;
                }
            }
            // The slowest partition this host owns that has not reached its end. When its records
            // have not arrived yet, the batch ends and waits for them rather than letting the
            // others run ahead.
            let slowest = queues
                .iter()
                .enumerate()
                .filter(|(_, q)| q.assigned && !q.at_end)
                .min_by_key(|(_, q)| r.processor.clock(q.partition))
                .map(|(i, _)| i);
            let Some(i) = slowest else {
                if taken > 0 || Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
                continue;
            };
            let mut waiting = false;
            for _ in 0..CHUNK.min(max - taken) {
                match queues[i].queue.poll(Duration::ZERO) {
                    Some(Ok(message)) => {
                        take(&message, &mut r.processor, intake, now, out);
                        taken += 1;
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) => {
                        queues[i].at_end = true;
                        break;
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "consumer error");
                        break;
                    }
                    None => {
                        waiting = true;
                        break;
                    }
                }
            }
            if waiting {
                if taken > 0 || Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if taken > 0 {
            let started = Instant::now();
            r.processor.flush(out)?;
            if !r.processor.stalled() {
                intake.batch.clear();
            }
            self.busy += started.elapsed();
        }
        Ok(taken)
    }

    /// While paused: nothing is read from the partition queues, but the consumer is still
    /// polled, so that the group keeps this host as a member and rebalances are handled.
    fn serve_events(
        r: &mut Runner,
        queues: &mut Vec<InputQueue>,
        intake: &mut Intake,
        out: &mut Output,
    ) -> Result<usize, StepError> {
        let now = Instant::now();
        let mut taken = 0;
        // Partitions never split into their own queue deliver here; they are held like the rest.
        while let Some(polled) = r.consumer.poll(Duration::ZERO) {
            if let Ok(message) = polled {
                take(&message, &mut r.processor, intake, now, out);
                taken += 1;
            }
        }
        rebalance(r, queues, intake, out, true)?;
        if taken > 0 {
            r.processor.flush(out)?;
            intake.batch.clear();
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(taken)
    }

    /// Holds the input: Kafka stops fetching the owned partitions and nothing more is read.
    fn pause(&mut self) -> Result<String, String> {
        if self.paused.is_some() {
            return Ok("already paused".into());
        }
        let owned: Vec<i32> = self.owned();
        hold(&self.r, &owned, true).map_err(StepError::into_reason)?;
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
        let owned = self.owned();
        hold(&self.r, &owned, false).map_err(StepError::into_reason)?;
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

    /// The input partitions this host owns now.
    fn owned(&self) -> Vec<i32> {
        self.queues
            .iter()
            .filter(|q| q.assigned)
            .map(|q| q.partition)
            .collect()
    }

    /// Hands results to the sinks: Kafka records are queued at once, the Cassandra upserts of
    /// one step run while the next step is processed.
    fn deliver(&mut self, out: Output) -> Result<(), String> {
        if out.is_empty() {
            return Ok(());
        }
        self.uncommitted = true;
        self.unpublished.late += out.late.len() as u64;
        self.unpublished.dead_letters += out.dead_letters.len() as u64;
        for record in &out.dead_letters {
            self.r.outputs.dead_letter(record);
        }
        for record in &out.late {
            self.r.outputs.late(record);
        }
        for (key, window) in &out.retracted {
            self.r.outputs.retracted(key, *window);
        }
        for emitted in &out.emitted {
            self.r.outputs.results(emitted);
        }
        self.keep_recent(&out);
        if out.emitted.is_empty() && out.retracted.is_empty() {
            return Ok(());
        }
        self.finish_writes()?;
        let table = self.r.table.clone();
        let emitted = Arc::new(out.emitted);
        let retracted = out.retracted;
        let handle = self.r.handle.clone();
        let patience = self.r.settings.outage_patience;
        self.pending_write = Some(self.r.runtime.spawn(async move {
            // Retractions first: a session's new row never shares a start with a retracted one
            // of the same step, and the deletes must not outlive the upserts that follow.
            let mut outage = Outage::default();
            while !retracted.is_empty() {
                match table.delete(&retracted).await {
                    Ok(()) => break,
                    Err(error) => outage.back_off(&handle, patience, error).await?,
                }
            }
            let mut refused = Vec::new();
            for (batch, rows) in emitted.iter().enumerate() {
                let refusals = loop {
                    match table.write(rows, now_ms()).await {
                        Ok(refusals) => break refusals,
                        Err(error) => outage.back_off(&handle, patience, error).await?,
                    }
                };
                refused.extend(refusals.into_iter().map(|r| (batch, r)));
            }
            outage.over(&handle);
            Ok(Written { emitted, refused })
        }));
        Ok(())
    }

    /// Runs a Cassandra step of the worker to completion, waiting out an outage (`Outage`).
    fn patiently<T, F, Fut>(&self, mut step: F) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CassandraError>>,
    {
        let (handle, patience) = (&self.r.handle, self.r.settings.outage_patience);
        self.r.runtime.block_on(async {
            let mut outage = Outage::default();
            loop {
                match step().await {
                    Ok(done) => {
                        outage.over(handle);
                        return Ok(done);
                    }
                    Err(error) => outage.back_off(handle, patience, error).await?,
                }
            }
        })
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
                rows.push(self.r.outputs.row(emitted, row));
            }
        }
        if !rows.is_empty() {
            rows.reverse();
            recent.results(at, rows);
        }
    }

    /// Waits for the Cassandra write in flight, if any; the rows it refused for good go to the
    /// dead letters, in the same attempt as their results.
    fn finish_writes(&mut self) -> Result<(), String> {
        if let Some(pending) = self.pending_write.take() {
            let written = self
                .r
                .runtime
                .block_on(pending)
                .map_err(|e| format!("Cassandra writer task: {e}"))??;
            for (batch, refusal) in written.refused {
                tracing::warn!(reason = %refusal.reason, "result row refused by Cassandra");
                self.r
                    .outputs
                    .refused(&written.emitted[batch], refusal.row, refusal.reason);
                self.unpublished.dead_letters += 1;
            }
        }
        Ok(())
    }

    /// The late and dead-letter records of the attempt just committed count in status and
    /// metrics now: a replayed attempt does not count them twice.
    fn publish_counts(&mut self) {
        let counts = std::mem::take(&mut self.unpublished);
        let metrics = &self.r.handle.metrics;
        AppMetrics::count(&metrics.late, counts.late as usize);
        AppMetrics::count(&metrics.dead_letters, counts.dead_letters as usize);
    }

    /// Saves where every owned partition stands, in the order that makes each sink see every
    /// record once (see `docs/architecture.md`):
    ///
    /// 1. the changed windows are emitted and the Cassandra upserts acknowledged;
    /// 2. each partition's checkpoint is saved in Cassandra as a new version (an epoch);
    /// 3. exactly-once: the Kafka transaction commits the step's results, late and dead-letter
    ///    records together with the input offsets, and the epoch in their metadata. That commit
    ///    is the one point where the attempt becomes real; a crash before it aborts the
    ///    transaction and the restart resumes the version the last commit named, so nothing
    ///    repeats on the topics; a crash after it resumes the new version, so nothing is read
    ///    twice. At-least-once: the outputs are flushed before the checkpoint is saved;
    /// 4. versions older than the committed one are dropped.
    fn checkpoint(&mut self) -> Result<(), StepError> {
        let started = Instant::now();
        self.last_checkpoint = started;
        if self.intake.next_offsets == self.checkpointed && !self.uncommitted {
            return Ok(());
        }
        let Some(store) = self.r.store.clone() else {
            // At-most-once: offsets are committed as read, whatever the sinks have.
            self.commit_offsets(CommitMode::Async)?;
            self.checkpointed = self.intake.next_offsets.clone();
            self.uncommitted = false;
            self.publish_counts();
            return Ok(());
        };
        let transactional = self.r.outputs.transactional();
        let mut out = Output::default();
        self.r.processor.emit_changed(&mut out)?;
        self.deliver(out)?;
        let mut windows = self.r.processor.save_windows()?;
        self.finish_writes()?;
        crash_point(CrashPoint::BeforeCheckpoint);
        if !transactional {
            self.r.outputs.commit().map_err(|e| e.to_string())?;
        }
        let saved_by = self.r.processor.saved_by();
        let checkpoints: Vec<PartitionCheckpoint> = self
            .intake
            .next_offsets
            .iter()
            .map(|(&partition, &next_offset)| {
                let at = windows.iter().position(|(p, _)| *p == partition);
                PartitionCheckpoint {
                    partition,
                    next_offset,
                    clock: self.r.processor.clock(partition),
                    watermark: self.r.processor.closing(partition),
                    saved_by: saved_by.clone(),
                    windows: at.map(|i| windows.swap_remove(i).1).unwrap_or_default(),
                }
            })
            .collect();
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
        self.commit_offsets(CommitMode::Async)?;
        let covered = &self.intake.next_offsets;
        self.intake
            .quarantine
            .retain(|q| covered.get(&q.partition).is_none_or(|next| q.last >= *next));
        self.checkpointed = covered.clone();
        self.uncommitted = false;
        self.rebuilds_since_checkpoint = 0;
        self.publish_counts();
        let metrics = &self.r.handle.metrics;
        AppMetrics::count(&metrics.checkpoints, 1);
        metrics.checkpoint_duration.observe(started.elapsed());
        metrics
            .last_checkpoint_ms
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
        self.r.handle.update(|s| s.checkpoints += 1);
        tracing::debug!(elapsed = ?started.elapsed(), partitions = checkpoints.len(), %epoch, "checkpoint committed");
        Ok(())
    }

    /// Commits the open transaction with the input offsets the checkpoint `epoch` covers. A
    /// refusal that only aborts the transaction (this host lost partitions in a rebalance)
    /// replays from the last committed checkpoint; anything else stops the app.
    fn commit_with_offsets(&mut self, epoch: Epoch) -> Result<(), StepError> {
        let input = &self.r.topics.input;
        let mut list = TopicPartitionList::new();
        for (&partition, &next) in &self.intake.next_offsets {
            list.add_partition_offset(input, partition, Offset::Offset(next))
                .map_err(|e| e.to_string())?;
            if let Some(mut element) = list.find_partition(input, partition) {
                element.set_metadata(epoch.to_metadata());
            }
        }
        let group = self
            .r
            .consumer
            .group_metadata()
            .ok_or_else(|| "the consumer has no group metadata to commit with".to_owned())?;
        match self.r.outputs.commit_with_offsets(&list, &group) {
            Ok(()) => Ok(()),
            Err(error) if error.requires_abort() => Err(StepError::Replay(error.to_string())),
            Err(error) => Err(StepError::Fatal(error.to_string())),
        }
    }

    /// A plugin failure: the batch it failed on becomes suspect, the instance is rebuilt from
    /// the last checkpoint and the input replayed from there, the suspect records one by one;
    /// the one that fails again is quarantined alone. Too many failures in a short time stop
    /// the app; finding the record at fault does not count as another failure.
    fn recover(&mut self, error: PluginError) -> Result<(), String> {
        let reason = error.to_string();
        let single: Vec<(i32, i64)> = self
            .intake
            .batch
            .iter()
            .filter(|(_, (first, last))| first == last)
            .map(|(p, (o, _))| (*p, *o))
            .collect();
        let isolated = self.intake.batch.len() == 1
            && single.len() == 1
            && self.intake.quarantine.iter().any(|q| {
                q.suspect && q.partition == single[0].0 && (q.first..=q.last).contains(&single[0].1)
            });
        if isolated {
            let (partition, offset) = single[0];
            tracing::warn!(partition, offset, %reason, "record quarantined");
            // The first record at fault in a failed batch is what that failure was; each one
            // after it counts again, so an app that fails on every record is stopped rather
            // than replayed one record at a time for ever.
            let again = self
                .intake
                .quarantine
                .iter_mut()
                .find(|q| {
                    q.suspect && q.partition == partition && (q.first..=q.last).contains(&offset)
                })
                .is_some_and(|q| std::mem::replace(&mut q.found, true));
            self.intake.batch.clear();
            self.intake.quarantine.push(Quarantined {
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
        for (partition, (first, last)) in self.intake.batch.drain() {
            tracing::warn!(partition, first, last, %reason, "batch suspect: replaying it record by record");
            self.intake.quarantine.push(Quarantined {
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
    /// rebuild reads the checkpoint back from Cassandra and the input again from Kafka, so an app
    /// that fails again and again would otherwise spend the shared services its neighbours need.
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
    fn rebuild(&mut self) -> Result<(), String> {
        let started = Instant::now();
        self.finish_writes()?;
        self.r.outputs.abort().map_err(|e| e.to_string())?;
        self.unpublished = Unpublished::default();
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
        self.intake.batch.clear();
        let owned = self.owned();
        let checkpointing = self.r.store.is_some();
        for &p in &owned {
            self.r.processor.watermarks_mut().assign(p, started);
            if !checkpointing {
                continue;
            }
            self.intake.next_offsets.remove(&p);
            resume(&mut self.r, &mut self.intake, p).map_err(|e| {
                format!("restoring the last checkpoint failed: {}", e.into_reason())
            })?;
            let offset = self
                .intake
                .next_offsets
                .get(&p)
                .map_or(Offset::Beginning, |o| Offset::Offset(*o));
            self.r
                .consumer
                .seek(&self.r.topics.input, p, offset, Duration::from_secs(30))
                .map_err(|e| format!("rewinding partition {p} to {offset:?}: {e}"))?;
        }
        for q in &mut self.queues {
            q.at_end = false;
        }
        self.checkpointed = self.intake.next_offsets.clone();
        self.uncommitted = false;
        tracing::warn!(elapsed = ?started.elapsed(), partitions = ?owned, "instance rebuilt from the last checkpoint; replaying");
        Ok(())
    }

    /// Keeps a take-over's outcome in the app's history; the answer for the operator.
    fn noted(
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

    /// A new build takes over between batches: open windows carry their state (or start fresh
    /// with `reset_state`), the sinks learn its outputs. On failure the running build stays.
    fn take_over(
        &mut self,
        app: CompiledApp,
        reset_state: bool,
    ) -> Result<(String, Duration), String> {
        let started = Instant::now();
        let instance = app.instantiate().map_err(|e| e.to_string())?;
        let table = self
            .r
            .runtime
            .block_on(self.r.table.reopen(&app.spec))
            .map_err(|e| e.to_string())?;
        // A write in flight finishes on its own, with the version that computed it.
        let processor = &mut self.r.processor;
        let swapped = if reset_state {
            processor.reset(app.spec.clone(), instance)
        } else {
            processor.swap(app.spec.clone(), instance)
        }
        .map_err(|e| e.to_string())?;
        self.r.table = Arc::new(table);
        self.r.outputs.describe(&app.spec);
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
        // The next checkpoint saves the new build's state, even if no record arrives before it.
        self.checkpointed.clear();
        let pause = started.elapsed();
        let what = if reset_state {
            let span = swapped.span.map_or(String::new(), |(first, last)| {
                format!(
                    ", starting from {} to {}",
                    crate::time::format_rfc3339(first),
                    crate::time::format_rfc3339(last)
                )
            });
            format!(
                "{} open windows of {} keys start fresh{span}",
                swapped.windows, swapped.keys
            )
        } else {
            format!(
                "{} open windows carried ({} bytes of state)",
                swapped.windows, swapped.state_bytes
            )
        };
        tracing::info!(%from, %to, ?pause, windows = swapped.windows, reset_state, "new version took over");
        let answer = format!(
            "version {to} took over from {from} in {} ms: {what}",
            pause.as_millis()
        );
        Ok((answer, pause))
    }

    /// The end of the input or of the app: every open window is emitted as final (with what
    /// the step already produced), and everything is saved and committed.
    fn close_all(&mut self, mut out: Output) -> Result<(), StepError> {
        self.r.processor.finish(&mut out)?;
        self.deliver(out)?;
        self.checkpointed.clear();
        self.checkpoint()?;
        self.r.outputs.commit().map_err(|e| e.to_string())?;
        self.commit_offsets(CommitMode::Sync)?;
        Ok(())
    }

    /// The end of an app: every open window is emitted as final and the place in the input is
    /// saved, so that a later deploy of the app goes on from there.
    fn remove(&mut self) -> Result<String, String> {
        if self.r.processor.stalled() {
            return Err("a batch waits for the app's service: remove the app once the service answers (its state and offsets are not saved meanwhile)".into());
        }
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
        let topic = self.r.topics.input.clone();
        let metadata = self
            .r
            .consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(30))
            .map_err(|e| format!("reading metadata of {topic}: {e}"))?;
        let mut target = Offsets::default();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (_, high) = self
                .r
                .consumer
                .fetch_watermarks(&topic, partition.id(), Duration::from_secs(30))
                .map_err(|e| format!("reading end offsets of {topic}: {e}"))?;
            target.insert(partition.id(), high);
        }
        tracing::info!(?target, "draining to the input's end offsets");
        self.drain_target = Some(target);
        self.set_state(AppState::Draining);
        Ok(())
    }

    fn drain_reached(&self) -> bool {
        let Some(target) = &self.drain_target else {
            return false;
        };
        // Only the partitions this host owns: another host drains the others.
        let mut owned = self.queues.iter().filter(|q| q.assigned).peekable();
        owned.peek().is_some()
            && owned.all(|q| {
                let high = target.get(&q.partition).copied().unwrap_or(0);
                high <= 0
                    || self
                        .intake
                        .next_offsets
                        .get(&q.partition)
                        .is_some_and(|next| *next >= high)
            })
    }

    /// Tells Kafka how far the group has read, for tools that show its lag; never ahead of the
    /// checkpoint, so resuming from it never skips a record.
    fn commit_offsets(&mut self, mode: CommitMode) -> Result<(), String> {
        if self.r.outputs.transactional() {
            // Committed inside the outputs' transaction, with the checkpoint's epoch.
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for (partition, next) in &self.intake.next_offsets {
            list.add_partition_offset(&self.r.topics.input, *partition, Offset::Offset(*next))
                .map_err(|e| e.to_string())?;
        }
        if list.count() > 0 {
            if let Err(error) = self.r.consumer.commit(&list, mode) {
                tracing::warn!(%error, "committing offsets to Kafka");
            }
        }
        Ok(())
    }

    /// Lag and caught-up state over the partitions this host owns.
    fn sync_assignment(&mut self) {
        if self.last_assignment_check.elapsed() < Duration::from_secs(2) {
            return;
        }
        self.last_assignment_check = Instant::now();
        let Ok(assignment) = self.r.consumer.assignment() else {
            return;
        };
        let mut lag = 0i64;
        let mut caught_up = !assignment.elements().is_empty();
        for element in assignment.elements() {
            let high = self
                .r
                .consumer
                .fetch_watermarks(element.topic(), element.partition(), Duration::from_secs(1))
                .map(|(_, high)| high)
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
            lag += (high - next).max(0);
        }
        self.r
            .handle
            .metrics
            .lag
            .store(lag, std::sync::atomic::Ordering::Relaxed);
        let partitions: Vec<i32> = assignment
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();
        self.r.handle.update(|s| {
            s.caught_up = caught_up;
            s.partitions = partitions;
        });
    }

    /// Input and process rates over the last second: the report's first two metrics.
    fn report(&mut self, now: Instant) {
        let (since, records_in, processed, busy) = self.last_rate;
        let elapsed = now.duration_since(since);
        if elapsed < Duration::from_secs(1) {
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
