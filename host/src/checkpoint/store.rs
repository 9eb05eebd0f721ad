//! Checkpoints in Cassandra, in the platform's own keyspace (tenants never read it): a head row
//! per (tenant, app, partition) names the newest epoch, whose state lies in chunks beside it.
//! A new epoch's chunks are written before its head, so a reader never sees half a checkpoint.

use std::sync::Arc;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;

use super::{decode_windows, encode_windows, CheckpointError, PartitionCheckpoint, SavedBy};
use crate::names::TenantId;
use crate::sink::cassandra::{failed, CassandraError};
use crate::time::EventTime;

/// The platform's keyspace.
pub const KEYSPACE: &str = "mysimbdp";

/// Bytes per chunk row: well under Cassandra's mutation limits.
const CHUNK: usize = 256 * 1024;

/// Reads and writes the checkpoints of every app on the host.
pub struct CheckpointStore {
    session: Arc<Session>,
    head: PreparedStatement,
    select_head: PreparedStatement,
    insert_chunk: PreparedStatement,
    select_chunks: PreparedStatement,
    delete_chunks: PreparedStatement,
}

type Head = (i64, i64, i64, i64, String, i32, String, i32);

fn rows_error(doing: &str) -> impl Fn(String) -> CassandraError + '_ {
    move |reason| CassandraError {
        doing: doing.into(),
        reason,
    }
}

impl CheckpointStore {
    /// Creates the keyspace and tables when missing and prepares the statements.
    pub async fn open(session: Arc<Session>, replication: u32) -> Result<Self, CassandraError> {
        let ddl = [
            format!(
                "CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = \
                 {{'class': 'SimpleStrategy', 'replication_factor': {replication}}}"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {KEYSPACE}.checkpoints (tenant text, app text, \
                 partition int, epoch bigint, next_offset bigint, clock bigint, watermark bigint, \
                 app_version text, state_version int, geometry text, chunks int, windows int, \
                 written_at timestamp, PRIMARY KEY ((tenant, app), partition))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {KEYSPACE}.checkpoint_chunks (tenant text, app text, \
                 partition int, epoch bigint, chunk int, data blob, \
                 PRIMARY KEY ((tenant, app, partition, epoch), chunk))"
            ),
        ];
        for statement in ddl {
            session
                .query_unpaged(statement.as_str(), &[])
                .await
                .map_err(failed(format!(
                    "creating the checkpoint store: {statement}"
                )))?;
        }
        let prepare = |cql: String| {
            let session = session.clone();
            async move {
                session
                    .prepare(cql.as_str())
                    .await
                    .map_err(|e| CassandraError {
                        doing: format!("preparing {cql}"),
                        reason: e.to_string(),
                    })
            }
        };
        Ok(Self {
            head: prepare(format!(
                "INSERT INTO {KEYSPACE}.checkpoints (tenant, app, partition, epoch, next_offset, \
                 clock, watermark, app_version, state_version, geometry, chunks, windows, \
                 written_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            select_head: prepare(format!(
                "SELECT epoch, next_offset, clock, watermark, app_version, state_version, \
                 geometry, chunks FROM {KEYSPACE}.checkpoints \
                 WHERE tenant = ? AND app = ? AND partition = ?"
            ))
            .await?,
            insert_chunk: prepare(format!(
                "INSERT INTO {KEYSPACE}.checkpoint_chunks (tenant, app, partition, epoch, chunk, \
                 data) VALUES (?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            select_chunks: prepare(format!(
                "SELECT chunk, data FROM {KEYSPACE}.checkpoint_chunks \
                 WHERE tenant = ? AND app = ? AND partition = ? AND epoch = ?"
            ))
            .await?,
            delete_chunks: prepare(format!(
                "DELETE FROM {KEYSPACE}.checkpoint_chunks \
                 WHERE tenant = ? AND app = ? AND partition = ? AND epoch = ?"
            ))
            .await?,
            session,
        })
    }

    async fn head(
        &self,
        tenant: &TenantId,
        app: &str,
        partition: i32,
    ) -> Result<Option<Head>, CassandraError> {
        let doing = format!("reading the checkpoint of {tenant}/{app} partition {partition}");
        let result = self
            .session
            .execute_unpaged(&self.select_head, (tenant.as_str(), app, partition))
            .await
            .map_err(failed(doing.clone()))?;
        let rows = result
            .into_rows_result()
            .map_err(|e| rows_error(&doing)(e.to_string()))?;
        let head = rows
            .maybe_first_row::<Head>()
            .map_err(|e| rows_error(&doing)(e.to_string()))?;
        Ok(head)
    }

