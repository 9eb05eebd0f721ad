//! The backbone, end to end through real Kafka and Cassandra: generated reviews (with out-of-order,
//! late and malformed rows) go through `mysimbdp produce` into a 4-partition topic, the platform
//! runs reviews-daily over them and is drained, and everything it wrote is compared with an
//! expectation computed in the test from the TSV alone.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    check_reviews_outputs, create_topic, expected_from_tsv, mysimbdp_bin, produce_command,
    run_command, AppSpec, ExpectedReviews, Platform, PlatformConfig, Repeats, Services, TestEnv,
    REVIEWS_DAILY,
};
use serde_json::Value;

const ROWS: u32 = 120_000;
const SEED: u64 = 20_240_611;
const PARTITIONS: i32 = 4;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15 * 60);

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
    let mut produce = produce_command(&env.tenant)?;
    produce
        .arg("--file")
        .arg(&tsv)
        .args(["--tenant", &env.tenant])
        .args(["--partitions", &PARTITIONS.to_string()]);
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
    let mut failures = check_reviews_outputs(&env, &expected, Repeats::Forbidden);
    if let Err(error) = check_status(&status, &expected) {
        failures.push(format!("status counters: {error:#}"));
    }

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
