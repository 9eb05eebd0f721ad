//! Backpressure: a deliberately slow app (every record costs it ~100k loop turns) gets its
//! input many times faster than it can process it. The platform reads only as fast as the app
//! goes: its resident memory stays under a bound, the lag shows in its status, and in the end
//! every record is counted.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use mysimbdp_tests::{
    create_topic, produce, sum_column, tenant_app_wasm, AppSpec, Platform, PlatformConfig,
    Services, TestEnv,
};

const RECORDS: usize = 60_000;
/// The bound on the platform's resident memory while ~60 MB of input waits in Kafka.
const RSS_BOUND_MB: u64 = 256;
const SLOW: i64 = 8;

fn rss_mb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

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
    platform.wait_ready("hostile")?;
    let pid = platform.pid().expect("a running platform");

    // ~1 KB per record, all sent as fast as Kafka takes them.
    let pad = "x".repeat(1000);
    let started = Instant::now();
    let sent = produce(
        &topic,
        (0..RECORDS).map(|i| {
            let key = format!("k{}", i % 500);
            let value = format!(r#"{{"key":"{key}","act":{SLOW},"pad":"{pad}"}}"#);
            (key, value)
        }),
    )?;
    let produced_in = started.elapsed();
    platform.drain("hostile")?;

    let (mut peak_rss, mut peak_lag) = (0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        let status = platform.status("hostile")?;
        peak_rss = peak_rss.max(rss_mb(pid).unwrap_or(0));
        peak_lag = peak_lag.max(status["lag"].as_u64().unwrap_or(0));
        ensure!(status["state"] != "failed", "{status}");
        if status["state"] == "drained" {
            break status;
        }
        ensure!(
            Instant::now() < deadline,
            "not drained in 10 minutes: {status}\n{}",
            platform.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let processed_in = started.elapsed();
    eprintln!(
        "{sent} records produced in {produced_in:?}, processed in {processed_in:?}; \
         peak RSS {peak_rss} MB, peak lag {peak_lag}; {status}"
    );
    ensure!(
        processed_in > produced_in * 3,
        "the app was not slow enough to test backpressure: produced in {produced_in:?}, \
         processed in {processed_in:?}"
    );
    ensure!(peak_lag > 10_000, "the lag never showed: peak {peak_lag}");
    ensure!(
        peak_rss < RSS_BOUND_MB,
        "resident memory reached {peak_rss} MB, above the bound of {RSS_BOUND_MB} MB"
    );
    let counted = sum_column(&env.tenant, "hostile", "records")?;
    let late = status["late"].as_u64().unwrap_or(0) as i64;
    ensure!(
        counted + late == sent as i64,
        "{sent} sent, {counted} counted in Cassandra, {late} late"
    );
    platform.stop()?;
    Ok(())
}
