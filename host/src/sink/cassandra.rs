//! The tenant's keyspace in Cassandra: one table per app, one row per (key, window), written as
//! idempotent upserts so that a replayed window overwrites itself instead of piling up rows.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use foldhash::fast::RandomState;
use futures::stream::{self, StreamExt, TryStreamExt};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::value::SerializeValue;
use scylla::serialize::writers::RowWriter;
use scylla::serialize::SerializationError;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;

use super::{cell, Cell, Emitted};
use crate::access::CassandraAccess;
use crate::names::TenantId;
use crate::plugin::{AppSpec, FieldSpec, FieldType};
use crate::window::Window;

/// How many deletes are in flight at once per app.
const CONCURRENCY: usize = 64;
/// Unlogged batches in flight at once per app. Cassandra's CPU per row falls as more rows are
/// in flight on the connection, up to a few hundred (`bench-cassandra`); end to end on the shared
/// 2-core machine, 64 drained faster than 32 at the same CPU per record (`bench/write-path.md`).
const BATCHES_IN_FLIGHT: usize = 64;
/// Partitions per unlogged batch: Cassandra logs a warning (and the driver repeats it) for an
/// unlogged batch over 10 partitions.
const BATCH_PARTITIONS: usize = 10;
/// Bytes per unlogged batch, estimated from the rows: under Cassandra's 5 KiB batch-size warning.
const BATCH_BYTES: usize = 4 * 1024;
/// What a row costs in a batch besides its key and values: the two window times, `final`,
/// `app_version`, `updated_at` and the mutation's own framing.
const ROW_OVERHEAD: usize = 64;

/// Cassandra failed, with the statement or step that failed, and whether trying again may help.
#[derive(Debug, thiserror::Error)]
#[error("Cassandra: {doing}: {reason}")]
pub struct CassandraError {
    pub doing: String,
    pub reason: String,
    /// A timeout, an unreachable or overloaded node: the same request may succeed later.
    pub transient: bool,
}

impl CassandraError {
    /// A failure that trying again will not mend.
    pub fn new(doing: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            doing: doing.into(),
            reason: reason.into(),
            transient: false,
        }
    }
}

pub(crate) fn failed(
    doing: impl Into<String>,
) -> impl FnOnce(scylla::errors::ExecutionError) -> CassandraError {
    let doing = doing.into();
    move |e| CassandraError {
        doing,
        reason: e.to_string(),
        transient: !refused_for_good(&e),
    }
}

/// A row Cassandra will never take, and why.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub row: usize,
    pub reason: String,
}

/// Whether Cassandra refused the statement for what it holds, not for how it is now: such a
/// write fails the same way however often it is tried.
fn refused_for_good(error: &ExecutionError) -> bool {
    matches!(
        error,
        ExecutionError::BadQuery(_)
            | ExecutionError::LastAttemptError(
                RequestAttemptError::SerializationError(_)
                    | RequestAttemptError::DbError(DbError::Invalid, _)
            )
    )
}

/// Prepares `cql`, the statement named in the error.
pub(crate) async fn prepare(
    session: &Session,
    cql: String,
) -> Result<PreparedStatement, CassandraError> {
    session
        .prepare(cql.as_str())
        .await
        .map_err(|e| CassandraError::new(format!("preparing {cql}"), e.to_string()))
}

/// Connects to the cluster; one session serves every app on the host. A request that takes
/// longer than `request_timeout` fails as transient, so a stalled node is retried rather than
/// waited on for ever.
pub async fn connect(
    access: &CassandraAccess,
    request_timeout: Duration,
) -> Result<Arc<Session>, CassandraError> {
    let nodes = &access.nodes;
    let profile = ExecutionProfile::builder()
        .request_timeout(Some(request_timeout))
        .build();
    access
        .session_builder()
        .map_err(|e| CassandraError::new(format!("connecting to {nodes:?}"), e.to_string()))?
        .default_execution_profile_handle(profile.into_handle())
        .build()
        .await
        .map(Arc::new)
        .map_err(|e| {
            let mut message = e.to_string();
            if message.contains("certificate verify failed") {
                message.push_str(
                    " (is `cassandra.ca_file` the CA that signed the nodes' certificates?)",
                );
            }
            CassandraError::new(format!("connecting to {nodes:?}"), message)
        })
}

