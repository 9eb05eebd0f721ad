//! Two hosts share an app's partitions through its Kafka consumer group; one is killed after the
//! first half of the input and the other takes over its partitions from the checkpoint store,
//! then reads the second half. The drained results are exact.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use mysimbdp_tests::{
    check_reviews_outputs, create_topic, generate_reviews, send_part, split_tsv, AppSpec, Platform,
    PlatformConfig, Repeats, Services, TestEnv, REVIEWS_DAILY,
};
use serde_json::Value;

const ROWS: u32 = 120_000;

fn owned(status: &Value) -> usize {
    status["partitions"].as_array().map_or(0, Vec::len)
}

#[test]
fn two_hosts_share_the_partitions_and_one_survives_the_other() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let messy = [
        "--late",
        "0.002",
        "--malformed",
        "0.002",
        "--out-of-order",
        "0.05",
    ];
    let (tsv, expected) = generate_reviews(&env, ROWS, 5150, &messy)?;
    create_topic(&env.topic("reviews"), 4)?;

    let app = AppSpec::reviews_daily()?;
    let mut config_a = PlatformConfig::new(&env.tenant, vec![app.clone()])?;
    config_a.extra_toml = "[checkpoint]\ninterval_ms = 1000\n".into();
    let mut config_b = PlatformConfig::new(&env.tenant, vec![app])?;
    config_b.extra_toml = config_a.extra_toml.clone();
    let mut a = Platform::start_with(&env, "host-a", &config_a, &["--instance", "a"])?;
    let mut b = Platform::start_with(&env, "host-b", &config_b, &["--instance", "b"])?;
    a.wait_ready(REVIEWS_DAILY)?;
    b.wait_ready(REVIEWS_DAILY)?;

    let parts = split_tsv(&env, &tsv, 2)?;
    send_part(&env, &parts[0])?;

    // Both hosts own a share and have saved it at least once.
    let sharing = |s: &Value| {
        let n = owned(s);
        (1..4).contains(&n) && s["checkpoints"].as_u64().unwrap_or(0) >= 1
    };
    let status_a = a.wait_until(
        REVIEWS_DAILY,
        "host a sharing",
        Duration::from_secs(120),
        sharing,
    )?;
    let status_b = b.wait_until(
        REVIEWS_DAILY,
        "host b sharing",
        Duration::from_secs(120),
        sharing,
    )?;
    ensure!(
        owned(&status_a) + owned(&status_b) == 4,
        "the hosts should split the 4 partitions: a {status_a}, b {status_b}"
    );
    eprintln!(
        "killing host a (partitions {}), host b has {}",
        status_a["partitions"], status_b["partitions"]
    );
    a.kill()?;
    let killed = Instant::now();

    b.wait_until(
        REVIEWS_DAILY,
        "host b taking over every partition",
        Duration::from_secs(120),
        |s| owned(s) == 4,
    )?;
    send_part(&env, &parts[1])?;
    b.drain(REVIEWS_DAILY)?;
    let status = b.wait_drained(REVIEWS_DAILY, Duration::from_secs(900))?;
    eprintln!("host b drained: {status}");
    // The dead host's open Kafka transaction holds read_committed readers back until the broker
    // aborts it (the platform's transaction timeout, 30 s); reading the topic waits for that.
    eprintln!("{:?} since the kill", killed.elapsed());
    let failures = check_reviews_outputs(&env, &expected, Repeats::Forbidden);
    b.stop()?;
    if !failures.is_empty() {
        bail!(
            "{} check(s) failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    let _ = std::fs::remove_file(&tsv);
    Ok(())
}
