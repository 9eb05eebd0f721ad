//! The tenant's keyspace in Cassandra: one table per app, one row per (key, window), written as
//! idempotent upserts so that a replayed window overwrites itself instead of piling up rows.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, CqlValue};

use super::{cell, Cell, Emitted};
use crate::access::CassandraAccess;
use crate::names::TenantId;
use crate::plugin::{AppSpec, FieldSpec, FieldType};
use crate::window::Window;

/// How many upserts are in flight at once per app.
const CONCURRENCY: usize = 64;

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
        .map_err(|e| CassandraError::new(format!("connecting to {nodes:?}"), e.to_string()))
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

    /// Upserts every row; returns when all are acknowledged, with the rows Cassandra refused
    /// for good (a key over its 64 KiB limit, a mutation over its size limit): retrying those
    /// would fail the same way, so they go to the dead letters instead of stopping the app.
    pub async fn write(
        &self,
        emitted: &Emitted,
        now_ms: i64,
    ) -> Result<Vec<Refusal>, CassandraError> {
        let rows = (0..emitted.len()).map(|row| (row, self.values(emitted, row, now_ms)));
        let outcomes: Vec<Option<Refusal>> = stream::iter(rows)
            .map(|(row, values)| async move {
                match self.session.execute_unpaged(&self.insert, values).await {
                    Ok(_) => Ok(None),
                    Err(error) if refused_for_good(&error) => Ok(Some(Refusal {
                        row,
                        reason: format!(
                            "Cassandra refused the result row for good: {error}; it is on the \
                             results topic but not in the table"
                        ),
                    })),
                    Err(error) => Err(error),
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await
            .map_err(failed("writing results"))?;
        Ok(outcomes.into_iter().flatten().collect())
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

    fn values(&self, emitted: &Emitted, row: usize, now_ms: i64) -> Vec<Option<CqlValue>> {
        let (key, window) = &emitted.windows[row];
        let mut values = Vec::with_capacity(emitted.outputs.columns.len() + 6);
        values.push(Some(CqlValue::Text(key.clone())));
        values.push(Some(CqlValue::Timestamp(CqlTimestamp(
            window.start.millis(),
        ))));
        values.push(Some(CqlValue::Timestamp(CqlTimestamp(window.end.millis()))));
        values.extend(emitted.outputs.columns.iter().map(|c| {
            cell(c, row).map(|cell| match cell {
                Cell::Bool(b) => CqlValue::Boolean(b),
                Cell::Int(i) => CqlValue::BigInt(i),
                Cell::Double(d) => CqlValue::Double(d),
                Cell::Text(t) => CqlValue::Text(t.to_owned()),
                Cell::Time(t) => CqlValue::Timestamp(CqlTimestamp(t)),
            })
        }));
        values.push(Some(CqlValue::Boolean(emitted.closed)));
        values.push(Some(CqlValue::Text(self.version.clone())));
        values.push(Some(CqlValue::Timestamp(CqlTimestamp(now_ms))));
        values
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
