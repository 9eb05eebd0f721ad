//! Reading a table in units of work: token ranges of the whole ring, or the partitions a
//! `--where` on the partition key names. A unit is what one worker of a distributed engine
//! would take; here a few run at once and their pages go to the one aggregator.

use futures::{StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::value::{CqlValue, Row};
use tokio::sync::mpsc;

use super::plan::{Condition, Plan, TableSchema};
use super::BatchError;
use crate::sink::cassandra::CassandraError;

/// Rows asked of Cassandra per page.
const PAGE_ROWS: i32 = 5000;

/// One unit of work.
#[derive(Debug, Clone)]
pub enum Unit {
    /// Tokens `start ..= end` of the Murmur3 ring.
    Tokens { start: i64, end: i64 },
    /// The partition whose key is this value.
    Partition(CqlValue),
}

/// What the readers hand the aggregator.
#[derive(Debug)]
pub enum Message {
    Rows(Vec<Row>),
    /// A unit was read to its end.
    UnitDone,
}

/// The units that cover the rows asked for: the named partitions when `--where` names values
/// of the (single) partition key, else `ranges` equal slices of the token ring.
pub fn units(
    schema: &TableSchema,
    conditions: &[Condition],
    ranges: u32,
) -> Result<Vec<Unit>, BatchError> {
    let key = schema.partition_key();
    if let [key] = key.as_slice() {
        if let Some(condition) = conditions.iter().find(|c| c.column == *key) {
            let column = schema
                .columns
                .iter()
                .find(|c| c.name == *key)
                .map(|c| c.cql_type.as_str())
                .unwrap_or("text");
            return condition
                .values
                .iter()
                .map(|v| {
                    let value = match column {
                        "bigint" => CqlValue::BigInt(v.parse().map_err(|_| {
                            BatchError::Input(format!(
                                "`--where {key}={v}`: `{key}` is a bigint column; give an integer"
                            ))
                        })?),
                        "text" | "varchar" | "ascii" => CqlValue::Text(v.clone()),
                        other => {
                            return Err(BatchError::Input(format!(
                                "`--where {key}=...`: the partition key is a {other} column; \
                                 only text and bigint keys can be selected"
                            )))
                        }
                    };
                    Ok(Unit::Partition(value))
                })
                .collect();
        }
    }
    Ok(token_ranges(ranges.max(1)))
}

/// `n` contiguous ranges covering every token from `i64::MIN` to `i64::MAX`.
pub fn token_ranges(n: u32) -> Vec<Unit> {
    let width = (u64::MAX / u64::from(n)) as i128;
    (0..n)
        .map(|i| {
            let start = i64::MIN as i128 + width * i128::from(i);
            let end = if i + 1 == n {
                i64::MAX as i128
            } else {
                start + width - 1
            };
            Unit::Tokens {
                start: start as i64,
                end: end as i64,
            }
        })
        .collect()
}

/// Reads every unit, `concurrency` at a time, and sends their pages to `rows`. Stops early,
/// without error, when the receiver is gone (the aggregator failed and says why).
pub async fn read(
    session: &Session,
    schema: &TableSchema,
    plan: &Plan,
    units: Vec<Unit>,
    concurrency: usize,
    rows: mpsc::Sender<Message>,
) -> Result<(), BatchError> {
    let from = format!("{}.{}", schema.keyspace, schema.table);
    let columns = plan.select.join(", ");
    let key = schema.partition_key().join(", ");
    let prepare = |cql: String| async move {
        let mut statement = session
            .prepare(cql.as_str())
            .await
            .map_err(|e| CassandraError::new(format!("preparing {cql}"), e.to_string()))?;
        statement.set_page_size(PAGE_ROWS);
        Ok::<_, CassandraError>(statement)
    };
    let by_tokens = prepare(format!(
        "SELECT {columns} FROM {from} WHERE token({key}) >= ? AND token({key}) <= ?"
    ))
    .await?;
    let by_partition = match schema.partition_key().as_slice() {
        [one] => Some(prepare(format!("SELECT {columns} FROM {from} WHERE {one} = ?")).await?),
        _ => None,
    };
    futures::stream::iter(units)
        .map(|unit| {
            let rows = rows.clone();
            let (by_tokens, by_partition, from) = (&by_tokens, &by_partition, &from);
            async move {
                let failed =
                    |e: String| CassandraError::new(format!("reading {from} ({unit:?})"), e);
                let pager = match &unit {
                    Unit::Tokens { start, end } => {
                        session.execute_iter(by_tokens.clone(), (start, end)).await
                    }
                    Unit::Partition(value) => match by_partition {
                        Some(statement) => session.execute_iter(statement.clone(), (value,)).await,
                        None => return Err(failed("no single partition key".into()).into()),
                    },
                }
                .map_err(|e| failed(e.to_string()))?;
                let mut stream = pager
                    .rows_stream::<Row>()
                    .map_err(|e| failed(e.to_string()))?
                    .map_err(|e| e.to_string())
                    .chunks(PAGE_ROWS as usize);
                while let Some(page) = stream.next().await {
                    let page: Vec<Row> =
                        page.into_iter().collect::<Result<_, _>>().map_err(failed)?;
                    if rows.send(Message::Rows(page)).await.is_err() {
                        return Ok(());
                    }
                }
                let _ = rows.send(Message::UnitDone).await;
                Ok::<(), BatchError>(())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<()>()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ranges_cover_the_ring_without_overlap() {
        for n in [1, 2, 3, 7, 64, 1000] {
            let ranges: Vec<(i64, i64)> = token_ranges(n)
                .into_iter()
                .map(|u| match u {
                    Unit::Tokens { start, end } => (start, end),
                    Unit::Partition(_) => unreachable!("token ranges only"),
                })
                .collect();
            assert_eq!(ranges.len(), n as usize);
            assert_eq!(ranges[0].0, i64::MIN);
            assert_eq!(ranges[ranges.len() - 1].1, i64::MAX);
            for pair in ranges.windows(2) {
                assert!(pair[0].0 <= pair[0].1);
                assert_eq!(pair[0].1 + 1, pair[1].0, "{n} ranges: {pair:?}");
            }
        }
    }
}
