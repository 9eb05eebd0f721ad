//! A Cassandra outage mid-stream delays an app; it does not fail it. The platform's Cassandra
//! (the one `just up` started, found by its pid file) is frozen with SIGSTOP while reviews
//! stream in: requests time out, the app's status says what it waits out, and the input waits
//! in Kafka. Once the app has retried a few times, Cassandra is thawed with SIGCONT; the app
//! drains, and its rows and topics are exact, with no repeats and no plugin failure.
//!
//! This test pauses the shared Cassandra: it is the only test in its binary, and `just test`
//! runs the binaries one at a time.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    check_reviews_outputs, create_topic, generate_reviews, send_part, split_tsv, workspace_dir,
    AppSpec, Platform, PlatformConfig, Repeats, Services, TestEnv, REVIEWS_DAILY,
};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(600);

/// Cassandra's process, frozen while this lives: thawed on drop, whatever the test did.
struct Frozen(u32);

impl Frozen {
    fn new(pid: u32) -> Result<Self> {
        signal("STOP", pid)?;
        Ok(Self(pid))
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Err(error) = signal("CONT", self.0) {
            eprintln!("could not thaw Cassandra ({}): {error:#}", self.0);
        }
    }
}

fn signal(name: &str, pid: u32) -> Result<()> {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .context("running kill")?;
    ensure!(status.success(), "kill -{name} {pid}: {status}");
    Ok(())
}

/// The pid of the Cassandra that `deploy/local/up.sh` started.
fn cassandra_pid() -> Result<u32> {
    let file: PathBuf = workspace_dir().join(".state/cassandra.pid");
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "this test pauses the Cassandra that `just up` started and needs its pid file {}; \
             a Cassandra started otherwise cannot be paused by the test",
            file.display()
        )
    })?;
    text.trim()
        .parse()
        .with_context(|| format!("{} holds `{}`", file.display(), text.trim()))
}

fn counter(status: &Value, name: &str) -> u64 {
    status[name].as_u64().unwrap_or(0)
}

#[test]
fn an_app_waits_out_a_cassandra_outage_and_ends_exact() -> Result<()> {
    Services::check()?;
    let pid = cassandra_pid()?;
    let env = TestEnv::new()?;
    let (tsv, expected) = generate_reviews(&env, 30_000, 2024, &["--late", "0.002"])?;
    create_topic(&env.topic("reviews"), 4)?;
    let mut config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    config.extra_toml = "[checkpoint]\ninterval_ms = 1000\n".into();
    config.cassandra_toml = "request_timeout_ms = 2000\n".into();
    let parts = split_tsv(&env, &tsv, 3)?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    send_part(&env, &parts[0])?;
    platform.wait_until(
        REVIEWS_DAILY,
        "the first part read and checkpointed",
        LONG,
        |s| counter(s, "checkpoints") >= 1 && counter(s, "records_in") > 0,
    )?;

    let waiting = {
        let _frozen = Frozen::new(pid)?;
        send_part(&env, &parts[1])?;
        // The app retries, and says so, until Cassandra answers again.
        platform.wait_until(REVIEWS_DAILY, "the app to wait out the outage", LONG, |s| {
            s["waiting"]
                .as_str()
                .is_some_and(|w| w.contains("attempt 3"))
        })?
    };
    let waited = waiting["waiting"].as_str().unwrap_or_default().to_owned();
    platform.wait_until(REVIEWS_DAILY, "the app to stop waiting", LONG, |s| {
        s["waiting"].is_null()
    })?;
    send_part(&env, &parts[2])?;
    platform.drain(REVIEWS_DAILY)?;
    let status = platform.wait_drained(REVIEWS_DAILY, LONG)?;
    platform.stop()?;

    let mut failures = Vec::new();
    if !waited.contains("Cassandra") || !waited.contains("retrying") {
        failures.push(format!("while frozen the status said: {waited}"));
    }
    if status["state"] != "drained" || counter(&status, "failures") != 0 {
        failures.push(format!("the app should drain with no failure: {status}"));
    }
    failures.extend(check_reviews_outputs(&env, &expected, Repeats::Forbidden));
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}
