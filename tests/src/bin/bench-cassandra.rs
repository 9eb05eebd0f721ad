//! What one upsert of a result row costs Cassandra, and how many it can take on this machine
//! with nothing else writing: the ceiling of the platform's end-to-end throughput. Our own
//! writer upserts rows shaped like reviews-daily's (`<key>, window_start, window_end`, four
//! outputs, `final`, `app_version`, `updated_at`) into a scratch keyspace, in the ways the
//! platform's Cassandra sink could send them: one statement per row, unlogged batches of one
//! partition's rows, unlogged batches across partitions, and the small `final`-only update.
//! Each way runs ROUNDS times, interleaved, and reports rows/s and Cassandra's CPU µs per row
//! (from /proc/<pid>/stat of the Cassandra process: `CASSANDRA_PID`, else
//! `.state/cassandra.pid`), with the machine's other load during the run.
//! Usage: `cargo run --release -p mysimbdp-tests --bin bench-cassandra [ROWS] [ROUNDS]`.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use futures::{stream, StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, CqlValue};

const DAY_MS: i64 = 86_400_000;

/// How the rows reach Cassandra.
#[derive(Clone, Copy)]
enum Way {
    /// One prepared INSERT per row, `in_flight` at once.
    Single { in_flight: usize },
    /// Unlogged batches of at most `partitions` partitions (all of each one's rows).
    Batched { partitions: usize, in_flight: usize },
    /// `UPDATE … SET final = true, updated_at = ?`, one per row.
    FinalOnly { in_flight: usize },
}

impl Way {
    fn name(self) -> String {
        match self {
            Way::Single { in_flight } => format!("one INSERT per row, {in_flight} in flight"),
            Way::Batched {
                partitions,
                in_flight,
            } => format!("unlogged batches of {partitions} partitions, {in_flight} in flight"),
            Way::FinalOnly { in_flight } => {
                format!("final-only UPDATE per row, {in_flight} in flight")
            }
        }
    }
}

/// CPU ticks of a process (user + system), from /proc.
fn process_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("unreadable /proc/{pid}/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

/// The whole machine's busy and total ticks, from /proc/stat.
fn machine_ticks() -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .next()
        .ok_or_else(|| anyhow!("empty /proc/stat"))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}

fn cassandra_pid() -> Result<u32> {
    if let Ok(pid) = std::env::var("CASSANDRA_PID") {
        return Ok(pid.parse()?);
    }
    let file = mysimbdp_tests::workspace_dir().join(".state/cassandra.pid");
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("set CASSANDRA_PID or have {}", file.display()))?;
    Ok(text.trim().parse()?)
}

/// Rows of `keys` keys with `per_key` consecutive daily windows each.
fn rows(keys: usize, per_key: usize, round: usize) -> Vec<Vec<Option<CqlValue>>> {
    let mut out = Vec::with_capacity(keys * per_key);
    for k in 0..keys {
        for w in 0..per_key {
            let start = 1_420_070_400_000 + w as i64 * DAY_MS;
            out.push(vec![
                Some(CqlValue::Text(format!("B{:09}", k * 7919 % 1_000_003))),
                Some(CqlValue::Timestamp(CqlTimestamp(start))),
                Some(CqlValue::Timestamp(CqlTimestamp(start + DAY_MS))),
                Some(CqlValue::Double(4.25)),
                Some(CqlValue::BigInt(3 + round as i64)),
                Some(CqlValue::BigInt(7)),
                Some(CqlValue::BigInt(4)),
                Some(CqlValue::Boolean(false)),
                Some(CqlValue::Text("0.3.0".into())),
                Some(CqlValue::Timestamp(CqlTimestamp(1_764_000_000_000))),
            ]);
        }
    }
    out
}

/// One run of one way: rows/s, Cassandra's and the writer's CPU µs per row, other load (cores).
type Measured = (f64, f64, f64, f64);

struct Statements {
    insert: PreparedStatement,
    final_only: PreparedStatement,
}

