//! History analytics end to end: reviews stream through the platform into `aggregated_reviews`,
//! then `mysimbdp batch` runs the report's two analytics over that table (all-time per product,
//! seasonality per product and calendar month, and each product's best and worst months read
//! from the seasonality table), and every row in Cassandra, the CSV and the Parquet file is
//! compared with the same figures computed in the test from the TSV.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    all_time_from_csv, all_time_from_parquet, batch_command, days_from_civil, diff_maps,
    expected_history, generate_reviews, produce_reviews, read_aggregated_reviews, read_all_time,
    read_extremes, read_seasonal, run_command, seasonal_from_csv, tenant_app_wasm, AppSpec,
    CommandOutput, DailyAggregate, Platform, PlatformConfig, Services, TestEnv, WindowKey,
    MS_PER_DAY, REVIEWS_DAILY,
};

const ROWS: u32 = 40_000;
const SEED: u64 = 20_261_130;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const BATCH_TIMEOUT: Duration = Duration::from_secs(600);

fn batch(
    env: &TestEnv,
    name: &str,
    app: &str,
    from: &str,
    extra: &[&str],
) -> Result<CommandOutput> {
    let mut command = batch_command()?;
    command
        .args(["--tenant", &env.tenant, "--from", from, "--json"])
        .arg("--app")
        .arg(tenant_app_wasm(app)?)
        .args(extra);
    let output = run_command(env, name, &mut command, BATCH_TIMEOUT)?;
    output.ensure_success(&format!("mysimbdp batch ({app})"))?;
    Ok(output)
}

fn text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

