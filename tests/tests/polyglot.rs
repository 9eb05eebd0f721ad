//! reviews-daily in Rust, Python and JavaScript, deployed side by side on the real platform on
//! the same stream: after a drain, each table holds exactly the rows computed in the test from
//! the TSV, and so the same rows as the others.

use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Result};
use mysimbdp_tests::{
    create_topic, end_offsets_total, expected_from_tsv, generate_reviews, mysimbdp_bin,
    produce_command, read_aggregated_reviews, read_daily_reviews, reviews_daily_wasm, run_command,
    send_part, split_tsv, tenant_app_wasm, workspace_dir, AppSpec, Platform, PlatformConfig,
    Services, TestEnv, REVIEWS_DAILY,
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
    let mut produce = produce_command(&env.tenant)?;
    produce
        .arg("--file")
        .arg(&tsv)
        .args(["--tenant", &env.tenant])
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

/// A copy of a guest app of this repository named `reviews-daily` (so a deploy of it swaps the
/// running reviews-daily) with the given version, built by `mysimbdp app build`.
fn as_reviews_daily(env: &TestEnv, app: &str, version: &str) -> Result<std::path::PathBuf> {
    let root = workspace_dir();
    let dir = env.path(&format!("swap-{app}"));
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(root.join("tenant-apps").join(app))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !["app.py", "app.js", "pyproject.toml", "package.json"].contains(&name) {
            continue;
        }
        let text = std::fs::read_to_string(&path)?
            .replace(&format!("\"{app}\""), "\"reviews-daily\"")
            .replace("\"aggregated_reviews_py\"", "\"aggregated_reviews\"")
            .replace("\"aggregated_reviews_js\"", "\"aggregated_reviews\"")
            .replace("../../", &format!("{}/", root.display()));
        let text = if name == "app.py" {
            text.replace(
                "state_version=1)",
                &format!("state_version=1, version=\"{version}\")"),
            )
        } else if name == "app.js" {
            text.replace(
                "stateVersion: 1,",
                &format!("stateVersion: 1,\n  version: \"{version}\","),
            )
        } else {
            text
        };
        std::fs::write(dir.join(name), text)?;
    }
    let out = dir.join("reviews-daily.wasm");
    let mut build = Command::new(mysimbdp_bin()?);
    build
        .args(["app", "build"])
        .arg(&dir)
        .arg("--out")
        .arg(&out);
    run_command(
        env,
        &format!("build-{app}"),
        &mut build,
        Duration::from_secs(600),
    )?
    .ensure_success(&format!("app build {app}"))?;
    Ok(out)
}

/// Sends a part of the input and waits until the app has read all input so far.
fn read_part(
    platform: &mut Platform,
    env: &TestEnv,
    part: &std::path::Path,
    input: &str,
) -> Result<()> {
    send_part(env, &part.to_path_buf())?;
    let sent = end_offsets_total(input)?;
    platform.wait_until(
        REVIEWS_DAILY,
        &format!("reading {}", part.display()),
        Duration::from_secs(300),
        |s| s["records_in"].as_i64().is_some_and(|n| n >= sent),
    )?;
    Ok(())
}

#[test]
fn python_hands_its_windows_to_javascript_and_rust_is_refused() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let python = as_reviews_daily(&env, "reviews-daily-py", "2.0.0")?;
    let javascript = as_reviews_daily(&env, "reviews-daily-js", "3.0.0")?;
    // No late rows: which rows are late depends on how the partitions' reading interleaves, and
    // this test is about the state handed over.
    let (tsv, expected) = generate_reviews(&env, 12_000, 11, &["--late", "0"])?;
    let input = env.topic("reviews");
    create_topic(&input, PARTITIONS)?;
    let parts = split_tsv(&env, &tsv, 3)?;
    let app = AppSpec {
        path: python,
        stream: "reviews".into(),
    };
    let mut platform = Platform::start(
        &env,
        "platform",
        &PlatformConfig::new(&env.tenant, vec![app])?,
    )?;
    platform.wait_ready(REVIEWS_DAILY)?;
    read_part(&mut platform, &env, &parts[0], &input)?;
    let js = javascript.display().to_string();
    let swap = platform.operate(
        &env,
        "to-js",
        &["deploy", "--tenant", &env.tenant, "--path", &js],
    )?;
    swap.ensure_success("deploy the JavaScript version")?;
    ensure!(
        swap.stdout.contains("version 3.0.0 took over from 2.0.0")
            && !swap.stdout.contains(" ms: 0 open windows"),
        "{}",
        swap.describe()
    );
    read_part(&mut platform, &env, &parts[1], &input)?;
    let rust = reviews_daily_wasm()?.display().to_string();
    let refused = platform.operate(
        &env,
        "to-rust",
        &["deploy", "--tenant", &env.tenant, "--path", &rust],
    )?;
    ensure!(
        !refused.status.success(),
        "a Rust version read the JSON state: {}",
        refused.describe()
    );
    ensure!(
        refused.stderr.contains("state does not decode"),
        "{}",
        refused.describe()
    );
    ensure!(platform.status(REVIEWS_DAILY)?["version"] == "3.0.0");
    read_part(&mut platform, &env, &parts[2], &input)?;
    platform.drain(REVIEWS_DAILY)?;
    platform.wait_drained(REVIEWS_DAILY, DRAIN_TIMEOUT)?;
    let rows = read_aggregated_reviews(&env.tenant)?;
    platform.stop()?;
    let extra: Vec<String> = rows
        .iter()
        .filter(|(k, v)| expected.windows.get(*k) != Some(*v))
        .take(5)
        .map(|(k, v)| format!("{k:?}: {v:?}, expected {:?}", expected.windows.get(k)))
        .collect();
    ensure!(
        rows == expected.windows,
        "after a Python → JavaScript swap: {} rows for {} expected, e.g. {extra:?}; late rows {:?}",
        rows.len(),
        expected.windows.len(),
        expected.late.iter().take(40).collect::<Vec<_>>()
    );
    Ok(())
}