/// The CQL column type a field of this type is stored as.
pub(crate) fn cql_type(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Boolean => "boolean",
        FieldType::Integer => "bigint",
        FieldType::Double => "double",
        FieldType::Text => "text",
        FieldType::Timestamp => "timestamp",
    }
}

/// Writes one app's rows to `<tenant>.<table>`.
pub struct ResultsTable {
    session: Arc<Session>,
    insert: PreparedStatement,
    delete: PreparedStatement,
    version: String,
    tenant: TenantId,
    replication: u32,
    table: String,
    outputs: Vec<FieldSpec>,
}

impl ResultsTable {
    /// Creates the keyspace and table when missing, adds output columns a newer app version
    /// declares, and prepares the upsert.
    pub async fn open(
        session: Arc<Session>,
        tenant: &TenantId,
        spec: &AppSpec,
        replication: u32,
    ) -> Result<Self, CassandraError> {
        let ks = tenant.as_str();
        let table = &spec.table;
        let key = &spec.key_field;
        session
            .query_unpaged(
                format!(
                    "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = \
                     {{'class': 'SimpleStrategy', 'replication_factor': {replication}}}"
                ),
                &[],
            )
            .await
            .map_err(failed(format!("creating keyspace {ks}")))?;
        let outputs: Vec<String> = spec
            .outputs
            .iter()
            .map(|f| format!("{} {}", f.name, cql_type(f.kind)))
            .collect();
        session
            .query_unpaged(
                format!(
                    "CREATE TABLE IF NOT EXISTS {ks}.{table} ({key} text, window_start timestamp, \
                     window_end timestamp, {}, final boolean, app_version text, updated_at timestamp, \
                     PRIMARY KEY (({key}), window_start))",
                    outputs.join(", ")
                ),
                &[],
            )
            .await
            .map_err(failed(format!("creating table {ks}.{table}")))?;
        let existing = existing_columns(&session, ks, table).await?;
        for field in spec.outputs.iter().filter(|f| !existing.contains(&f.name)) {
            session
                .query_unpaged(
                    format!(
                        "ALTER TABLE {ks}.{table} ADD {} {}",
                        field.name,
                        cql_type(field.kind)
                    ),
                    &[],
                )
                .await
                .map_err(failed(format!(
                    "adding column {} to {ks}.{table}",
                    field.name
                )))?;
        }
        let mut columns = vec![key.as_str(), "window_start", "window_end"];
        columns.extend(spec.outputs.iter().map(|f| f.name.as_str()));
        columns.extend(["final", "app_version", "updated_at"]);
        let marks = vec!["?"; columns.len()].join(", ");
        let insert = session
            .prepare(format!(
                "INSERT INTO {ks}.{table} ({}) VALUES ({marks})",
                columns.join(", ")
            ))
            .await
            .map_err(|e| {
                CassandraError::new(
                    format!("preparing the upsert into {ks}.{table}"),
                    e.to_string(),
                )
            })?;
        let delete = session
            .prepare(format!(
                "DELETE FROM {ks}.{table} WHERE {key} = ? AND window_start = ?"
            ))
            .await
            .map_err(|e| {
                CassandraError::new(
                    format!("preparing the delete from {ks}.{table}"),
                    e.to_string(),
                )
            })?;
        Ok(Self {
            session,
            insert,
            delete,
            version: spec.version.clone(),
            tenant: tenant.clone(),
            replication,
            table: spec.table.clone(),
            outputs: spec.outputs.clone(),
        })
    }

