//! A hostile app beside a well-behaved one on the same platform: its trap, its endless loop and
//! its memory bomb each fail one batch, which is quarantined to its dead-letter topic with the
//! reason; its instance is rebuilt from the last checkpoint and the input replayed, so every
//! other record is counted exactly once. The reviews app beside it produces exact results. An
//! app that keeps failing is stopped, with the reason in its status and metrics.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    check_reviews_outputs, create_topic, generate_reviews, produce, produce_reviews, read_topic,
    sum_column, tenant_app_wasm, AppSpec, Platform, PlatformConfig, Repeats, Services, TestEnv,
    REVIEWS_DAILY,
};
use serde_json::Value;

const ORDERS: usize = 20_000;
const LOOP_FOREVER: i64 = 1;
const EXHAUST_MEMORY: i64 = 2;
const PANIC: i64 = 3;
/// Record index → hostile act.
const HOSTILE: [(usize, i64); 3] = [
    (3_000, PANIC),
    (9_000, LOOP_FOREVER),
    (15_000, EXHAUST_MEMORY),
];

fn order(i: usize, act: i64) -> (String, String) {
    let key = format!("k{}", i % 100);
    let value = format!(r#"{{"key":"{key}","act":{act},"id":{i}}}"#);
    (key, value)
}

fn hostile_app() -> Result<AppSpec> {
    Ok(AppSpec {
        path: tenant_app_wasm("hostile")?,
        stream: "orders".into(),
    })
}

#[test]
fn a_hostile_neighbour_is_contained_and_both_apps_stay_exact() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let messy = ["--late", "0.002", "--malformed", "0.002"];
    let (tsv, expected) = generate_reviews(&env, 40_000, 606, &messy)?;
    create_topic(&env.topic("reviews"), 4)?;
    produce_reviews(&env, &tsv)?;
    let orders = env.topic("orders");
    create_topic(&orders, 4)?;
    produce(
        &orders,
        (0..ORDERS).map(|i| {
            let act = HOSTILE
                .iter()
                .find(|(at, _)| *at == i)
                .map_or(0, |(_, a)| *a);
            order(i, act)
        }),
    )?;

    let mut config =
        PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?, hostile_app()?])?;
    config.extra_toml = "[limits]\nmemory_mb = 64\ncall_deadline_ms = 1000\nmax_failures = 5\n\n\
                         [checkpoint]\ninterval_ms = 1000\n"
        .into();
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    platform.drain("hostile")?;
    let hostile = platform.wait_drained("hostile", Duration::from_secs(600))?;
    platform.drain(REVIEWS_DAILY)?;
    let reviews = platform.wait_drained(REVIEWS_DAILY, Duration::from_secs(600))?;
    eprintln!("hostile: {hostile}\nreviews: {reviews}");

    let mut failures = check_reviews_outputs(&env, &expected, Repeats::Forbidden);
    if let Err(error) = check_hostile(&env, &hostile) {
        failures.push(format!("hostile app: {error:#}"));
    }
    platform.stop()?;
    if !failures.is_empty() {
        bail!(
            "{} check(s) failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    Ok(())
}

/// Three failures survived; exactly the three hostile records are quarantined, each with its
/// reason; every other record is counted once in Cassandra.
fn check_hostile(env: &TestEnv, status: &Value) -> Result<()> {
    ensure!(status["failures"] == 3, "three failures expected: {status}");
    let topic = env.topic("hostile.dead-letters");
    let records = read_topic(&topic)?;
    let mut quarantined = BTreeSet::new();
    let mut reasons = Vec::new();
    for record in &records {
        let value = record.value_json().with_context(|| format!("on {topic}"))?;
        let id = value["id"]
            .as_u64()
            .with_context(|| format!("no id in {value}"))?;
        let reason = record.header("mysimbdp-reason").unwrap_or_default();
        ensure!(
            reason.starts_with("quarantined:"),
            "{topic}: record {id} has reason `{reason}`"
        );
        ensure!(quarantined.insert(id), "{topic}: record {id} twice");
        if HOSTILE.iter().any(|(at, _)| *at as u64 == id) {
            reasons.push(reason);
        }
    }
    ensure!(
        reasons.len() == HOSTILE.len() && quarantined.len() == HOSTILE.len(),
        "exactly the hostile records should be quarantined, not {} records: {reasons:?}",
        quarantined.len()
    );
    ensure!(
        reasons.iter().any(|r| r.contains("deadline")),
        "no reason names the deadline: {reasons:?}"
    );
    let counted = sum_column(&env.tenant, "hostile", "records")?;
    ensure!(
        counted + quarantined.len() as i64 == ORDERS as i64,
        "{ORDERS} records: {counted} counted + {} quarantined",
        quarantined.len()
    );
    Ok(())
}

#[test]
fn an_app_that_keeps_failing_is_stopped_with_the_reason() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let orders = env.topic("orders");
    create_topic(&orders, 1)?;
    let mut config = PlatformConfig::new(&env.tenant, vec![hostile_app()?])?;
    config.extra_toml = "[limits]\nmax_failures = 2\n".into();
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready("hostile")?;
    // One panic at a time, the next only once the last one is counted as a failure: each
    // is a failure of its own, whatever the batch timing.
    let mut sent = 0;
    let status = loop {
        produce(&orders, [order(sent, PANIC)])?;
        sent += 1;
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            let status = platform.status("hostile")?;
            if status["state"] == "failed" || status["failures"].as_u64() >= Some(sent as u64) {
                break status;
            }
            ensure!(
                Instant::now() < deadline,
                "panic {sent} was not counted as a failure: {status}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        if status["state"] == "failed" {
            break status;
        }
        ensure!(sent < 10, "never stopped after {sent} panics: {status}");
    };
    let error = status["last_error"].as_str().unwrap_or_default();
    ensure!(
        error.contains("failed 2 times") && error.contains("trapped in `accumulate`"),
        "the status should say why: {status}"
    );
    let (code, metrics) = platform.admin_request("GET", "/metrics")?;
    ensure!(code == 200, "GET /metrics: {code}");
    let failed = format!(
        "mysimbdp_app_failed{{tenant=\"{}\",app=\"hostile\"}} 1",
        env.tenant
    );
    ensure!(metrics.contains(&failed), "no `{failed}` in the metrics");
    platform.stop()?;
    Ok(())
}
