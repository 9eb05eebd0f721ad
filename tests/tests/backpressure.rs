//! Backpressure: an app's input piles up in Kafka, not in the platform. The app is paused by its
//! operator, ~230 MB of input is sent while it is held, and the lag shows exactly what waits.
//! Resumed, a deliberately slow app (every record costs it ~100k loop turns) works through it:
//! the platform reads only as fast as the app goes, so its peak resident memory grows by far
//! less than the input it would hold if it buffered it, and every record is counted once.

use std::time::Duration;

use anyhow::{ensure, Result};
use mysimbdp_tests::{
    create_topic, produce, sum_column, tenant_app_wasm, AppSpec, Platform, PlatformConfig,
    Services, TestEnv,
};

/// Twice what the bounded prefetch and the app's memory come to, and more: at 120 000 records
/// (114 MB) the platform's growth (52–65 MB here) sat at the test's bound of half the input.
const RECORDS: usize = 240_000;
const PAD: usize = 1000;
const SLOW: i64 = 8;
const APP: &str = "hostile";
const MB: u64 = 1024 * 1024;

#[test]
fn a_slow_app_under_a_flood_keeps_memory_bounded_and_loses_nothing() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let topic = env.topic("orders");
    create_topic(&topic, 4)?;
    let app = AppSpec {
        path: tenant_app_wasm("hostile")?,
        stream: "orders".into(),
    };
    let config = PlatformConfig::new(&env.tenant, vec![app])?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(APP)?;
    platform.wait_owning(APP, 4)?;
    let answer = platform.act(APP, "pause")?;
    ensure!(answer.starts_with("paused"), "pause answered `{answer}`");
    platform.wait_until(APP, "pausing", Duration::from_secs(60), |s| {
        s["state"] == "paused"
    })?;
    let before = platform.peak_memory()?;

    let pad = "x".repeat(PAD);
    let sent = produce(
        &topic,
        (0..RECORDS).map(|i| {
            let key = format!("k{}", i % 500);
            let value = format!(r#"{{"key":"{key}","act":{SLOW},"pad":"{pad}"}}"#);
            (key, value)
        }),
    )?;
    let input_bytes = (sent * PAD) as u64;

    // Everything sent waits in Kafka: the lag is exactly what was sent, nothing was read.
    let held = platform.wait_until(
        APP,
        "showing the held input as lag",
        Duration::from_secs(120),
        |s| s["lag"] == sent as u64,
    )?;
    ensure!(
        held["records_in"] == 0 && held["state"] == "paused",
        "a paused app read input: {held}"
    );

    let answer = platform.act(APP, "resume")?;
    ensure!(answer.starts_with("resumed"), "resume answered `{answer}`");
    platform.drain(APP)?;
    let status = platform.wait_drained(APP, Duration::from_secs(900))?;
    let peak = platform.peak_memory()?;
    eprintln!(
        "{sent} records ({} MB) held and processed; peak resident memory {} MB before the \
         input, {} MB after; {status}",
        input_bytes / MB,
        before / MB,
        peak / MB
    );
    // A platform that buffered the input would grow by at least its size; the bounded prefetch
    // (8 MB per partition) and the app's memory come to far less than half of it.
    ensure!(
        peak.saturating_sub(before) < input_bytes / 2,
        "resident memory grew by {} MB while working through {} MB of input",
        peak.saturating_sub(before) / MB,
        input_bytes / MB
    );
    ensure!(
        status["records_in"] == sent as u64,
        "{sent} sent, the platform read {}",
        status["records_in"]
    );
    let counted = sum_column(&env.tenant, APP, "records")?;
    let late = status["late"].as_u64().unwrap_or(0) as i64;
    ensure!(
        counted + late == sent as i64,
        "{sent} sent, {counted} counted in Cassandra, {late} late"
    );
    platform.stop()?;
    Ok(())
}
