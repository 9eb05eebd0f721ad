//! reviews-daily in Rust and in Python, deployed side by side on the real platform on the same
//! stream: after a drain, both tables hold exactly the rows computed in the test from the TSV,
//! and so the same rows as each other.

use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Result};
use mysimbdp_tests::{
    create_topic, expected_from_tsv, mysimbdp_bin, read_daily_reviews, run_command,
    tenant_app_wasm, AppSpec, Platform, PlatformConfig, Services, TestEnv, KAFKA_BOOTSTRAP,
    REVIEWS_DAILY,
};

const ROWS: u32 = 20_000;
const PARTITIONS: i32 = 4;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const PYTHON_APP: &str = "reviews-daily-py";

#[test]
fn rust_and_python_reviews_daily_write_identical_rows() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let bin = mysimbdp_bin()?;
    let tsv = env.path("reviews.tsv");
    let mut gen = Command::new(&bin);
    gen.arg("gen").arg("--out").arg(&tsv).args([
        "--rows",
        &ROWS.to_string(),
        "--seed",
        "7",
        "--late",
        "0.002",
        "--malformed",
        "0.002",
    ]);
    run_command(&env, "gen", &mut gen, Duration::from_secs(120))?.ensure_success("gen")?;
    let expected = expected_from_tsv(&tsv)?;
    ensure!(!expected.late.is_empty() && !expected.malformed.is_empty());

    create_topic(&env.topic("reviews"), PARTITIONS)?;
    let mut produce = Command::new(&bin);
    produce
        .arg("produce")
        .arg("--file")
        .arg(&tsv)
        .args(["--tenant", &env.tenant, "--bootstrap", KAFKA_BOOTSTRAP])
        .args(["--partitions", &PARTITIONS.to_string()]);
    run_command(&env, "produce", &mut produce, Duration::from_secs(300))?
        .ensure_success("produce")?;

    let python = AppSpec {
        path: tenant_app_wasm(PYTHON_APP)?,
        stream: "reviews".into(),
    };
    let config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?, python])?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    for app in [REVIEWS_DAILY, PYTHON_APP] {
        platform.wait_ready(app)?;
        platform.drain(app)?;
    }
    for app in [REVIEWS_DAILY, PYTHON_APP] {
        platform.wait_drained(app, DRAIN_TIMEOUT)?;
    }
    let rust = read_daily_reviews(&env.tenant, "aggregated_reviews")?;
    let python = read_daily_reviews(&env.tenant, "aggregated_reviews_py")?;
    platform.stop()?;

    ensure!(
        rust == expected.windows,
        "the Rust app's {} rows differ from the {} expected",
        rust.len(),
        expected.windows.len()
    );
    let differing: Vec<String> = expected
        .windows
        .iter()
        .filter(|(key, want)| python.get(*key) != Some(*want))
        .take(5)
        .map(|(key, want)| {
            format!(
                "{key:?}: expected {want:?}, Python wrote {:?}",
                python.get(key)
            )
        })
        .collect();
    ensure!(
        python.len() == expected.windows.len() && differing.is_empty(),
        "the Python app wrote {} rows for {} expected; e.g. {differing:?}",
        python.len(),
        expected.windows.len()
    );
    ensure!(python == rust);
    let _ = std::fs::remove_file(&tsv);
    Ok(())
}
