//! How much a tenant's app slows down when another tenant's app beside it on the same platform
//! is busy or hostile: reviews-daily drains the same 200 000 reviews alone, beside an app that
//! burns CPU on every record, and beside one whose records loop forever until the deadline stops
//! them. Run with `just bench` (needs Kafka and Cassandra); prints the drain times and ratios.

use std::time::{Duration, Instant};

use anyhow::Result;
use mysimbdp_tests::{
    create_topic, generate_reviews, produce, produce_reviews, tenant_app_wasm, AppSpec, Platform,
    PlatformConfig, Services, TestEnv, REVIEWS_DAILY,
};

const REVIEWS: u32 = 200_000;
const ORDERS: usize = 100_000;
const SLOW: i64 = 8;
const LOOP_FOREVER: i64 = 1;

/// Drains reviews-daily (and the neighbour, if any, runs beside it); returns the seconds from
/// the platform's start to the reviews app drained.
fn run(name: &str, neighbour: Option<(i64, usize)>) -> Result<f64> {
    let env = TestEnv::new()?;
    let (tsv, _) = generate_reviews(&env, REVIEWS, 9, &[])?;
    create_topic(&env.topic("reviews"), 4)?;
    produce_reviews(&env, &tsv)?;
    let mut apps = vec![AppSpec::reviews_daily()?];
    if let Some((act, every)) = neighbour {
        let orders = env.topic("orders");
        create_topic(&orders, 4)?;
        produce(
            &orders,
            (0..ORDERS).map(|i| {
                let key = format!("k{}", i % 100);
                let a = if i % every == 0 { act } else { 0 };
                (key.clone(), format!(r#"{{"key":"{key}","act":{a}}}"#))
            }),
        )?;
        apps.push(AppSpec {
            path: tenant_app_wasm("hostile")?,
            stream: "orders".into(),
        });
    }
    let mut config = PlatformConfig::new(&env.tenant, apps)?;
    config.extra_toml = "[limits]\ncall_deadline_ms = 1000\nmax_failures = 1000\n".into();
    let started = Instant::now();
    let mut platform = Platform::start(&env, name, &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    platform.drain(REVIEWS_DAILY)?;
    platform.wait_drained(REVIEWS_DAILY, Duration::from_secs(900))?;
    let seconds = started.elapsed().as_secs_f64();
    let neighbour = platform.status("hostile").ok();
    platform.stop()?;
    let failures = neighbour
        .as_ref()
        .and_then(|s| s["failures"].as_u64())
        .unwrap_or(0);
    eprintln!("{name}: {seconds:.1} s (neighbour failures survived meanwhile: {failures})");
    Ok(seconds)
}

fn main() -> Result<()> {
    Services::check()?;
    let alone = run("alone", None)?;
    let busy = run("beside-busy", Some((SLOW, 1)))?;
    let hostile = run("beside-looping", Some((LOOP_FOREVER, 20_000)))?;
    let rate = |s: f64| REVIEWS as f64 / s;
    println!(
        "reviews-daily, {REVIEWS} reviews from Kafka into Cassandra, platform start to drained:"
    );
    println!(
        "  alone                                   {alone:6.1} s  {:>8.0} rec/s",
        rate(alone)
    );
    println!(
        "  beside an app burning CPU per record    {busy:6.1} s  {:>8.0} rec/s  ({:.0}% of alone)",
        rate(busy),
        100.0 * alone / busy
    );
    println!(
        "  beside an app looping until its deadline {hostile:5.1} s  {:>8.0} rec/s  ({:.0}% of alone)",
        rate(hostile),
        100.0 * alone / hostile
    );
    Ok(())
}
