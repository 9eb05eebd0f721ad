//! What exactly-once costs a tenant in latency: reviews stream in at a fixed rate (one day of
//! event time per second), with a marker review of its own product every 100 ms; a
//! `read_committed` consumer of the results topic, as the tenant's would be, notes when each
//! marker's first update becomes visible. Exactly-once makes updates visible when the checkpoint
//! commits them (every `checkpoint.interval_ms`); at-least-once as soon as they are written.
//! Both run with a 1 s checkpoint interval and the app's 1 s update interval. Run with
//! `just bench` (needs Kafka and Cassandra); prints p50/p99/max per delivery mode.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mysimbdp_tests::{
    create_topic, format_iso_date, kafka_client, AppSpec, Platform, PlatformConfig, Services,
    TestEnv, REVIEWS_DAILY,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

const RATE: u64 = 5_000;
const SECONDS: u64 = 30;
const MARKER_EVERY: Duration = Duration::from_millis(100);
/// 2015-01-01 as days since the epoch.
const FIRST_DAY: i64 = 16_436;

/// When each marker's first update was seen, by product id.
type Seen = Arc<Mutex<HashMap<String, Instant>>>;

fn watch(topic: String, seen: Seen, stop: Arc<AtomicBool>) -> Result<std::thread::JoinHandle<()>> {
    let consumer: BaseConsumer = kafka_client()?
        .set("group.id", format!("bench-delivery-{topic}"))
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create()
        .context("a results consumer")?;
    consumer.subscribe(&[&topic]).context("subscribing")?;
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) {
                let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                if key.starts_with('M') {
                    if let Ok(mut seen) = seen.lock() {
                        seen.entry(key).or_insert_with(Instant::now);
                    }
                }
            }
        }
    }))
}

fn review(product: &str, day: i64, n: u64) -> String {
    format!(
        r#"{{"review_id":"R{n}","product_id":"{product}","review_date":"{}","star_rating":5,"helpful_votes":1,"total_votes":1}}"#,
        format_iso_date(day)
    )
}

/// Streams for `SECONDS` at `RATE` with markers; returns each marker's latency in ms.
fn run(delivery: &str) -> Result<Vec<f64>> {
    let env = TestEnv::new()?;
    let input = env.topic("reviews");
    create_topic(&input, 4)?;
    let results = env.topic(&format!("{REVIEWS_DAILY}.results"));
    create_topic(&results, 4)?;
    let mut config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    config.extra_toml = "[checkpoint]\ninterval_ms = 1000\n".into();
    config.delivery = Some(delivery.into());
    let mut platform = Platform::start(&env, delivery, &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;

    let seen: Seen = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(results, seen.clone(), stop.clone())?;
    let producer: ThreadedProducer<DefaultProducerContext> = kafka_client()?
        .set("linger.ms", "5")
        .create()
        .context("a producer")?;
    let started = Instant::now();
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    let mut next_marker = started;
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(SECONDS) {
        let elapsed = started.elapsed();
        let day = FIRST_DAY + elapsed.as_secs() as i64;
        while n < (elapsed.as_secs_f64() * RATE as f64) as u64 {
            let product = format!("P{}", n % 2000);
            let value = review(&product, day, n);
            let _ = producer.send(BaseRecord::to(&input).key(&product).payload(&value));
            n += 1;
        }
        if Instant::now() >= next_marker {
            let marker = format!("M{}", sent_at.len());
            let value = review(&marker, day, n);
            let _ = producer.send(BaseRecord::to(&input).key(&marker).payload(&value));
            sent_at.insert(marker, Instant::now());
            next_marker += MARKER_EVERY;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    producer
        .flush(Duration::from_secs(30))
        .context("flushing")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && seen.lock().map_or(0, |s| s.len()) < sent_at.len() {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    platform.stop()?;
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(sent_at
        .iter()
        .map(|(marker, sent)| {
            seen.get(marker).map_or(f64::INFINITY, |at| {
                at.duration_since(*sent).as_secs_f64() * 1e3
            })
        })
        .collect())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(at).copied().unwrap_or(f64::NAN)
}

fn main() -> Result<()> {
    Services::check()?;
    println!(
        "latency from a marker produced to its first update visible to a read_committed reader \
         of the results topic ({RATE} records/s for {SECONDS} s, checkpoints every 1 s):"
    );
    for delivery in ["exactly-once", "at-least-once"] {
        let mut ms = run(delivery)?;
        ms.sort_by(f64::total_cmp);
        let missing = ms.iter().filter(|m| m.is_infinite()).count();
        println!(
            "  {delivery:<14} p50 {:>6.0} ms  p99 {:>6.0} ms  max {:>6.0} ms  ({} markers, {missing} not seen)",
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            ms.last().copied().unwrap_or(f64::NAN),
            ms.len()
        );
    }
    Ok(())
}
