//! Both contract versions side by side, through real Kafka and Cassandra. The v0.1 reviews-daily
//! is the exact artifact a tenant built against `mysimbdp:tenant@0.1.0` (kept as bytes under
//! `tests/fixtures/v0.1/`); it starts on today's platform, a build of the same app against v0.2
//! (its manifest a TOML document) takes over from it mid-stream carrying the open windows, and
//! the v0.1 build takes over again. The drained rows equal the expectation computed from the TSV
//! alone, so both versions computed the same thing from the same state.

use std::time::Duration;

use anyhow::{ensure, Result};
use mysimbdp_tests::{
    check_reviews_outputs, create_topic, end_offsets_total, generate_reviews, reviews_daily_wasm,
    send_part, split_tsv, workspace_dir, AppSpec, Platform, PlatformConfig, Repeats, Services,
    TestEnv, REVIEWS_DAILY,
};

#[test]
fn a_v0_1_build_and_a_v0_2_build_hand_state_to_each_other() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let frozen = workspace_dir().join("tests/fixtures/v0.1/reviews-daily.wasm");
    ensure!(frozen.is_file(), "{} is missing", frozen.display());
    let current = reviews_daily_wasm()?;
    let (tsv, expected) = generate_reviews(&env, 30_000, 4242, &["--late", "0"])?;
    let input = env.topic("reviews");
    create_topic(&input, 4)?;
    let parts = split_tsv(&env, &tsv, 3)?;
    ensure!(parts.len() == 3, "{} parts", parts.len());

    let config = PlatformConfig::new(
        &env.tenant,
        vec![AppSpec {
            path: frozen.clone(),
            stream: "reviews".into(),
        }],
    )?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    let status = platform.status(REVIEWS_DAILY)?;
    ensure!(
        status["contract"] == "mysimbdp:tenant@0.1.0",
        "the frozen build runs under v0.1: {status}"
    );

    let builds = [
        (current.display().to_string(), "mysimbdp:tenant@0.2.0"),
        (frozen.display().to_string(), "mysimbdp:tenant@0.1.0"),
    ];
    for (part, (path, contract)) in parts.iter().zip(&builds) {
        send_part(&env, part)?;
        let sent = end_offsets_total(&input)?;
        platform.wait_until(
            REVIEWS_DAILY,
            &format!("reading {sent} records"),
            Duration::from_secs(300),
            |s| s["records_in"].as_i64().is_some_and(|n| n >= sent),
        )?;
        let name = format!("deploy-{contract}");
        let output = platform.operate(
            &env,
            &name,
            &["deploy", "--tenant", &env.tenant, "--path", path],
        )?;
        output.ensure_success(&name)?;
        ensure!(
            output.stdout.contains("open windows carried"),
            "{name} carries the open windows: {}",
            output.describe()
        );
        let status = platform.status(REVIEWS_DAILY)?;
        ensure!(status["contract"] == *contract, "after {name}: {status}");
    }
    send_part(&env, &parts[2])?;

    platform.drain(REVIEWS_DAILY)?;
    platform.wait_drained(REVIEWS_DAILY, Duration::from_secs(600))?;
    let problems = check_reviews_outputs(&env, &expected, Repeats::Forbidden);
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    platform.stop()?;
    Ok(())
}
