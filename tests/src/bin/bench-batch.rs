//! `mysimbdp batch` against the report's way (Pandas over the whole table in one process) on the
//! same machine: a daily results table of N rows (default 1 million) is written straight into
//! Cassandra, then both compute the all-time and the seasonal figures, and both results are
//! compared with a computation here from the rows written. Prints rows/s of each. Run by
//! `scripts/bench-batch.sh` (in `just bench`), which sets up the Pandas venv.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use futures_like::run_all;
use mysimbdp_tests::{
    all_time_from_csv, auth_on, batch_command, cassandra_builder, cassandra_node, diff_maps,
    expected_history, read_all_time, read_seasonal, seasonal_from_csv, secret_file,
    tenant_app_wasm, DailyAggregate, Services, TestEnv, Totals, WindowKey, MS_PER_DAY,
    PLATFORM_USER,
};
use scylla::value::CqlTimestamp;

/// 2010-01-01 as days since the epoch.
const FIRST_DAY: i64 = 14_610;
const DAYS_PER_PRODUCT: usize = 400;

mod futures_like {
    use std::future::Future;

    /// Runs the futures with at most `limit` in flight.
    pub async fn run_all<F, T>(futures: Vec<F>, limit: usize) -> Vec<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(limit));
        let mut handles = Vec::with_capacity(futures.len());
        for future in futures {
            let permit = semaphore.clone().acquire_owned().await;
            handles.push(tokio::spawn(async move {
                let out = future.await;
                drop(permit);
                out
            }));
        }
        let mut out = Vec::with_capacity(handles.len());
        for handle in handles {
            if let Ok(value) = handle.await {
                out.push(value);
            }
        }
        out
    }
}

