//! The backbone, end to end through real Kafka and Cassandra: generated reviews (with out-of-order,
//! late and malformed rows) go through `mysimbdp produce` into a 4-partition topic, the platform
//! runs reviews-daily over them and is drained, and everything it wrote is compared with an
//! expectation computed in the test from the TSV alone.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    create_topic, diff_aggregates, expected_from_tsv, mysimbdp_bin, parse_utc_timestamp_ms,
    read_aggregated_reviews, read_topic, run_command, AppSpec, ExpectedReviews, KafkaRecord,
    Platform, PlatformConfig, Services, TestEnv, WindowKey, KAFKA_BOOTSTRAP, REVIEWS_DAILY,
};
use serde_json::Value;

const ROWS: u32 = 120_000;
const SEED: u64 = 20_240_611;
const PARTITIONS: i32 = 4;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const REASON: &str = "mysimbdp-reason";

#[test]
fn reviews_daily_exact_results() -> Result<()> {
    let services = Services::check()?;
    eprintln!("services: {services:?}");
    let env = TestEnv::new()?;
    eprintln!("tenant {} (scratch {})", env.tenant, env.scratch.display());
    let bin = mysimbdp_bin()?;
    let app = AppSpec::reviews_daily()?;

    // 1. Generate the input and compute the expectation from it.
    let tsv = env.path("reviews.tsv");
    let mut gen = Command::new(&bin);
    gen.arg("gen")
        .arg("--out")
        .arg(&tsv)
        .args(["--rows", &ROWS.to_string()]);
    gen.args([
        "--seed",
        &SEED.to_string(),
        "--late",
        "0.002",
        "--malformed",
        "0.002",
    ]);
    gen.args(["--out-of-order", "0.05"]);
    run_command(&env, "gen", &mut gen, Duration::from_secs(300))?.ensure_success("mysimbdp gen")?;
    let expected = expected_from_tsv(&tsv)?;
    eprintln!(
        "expected: {} valid rows ({} on time, {} of them out of order), {} late, {} malformed, \
         {} (product, day) windows",
        expected.valid_rows,
        expected.on_time_rows,
        expected.out_of_order_rows,
        expected.late.len(),
        expected.malformed.len(),
        expected.windows.len()
    );
    ensure!(
        expected.valid_rows + expected.malformed.len() == ROWS as usize,
        "the TSV holds {} rows, not {ROWS}",
        expected.valid_rows + expected.malformed.len()
    );
    ensure!(
        expected.out_of_order_rows > 0,
        "the input has no out-of-order rows to test"
    );
    ensure!(
        !expected.late.is_empty(),
        "the input has no late rows to test"
    );
    ensure!(
        !expected.malformed.is_empty(),
        "the input has no malformed rows to test"
    );

    // 2. Produce it into a topic with 4 partitions.
    let input_topic = env.topic("reviews");
    create_topic(&input_topic, PARTITIONS)?;
    let mut produce = Command::new(&bin);
    produce
        .arg("produce")
        .arg("--file")
        .arg(&tsv)
        .args(["--tenant", &env.tenant]);
    produce.args([
        "--bootstrap",
        KAFKA_BOOTSTRAP,
        "--partitions",
        &PARTITIONS.to_string(),
    ]);
    run_command(&env, "produce", &mut produce, Duration::from_secs(600))?
        .ensure_success("mysimbdp produce")?;

    // 3. Run the platform with the app, drain it.
    let config = PlatformConfig::new(&env.tenant, vec![app])?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    platform.drain(REVIEWS_DAILY)?;
    let status = platform.wait_drained(REVIEWS_DAILY, DRAIN_TIMEOUT)?;
    eprintln!("drained: {status}");

    // 4. Compare everything the platform wrote with the expectation.
    let mut failures = Vec::new();
    let mut check = |what: &str, result: Result<()>| {
        if let Err(error) = result {
            failures.push(format!("{what}: {error:#}"));
        }
    };
    check("Cassandra", check_cassandra(&env, &expected));
    check("late topic", check_late_topic(&env, &expected));
    check("dead-letter topic", check_dead_letters(&env, &expected));
    check("status counters", check_status(&status, &expected));
    check("results topic", check_results_topic(&env, &expected));

    // 5. A graceful stop.
    let stopped = platform.stop();
    match stopped {
        Ok(exit) if exit.success() => {}
        Ok(exit) => failures.push(format!(
            "stop: the platform exited with {exit} after SIGTERM\n{}",
            platform.log_tail(40)
        )),
        Err(error) => failures.push(format!("stop: {error:#}")),
    }

    if !failures.is_empty() {
        bail!(
            "{} check(s) failed for tenant {} (platform log: {}):\n\n{}",
            failures.len(),
            env.tenant,
            platform.log_path().display(),
            failures.join("\n\n")
        );
    }
    // The generated file is large; on success nothing in it is needed for a post-mortem.
    let _ = std::fs::remove_file(&tsv);
    Ok(())
}

