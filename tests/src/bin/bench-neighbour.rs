//! How much a tenant's app slows down when another tenant's app beside it on the same platform
//! is busy or hostile: reviews-daily drains the same 400 000 reviews alone, then beside each of
//! the hostile app's acts in turn (burning CPU on every record, looping until the deadline,
//! panicking, flooding sockets, sleeping, exhausting its memory, emitting rows too large for
//! the sinks). Run with `just bench` (needs Kafka and Cassandra); prints the drain times and the
//! share of the alone throughput, whose aim is at least 90% for every case.

use std::time::{Duration, Instant};

use anyhow::Result;
use mysimbdp_tests::{
    create_topic, generate_reviews, produce, produce_reviews, tenant_app_wasm, AppSpec, Platform,
    PlatformConfig, Services, TestEnv, REVIEWS_DAILY,
};

const REVIEWS: u32 = 400_000;
const ORDERS: usize = 100_000;
/// The neighbours: what each does, its act in the hostile app, and one record in how many
/// asks for it (the others do nothing).
const CASES: [(&str, i64, usize); 7] = [
    ("burning CPU on every record", 8, 1),
    ("looping until its deadline", 1, 20_000),
    ("panicking every 1000 records", 3, 1_000),
    ("flooding sockets", 9, 10_000),
    ("sleeping in accumulate", 10, 10_000),
    ("exhausting its memory", 2, 20_000),
    ("emitting 2 MiB rows", 11, 1_000),
];

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
    // A first run warms Kafka's and Cassandra's JVMs and is not counted; reviews-daily alone
    // runs before and after the neighbours, and the faster of the two is the baseline, so a
    // neighbour's share is never flattered by a slow baseline.
    run("warm-up", None)?;
    let first = run("alone", None)?;
    let mut beside = Vec::new();
    for (i, (what, act, every)) in CASES.iter().enumerate() {
        beside.push((what, run(&format!("beside-{i}"), Some((*act, *every)))?));
    }
    let last = run("alone-again", None)?;
    let alone = first.min(last);
    let rate = |s: f64| REVIEWS as f64 / s;
    println!(
        "reviews-daily, {REVIEWS} reviews from Kafka into Cassandra, platform start to drained:"
    );
    println!(
        "  {:<40} {alone:6.1} s  {:>8.0} rec/s  (faster of {first:.1} s before and {last:.1} s after)",
        "alone",
        rate(alone)
    );
    for (what, seconds) in beside {
        println!(
            "  beside an app {:<26} {seconds:6.1} s  {:>8.0} rec/s  ({:.0}% of alone)",
            what,
            rate(seconds),
            100.0 * alone / seconds
        );
    }
    Ok(())
}