/// A deterministic day of a product: reviews, whole stars, helpful and total votes.
fn day(product: usize, day: usize) -> DailyAggregate {
    let mut x = (product as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (day as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    let reviews = 1 + (x % 20) as i64;
    let stars = reviews + ((x >> 8) % (4 * reviews as u64 + 1)) as i64;
    let total = ((x >> 20) % 50) as i64;
    let helpful = ((x >> 30) % (total as u64 + 1)) as i64;
    DailyAggregate {
        avg_star_rating: stars as f64 / reviews as f64,
        sum_helpful_votes: helpful,
        sum_total_votes: total,
        number_of_reviews: reviews,
    }
}

fn main() -> Result<()> {
    let rows: usize = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |a| a.parse())
        .context("rows")?;
    let venv_python = std::env::args().nth(2).unwrap_or_else(|| "python3".into());
    Services::check()?;
    let env = TestEnv::new()?;
    let ks = env.tenant.clone();
    let products = rows.div_ceil(DAYS_PER_PRODUCT);
    let mut days: BTreeMap<WindowKey, DailyAggregate> = BTreeMap::new();
    for p in 0..products {
        for d in 0..DAYS_PER_PRODUCT {
            if days.len() == rows {
                break;
            }
            let start = (FIRST_DAY + (d as i64) * 3) * MS_PER_DAY;
            days.insert((format!("P{p:07}"), start), day(p, d));
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let write_started = Instant::now();
    runtime.block_on(async {
        let session = Arc::new(cassandra_builder()?.build().await?);
        session
            .query_unpaged(format!("CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"), &[])
            .await?;
        session
            .query_unpaged(
                format!(
                    "CREATE TABLE {ks}.aggregated_reviews (product_id text, window_start timestamp, \
                     window_end timestamp, avg_star_rating double, sum_helpful_votes bigint, \
                     sum_total_votes bigint, number_of_reviews bigint, final boolean, app_version text, \
                     updated_at timestamp, PRIMARY KEY ((product_id), window_start))"
                ),
                &[],
            )
            .await?;
        let insert = session
            .prepare(format!(
                "INSERT INTO {ks}.aggregated_reviews (product_id, window_start, window_end, avg_star_rating, \
                 sum_helpful_votes, sum_total_votes, number_of_reviews, final, app_version) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, true, '1.0.0')"
            ))
            .await?;
        let writes: Vec<_> = days
            .iter()
            .map(|((product, start), d)| {
                let (session, insert) = (session.clone(), insert.clone());
                let values = (
                    product.clone(),
                    CqlTimestamp(*start),
                    CqlTimestamp(start + MS_PER_DAY),
                    d.avg_star_rating,
                    d.sum_helpful_votes,
                    d.sum_total_votes,
                    d.number_of_reviews,
                );
                async move { session.execute_unpaged(&insert, values).await.map(|_| ()) }
            })
            .collect();
        let results = run_all(writes, 256).await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        if failed > 0 || results.len() != days.len() {
            bail!("{failed} of {} writes failed", days.len());
        }
        Ok::<(), anyhow::Error>(())
    })?;
    eprintln!(
        "wrote {} daily rows of {products} products in {:.1} s",
        days.len(),
        write_started.elapsed().as_secs_f64()
    );
    let want = expected_history(&days, None);
    let mut report = Vec::new();
    let mut failures = Vec::new();
    let same = |a: &Totals, b: &Totals| a.matches(b);
    for app in ["product-all-time", "product-seasonality"] {
        let started = Instant::now();
        let output = batch_command()?
            .args([
                "--tenant",
                &ks,
                "--from",
                "aggregated_reviews",
                "--json",
                "--app",
            ])
            .arg(tenant_app_wasm(app)?)
            .output()?;
        if !output.status.success() {
            bail!(
                "mysimbdp batch {app}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let seconds = started.elapsed().as_secs_f64();
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        report.push(format!(
            "| mysimbdp batch {app} | {} | {seconds:.1} s (process) | {:.0} rows/s |",
            summary["rows_read"],
            summary["rows_per_second"].as_f64().unwrap_or(0.0)
        ));
    }
    failures.extend(diff_maps(
        "mysimbdp all-time",
        &want.all_time,
        &read_all_time(&ks)?,
        same,
        5,
    ));
    failures.extend(diff_maps(
        "mysimbdp seasonal",
        &want.seasonal,
        &read_seasonal(&ks)?,
        same,
        5,
    ));
    let script = mysimbdp_tests::workspace_dir().join("bench/batch/pandas_history.py");
    let mut pandas = Command::new(&venv_python);
    pandas
        .arg(&script)
        .arg(&ks)
        .arg(&env.scratch)
        .env("MYSIMBDP_CASSANDRA_NODE", cassandra_node());
    if auth_on() {
        pandas.env("MYSIMBDP_CASSANDRA_USER", PLATFORM_USER).env(
            "MYSIMBDP_CASSANDRA_PASSWORD_FILE",
            secret_file("cassandra-platform.password"),
        );
    }
    let output = pandas.output()?;
    if !output.status.success() {
        bail!("pandas: {}", String::from_utf8_lossy(&output.stderr));
    }
    let pandas: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    report.push(format!(
        "| Pandas, whole table in one process (read {:.1} s + compute {:.1} s) | {} | {:.1} s | {:.0} rows/s |",
        pandas["read_seconds"].as_f64().unwrap_or(0.0),
        pandas["compute_seconds"].as_f64().unwrap_or(0.0),
        pandas["rows"],
        pandas["seconds"].as_f64().unwrap_or(0.0),
        pandas["rows_per_second"].as_f64().unwrap_or(0.0)
    ));
    let read = |name: &str| {
        std::fs::read_to_string(env.scratch.join(name)).with_context(|| name.to_owned())
    };
    failures.extend(diff_maps(
        "Pandas all-time",
        &want.all_time,
        &all_time_from_csv(&read("pandas_all_time.csv")?)?,
        same,
        5,
    ));
    failures.extend(diff_maps(
        "Pandas seasonal",
        &want.seasonal,
        &seasonal_from_csv(&read("pandas_seasonal.csv")?)?,
        same,
        5,
    ));
    println!(
        "| history analytics over {} stored daily rows | rows | time | rows/s |\n|---|---|---|---|",
        days.len()
    );
    for line in &report {
        println!("{line}");
    }
    if !failures.is_empty() {
        bail!(
            "results differ from the computation from the rows written:\n{}",
            failures.join("\n")
        );
    }
    println!(
        "both equal the computation from the rows written ({} products, {} product-months)",
        want.all_time.len(),
        want.seasonal.len()
    );
    runtime.block_on(async {
        let session = cassandra_builder()?.build().await?;
        session
            .query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
            .await?;
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}