fn check_cassandra(env: &TestEnv, expected: &ExpectedReviews) -> Result<()> {
    let actual = read_aggregated_reviews(&env.tenant)?;
    if let Some(diff) = diff_aggregates(&expected.windows, &actual, 10) {
        bail!(
            "{}.aggregated_reviews differs from the expectation: {diff}",
            env.tenant
        );
    }
    Ok(())
}

/// The records' non-empty `mysimbdp-reason` headers, or the places of those without one.
fn check_reasons(records: &[KafkaRecord]) -> Result<()> {
    let without: Vec<String> = records
        .iter()
        .filter(|r| {
            r.header(REASON)
                .is_none_or(|reason| reason.trim().is_empty())
        })
        .map(|r| format!("{}@{}", r.partition, r.offset))
        .collect();
    ensure!(
        without.is_empty(),
        "{} message(s) without a non-empty {REASON} header, e.g. at {}",
        without.len(),
        without
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// The difference of two multisets of strings, as "missing"/"unexpected" examples.
fn multiset_diff(expected: &[String], actual: &[String]) -> Option<String> {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for id in expected {
        *counts.entry(id).or_default() += 1;
    }
    for id in actual {
        *counts.entry(id).or_default() -= 1;
    }
    let missing: Vec<_> = counts
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(id, n)| format!("{id}×{n}"))
        .collect();
    let extra: Vec<_> = counts
        .iter()
        .filter(|(_, &n)| n < 0)
        .map(|(id, n)| format!("{id}×{}", -n))
        .collect();
    if missing.is_empty() && extra.is_empty() {
        return None;
    }
    Some(format!(
        "expected {} ids, got {}; {} missing (e.g. {}); {} unexpected (e.g. {})",
        expected.len(),
        actual.len(),
        missing.len(),
        missing
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        extra.len(),
        extra
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn check_late_topic(env: &TestEnv, expected: &ExpectedReviews) -> Result<()> {
    let topic = env.topic(&format!("{REVIEWS_DAILY}.late"));
    let records = read_topic(&topic)?;
    let mut actual = Vec::with_capacity(records.len());
    for record in &records {
        let value = record.value_json().with_context(|| format!("on {topic}"))?;
        let id = value
            .get("review_id")
            .and_then(Value::as_str)
            .with_context(|| format!("{topic}: a message without a review_id: {value}"))?;
        actual.push(id.to_owned());
    }
    let mut wanted: Vec<String> = expected.late.iter().map(|l| l.review_id.clone()).collect();
    wanted.sort();
    actual.sort();
    if let Some(diff) = multiset_diff(&wanted, &actual) {
        bail!("{topic} does not hold exactly the late rows: {diff}");
    }
    check_reasons(&records).with_context(|| topic.clone())
}

fn check_dead_letters(env: &TestEnv, expected: &ExpectedReviews) -> Result<()> {
    let topic = env.topic(&format!("{REVIEWS_DAILY}.dead-letters"));
    let records = read_topic(&topic)?;
    ensure!(
        records.len() == expected.malformed.len(),
        "{topic} holds {} messages, expected {} (the malformed rows)",
        records.len(),
        expected.malformed.len()
    );
    let absent: Vec<String> = expected
        .malformed
        .iter()
        .filter_map(|row| {
            let id = row.review_id.as_deref()?;
            let found = records.iter().any(|r| contains(&r.value, id.as_bytes()));
            (!found).then(|| format!("line {} ({}, review_id `{id}`)", row.line, row.reason))
        })
        .collect();
    ensure!(
        absent.is_empty(),
        "{} malformed row(s) are not on {topic}: {}",
        absent.len(),
        absent
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    );
    check_reasons(&records).with_context(|| topic.clone())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn check_status(status: &Value, expected: &ExpectedReviews) -> Result<()> {
    let counter = |name: &str| {
        status
            .get(name)
            .and_then(Value::as_u64)
            .with_context(|| format!("no `{name}` in {status}"))
    };
    let late = counter("late")?;
    let dead_letters = counter("dead_letters")?;
    let key_mismatches = counter("key_mismatches")?;
    ensure!(
        late == expected.late.len() as u64
            && dead_letters == expected.malformed.len() as u64
            && key_mismatches == 0,
        "status reports late={late}, dead_letters={dead_letters}, key_mismatches={key_mismatches}; \
         expected late={}, dead_letters={}, key_mismatches=0",
        expected.late.len(),
        expected.malformed.len()
    );
    Ok(())
}

/// For each (product, day) on the results topic, the last update must carry the final count;
/// all updates of one window must sit in one partition (keyed by product), or "last" means nothing.
fn check_results_topic(env: &TestEnv, expected: &ExpectedReviews) -> Result<()> {
    let topic = env.topic(&format!("{REVIEWS_DAILY}.results"));
    let records = read_topic(&topic)?;
    ensure!(!records.is_empty(), "{topic} is empty");
    let mut last: BTreeMap<WindowKey, (i32, i64)> = BTreeMap::new();
    let mut split = BTreeSet::new();
    for record in &records {
        let value = record.value_json().with_context(|| format!("on {topic}"))?;
        let product = value.get("product_id").and_then(Value::as_str);
        let start = value.get("window_start").and_then(Value::as_str);
        let count = value.get("number_of_reviews").and_then(Value::as_i64);
        let (Some(product), Some(start), Some(count)) = (product, start, count) else {
            bail!(
                "{topic}: a message without product_id, window_start or number_of_reviews: {value}"
            );
        };
        let start_ms = parse_utc_timestamp_ms(start).with_context(|| {
            format!("{topic}: window_start `{start}` is not an RFC 3339 UTC time")
        })?;
        let key = (product.to_owned(), start_ms);
        if let Some(&(partition, _)) = last.get(&key) {
            if partition != record.partition {
                split.insert(format!("{key:?}"));
            }
        }
        last.insert(key, (record.partition, count));
    }
    ensure!(
        split.is_empty(),
        "{} window(s) have updates in more than one partition, e.g. {}",
        split.len(),
        split.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
    );
    let mut problems = Vec::new();
    for (key, aggregate) in &expected.windows {
        match last.get(key) {
            None => problems.push(format!("{key:?}: no message")),
            Some(&(_, count)) if count != aggregate.number_of_reviews => problems.push(format!(
                "{key:?}: last number_of_reviews {count}, expected {}",
                aggregate.number_of_reviews
            )),
            Some(_) => {}
        }
    }
    let extra: Vec<_> = last
        .keys()
        .filter(|k| !expected.windows.contains_key(*k))
        .collect();
    for key in &extra {
        problems.push(format!("{key:?}: a window that should not exist"));
    }
    ensure!(
        problems.is_empty(),
        "{topic}: {} window(s) wrong ({} messages read): {}",
        problems.len(),
        records.len(),
        problems
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(())
}

/// Runs `mysimbdp run` on `config` until it exits (at most 60 s) and returns its output.
fn run_to_exit(
    env: &TestEnv,
    name: &str,
    config: &PlatformConfig,
) -> Result<mysimbdp_tests::CommandOutput> {
    let path = env.path(&format!("{name}.toml"));
    config.write(&path)?;
    let mut run = Command::new(mysimbdp_bin()?);
    run.arg("run").arg("--config").arg(&path);
    run_command(env, name, &mut run, Duration::from_secs(60))
}

#[test]
fn bad_config_is_refused() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let missing = env.path("no-such-app.wasm");
    let app = AppSpec {
        path: missing.clone(),
        stream: "reviews".into(),
    };
    let output = run_to_exit(
        &env,
        "bad-config",
        &PlatformConfig::new(&env.tenant, vec![app])?,
    )?;
    ensure!(
        !output.status.success(),
        "the platform accepted an app path that does not exist\n{}",
        output.describe()
    );
    let path = missing.to_string_lossy();
    ensure!(
        output.stderr.contains(path.as_ref()),
        "stderr does not name the missing path {path}\n{}",
        output.describe()
    );
    Ok(())
}

#[test]
fn not_a_component_is_refused() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let garbage = env.path("garbage.wasm");
    std::fs::write(
        &garbage,
        b"\0asm this is not a WebAssembly component \xff\xfe",
    )
    .with_context(|| format!("cannot write {}", garbage.display()))?;
    let app = AppSpec {
        path: garbage.clone(),
        stream: "reviews".into(),
    };
    let output = run_to_exit(
        &env,
        "not-a-component",
        &PlatformConfig::new(&env.tenant, vec![app])?,
    )?;
    ensure!(
        !output.status.success(),
        "the platform accepted garbage as a component\n{}",
        output.describe()
    );
    let path = garbage.to_string_lossy();
    ensure!(
        output.stderr.to_lowercase().contains("component") && output.stderr.contains(path.as_ref()),
        "stderr should say that {path} is not a valid component\n{}",
        output.describe()
    );
    Ok(())
}
