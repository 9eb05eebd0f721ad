//! Checkpoints in Cassandra, in the platform's own keyspace (tenants never read it): a version
//! row per (tenant, app, partition, epoch), whose state lies in chunks beside it. A version's
//! chunks are written before its row, so a reader never sees half a checkpoint. Versions stay
//! until a newer one is committed: an exactly-once app resumes from the version its Kafka
//! transaction committed, which may not be the newest saved.
//!
//! The earlier release kept one head row per partition (table `checkpoints`); it is still read
//! when a partition has no version yet.

use std::sync::Arc;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;

use super::{
    decode_windows, encode_windows, CheckpointError, Epoch, PartitionCheckpoint, Pick, SavedBy,
};
use crate::names::TenantId;
use crate::sink::cassandra::{failed, prepare, CassandraError};
use crate::time::EventTime;

/// The platform's keyspace.
pub const KEYSPACE: &str = "mysimbdp";

/// Bytes per chunk row: well under Cassandra's mutation limits.
const CHUNK: usize = 256 * 1024;

/// Reads and writes the checkpoints of every app on the host.
pub struct CheckpointStore {
    session: Arc<Session>,
    insert_version: PreparedStatement,
    select_version: PreparedStatement,
    select_newest: PreparedStatement,
    select_older: PreparedStatement,
    delete_older: PreparedStatement,
    select_legacy: PreparedStatement,
    insert_chunk: PreparedStatement,
    select_chunks: PreparedStatement,
    delete_chunks: PreparedStatement,
}

type Head = (i64, i64, i64, i64, String, i32, String, i32);

