//! The Cassandra results table as the worker drives it: outputs are queued and a writer task
//! takes everything queued at once, writes it (each (key, window) once, with its last values)
//! and goes on with what was queued meanwhile until nothing is, so Cassandra is never left idle
//! waiting for the worker's next step; outages are waited out under the retry policy, and rows
//! Cassandra refuses for good are handed back for the dead letters.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::cassandra::{CassandraError, ResultsTable};
use super::retry::{Outage, Watcher};
use super::{Emitted, Output, Refused, Sink, SinkError};
use crate::admin::recent::now_ms;
use crate::plugin::AppSpec;

/// Result rows that may wait for the writer before the worker waits too: a bound on the memory
/// they hold and on how far the table trails the processing.
const MAX_QUEUED_ROWS: usize = 20_000;

/// What the worker hands the writer task, and what the task hands back.
#[derive(Default)]
struct Queue {
    /// Outputs not yet taken by the writer, each with the table of the build that computed it.
    outputs: VecDeque<(Arc<ResultsTable>, Arc<Output>)>,
    rows: usize,
    /// A writer task is running: it takes what is queued until nothing is.
    running: bool,
    /// Rows refused for good, until the next flush hands them on.
    refused: Vec<Refused>,
}

/// The results table of one app.
pub struct TableWriter {
    table: Arc<ResultsTable>,
    runtime: Handle,
    watcher: Arc<dyn Watcher>,
    patience: Duration,
    queue: Arc<Mutex<Queue>>,
    task: Option<JoinHandle<Result<(), CassandraError>>>,
}

/// The queue, whatever a panicking writer left: its fields are consistent after each change.
fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TableWriter {
    pub fn new(
        table: ResultsTable,
        runtime: Handle,
        watcher: Arc<dyn Watcher>,
        patience: Duration,
    ) -> Self {
        Self {
            table: Arc::new(table),
            runtime,
            watcher,
            patience,
            queue: Arc::default(),
            task: None,
        }
    }

    /// Waits until the writer has written everything queued (or failed).
    fn wait(&mut self) -> Result<(), SinkError> {
        if let Some(task) = self.task.take() {
            self.runtime
                .block_on(task)
                .map_err(|e| SinkError::Stopped(format!("Cassandra writer task: {e}")))??;
        }
        Ok(())
    }

    /// Starts a writer task for what is queued, once the one before it has ended.
    fn start(&mut self) -> Result<(), SinkError> {
        // The task before set `running` to false as it ended: it returns at once.
        self.wait()?;
        let (queue, watcher) = (self.queue.clone(), self.watcher.clone());
        let patience = self.patience;
        self.task = Some(self.runtime.spawn(async move {
            loop {
                // Everything queued for one table at once. Only the first output of a take may
                // hold retractions (see `write`), so no queued upsert comes before its deletes.
                let (table, outputs) = {
                    let mut queue = lock(&queue);
                    let Some(table) = queue.outputs.front().map(|(t, _)| t.clone()) else {
                        queue.running = false;
                        return Ok(());
                    };
                    let mut outputs = Vec::new();
                    while let Some((_, out)) =
                        queue.outputs.pop_front_if(|(t, _)| Arc::ptr_eq(t, &table))
                    {
                        queue.rows -= rows_of(&out).min(queue.rows);
                        outputs.push(out);
                    }
                    (table, outputs)
                };
                let refused = write(&table, &outputs, Outage::new(&*watcher, patience)).await?;
                lock(&queue).refused.extend(refused);
            }
        }));
        Ok(())
    }
}

fn rows_of(out: &Output) -> usize {
    out.emitted.iter().map(Emitted::len).sum()
}

/// Writes the outputs of one take: the retractions' deletes first (a session's new row never
/// shares a start with a retracted one of the same step, and the deletes must not outlive the
/// upserts that follow), then every row, each (key, window) once with its last values.
async fn write(
    table: &ResultsTable,
    outputs: &[Arc<Output>],
    mut outage: Outage<'_>,
) -> Result<Vec<Refused>, CassandraError> {
    for out in outputs {
        while !out.retracted.is_empty() {
            match table.delete(&out.retracted).await {
                Ok(()) => break,
                Err(error) => outage.back_off(error).await?,
            }
        }
    }
    let origins: Vec<(usize, usize)> = outputs
        .iter()
        .enumerate()
        .flat_map(|(o, out)| (0..out.emitted.len()).map(move |batch| (o, batch)))
        .collect();
    let emitted: Vec<&Emitted> = outputs.iter().flat_map(|o| o.emitted.iter()).collect();
    let refusals = loop {
        match table.write(&emitted, now_ms()).await {
            Ok(refusals) => break refusals,
            Err(error) => outage.back_off(error).await?,
        }
    };
    outage.over();
    Ok(refusals
        .into_iter()
        .filter_map(|(emit, refusal)| {
            let &(o, batch) = origins.get(emit)?;
            Some(Refused {
                output: outputs.get(o)?.clone(),
                batch,
                row: refusal.row,
                reason: refusal.reason,
            })
        })
        .collect())
}

impl Sink for TableWriter {
    /// Queues the output for the writer (which starts if it is not running) and returns: the
    /// worker waits only when `MAX_QUEUED_ROWS` rows are queued. An output with retractions is
    /// queued once everything before it is written, so that no upsert queued before lands after
    /// a delete of its row.
    fn write(&mut self, out: &Arc<Output>) -> Result<(), SinkError> {
        if out.emitted.is_empty() && out.retracted.is_empty() {
            return Ok(());
        }
        let failed =
            self.task.as_ref().is_some_and(JoinHandle::is_finished) && lock(&self.queue).running;
        if failed || !out.retracted.is_empty() || lock(&self.queue).rows >= MAX_QUEUED_ROWS {
            self.wait()?;
        }
        let start = {
            let mut queue = lock(&self.queue);
            queue.outputs.push_back((self.table.clone(), out.clone()));
            queue.rows += rows_of(out);
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            self.start()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<Vec<Refused>, SinkError> {
        self.wait()?;
        Ok(std::mem::take(&mut lock(&self.queue).refused))
    }

    /// What is queued or in flight is written with the table of the build that computed it.
    fn reopen(&mut self, spec: &AppSpec) -> Result<(), SinkError> {
        let table = self.runtime.block_on(self.table.reopen(spec))?;
        self.table = Arc::new(table);
        Ok(())
    }
}
