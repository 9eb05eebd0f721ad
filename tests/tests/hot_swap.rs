//! Hot swap under a stream, through real Kafka and Cassandra: the input arrives in parts, and
//! after each part has been read the operator deploys the app again or rolls it back, so every
//! take-over happens with open windows and with input still to come, however fast the machine.
//! Every take-over carries the open windows' state, so the drained results equal an expectation
//! computed from the TSV alone. A file that is not a component is refused and the running
//! version goes on. A version that adds alerts gets its alerts topic at the take-over, before
//! it has an alert to send, and raises exactly the critical days.

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Result};
use mysimbdp_tests::{
    check_alerts, create_topic, critical_plants, diff_aggregates, end_offsets_total,
    expected_alerts, generate_reviews, plant_reviews, produce_reviews, read_aggregated_reviews,
    reviews_daily_wasm, send_part, split_tsv, tenant_app_wasm, topic_exists, AppSpec, Platform,
    PlatformConfig, Services, TestEnv, REVIEWS_DAILY,
};

const ROWS: u32 = 60_000;
const SWAPS: usize = 20;

/// The open windows a take-over carried, from its answer
/// "version X took over from Y in N ms: W open windows carried (...)".
fn carried(answer: &str) -> Option<u64> {
    let (_, after) = answer.split_once(" ms: ")?;
    after.split_whitespace().next()?.parse().ok()
}

#[test]
fn swaps_under_a_steady_stream_keep_results_exact() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let wasm = reviews_daily_wasm()?;
    let (tsv, expected) = generate_reviews(&env, ROWS, 77, &[])?;
    let input = env.topic("reviews");
    create_topic(&input, 4)?;
    let parts = split_tsv(&env, &tsv, SWAPS + 1)?;
    ensure!(parts.len() == SWAPS + 1, "{} parts", parts.len());

    let config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;

    let v1 = wasm.display().to_string();
    let v2 = wasm
        .with_file_name("reviews_daily_v2.wasm")
        .display()
        .to_string();
    ensure!(
        Path::new(&v2).is_file(),
        "{v2} is missing: run `just build-apps`"
    );
    let mut versions = Vec::new();
    for (swap, part) in parts[..SWAPS].iter().enumerate() {
        send_part(&env, part)?;
        let sent = end_offsets_total(&input)?;
        platform.wait_until(
            REVIEWS_DAILY,
            &format!("reading part {swap} ({sent} records in all)"),
            Duration::from_secs(300),
            |s| s["records_in"].as_i64().is_some_and(|n| n >= sent),
        )?;
        // 1.0 → 2.0 → rollback to 1.0 → 2.0 …
        let args: &[&str] = match swap % 3 {
            0 => &["deploy", "--tenant", &env.tenant, "--path", &v2],
            1 => &["rollback", "--tenant", &env.tenant, "--app", REVIEWS_DAILY],
            _ => &["deploy", "--tenant", &env.tenant, "--path", &v1],
        };
        let name = format!("swap-{swap}");
        let output = platform.operate(&env, &name, args)?;
        output.ensure_success(&name)?;
        ensure!(
            output.stdout.contains("took over"),
            "{name}: {}",
            output.describe()
        );
        ensure!(
            carried(&output.stdout).is_some_and(|windows| windows > 0),
            "{name} should carry the open windows: {}",
            output.describe()
        );
        // "version X took over from Y ...": X ran from here on.
        versions.extend(output.stdout.split_whitespace().nth(1).map(str::to_owned));
    }
    send_part(&env, &parts[SWAPS])?;
    let expected_versions: Vec<&str> = (0..SWAPS)
        .map(|swap| if swap % 3 == 0 { "2.0.0" } else { "1.0.0" })
        .collect();
    ensure!(
        versions == expected_versions,
        "the versions that took over, in order: {versions:?}"
    );

    let garbage = env.path("garbage.wasm");
    std::fs::write(&garbage, b"not a component")?;
    let garbage_path = garbage.display().to_string();
    let refused = platform.operate(
        &env,
        "bad-deploy",
        &["deploy", "--tenant", &env.tenant, "--path", &garbage_path],
    )?;
    ensure!(
        !refused.status.success(),
        "a garbage deploy succeeded: {}",
        refused.describe()
    );
    ensure!(
        refused.stderr.contains("is not a WebAssembly component"),
        "{}",
        refused.describe()
    );

    let status = platform.status(REVIEWS_DAILY)?;
    ensure!(
        status["state"] == "running",
        "after the refused deploy: {status}"
    );
    ensure!(
        status["swaps"] == SWAPS as u64,
        "{SWAPS} take-overs, status says {status}"
    );

    platform.drain(REVIEWS_DAILY)?;
    let status = platform.wait_drained(REVIEWS_DAILY, Duration::from_secs(600))?;
    let actual = read_aggregated_reviews(&env.tenant)?;
    if let Some(diff) = diff_aggregates(&expected.windows, &actual, 10) {
        anyhow::bail!("after {SWAPS} swaps under the stream: {diff}");
    }
    ensure!(
        status["late"] == expected.late.len() as u64,
        "late: {status}"
    );
    ensure!(
        status["dead_letters"] == expected.malformed.len() as u64,
        "dead letters: {status}"
    );
    platform.stop()?;
    Ok(())
}

#[test]
fn a_swap_that_adds_alerts_makes_their_topic_and_raises_the_critical_days() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let extra = ["--out-of-order", "0", "--late", "0", "--malformed", "0"];
    let (generated, _) = generate_reviews(&env, 20_000, 13, &extra)?;
    let tsv = env.path("planted.tsv");
    plant_reviews(&generated, &tsv, &critical_plants())?;
    let expected = expected_alerts(&tsv)?;
    ensure!(
        expected.len() >= 2,
        "the planted critical days are missing: the test's input is wrong"
    );
    create_topic(&env.topic("reviews"), 4)?;

    let config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    let alerts = format!("{}.{REVIEWS_DAILY}.alerts", env.tenant);
    ensure!(
        !topic_exists(&alerts)?,
        "1.0 raises no alerts, yet {alerts} exists"
    );

    // 3.0 has a new state version; there is no input yet, so no open window to lose.
    let v3 = tenant_app_wasm("reviews-daily-v3")?.display().to_string();
    let deployed = platform.operate(
        &env,
        "deploy-v3",
        &[
            "deploy",
            "--tenant",
            &env.tenant,
            "--path",
            &v3,
            "--reset-state",
        ],
    )?;
    deployed.ensure_success("deploy 3.0")?;
    ensure!(
        deployed.stdout.contains("version 3.0.0 took over"),
        "{}",
        deployed.describe()
    );
    // Nothing was sent yet, so a broker that creates topics on a first write has not made it.
    ensure!(
        topic_exists(&alerts)?,
        "{alerts} is missing after the take-over of a version that raises alerts"
    );

    produce_reviews(&env, &tsv)?;
    platform.drain(REVIEWS_DAILY)?;
    platform.wait_drained(REVIEWS_DAILY, Duration::from_secs(600))?;
    platform.stop()?;
    check_alerts(&env.tenant, REVIEWS_DAILY, &expected)
}
