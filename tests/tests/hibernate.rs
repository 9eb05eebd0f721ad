//! An idle app hibernates: it closes its Kafka clients (whose threads wake every second even
//! when there is nothing to read) and the host watches its input with one client of its own.
//! New input wakes it, and so does an operator's request; its results stay exact across both.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{
    check_reviews_outputs, create_topic, end_offsets_total, generate_reviews, send_part, split_tsv,
    AppSpec, Platform, PlatformConfig, Repeats, Services, TestEnv, REVIEWS_DAILY,
};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(180);

/// How many Kafka clients the platform process holds: librdkafka runs one `rdk:main` thread
/// per client.
fn kafka_clients(pid: u32) -> Result<usize> {
    let tasks = format!("/proc/{pid}/task");
    let mut clients = 0;
    for task in std::fs::read_dir(&tasks).with_context(|| format!("cannot list {tasks}"))? {
        let comm = task?.path().join("comm");
        // A thread may end between the listing and the read.
        if std::fs::read_to_string(comm).is_ok_and(|name| name.trim() == "rdk:main") {
            clients += 1;
        }
    }
    Ok(clients)
}

fn counter(status: &Value, name: &str) -> u64 {
    status[name].as_u64().unwrap_or(0)
}

/// Waits until the app has read all `records` of its input and hibernates.
fn wait_hibernating(platform: &mut Platform, env: &TestEnv, records: u64) -> Result<Value> {
    platform.wait_for_app(
        &env.tenant,
        REVIEWS_DAILY,
        &format!("all {records} records read, then hibernating"),
        LONG,
        |s| s["hibernating"] == true && counter(s, "records_in") == records,
    )
}

#[test]
fn an_idle_app_hibernates_wakes_on_input_and_requests_and_stays_exact() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let (tsv, expected) = generate_reviews(
        &env,
        30_000,
        77,
        &["--late", "0.002", "--out-of-order", "0.05"],
    )?;
    let topic = env.topic("reviews");
    create_topic(&topic, 4)?;
    let mut config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    // Short idle times, so that the test does not wait a minute for each hibernation.
    config.extra_toml = "[runner]\nidle_partition_timeout_ms = 2000\nhibernate_after_ms = 3000\n\n\
                         [checkpoint]\ninterval_ms = 1000\n"
        .into();
    let parts = split_tsv(&env, &tsv, 2)?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    let pid = platform.pid().context("the platform has no pid")?;

    // The first part: read, then hibernation with every window it opened kept in a checkpoint.
    send_part(&env, &parts[0])?;
    let first = end_offsets_total(&topic)? as u64;
    let asleep = wait_hibernating(&mut platform, &env, first)?;
    let open = counter(&asleep, "open_windows");
    let clients = kafka_clients(pid)?;

    // The second part wakes it: the windows left open resume from the checkpoint.
    send_part(&env, &parts[1])?;
    let total = end_offsets_total(&topic)? as u64;
    platform.wait_for_app(
        &env.tenant,
        REVIEWS_DAILY,
        "woken by new input",
        LONG,
        |s| s["hibernating"] == false || counter(s, "records_in") > first,
    )?;
    wait_hibernating(&mut platform, &env, total)?;
    let metrics = platform.admin_request("GET", "/metrics")?.1;

    // A drain wakes it too, and ends with every window final.
    platform.drain(REVIEWS_DAILY)?;
    let drained = platform.wait_drained(REVIEWS_DAILY, LONG)?;
    platform.stop()?;

    let mut failures = Vec::new();
    if open == 0 {
        failures.push(format!(
            "the first part left no window open across the hibernation: {asleep}"
        ));
    }
    // The host's watch is the one Kafka client left: the app's consumer and producer are closed.
    if clients != 1 {
        failures.push(format!(
            "{clients} Kafka clients while the only app hibernated, instead of the host's watch alone"
        ));
    }
    let gauge = format!(
        "mysimbdp_app_hibernating{{tenant=\"{}\",app=\"{REVIEWS_DAILY}\"}} 1",
        env.tenant
    );
    if !metrics.contains(&gauge) {
        failures.push(format!("/metrics has no `{gauge}`"));
    }
    if drained["state"] != "drained" || counter(&drained, "failures") != 0 {
        failures.push(format!("the app should drain with no failure: {drained}"));
    }
    failures.extend(check_reviews_outputs(&env, &expected, Repeats::Forbidden));
    ensure!(
        !expected.late.is_empty(),
        "the input has no late rows to test"
    );
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}
