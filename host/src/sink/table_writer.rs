//! The Cassandra results table as the worker drives it: one step's upserts in flight while the
//! next batch is processed, outages waited out under the retry policy, and rows Cassandra
//! refuses for good handed back for the dead letters.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::cassandra::{CassandraError, ResultsTable};
use super::retry::{Outage, Watcher};
use super::{Output, Refused, Sink, SinkError};
use crate::admin::recent::now_ms;
use crate::plugin::AppSpec;

/// The results table of one app.
pub struct TableWriter {
    table: Arc<ResultsTable>,
    runtime: Handle,
    watcher: Arc<dyn Watcher>,
    patience: Duration,
    pending: Option<JoinHandle<Result<Vec<Refused>, CassandraError>>>,
    /// Refused rows of a step already waited for, until the next flush hands them on.
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
            refused: Vec::new(),
        }
    }

    /// Waits for the step in flight, if any.
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
}

impl Sink for TableWriter {
    fn write(&mut self, out: &Arc<Output>) -> Result<(), SinkError> {
        if out.emitted.is_empty() && out.retracted.is_empty() {
            return Ok(());
        }
        self.wait()?;
        let (table, watcher, out) = (self.table.clone(), self.watcher.clone(), out.clone());
        let patience = self.patience;
        self.pending = Some(self.runtime.spawn(async move {
            let mut outage = Outage::new(&*watcher, patience);
            // Retractions first: a session's new row never shares a start with a retracted one
            // of the same step, and the deletes must not outlive the upserts that follow.
            while !out.retracted.is_empty() {
                match table.delete(&out.retracted).await {
                    Ok(()) => break,
                    Err(error) => outage.back_off(error).await?,
                }
            }
            let mut refused = Vec::new();
            for (batch, rows) in out.emitted.iter().enumerate() {
                let refusals = loop {
                    match table.write(rows, now_ms()).await {
                        Ok(refusals) => break refusals,
                        Err(error) => outage.back_off(error).await?,
                    }
                };
                refused.extend(refusals.into_iter().map(|r| Refused {
                    output: out.clone(),
                    batch,
                    row: r.row,
                    reason: r.reason,
                }));
            }
            outage.over();
            Ok(refused)
        }));
        Ok(())
    }

    fn flush(&mut self) -> Result<Vec<Refused>, SinkError> {
        self.wait()?;
        Ok(std::mem::take(&mut self.refused))
    }

    /// A write in flight finishes on its own, with the version that computed it.
    fn reopen(&mut self, spec: &AppSpec) -> Result<(), SinkError> {
        let table = self.runtime.block_on(self.table.reopen(spec))?;
        self.table = Arc::new(table);
        Ok(())
    }
}