    /// The same table for a new app version: columns it adds are added, the upsert re-prepared.
    /// When the outputs are the same, nothing is asked of Cassandra.
    pub async fn reopen(&self, spec: &AppSpec) -> Result<Self, CassandraError> {
        if spec.table == self.table && spec.outputs == self.outputs {
            return Ok(Self {
                session: self.session.clone(),
                insert: self.insert.clone(),
                delete: self.delete.clone(),
                version: spec.version.clone(),
                tenant: self.tenant.clone(),
                replication: self.replication,
                table: self.table.clone(),
                outputs: self.outputs.clone(),
            });
        }
        Self::open(self.session.clone(), &self.tenant, spec, self.replication).await
    }

    /// Upserts the rows of several emits in order, as if each were written after the one
    /// before: a (key, window) that several of them hold is written once, with its last values.
    /// Rows of one key go in one mutation (an unlogged batch of its partition), and a batch
    /// holds a few partitions, so that Cassandra pays its per-request cost once for them.
    /// Returns when all are acknowledged, with the rows Cassandra refused for good (a key over
    /// its 64 KiB limit, a mutation over its size limit), each named by its emit (an index in
    /// `emitted`) and row: retrying those would fail the same way, so they go to the dead
    /// letters instead of stopping the app.
    pub async fn write(
        &self,
        emitted: &[&Emitted],
        now_ms: i64,
    ) -> Result<Vec<(usize, Refusal)>, CassandraError> {
        let batches = plan_batches(emitted);
        let outcomes: Vec<Vec<(usize, Refusal)>> = stream::iter(batches)
            .map(|rows| self.write_batch(emitted, rows, now_ms))
            .buffer_unordered(BATCHES_IN_FLIGHT)
            .try_collect()
            .await
            .map_err(failed("writing results"))?;
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// One unlogged batch (a single row goes as a plain statement). When Cassandra refuses the
    /// batch for what it holds, its rows are tried one by one, so that only the rows it
    /// refuses go to the dead letters.
    async fn write_batch(
        &self,
        emitted: &[&Emitted],
        rows: Vec<(usize, usize)>,
        now_ms: i64,
    ) -> Result<Vec<(usize, Refusal)>, ExecutionError> {
        let values: Vec<RowValues<'_>> = rows
            .iter()
            .map(|&(batch, row)| RowValues {
                emitted: emitted[batch],
                row,
                version: &self.version,
                now_ms,
            })
            .collect();
        let sent = if let [single] = values.as_slice() {
            self.session
                .execute_unpaged(&self.insert, single)
                .await
                .map(|_| ())
        } else {
            let mut statement = Batch::new(BatchType::Unlogged);
            for _ in 0..values.len() {
                statement.append_statement(self.insert.clone());
            }
            self.session.batch(&statement, &values).await.map(|_| ())
        };
        match sent {
            Ok(()) => Ok(Vec::new()),
            Err(error) if refused_for_good(&error) && rows.len() > 1 => {
                let mut refused = Vec::new();
                for (&(batch, row), values) in rows.iter().zip(values) {
                    if let Err(error) = self.session.execute_unpaged(&self.insert, values).await {
                        if !refused_for_good(&error) {
                            return Err(error);
                        }
                        refused.push((batch, refusal(row, &error)));
                    }
                }
                Ok(refused)
            }
            Err(error) if refused_for_good(&error) => Ok(rows
                .first()
                .map(|&(batch, row)| (batch, refusal(row, &error)))
                .into_iter()
                .collect()),
            Err(error) => Err(error),
        }
    }

    /// Deletes the rows of windows that no longer exist (sessions merged into another, or
    /// whose start moved); deleting a row never written is harmless.
    pub async fn delete(&self, windows: &[(Box<str>, Window)]) -> Result<(), CassandraError> {
        let keys: Vec<(String, CqlTimestamp)> = windows
            .iter()
            .map(|(key, window)| (key.to_string(), CqlTimestamp(window.start.millis())))
            .collect();
        stream::iter(keys)
            .map(|values| async move {
                self.session
                    .execute_unpaged(&self.delete, values)
                    .await
                    .map(|_| ())
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<()>()
            .await
            .map_err(failed("deleting the rows of merged sessions"))
    }
}

/// One result row as the insert binds it, read in place from the emit: building owned values
/// per row (a `String` for the key and the version, a `Vec` per row) cost the platform about 8%
/// of its CPU on the benchmark.
struct RowValues<'a> {
    emitted: &'a Emitted,
    row: usize,
    version: &'a str,
    now_ms: i64,
}

/// The insert's columns and the row's values disagree in number: the table's outputs are not
/// the app's, which `ResultsTable::open` rules out.
#[derive(Debug, thiserror::Error)]
#[error("the insert has {columns} columns, the row {values} values")]
struct ColumnCount {
    columns: usize,
    values: usize,
}

impl SerializeRow for RowValues<'_> {
    fn serialize(
        &self,
        ctx: &RowSerializationContext<'_>,
        writer: &mut RowWriter,
    ) -> Result<(), SerializationError> {
        let Self {
            emitted,
            row,
            version,
            now_ms,
        } = *self;
        let columns = ctx.columns();
        let outputs = &emitted.outputs.columns;
        let mismatch = || {
            SerializationError::new(ColumnCount {
                columns: columns.len(),
                values: outputs.len() + 6,
            })
        };
        if columns.len() != outputs.len() + 6 {
            return Err(mismatch());
        }
        let (key, window) = &emitted.windows[row];
        let mut types = columns.iter().map(|c| c.typ());
        let mut put = |value: &dyn SerializeValue| -> Result<(), SerializationError> {
            let typ = types.next().ok_or_else(mismatch)?;
            value.serialize(typ, writer.make_cell_writer()).map(|_| ())
        };
        put(&key.as_str())?;
        put(&CqlTimestamp(window.start.millis()))?;
        put(&CqlTimestamp(window.end.millis()))?;
        for column in outputs {
            match cell(column, row) {
                None => put(&None::<bool>)?,
                Some(Cell::Bool(b)) => put(&b)?,
                Some(Cell::Int(i)) => put(&i)?,
                Some(Cell::Double(d)) => put(&d)?,
                Some(Cell::Text(t)) => put(&t)?,
                Some(Cell::Time(t)) => put(&CqlTimestamp(t))?,
            }
        }
        put(&emitted.closed)?;
        put(&version)?;
        put(&CqlTimestamp(now_ms))
    }

    fn is_empty(&self) -> bool {
        false
    }
}

async fn existing_columns(
    session: &Session,
    ks: &str,
    table: &str,
) -> Result<Vec<String>, CassandraError> {
    let result = session
        .query_unpaged(
            "SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?",
            (ks, table),
        )
        .await
        .map_err(failed(format!("reading the columns of {ks}.{table}")))?;
    let rows = result
        .into_rows_result()
        .map_err(|e| CassandraError::new("reading table columns", e.to_string()))?;
    let names = rows
        .rows::<(String,)>()
        .map_err(|e| CassandraError::new("reading table columns", e.to_string()))?
        .filter_map(Result::ok)
        .map(|(name,)| name)
        .collect();
    Ok(names)
}

fn refusal(row: usize, error: &ExecutionError) -> Refusal {
    Refusal {
        row,
        reason: format!(
            "Cassandra refused the result row for good: {error}; it is on the results topic but \
             not in the table"
        ),
    }
}

/// The rows to write, as (emit, row) pairs grouped into unlogged batches: each (key, window)
/// once, from the last emit that holds it; each key's rows together; at most
/// `BATCH_PARTITIONS` keys and about `BATCH_BYTES` per batch.
fn plan_batches(emitted: &[&Emitted]) -> Vec<Vec<(usize, usize)>> {
    let rows: usize = emitted.iter().map(|e| e.windows.len()).sum();
    // Keys numbered in the order they first appear, and each (key, window)'s last row: one
    // list sorted once, instead of a list per key.
    let mut keys: HashMap<&str, u32, RandomState> =
        HashMap::with_capacity_and_hasher(rows, RandomState::default());
    let mut latest: HashMap<(u32, i64), usize, RandomState> =
        HashMap::with_capacity_and_hasher(rows, RandomState::default());
    let mut picked: Vec<(u32, usize, usize)> = Vec::with_capacity(rows);
    for (batch, e) in emitted.iter().enumerate() {
        for (row, (key, window)) in e.windows.iter().enumerate() {
            let next = keys.len() as u32;
            let key = *keys.entry(key.as_str()).or_insert(next);
            match latest.entry((key, window.start.millis())) {
                Entry::Occupied(at) => picked[*at.get()] = (key, batch, row),
                Entry::Vacant(at) => {
                    at.insert(picked.len());
                    picked.push((key, batch, row));
                }
            }
        }
    }
    // Keys in the order they first appear, each key's rows in emit order: the same input, the
    // same batches.
    picked.sort_unstable();
    let mut batches = Vec::new();
    let (mut current, mut partitions, mut bytes) = (Vec::new(), 0, 0);
    let mut previous = None;
    for (key, batch, row) in picked {
        let size = emitted[batch].row_bytes(row) + ROW_OVERHEAD;
        let new_partition = previous.replace(key) != Some(key);
        if !current.is_empty()
            && (bytes + size > BATCH_BYTES || (new_partition && partitions == BATCH_PARTITIONS))
        {
            batches.push(std::mem::take(&mut current));
            (partitions, bytes) = (0, 0);
        }
        if new_partition || current.is_empty() {
            partitions += 1;
        }
        current.push((batch, row));
        bytes += size;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{Batch, Column};
    use crate::time::EventTime;

    fn emit(rows: &[(&str, i64, i64)], closed: bool) -> Emitted {
        Emitted {
            windows: rows
                .iter()
                .map(|&(key, day, _)| {
                    let start = EventTime::from_millis(day * 86_400_000);
                    let end = EventTime::from_millis((day + 1) * 86_400_000);
                    (key.to_string(), Window { start, end })
                })
                .collect(),
            outputs: Batch {
                rows: rows.len() as u32,
                columns: vec![Column::Integers(rows.iter().map(|r| r.2).collect())],
            },
            closed,
        }
    }

    #[test]
    fn a_window_in_several_emits_is_written_once_with_its_last_values() {
        let first = emit(&[("a", 1, 10), ("b", 1, 20)], false);
        let second = emit(&[("a", 1, 11)], true);
        let batches = plan_batches(&[&first, &second]);
        let rows: Vec<(usize, usize)> = batches.concat();
        assert_eq!(rows.len(), 2);
        assert!(rows.contains(&(1, 0)), "{rows:?}");
        assert!(rows.contains(&(0, 1)), "{rows:?}");
    }

    #[test]
    fn a_key_s_windows_share_a_batch_and_a_batch_holds_at_most_ten_keys() {
        let rows: Vec<(String, i64, i64)> = (0..25)
            .flat_map(|k| (0..3).map(move |d| (format!("k{k}"), d, k)))
            .collect();
        let refs: Vec<(&str, i64, i64)> =
            rows.iter().map(|(k, d, v)| (k.as_str(), *d, *v)).collect();
        let all = emit(&refs, true);
        let e = [&all];
        let batches = plan_batches(&e);
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 75);
        for batch in &batches {
            let keys: std::collections::BTreeSet<&str> = batch
                .iter()
                .map(|&(b, r)| e[b].windows[r].0.as_str())
                .collect();
            assert!(keys.len() <= BATCH_PARTITIONS, "{keys:?}");
        }
        for k in 0..25 {
            let key = format!("k{k}");
            let holding = batches
                .iter()
                .filter(|b| b.iter().any(|&(x, r)| e[x].windows[r].0 == key))
                .count();
            assert_eq!(holding, 1, "{key} is split");
        }
    }
}
