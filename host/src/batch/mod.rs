//! History analytics: a tenant app, the same component in the same sandbox as on a stream, run
//! to completion over the rows of a Cassandra results table. The table is read in token ranges
//! (the unit of work a distributed engine would hand to its workers), rows are grouped by the
//! app's key (one field, or several: `product_id,month`), and parts of the event time such as
//! `month` can be read and grouped by as if they were columns. The window and emit settings an
//! app declares are for streams: a batch run is one window over the rows selected.

mod derive;
mod group;
mod output;
mod plan;
mod scan;

use std::path::PathBuf;
use std::sync::Arc;

use scylla::client::session::Session;
use tokio::sync::mpsc;

pub use derive::TimePart;
pub use group::{Counts, ResultRow, Value};
pub use output::Columns;
pub use plan::{KeyKind, KeyPart};
pub use scan::token_ranges;

use crate::names::TenantId;
use crate::plugin::{CompiledApp, PluginError};
use crate::sink::cassandra::CassandraError;

/// Why a batch run stopped, in words that name what to fix.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Cassandra(#[from] CassandraError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("{0}")]
    Input(String),
    #[error("writing {path}: {reason}")]
    File { path: String, reason: String },
}

/// What to run over which rows, and where its results go.
pub struct Job {
    pub tenant: TenantId,
    /// The input table, a CQL identifier in the tenant's keyspace.
    pub from: String,
    pub app: CompiledApp,
    /// `--where column=value` pairs; values of one column are alternatives.
    pub conditions: Vec<(String, String)>,
    /// Event time bounds, ms: `since <= t < until`.
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Token ranges the ring is split into when no partition is named.
    pub ranges: u32,
    /// Units read at once.
    pub concurrency: usize,
    /// Rows per plugin call.
    pub batch_max: usize,
    pub csv: Option<PathBuf>,
    pub parquet: Option<PathBuf>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub counts: Counts,
    pub units: usize,
    pub rows: Vec<ResultRow>,
    pub columns: Columns,
    /// `<tenant>.<table>` the results were written to.
    pub table: String,
}

/// Progress as units of work complete, for a bar or a log.
pub trait Progress: Send + Sync {
    fn start(&self, units: usize);
    fn unit_done(&self, rows_read: u64);
}

/// Runs the job to completion: reads, aggregates, writes the results table and the files.
pub async fn run(
    session: Arc<Session>,
    job: Job,
    progress: Arc<dyn Progress>,
    now_ms: i64,
) -> Result<Summary, BatchError> {
    let spec = job.app.spec.clone();
    let keyspace = job.tenant.as_str().to_owned();
    if spec.table == job.from {
        return Err(BatchError::Input(format!(
            "the app writes its results to `{}`, the table it reads: give the app another \
             `table`, or read another table with `--from`",
            spec.table
        )));
    }
    let schema = plan::TableSchema::read(&session, &keyspace, &job.from).await?;
    let conditions = plan::conditions(&job.conditions);
    let plan = plan::Plan::new(&schema, &spec, &conditions)?;
    let units = scan::units(&schema, &conditions, job.ranges)?;
    let unit_count = units.len();
    progress.start(unit_count);
    tracing::info!(tenant = %job.tenant, app = %spec.name, from = %job.from, units = unit_count, "batch run starts");
    let columns = Columns::new(
        &spec,
        plan.key
            .iter()
            .map(|(name, _, kind)| (name.clone(), *kind))
            .collect(),
        plan.event_time.is_some(),
    );
    let instance = job.app.instantiate()?;
    let mut aggregator = group::Aggregator::new(
        instance,
        spec.clone(),
        plan.clone(),
        job.since,
        job.until,
        job.batch_max,
    );
    let (tx, mut rx) = mpsc::channel::<scan::Message>(8);
    let watcher = progress.clone();
    let aggregate = tokio::task::spawn_blocking(move || {
        while let Some(message) = rx.blocking_recv() {
            match message {
                scan::Message::Rows(rows) => {
                    for row in &rows {
                        aggregator.push(row)?;
                    }
                }
                scan::Message::UnitDone => watcher.unit_done(aggregator.counts().read),
            }
        }
        aggregator.finish()
    });
    let read = scan::read(&session, &schema, &plan, units, job.concurrency, tx).await;
    let aggregated = aggregate
        .await
        .map_err(|e| BatchError::Input(format!("the aggregation stopped: {e}")))?;
    let (rows, counts) = aggregated?;
    read?;
    output::write_table(&session, &keyspace, &spec, &columns, &rows, now_ms).await?;
    if let Some(path) = &job.csv {
        output::write_csv(path, &columns, &rows)?;
    }
    if let Some(path) = &job.parquet {
        output::write_parquet(path, &columns, &rows)?;
    }
    tracing::info!(
        tenant = %job.tenant,
        app = %spec.name,
        read = counts.read,
        used = counts.used,
        groups = rows.len(),
        "batch run done"
    );
    Ok(Summary {
        counts,
        units: unit_count,
        rows,
        columns,
        table: format!("{keyspace}.{}", spec.table),
    })
}
