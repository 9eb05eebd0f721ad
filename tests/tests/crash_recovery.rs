//! Crashes: the platform is killed with SIGKILL at random moments while reviews stream in, and
//! restarted each time; it resumes from its last checkpoint. After the input is drained, the
//! Cassandra rows equal the expectation computed from the TSV alone, and on the results topic,
//! read committed, every window's last update is exact and no update ever counted a review twice.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    check_cassandra, check_dead_letters, check_late_topic, check_results_topic, create_topic,
    expected_from_tsv, mysimbdp_bin, run_command, tenant_app_wasm, AppSpec, Platform,
    PlatformConfig, Repeats, Services, TestEnv, KAFKA_BOOTSTRAP, REVIEWS_DAILY,
};
use serde_json::Value;

const ROWS: u32 = 200_000;
const KILLS: usize = 5;
/// Fast enough that the input takes ~25 s, so the kills all land while it streams.
const RATE: u32 = 8_000;

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
    let bin = mysimbdp_bin()?;
    let tsv = env.path("reviews.tsv");
    let mut gen = Command::new(&bin);
    gen.arg("gen").arg("--out").arg(&tsv).args([
        "--rows",
        &ROWS.to_string(),
        "--seed",
        "4242",
        "--late",
        "0.002",
        "--malformed",
        "0.002",
        "--out-of-order",
        "0.05",
    ]);
    run_command(&env, "gen", &mut gen, Duration::from_secs(300))?.ensure_success("gen")?;
    let expected = expected_from_tsv(&tsv)?;
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

    let mut platform = Platform::start(&env, "run-0", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    let mut producer = Command::new(&bin)
        .arg("produce")
        .arg("--file")
        .arg(&tsv)
        .args(["--tenant", &env.tenant, "--bootstrap", KAFKA_BOOTSTRAP])
        .args(["--rate", &RATE.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mysimbdp produce")?;

    for kill in 1..=KILLS {
        // At least one checkpoint of this run, then a random moment within the next 2 s.
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let status = platform.status(REVIEWS_DAILY)?;
            ensure!(status["state"] != "failed", "run {kill}: {status}");
            if counter(&status, "checkpoints") >= 1 && counter(&status, "records_in") > 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "run {kill}: no checkpoint within 180 s: {status}\n{}",
                    platform.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(moments.next_ms(2000)));
        let status = platform.status(REVIEWS_DAILY)?;
        ensure!(
            producer.try_wait()?.is_none() || status["caught_up"] == false,
            "kill {kill} would come after the input was drained: {status}"
        );
        eprintln!(
            "kill -9 #{kill} after {} checkpoint(s), {} records read by this run",
            counter(&status, "checkpoints"),
            counter(&status, "records_in")
        );
        platform.kill()?;
        platform = Platform::start(&env, &format!("run-{kill}"), &config)?;
        platform.wait_ready(REVIEWS_DAILY)?;
    }
    ensure!(producer.wait()?.success(), "mysimbdp produce failed");

    platform.drain(REVIEWS_DAILY)?;
    let status = platform.wait_drained(REVIEWS_DAILY, Duration::from_secs(900))?;
    eprintln!("drained after {KILLS} kills: {status}");
    let mut failures = Vec::new();
    let mut check = |what: &str, result: Result<()>| {
        if let Err(error) = result {
            failures.push(format!("{what}: {error:#}"));
        }
    };
    check("Cassandra", check_cassandra(&env, &expected));
    check("results topic", check_results_topic(&env, &expected));
    check(
        "late topic",
        check_late_topic(&env, &expected, Repeats::Allowed),
    );
    check(
        "dead-letter topic",
        check_dead_letters(&env, &expected, Repeats::Allowed),
    );
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
    let bin = mysimbdp_bin()?;
    let tsv = env.path("reviews.tsv");
    let mut gen = Command::new(&bin);
    gen.arg("gen")
        .arg("--out")
        .arg(&tsv)
        .args(["--rows", "50000", "--seed", "808"]);
    run_command(&env, "gen", &mut gen, Duration::from_secs(300))?.ensure_success("gen")?;
    let expected = expected_from_tsv(&tsv)?;
    create_topic(&env.topic("reviews"), 4)?;
    let v1 = AppSpec::reviews_daily()?;
    let v2 = AppSpec {
        path: tenant_app_wasm("reviews-daily-v2")?,
        stream: "reviews".into(),
    };
    let mut config = PlatformConfig::new(&env.tenant, vec![v1])?;
    config.extra_toml = "[checkpoint]\ninterval_ms = 1000\n".into();
    let mut platform = Platform::start(&env, "v1", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    let mut producer = Command::new(&bin)
        .arg("produce")
        .arg("--file")
        .arg(&tsv)
        .args(["--tenant", &env.tenant, "--bootstrap", KAFKA_BOOTSTRAP])
        .args(["--rate", "6000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mysimbdp produce")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = platform.status(REVIEWS_DAILY)?;
        if counter(&status, "checkpoints") >= 2 {
            break;
        }
        ensure!(Instant::now() < deadline, "no checkpoint: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    ensure!(
        producer.try_wait()?.is_none(),
        "the input ended before the crash"
    );
    platform.kill()?;
    config.apps = vec![v2];
    let mut platform = Platform::start(&env, "v2", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    ensure!(producer.wait()?.success(), "mysimbdp produce failed");
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
