//! The Cassandra results table as the worker drives it: one write in flight while the next
//! batches are processed, the outputs of the steps meanwhile queued behind it and written
//! together once it is done (each (key, window) once, with its last values), outages waited out
//! under the retry policy, and rows Cassandra refuses for good handed back for the dead letters.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::cassandra::{CassandraError, ResultsTable};
use super::retry::{Outage, Watcher};
use super::{Emitted, Output, Refused, Sink, SinkError};
use crate::admin::recent::now_ms;
use crate::plugin::AppSpec;

/// Result rows that may wait behind the write in flight before the worker waits for it: a
/// bound on the memory they hold and on how far the table trails the processing.
const MAX_QUEUED_ROWS: usize = 20_000;

/// The results table of one app.
pub struct TableWriter {
    table: Arc<ResultsTable>,
    runtime: Handle,
    watcher: Arc<dyn Watcher>,
    patience: Duration,
    pending: Option<JoinHandle<Result<Vec<Refused>, CassandraError>>>,
    /// Outputs handed over while a write was in flight, in order: the next write takes them
    /// all. Only the first may hold retractions (see `write`).
    queued: Vec<Arc<Output>>,
    queued_rows: usize,
    /// Refused rows of writes already waited for, until the next flush hands them on.
    refused: Vec<Refused>,
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
            pending: None,
            queued: Vec::new(),
            queued_rows: 0,
            refused: Vec::new(),
        }
    }

    /// Whether a write is in flight and not done yet.
    fn busy(&self) -> bool {
        self.pending.as_ref().is_some_and(|p| !p.is_finished())
    }

    /// Waits for the write in flight, if any.
    fn wait(&mut self) -> Result<(), SinkError> {
        if let Some(pending) = self.pending.take() {
            let refused = self
                .runtime
                .block_on(pending)
                .map_err(|e| SinkError::Stopped(format!("Cassandra writer task: {e}")))??;
            self.refused.extend(refused);
        }
        Ok(())
    }

    /// Starts the write of everything queued, after the write in flight is done.
    fn start(&mut self) -> Result<(), SinkError> {
        self.wait()?;
        if self.queued.is_empty() {
            return Ok(());
        }
        let outputs = std::mem::take(&mut self.queued);
        self.queued_rows = 0;
        let (table, watcher) = (self.table.clone(), self.watcher.clone());
        let patience = self.patience;
        self.pending = Some(self.runtime.spawn(async move {
            let mut outage = Outage::new(&*watcher, patience);
            // Retractions first: a session's new row never shares a start with a retracted one
            // of the same step, and the deletes must not outlive the upserts that follow. Only
            // the first output holds any, so no queued upsert comes before them.
            for out in &outputs {
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
        }));
        Ok(())
    }
}

impl Sink for TableWriter {
    /// While a write is in flight, the output waits behind it (up to `MAX_QUEUED_ROWS`) and goes
    /// with the others queued once it is done: more rows per key and per request, each
    /// (key, window) once. An output with retractions goes after everything before it is
    /// written, so that no queued upsert lands after a delete of its row.
    fn write(&mut self, out: &Arc<Output>) -> Result<(), SinkError> {
        if out.emitted.is_empty() && out.retracted.is_empty() {
            return self.advance();
        }
        if !out.retracted.is_empty() {
            self.start()?;
            self.wait()?;
        }
        self.queued_rows += out.emitted.iter().map(Emitted::len).sum::<usize>();
        self.queued.push(out.clone());
        if self.busy() && self.queued_rows < MAX_QUEUED_ROWS {
            return Ok(());
        }
        self.start()
    }

    /// Queued rows go as soon as the write before them is done, even in a step with no output.
    fn advance(&mut self) -> Result<(), SinkError> {
        if self.queued.is_empty() || self.busy() {
            return Ok(());
        }
        self.start()
    }

    fn flush(&mut self) -> Result<Vec<Refused>, SinkError> {
        self.start()?;
        self.wait()?;
        Ok(std::mem::take(&mut self.refused))
    }

    /// A write in flight finishes on its own, with the version that computed it; so do the
    /// outputs still queued, which start now with that version's table.
    fn reopen(&mut self, spec: &AppSpec) -> Result<(), SinkError> {
        if !self.queued.is_empty() {
            self.start()?;
        }
        let table = self.runtime.block_on(self.table.reopen(spec))?;
        self.table = Arc::new(table);
        Ok(())
    }
}
