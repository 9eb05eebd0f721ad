//! The services check (Kafka and Cassandra must answer, or the test fails) and reading the
//! reviews app's table back from Cassandra.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::response::PagingState;
use scylla::statement::unprepared::Statement;
use scylla::value::CqlTimestamp;

use crate::access::{
    cassandra_builder, cassandra_builder_for, cassandra_node, kafka_bootstrap, kafka_client,
};
use crate::reviews::{DailyAggregate, WindowKey};
use crate::{block_on, AGGREGATED_REVIEWS};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// What answered when the services were checked.
#[derive(Debug, Clone)]
pub struct Services {
    pub kafka_brokers: usize,
    pub cassandra_version: String,
}

impl Services {
    /// Asks Kafka for its metadata and Cassandra for its release version. Integration tests call
    /// this first and fail (never skip) with a pointer to `just up` when either does not answer.
    pub fn check() -> Result<Services> {
        let kafka = check_kafka();
        let cassandra = check_cassandra();
        match (kafka, cassandra) {
            (Ok(kafka_brokers), Ok(cassandra_version)) => Ok(Services {
                kafka_brokers,
                cassandra_version,
            }),
            (kafka, cassandra) => {
                let describe = |r: Result<String>| match r {
                    Ok(s) => format!("ok ({s})"),
                    Err(e) => format!("NOT REACHABLE: {e:#}"),
                };
                bail!(
                    "the integration tests need real Kafka and Cassandra; start them with \
                     `just up` (or run `just test`, which starts them)\n  Kafka at {}: \
                     {}\n  Cassandra at {}: {}",
                    kafka_bootstrap(),
                    describe(kafka.map(|n| format!("{n} broker(s)"))),
                    cassandra_node(),
                    describe(cassandra.map(|v| format!("release {v}")))
                )
            }
        }
    }
}

fn check_kafka() -> Result<usize> {
    let consumer: BaseConsumer = kafka_client()?
        .set("socket.connection.setup.timeout.ms", "10000")
        .create()
        .context("cannot create a Kafka client")?;
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(15))
        .context("the metadata request failed")?;
    if metadata.brokers().is_empty() {
        bail!("the metadata lists no brokers");
    }
    Ok(metadata.brokers().len())
}

fn check_cassandra() -> Result<String> {
    block_on(async {
        let session = connect().await?;
        let result = session
            .query_unpaged("SELECT release_version FROM system.local", ())
            .await
            .context("SELECT release_version FROM system.local failed")?;
        let (version,) = result
            .into_rows_result()
            .context("system.local returned no rows")?
            .single_row::<(String,)>()
            .context("system.local has no single release_version")?;
        Ok(version)
    })?
}

/// How many client connections Cassandra has now over TLS (its `system_views.clients`), by
/// user: what the node itself says about who reached it encrypted.
pub fn encrypted_connections() -> Result<BTreeMap<String, usize>> {
    block_on(async {
        let session = connect().await?;
        let cql = "SELECT username, ssl_enabled FROM system_views.clients";
        let result = session
            .query_unpaged(cql, ())
            .await
            .with_context(|| format!("{cql} failed"))?
            .into_rows_result()
            .context("system_views.clients returned no rows")?;
        let mut by_user = BTreeMap::new();
        for row in result.rows::<(Option<String>, Option<bool>)>()? {
            let (user, ssl) = row?;
            if ssl == Some(true) {
                *by_user.entry(user.unwrap_or_default()).or_default() += 1;
            }
        }
        Ok(by_user)
    })?
}

/// A session as the platform (the services check).
async fn connect() -> Result<Session> {
    connect_with(cassandra_builder()?).await
}

async fn connect_with(builder: scylla::client::session_builder::SessionBuilder) -> Result<Session> {
    let builder = builder.connection_timeout(CONNECT_TIMEOUT);
    tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(5), builder.build())
        .await
        .map_err(|_| anyhow!("no session within {CONNECT_TIMEOUT:?}"))?
        .with_context(|| format!("cannot connect to Cassandra at {}", cassandra_node()))
}

fn is_cql_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.len() <= 48
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

