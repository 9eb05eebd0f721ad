//! reviews-daily in Rust, Python and JavaScript, deployed side by side on the real platform on
//! the same stream: after a drain, each table holds exactly the rows computed in the test from
//! the TSV, and so the same rows as the others.

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
/// The guest apps in other languages, and their tables.
const GUESTS: [(&str, &str); 2] = [
    ("reviews-daily-py", "aggregated_reviews_py"),
    ("reviews-daily-js", "aggregated_reviews_js"),
];

#[test]
fn rust_python_and_javascript_reviews_daily_write_identical_rows() -> Result<()> {
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

    let mut apps = vec![AppSpec::reviews_daily()?];
    for (app, _) in GUESTS {
        apps.push(AppSpec {
            path: tenant_app_wasm(app)?,
            stream: "reviews".into(),
        });
    }
    let config = PlatformConfig::new(&env.tenant, apps)?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    let names = [REVIEWS_DAILY, GUESTS[0].0, GUESTS[1].0];
    for app in names {
        platform.wait_ready(app)?;
        platform.drain(app)?;
    }
    for app in names {
        platform.wait_drained(app, DRAIN_TIMEOUT)?;
    }
    let rust = read_daily_reviews(&env.tenant, "aggregated_reviews")?;
    let mut guests = Vec::new();
    for (app, table) in GUESTS {
        guests.push((app, read_daily_reviews(&env.tenant, table)?));
    }
    platform.stop()?;

    ensure!(
        rust == expected.windows,
        "the Rust app's {} rows differ from the {} expected",
        rust.len(),
        expected.windows.len()
    );
    for (app, rows) in guests {
        let differing: Vec<String> = expected
            .windows
            .iter()
            .filter(|(key, want)| rows.get(*key) != Some(*want))
            .take(5)
            .map(|(key, want)| format!("{key:?}: expected {want:?}, got {:?}", rows.get(key)))
            .collect();
        ensure!(
            rows.len() == expected.windows.len() && differing.is_empty(),
            "{app} wrote {} rows for {} expected; e.g. {differing:?}",
            rows.len(),
            expected.windows.len()
        );
        ensure!(rows == rust, "{app}'s rows differ from the Rust app's");
    }
    let _ = std::fs::remove_file(&tsv);
    Ok(())
}