fn rows_error(doing: &str) -> impl Fn(String) -> CassandraError + '_ {
    move |reason| CassandraError::new(doing, reason)
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
                "CREATE TABLE IF NOT EXISTS {KEYSPACE}.checkpoint_versions (tenant text, \
                 app text, partition int, epoch bigint, next_offset bigint, clock bigint, \
                 watermark bigint, app_version text, state_version int, geometry text, \
                 chunks int, windows int, written_at timestamp, \
                 PRIMARY KEY ((tenant, app, partition), epoch)) \
                 WITH CLUSTERING ORDER BY (epoch DESC)"
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
        let prepare = |cql: String| prepare(&session, cql);
        const HEAD: &str = "epoch, next_offset, clock, watermark, app_version, state_version, \
                            geometry, chunks";
        const KEY: &str = "tenant = ? AND app = ? AND partition = ?";
        Ok(Self {
            insert_version: prepare(format!(
                "INSERT INTO {KEYSPACE}.checkpoint_versions (tenant, app, partition, epoch, \
                 next_offset, clock, watermark, app_version, state_version, geometry, chunks, \
                 windows, written_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            select_version: prepare(format!(
                "SELECT {HEAD} FROM {KEYSPACE}.checkpoint_versions WHERE {KEY} AND epoch = ?"
            ))
            .await?,
            select_newest: prepare(format!(
                "SELECT {HEAD} FROM {KEYSPACE}.checkpoint_versions WHERE {KEY} LIMIT 1"
            ))
            .await?,
            select_older: prepare(format!(
                "SELECT epoch FROM {KEYSPACE}.checkpoint_versions WHERE {KEY} AND epoch < ?"
            ))
            .await?,
            delete_older: prepare(format!(
                "DELETE FROM {KEYSPACE}.checkpoint_versions WHERE {KEY} AND epoch < ?"
            ))
            .await?,
            select_legacy: prepare(format!(
                "SELECT {HEAD} FROM {KEYSPACE}.checkpoints WHERE {KEY}"
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

    /// The head fields of the one row `statement` selects with `values`, if any.
    async fn head(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
        doing: &str,
    ) -> Result<Option<Head>, CassandraError> {
        let result = self
            .session
            .execute_unpaged(statement, values)
            .await
            .map_err(failed(doing.to_owned()))?;
        let rows = result
            .into_rows_result()
            .map_err(|e| rows_error(doing)(e.to_string()))?;
        rows.maybe_first_row::<Head>()
            .map_err(|e| rows_error(doing)(e.to_string()))
    }

    /// Saves one partition's checkpoint as version `epoch`; older versions stay until
    /// [`prune`](Self::prune).
    pub async fn save(
        &self,
        tenant: &TenantId,
        app: &str,
        checkpoint: &PartitionCheckpoint,
        epoch: Epoch,
        now_ms: i64,
    ) -> Result<(), CassandraError> {
        let t = tenant.as_str();
        let p = checkpoint.partition;
        let doing = format!("saving the checkpoint of {tenant}/{app} partition {p}");
        let bytes = encode_windows(&checkpoint.windows);
        let chunks: Vec<&[u8]> = if bytes.is_empty() {
            Vec::new()
        } else {
            bytes.chunks(CHUNK).collect()
        };
        let writes = chunks.iter().enumerate().map(|(i, data)| {
            self.session.execute_unpaged(
                &self.insert_chunk,
                (t, app, p, epoch.get(), i as i32, data.to_vec()),
            )
        });
        for result in futures::future::join_all(writes).await {
            result.map_err(failed(doing.clone()))?;
        }
        let by = &checkpoint.saved_by;
        self.session
            .execute_unpaged(
                &self.insert_version,
                (
                    t,
                    app,
                    p,
                    epoch.get(),
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
            .map_err(failed(doing))?;
        Ok(())
    }

    /// Drops the versions of a partition older than `kept`, once `kept` is committed.
    pub async fn prune(
        &self,
        tenant: &TenantId,
        app: &str,
        partition: i32,
        kept: Epoch,
    ) -> Result<(), CassandraError> {
        let t = tenant.as_str();
        let doing = format!("pruning the checkpoints of {tenant}/{app} partition {partition}");
        let result = self
            .session
            .execute_unpaged(&self.select_older, (t, app, partition, kept.get()))
            .await
            .map_err(failed(doing.clone()))?;
        let older: Vec<i64> = result
            .into_rows_result()
            .map_err(|e| rows_error(&doing)(e.to_string()))?
            .rows::<(i64,)>()
            .map_err(|e| rows_error(&doing)(e.to_string()))?
            .filter_map(Result::ok)
            .map(|(epoch,)| epoch)
            .collect();
        if older.is_empty() {
            return Ok(());
        }
        self.session
            .execute_unpaged(&self.delete_older, (t, app, partition, kept.get()))
            .await
            .map_err(failed(doing.clone()))?;
        let deletes = older.iter().map(|epoch| {
            self.session
                .execute_unpaged(&self.delete_chunks, (t, app, partition, *epoch))
        });
        for result in futures::future::join_all(deletes).await {
            result.map_err(failed(doing.clone()))?;
        }
        Ok(())
    }

    /// The checkpoint of a partition that `pick` names, if there is one.
    pub async fn load(
        &self,
        tenant: &TenantId,
        app: &str,
        partition: i32,
        pick: Pick,
    ) -> Result<Option<PartitionCheckpoint>, CheckpointError> {
        let t = tenant.as_str();
        let doing = format!("reading the checkpoint of {tenant}/{app} partition {partition}");
        let head = match pick {
            Pick::Committed(epoch) => {
                let head = self
                    .head(
                        &self.select_version,
                        (t, app, partition, epoch.get()),
                        &doing,
                    )
                    .await?;
                let Some(head) = head else {
                    return Err(CheckpointError::Damaged {
                        partition,
                        reason: format!(
                            "the checkpoint {epoch} that Kafka's committed offset names is missing"
                        ),
                    });
                };
                head
            }
            Pick::Newest => {
                let newest = self
                    .head(&self.select_newest, (t, app, partition), &doing)
                    .await?;
                match newest {
                    Some(head) => head,
                    None => match self.legacy(t, app, partition, &doing).await? {
                        Some(head) => head,
                        None => return Ok(None),
                    },
                }
            }
            Pick::Legacy => match self.legacy(t, app, partition, &doing).await? {
                Some(head) => head,
                None => return Ok(None),
            },
        };
        let epoch = head.0;
        match self.read(tenant, app, partition, head).await? {
            Some(checkpoint) => Ok(Some(checkpoint)),
            None => Err(CheckpointError::Damaged {
                partition,
                reason: format!("chunks of checkpoint {epoch} are missing"),
            }),
        }
    }

    /// The one checkpoint an earlier release kept for a partition.
    async fn legacy(
        &self,
        tenant: &str,
        app: &str,
        partition: i32,
        doing: &str,
    ) -> Result<Option<Head>, CassandraError> {
        self.head(&self.select_legacy, (tenant, app, partition), doing)
            .await
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
pub(super) fn rand_u16() -> u16 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id()) as u16
}