type AggregateRow = (
    String,
    CqlTimestamp,
    Option<f64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// Every row of `<keyspace>.aggregated_reviews`, page by page, keyed by (product_id,
/// window_start ms): what the platform stored, to compare with the independent expectation.
pub fn read_aggregated_reviews(keyspace: &str) -> Result<BTreeMap<WindowKey, DailyAggregate>> {
    read_daily_reviews(keyspace, AGGREGATED_REVIEWS)
}

/// As [`read_aggregated_reviews`], from another table of the same columns (an app built on
/// the reviews-daily aggregate with other settings).
pub fn read_daily_reviews(
    keyspace: &str,
    table: &str,
) -> Result<BTreeMap<WindowKey, DailyAggregate>> {
    for name in [keyspace, table] {
        if !is_cql_identifier(name) {
            bail!("`{name}` is not a CQL identifier");
        }
    }
    let table = format!("{keyspace}.{table}");
    let cql = format!(
        "SELECT product_id, window_start, avg_star_rating, sum_helpful_votes, \
         sum_total_votes, number_of_reviews FROM {table}"
    );
    let mut rows = BTreeMap::new();
    each_row(&table, &cql, |row: AggregateRow| {
        let (product_id, window_start, avg, helpful, total, count) = row;
        let missing = || format!("{table}: a null column at ({product_id}, {window_start:?})");
        let aggregate = DailyAggregate {
            avg_star_rating: avg.with_context(missing)?,
            sum_helpful_votes: helpful.with_context(missing)?,
            sum_total_votes: total.with_context(missing)?,
            number_of_reviews: count.with_context(missing)?,
        };
        rows.insert((product_id, window_start.0), aggregate);
        Ok(())
    })?;
    Ok(rows)
}

/// Runs `cql` (a SELECT over `table`, `<keyspace>.<name>`) page by page and hands every row to
/// `each`; as the keyspace's tenant (its own role) with authentication on, as the platform for
/// the platform's keyspace.
pub(crate) fn each_row<R>(
    table: &str,
    cql: &str,
    mut each: impl FnMut(R) -> Result<()>,
) -> Result<()>
where
    R: for<'frame, 'metadata> DeserializeRow<'frame, 'metadata>,
{
    let keyspace = table.split('.').next().unwrap_or(table);
    let builder = cassandra_builder_for(keyspace)?;
    block_on(async {
        let session = connect_with(builder).await?;
        let mut statement = Statement::new(cql);
        statement.set_page_size(5000);
        let mut paging_state = PagingState::start();
        loop {
            let (result, paging) = session
                .query_single_page(statement.clone(), (), paging_state)
                .await
                .with_context(|| format!("cannot read {table}"))?;
            let page = result
                .into_rows_result()
                .with_context(|| format!("{table}: no rows"))?;
            for row in page
                .rows::<R>()
                .with_context(|| format!("{table}: columns"))?
            {
                each(row.with_context(|| format!("{table}: a row does not deserialize"))?)?;
            }
            match paging.into_paging_control_flow() {
                ControlFlow::Break(()) => return Ok(()),
                ControlFlow::Continue(next) => paging_state = next,
            }
        }
    })?
}

/// The (product_id, window_start ms) of every row whose `final` flag is set: the windows the
/// platform has closed.
pub fn final_windows(keyspace: &str, table: &str) -> Result<BTreeSet<WindowKey>> {
    for name in [keyspace, table] {
        if !is_cql_identifier(name) {
            bail!("`{name}` is not a CQL identifier");
        }
    }
    let table = format!("{keyspace}.{table}");
    let mut keys = BTreeSet::new();
    each_row(
        &table,
        &format!("SELECT product_id, window_start, final FROM {table}"),
        |(product, start, closed): (String, CqlTimestamp, Option<bool>)| {
            if closed == Some(true) {
                keys.insert((product, start.0));
            }
            Ok(())
        },
    )?;
    Ok(keys)
}

/// The sum of a bigint column over a whole table, e.g. the records an app counted in all its
/// windows.
pub fn sum_column(keyspace: &str, table: &str, column: &str) -> Result<i64> {
    for name in [keyspace, table, column] {
        if !is_cql_identifier(name) {
            bail!("`{name}` is not a CQL identifier");
        }
    }
    let table = format!("{keyspace}.{table}");
    let mut sum = 0i64;
    each_row(
        &table,
        &format!("SELECT {column} FROM {table}"),
        |(value,): (Option<i64>,)| {
            sum += value.unwrap_or(0);
            Ok(())
        },
    )?;
    Ok(sum)
}