async fn write(
    session: &Session,
    st: &Statements,
    way: Way,
    rows: Vec<Vec<Option<CqlValue>>>,
) -> Result<()> {
    match way {
        Way::Single { in_flight } => {
            stream::iter(rows)
                .map(|v| session.execute_unpaged(&st.insert, v))
                .buffer_unordered(in_flight)
                .try_for_each(|_| async { Ok(()) })
                .await?
        }
        Way::FinalOnly { in_flight } => {
            stream::iter(rows)
                .map(|v| {
                    let values = (
                        Some(CqlValue::Timestamp(CqlTimestamp(1_764_000_000_001))),
                        v[0].clone(),
                        v[1].clone(),
                    );
                    async move { session.execute_unpaged(&st.final_only, values).await }
                })
                .buffer_unordered(in_flight)
                .try_for_each(|_| async { Ok(()) })
                .await?
        }
        Way::Batched {
            partitions,
            in_flight,
        } => {
            let mut by_key: BTreeMap<String, Vec<Vec<Option<CqlValue>>>> = BTreeMap::new();
            for v in rows {
                let key = match &v[0] {
                    Some(CqlValue::Text(k)) => k.clone(),
                    _ => String::new(),
                };
                by_key.entry(key).or_default().push(v);
            }
            let groups: Vec<Vec<Vec<Option<CqlValue>>>> = by_key.into_values().collect();
            let batches: Vec<Vec<Vec<Option<CqlValue>>>> =
                groups.chunks(partitions).map(|c| c.concat()).collect();
            stream::iter(batches)
                .map(|values| {
                    let mut batch = Batch::new(BatchType::Unlogged);
                    for _ in 0..values.len() {
                        batch.append_statement(st.insert.clone());
                    }
                    async move { session.batch(&batch, values).await }
                })
                .buffer_unordered(in_flight)
                .try_for_each(|_| async { Ok(()) })
                .await?
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let total: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let cassandra = cassandra_pid()?;
    let session = mysimbdp_tests::cassandra_builder()?
        .build()
        .await
        .context("connecting to Cassandra")?;
    let ks = format!("cwbench_{}", std::process::id());
    session
        .query_unpaged(
            format!("CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"),
            &[],
        )
        .await?;
    session
        .query_unpaged(
            format!(
                "CREATE TABLE {ks}.t (product_id text, window_start timestamp, window_end timestamp, \
                 avg_star_rating double, sum_helpful_votes bigint, sum_total_votes bigint, \
                 number_of_reviews bigint, final boolean, app_version text, updated_at timestamp, \
                 PRIMARY KEY ((product_id), window_start))"
            ),
            &[],
        )
        .await?;
    let st = Statements {
        insert: session
            .prepare(format!(
                "INSERT INTO {ks}.t (product_id, window_start, window_end, avg_star_rating, \
                 sum_helpful_votes, sum_total_votes, number_of_reviews, final, app_version, \
                 updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
        final_only: session
            .prepare(format!(
                "UPDATE {ks}.t SET final = true, updated_at = ? WHERE product_id = ? AND window_start = ?"
            ))
            .await?,
    };
    let ways = [
        (Way::Single { in_flight: 64 }, 1),
        (Way::Single { in_flight: 256 }, 1),
        (Way::Single { in_flight: 1024 }, 1),
        (Way::FinalOnly { in_flight: 256 }, 1),
        (
            Way::Batched {
                partitions: 1,
                in_flight: 256,
            },
            1,
        ),
        (
            Way::Batched {
                partitions: 1,
                in_flight: 256,
            },
            4,
        ),
        (
            Way::Batched {
                partitions: 10,
                in_flight: 64,
            },
            1,
        ),
        (
            Way::Batched {
                partitions: 10,
                in_flight: 64,
            },
            4,
        ),
    ];
    let ticks = 100.0;
    // A warm-up write of every key, not counted.
    write(&session, &st, ways[0].0, rows(total / 2, 2, 0)).await?;
    let mut results: BTreeMap<(usize, usize), Vec<Measured>> = BTreeMap::new();
    for round in 1..=rounds {
        for (i, &(way, per_key)) in ways.iter().enumerate() {
            let data = rows(total / per_key, per_key, round);
            let n = data.len();
            let (c0, m0, me0) = (
                process_ticks(cassandra)?,
                machine_ticks()?,
                process_ticks(std::process::id())?,
            );
            let started = Instant::now();
            write(&session, &st, way, data).await?;
            let wall = started.elapsed().as_secs_f64();
            let (c1, m1, me1) = (
                process_ticks(cassandra)?,
                machine_ticks()?,
                process_ticks(std::process::id())?,
            );
            let cass_s = (c1 - c0) as f64 / ticks;
            let ours_s = (me1 - me0) as f64 / ticks;
            let busy_s = (m1.0 - m0.0) as f64 / ticks;
            let other = (busy_s - cass_s - ours_s).max(0.0) / wall;
            results.entry((i, per_key)).or_default().push((
                n as f64 / wall,
                cass_s * 1e6 / n as f64,
                ours_s * 1e6 / n as f64,
                other,
            ));
            println!(
                "round {round}: {} ({per_key} window(s) per key): {n} rows in {wall:.2} s = {:.0} rows/s; \
                 Cassandra {cass_s:.2} CPU s = {:.1} µs/row; writer {:.1} µs/row; other load {other:.2} cores",
                way.name(),
                n as f64 / wall,
                cass_s * 1e6 / n as f64,
                ours_s * 1e6 / n as f64,
            );
        }
    }
    println!("\nsummary over {rounds} rounds (min / median / max):");
    println!("| way | windows per key | rows/s | Cassandra CPU µs per row | writer CPU µs per row | other load (cores) |");
    println!("|---|---|---|---|---|---|");
    for ((i, per_key), runs) in &results {
        let stat = |f: fn(&Measured) -> f64, digits: usize| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            format!(
                "{:.d$} / {:.d$} / {:.d$}",
                v[0],
                v[v.len() / 2],
                v[v.len() - 1],
                d = digits
            )
        };
        println!(
            "| {} | {per_key} | {} | {} | {} | {} |",
            ways[*i].0.name(),
            stat(|r| r.0, 0),
            stat(|r| r.1, 1),
            stat(|r| r.2, 1),
            stat(|r| r.3, 2)
        );
    }
    session
        .query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await?;
    Ok(())
}