    /// Saves one partition's checkpoint as a new epoch, then drops the epoch it replaces.
    pub async fn save(
        &self,
        tenant: &TenantId,
        app: &str,
        checkpoint: &PartitionCheckpoint,
        now_ms: i64,
    ) -> Result<(), CassandraError> {
        let t = tenant.as_str();
        let p = checkpoint.partition;
        let doing = format!("saving the checkpoint of {tenant}/{app} partition {p}");
        let previous = self.head(tenant, app, p).await?.map(|h| h.0);
        // Unique per save, and growing, so concurrent writers never share an epoch.
        let epoch = (now_ms << 16) | (rand_u16() as i64);
        let bytes = encode_windows(&checkpoint.windows);
        let chunks: Vec<&[u8]> = if bytes.is_empty() {
            Vec::new()
        } else {
            bytes.chunks(CHUNK).collect()
        };
        let writes = chunks.iter().enumerate().map(|(i, data)| {
            self.session.execute_unpaged(
                &self.insert_chunk,
                (t, app, p, epoch, i as i32, data.to_vec()),
            )
        });
        for result in futures::future::join_all(writes).await {
            result.map_err(failed(doing.clone()))?;
        }
        let by = &checkpoint.saved_by;
        self.session
            .execute_unpaged(
                &self.head,
                (
                    t,
                    app,
                    p,
                    epoch,
                    checkpoint.next_offset,
                    checkpoint.clock.millis(),
                    checkpoint.watermark.millis(),
                    by.version.as_str(),
                    by.state_version as i32,
                    by.geometry.as_str(),
                    chunks.len() as i32,
                    checkpoint.windows.len() as i32,
                    CqlTimestamp(now_ms),
                ),
            )
            .await
            .map_err(failed(doing.clone()))?;
        if let Some(previous) = previous.filter(|e| *e != epoch) {
            self.session
                .execute_unpaged(&self.delete_chunks, (t, app, p, previous))
                .await
                .map_err(failed(doing))?;
        }
        Ok(())
    }

    /// The newest checkpoint of a partition, if one was ever saved.
    pub async fn load(
        &self,
        tenant: &TenantId,
        app: &str,
        partition: i32,
    ) -> Result<Option<PartitionCheckpoint>, CheckpointError> {
        // A concurrent save may drop the epoch between reading the head and its chunks: then
        // the head has moved on, and reading it again finds the new epoch.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let Some(head) = self.head(tenant, app, partition).await? else {
                return Ok(None);
            };
            match self.read(tenant, app, partition, head).await? {
                Some(checkpoint) => return Ok(Some(checkpoint)),
                None if attempts < 5 => continue,
                None => {
                    return Err(CheckpointError::Damaged {
                        partition,
                        reason: "chunks of the newest epoch are missing".into(),
                    })
                }
            }
        }
    }

    async fn read(
        &self,
        tenant: &TenantId,
        app: &str,
        partition: i32,
        head: Head,
    ) -> Result<Option<PartitionCheckpoint>, CheckpointError> {
        let (epoch, next_offset, clock, watermark, version, state_version, geometry, chunks) = head;
        let doing = format!("reading the checkpoint of {tenant}/{app} partition {partition}");
        let mut bytes = Vec::new();
        if chunks > 0 {
            let result = self
                .session
                .execute_unpaged(
                    &self.select_chunks,
                    (tenant.as_str(), app, partition, epoch),
                )
                .await
                .map_err(failed(doing.clone()))?;
            let rows = result
                .into_rows_result()
                .map_err(|e| rows_error(&doing)(e.to_string()))?;
            let mut parts: Vec<(i32, Vec<u8>)> = rows
                .rows::<(i32, Vec<u8>)>()
                .map_err(|e| rows_error(&doing)(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| rows_error(&doing)(e.to_string()))?;
            if parts.len() != chunks as usize {
                return Ok(None);
            }
            parts.sort_by_key(|(i, _)| *i);
            for (_, data) in parts {
                bytes.extend_from_slice(&data);
            }
        }
        let windows = if bytes.is_empty() {
            Vec::new()
        } else {
            decode_windows(&bytes)
                .map_err(|reason| CheckpointError::Damaged { partition, reason })?
        };
        Ok(Some(PartitionCheckpoint {
            partition,
            next_offset,
            clock: EventTime::from_millis(clock),
            watermark: EventTime::from_millis(watermark),
            saved_by: SavedBy {
                version,
                state_version: state_version.max(0) as u32,
                geometry,
            },
            windows,
        }))
    }
}

/// A little randomness without a dependency: std's per-process random hash keys.
fn rand_u16() -> u16 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id()) as u16
}
