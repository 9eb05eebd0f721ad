//! What deploying and hot-swapping cost, and what the CPU deadline costs: compiling a new
//! version, loading a known one from the cache, the processing pause of a swap with 10 000 open
//! windows, and `accumulate` with and without epoch deadlines. Run with `just bench`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mysimbdp_host::admin::metrics::AppMetrics;
use mysimbdp_host::app::{Message, Output, Processor};
use mysimbdp_host::plugin::{CompiledApp, PluginEngine};

mod common;

const OPEN_WINDOWS: usize = 10_000;

fn deploy(c: &mut Criterion) {
    let mut group = c.benchmark_group("deploy");
    group.sample_size(10);
    group.bench_function("compile a new version (reviews-daily 2.0)", |b| {
        b.iter_batched(
            || PluginEngine::new().expect("engine"),
            |engine| common::load(&engine, "reviews_daily_v2"),
            BatchSize::PerIteration,
        )
    });
    let engine = PluginEngine::new().expect("engine");
    common::load(&engine, "reviews_daily_v2");
    group.bench_function("load a known version from the cache", |b| {
        b.iter(|| {
            let app = common::load(&engine, "reviews_daily_v2");
            assert!(app.from_cache);
            app
        })
    });
    group.finish();
}

/// A processor of reviews-daily 1.0 with `OPEN_WINDOWS` open (product, day) windows.
fn busy_processor(v1: &CompiledApp) -> Processor {
    let now = Instant::now();
    let mut processor = Processor::new(
        v1.spec.clone(),
        v1.instantiate().expect("instance"),
        Arc::new(AppMetrics::default()),
        Duration::from_secs(3600),
        now,
    );
    processor.watermarks_mut().assign(0, now);
    let payloads: Vec<(String, String)> = (0..OPEN_WINDOWS)
        .map(|i| {
            let product = format!("P{i:06}");
            let json = format!(
                r#"{{"product_id":"{product}","star_rating":4,"helpful_votes":1,"total_votes":2,"review_date":"2015-01-10"}}"#
            );
            (product, json)
        })
        .collect();
    let messages: Vec<Message<'_>> = payloads
        .iter()
        .enumerate()
        .map(|(i, (key, json))| Message {
            topic: "bench.reviews",
            partition: 0,
            offset: i as i64,
            key: Some(key.as_bytes()),
            payload: Some(json.as_bytes()),
            timestamp: None,
        })
        .collect();
    let mut out = Output::default();
    processor
        .process(&messages, now, &mut out)
        .expect("process");
    processor
}

fn swap(c: &mut Criterion) {
    let engine = PluginEngine::new().expect("engine");
    let v1 = common::load(&engine, "reviews_daily");
    let v2 = common::load(&engine, "reviews_daily_v2");
    let mut group = c.benchmark_group("hot swap");
    group.sample_size(20);
    group.bench_function(
        "pause: new instance, snapshot and restore of 10 000 open windows",
        |b| {
            b.iter_batched(
                || busy_processor(&v1),
                |mut processor| {
                    let instance = v2.instantiate().expect("instance");
                    let swapped = processor
                        .swap(v2.spec.clone(), instance, false, None)
                        .expect("swap");
                    assert_eq!(swapped.windows, OPEN_WINDOWS);
                    processor
                },
                BatchSize::PerIteration,
            )
        },
    );
    group.finish();
}

fn deadline(c: &mut Criterion) {
    let (batch, slots) = common::review_batch();
    let mut group = c.benchmark_group("CPU deadline");
    group.sample_size(20);
    group.throughput(Throughput::Elements(common::ROWS as u64));
    for (name, deadlines) in [("with deadline", true), ("without deadline", false)] {
        let engine = PluginEngine::with_deadlines(deadlines).expect("engine");
        let mut instance = common::load(&engine, "reviews_daily")
            .instantiate()
            .expect("instance");
        group.bench_function(format!("accumulate 4096 rows, {name}"), |b| {
            b.iter(|| instance.accumulate(&slots, &batch).expect("accumulate"))
        });
    }
    group.finish();
}

criterion_group!(benches, deploy, swap, deadline);
criterion_main!(benches);