#[test]
fn history_analytics_equal_an_independent_computation() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    eprintln!("tenant {} (scratch {})", env.tenant, env.scratch.display());
    let (tsv, expected) = generate_reviews(
        &env,
        ROWS,
        SEED,
        &[
            "--out-of-order",
            "0.02",
            "--days",
            "1461",
            "--products",
            "300",
        ],
    )?;
    produce_reviews(&env, &tsv)?;
    let config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    platform.drain(REVIEWS_DAILY)?;
    platform.wait_drained(REVIEWS_DAILY, DRAIN_TIMEOUT)?;
    platform.stop()?;
    // The batch reads what the stream stored; the stream's own exactness is other tests' job,
    // but a difference here would make every figure below wrong, so it is checked first.
    let stored = read_aggregated_reviews(&env.tenant)?;
    ensure!(
        stored.len() == expected.windows.len(),
        "aggregated_reviews holds {} days, the TSV gives {}",
        stored.len(),
        expected.windows.len()
    );
    let want = expected_history(&expected.windows, None);
    eprintln!(
        "expected: {} products, {} (product, month) rows",
        want.all_time.len(),
        want.seasonal.len()
    );
    let mut failures = Vec::new();

    let all_csv = env.path("all-time.csv");
    let all_parquet = env.path("all-time.parquet");
    let run = batch(
        &env,
        "batch-all-time",
        "product-all-time",
        "aggregated_reviews",
        &[
            "--csv",
            &all_csv.to_string_lossy(),
            "--parquet",
            &all_parquet.to_string_lossy(),
            "--ranges",
            "16",
        ],
    )?;
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim())
        .with_context(|| format!("the --json summary: {}", run.stdout))?;
    ensure!(
        summary["rows_read"].as_u64() == Some(expected.windows.len() as u64),
        "the batch read {} rows, the table holds {}",
        summary["rows_read"],
        expected.windows.len()
    );
    let same = |a: &mysimbdp_tests::Totals, b: &mysimbdp_tests::Totals| a.matches(b);
    failures.extend(diff_maps(
        "product_all_time (Cassandra)",
        &want.all_time,
        &read_all_time(&env.tenant)?,
        same,
        10,
    ));
    failures.extend(diff_maps(
        "all-time CSV",
        &want.all_time,
        &all_time_from_csv(&text(&all_csv)?)?,
        same,
        10,
    ));
    failures.extend(diff_maps(
        "all-time Parquet",
        &want.all_time,
        &all_time_from_parquet(&all_parquet)?,
        same,
        10,
    ));

    let seasonal_csv = env.path("seasonal.csv");
    batch(
        &env,
        "batch-seasonality",
        "product-seasonality",
        "aggregated_reviews",
        &["--csv", &seasonal_csv.to_string_lossy()],
    )?;
    failures.extend(diff_maps(
        "product_seasonality (Cassandra)",
        &want.seasonal,
        &read_seasonal(&env.tenant)?,
        same,
        10,
    ));
    failures.extend(diff_maps(
        "seasonal CSV",
        &want.seasonal,
        &seasonal_from_csv(&text(&seasonal_csv)?)?,
        same,
        10,
    ));

    batch(
        &env,
        "batch-best-months",
        "product-best-months",
        "product_seasonality",
        &[],
    )?;
    failures.extend(diff_maps(
        "product_best_months (Cassandra)",
        &want.extremes,
        &read_extremes(&env.tenant)?,
        |a, b| a.matches(b),
        10,
    ));

    // A selection: two products only, as the workflow asks for an alert's products.
    let chosen: BTreeSet<String> = want.all_time.keys().rev().take(2).cloned().collect();
    let some_csv = env.path("some.csv");
    let mut extra = vec!["--csv".to_owned(), some_csv.to_string_lossy().into_owned()];
    for product in &chosen {
        extra.extend(["--where".to_owned(), format!("product_id={product}")]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    batch(
        &env,
        "batch-some",
        "product-all-time",
        "aggregated_reviews",
        &extra,
    )?;
    let want_some = expected_history(&expected.windows, Some(&chosen));
    failures.extend(diff_maps(
        "all-time CSV of two products",
        &want_some.all_time,
        &all_time_from_csv(&text(&some_csv)?)?,
        same,
        10,
    ));

    // A year of event time only: the days from 2016-01-01 up to 2017-01-01.
    let (since, until) = (
        days_from_civil(2016, 1, 1) * MS_PER_DAY,
        days_from_civil(2017, 1, 1) * MS_PER_DAY,
    );
    let year: BTreeMap<WindowKey, DailyAggregate> = expected
        .windows
        .iter()
        .filter(|((_, start), _)| (since..until).contains(start))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ensure!(
        !year.is_empty() && year.len() < expected.windows.len(),
        "the input does not straddle 2016: nothing to test"
    );
    let year_csv = env.path("year.csv");
    batch(
        &env,
        "batch-year",
        "product-all-time",
        "aggregated_reviews",
        &[
            "--since",
            "2016-01-01",
            "--until",
            "2017-01-01",
            "--csv",
            &year_csv.to_string_lossy(),
        ],
    )?;
    failures.extend(diff_maps(
        "all-time CSV of 2016",
        &expected_history(&year, None).all_time,
        &all_time_from_csv(&text(&year_csv)?)?,
        same,
        10,
    ));

    if !failures.is_empty() {
        bail!(
            "{} check(s) failed for tenant {}:\n\n{}",
            failures.len(),
            env.tenant,
            failures.join("\n\n")
        );
    }
    let _ = std::fs::remove_file(&tsv);
    Ok(())
}

/// `mysimbdp batch` as the test gives it, expected to fail; returns its stderr.
fn refused(env: &TestEnv, name: &str, app: &str, from: &str) -> Result<String> {
    let mut command = batch_command()?;
    command
        .args(["--tenant", &env.tenant, "--from", from])
        .arg("--app")
        .arg(tenant_app_wasm(app)?);
    let output = run_command(env, name, &mut command, BATCH_TIMEOUT)?;
    ensure!(
        !output.status.success(),
        "{app} over {from} was accepted\n{}",
        output.describe()
    );
    Ok(output.stderr)
}

#[test]
fn a_batch_app_that_does_not_fit_the_table_is_refused_with_the_field() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let missing = refused(
        &env,
        "batch-missing-table",
        "product-all-time",
        "no_such_table",
    )?;
    ensure!(
        missing.contains("no_such_table does not exist"),
        "{missing}"
    );
    // The stream app writes the table it would read.
    let own = refused(
        &env,
        "batch-own-table",
        "reviews-daily",
        "aggregated_reviews",
    )?;
    ensure!(own.contains("the table it reads"), "{own}");
    // A table needs to exist for its columns to be checked: this run makes it.
    let (tsv, _) = generate_reviews(&env, 200, SEED, &[])?;
    produce_reviews(&env, &tsv)?;
    let config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    platform.drain(REVIEWS_DAILY)?;
    platform.wait_drained(REVIEWS_DAILY, DRAIN_TIMEOUT)?;
    platform.stop()?;
    // product-best-months reads `month`, a part of the event time, and declares no event time.
    let field = refused(
        &env,
        "batch-no-time",
        "product-best-months",
        "aggregated_reviews",
    )?;
    ensure!(
        field.contains("input field `month`") && field.contains("declare `event_time"),
        "the refusal does not name the field and the fix: {field}"
    );
    Ok(())
}
