//! Crashes: the platform is killed with SIGKILL at random moments while reviews arrive, and
//! restarted each time; it resumes from its last checkpoint. The input arrives in parts, one
//! before each kill, so every kill lands with input still to come, however fast the machine. After the input is drained, the
//! Cassandra rows equal the expectation computed from the TSV alone, and on the results topic,
//! read committed, every window's last update is exact and no update ever counted a review twice.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Result};
use mysimbdp_tests::{
    check_cassandra, check_reviews_outputs, create_topic, generate_reviews, produce_reviews,
    split_tsv, tenant_app_wasm, AppSpec, Platform, PlatformConfig, Repeats, Services, TestEnv,
    REVIEWS_DAILY,
};
use serde_json::Value;

const ROWS: u32 = 200_000;
const KILLS: usize = 5;
/// Out-of-order, late and malformed rows among the good ones.
const MESSY: &[&str] = &[
    "--late",
    "0.002",
    "--malformed",
    "0.002",
    "--out-of-order",
    "0.05",
];

/// A small xorshift generator: the kill moments vary from run to run, and the seed is printed.
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn counter(status: &Value, name: &str) -> u64 {
    status.get(name).and_then(Value::as_u64).unwrap_or(0)
}

#[test]
fn kill_9_at_random_moments_keeps_results_exact() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let (tsv, expected) = generate_reviews(&env, ROWS, 4242, MESSY)?;
    create_topic(&env.topic("reviews"), 4)?;

    let mut config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    config.extra_toml = "[checkpoint]\ninterval_ms = 1000\n".into();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7)
        | 1;
    eprintln!("kill moments seed {seed}, tenant {}", env.tenant);
    let mut moments = Moments(seed);

    let parts = split_tsv(&env, &tsv, KILLS + 1)?;
    ensure!(parts.len() == KILLS + 1, "{} parts", parts.len());

    let mut platform = Platform::start(&env, "run-0", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    for kill in 1..=KILLS {
        produce_reviews(&env, &parts[kill - 1])?;
        // This run has read input and saved at least one checkpoint; then a random moment
        // within the next 2 s, while it may still be working through the part.
        platform.wait_until(
            REVIEWS_DAILY,
            &format!("the first checkpoint of run {kill}"),
            Duration::from_secs(180),
            |s| counter(s, "checkpoints") >= 1 && counter(s, "records_in") > 0,
        )?;
        std::thread::sleep(Duration::from_millis(moments.next_ms(2000)));
        let status = platform.status(REVIEWS_DAILY)?;
        eprintln!(
            "kill -9 #{kill} after {} checkpoint(s), {} records read by this run",
            counter(&status, "checkpoints"),
            counter(&status, "records_in")
        );
        platform.kill()?;
        platform = Platform::start(&env, &format!("run-{kill}"), &config)?;
        platform.wait_ready(REVIEWS_DAILY)?;
    }
    produce_reviews(&env, &parts[KILLS])?;

    platform.drain(REVIEWS_DAILY)?;
    let status = platform.wait_drained(REVIEWS_DAILY, Duration::from_secs(900))?;
    eprintln!("drained after {KILLS} kills: {status}");
    let failures = check_reviews_outputs(&env, &expected, Repeats::Allowed);
    platform.stop()?;
    if !failures.is_empty() {
        bail!(
            "after {KILLS} kills (seed {seed}), {} check(s) failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    let _ = std::fs::remove_file(&tsv);
    Ok(())
}

/// A crash, then a restart with the next version of the app: it resumes from the checkpoint the
/// old version saved (same state version) and the drained results are exact.
#[test]
fn a_restart_with_a_new_version_resumes_from_the_checkpoint() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let (tsv, expected) = generate_reviews(&env, 50_000, 808, &[])?;
    create_topic(&env.topic("reviews"), 4)?;
    let v1 = AppSpec::reviews_daily()?;
    let v2 = AppSpec {
        path: tenant_app_wasm("reviews-daily-v2")?,
        stream: "reviews".into(),
    };
    let mut config = PlatformConfig::new(&env.tenant, vec![v1])?;
    config.extra_toml = "[checkpoint]\ninterval_ms = 1000\n".into();
    let parts = split_tsv(&env, &tsv, 2)?;
    let mut platform = Platform::start(&env, "v1", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    produce_reviews(&env, &parts[0])?;
    platform.wait_until(
        REVIEWS_DAILY,
        "a checkpoint of version 1.0.0",
        Duration::from_secs(120),
        |s| counter(s, "checkpoints") >= 1 && counter(s, "records_in") > 0,
    )?;
    platform.kill()?;
    config.apps = vec![v2];
    let mut platform = Platform::start(&env, "v2", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    produce_reviews(&env, &parts[1])?;
    platform.drain(REVIEWS_DAILY)?;
    let status = platform.wait_drained(REVIEWS_DAILY, Duration::from_secs(600))?;
    ensure!(status["version"] == "2.0.0", "{status}");
    let log = std::fs::read_to_string(platform.log_path())?;
    ensure!(
        log.lines()
            .any(|l| l.contains("resumed from checkpoint") && l.contains("1.0.0")),
        "version 2.0.0 should resume what 1.0.0 saved:\n{}",
        platform.log_tail(40)
    );
    check_cassandra(&env, &expected)?;
    platform.stop()?;
    Ok(())
}
