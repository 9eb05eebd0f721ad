//! Throughput of the platform's own work, without Kafka and Cassandra: (a) decode + window +
//! plugin + emit from the same JSON bytes Kafka would deliver, and (c) the plugin boundary alone.
//! Run with `just bench`; results are per record, on one core.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mysimbdp_host::admin::metrics::AppMetrics;
use mysimbdp_host::app::{Message, Output, Processor};
use mysimbdp_host::cli::gen::{generate, Shape};
use mysimbdp_host::cli::tsv;
use mysimbdp_host::plugin::PluginEngine;
use mysimbdp_host::source::Decoder;
use mysimbdp_host::time::EventTime;

mod common;

const RECORDS: usize = 100_000;
const BATCH: usize = common::ROWS;

#[derive(Parser)]
struct GenShape {
    #[command(flatten)]
    shape: Shape,
}

/// Review messages as `mysimbdp produce` sends them, realistic bodies included.
fn messages() -> Vec<(Vec<u8>, Vec<u8>)> {
    let shape = GenShape::parse_from([
        "gen",
        "--rows",
        &RECORDS.to_string(),
        "--late",
        "0",
        "--malformed",
        "0",
    ])
    .shape;
    let mut tsv_bytes = Vec::new();
    generate(&shape, &mut tsv_bytes).expect("generate reviews");
    tsv_bytes
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty() && !tsv::is_header(line))
        .map(|line| {
            let mut json = Vec::new();
            tsv::write_message(line, &mut json);
            (tsv::key_of(line).to_vec(), json)
        })
        .collect()
}

fn pipeline(c: &mut Criterion) {
    let engine = PluginEngine::new().expect("engine");
    let app = common::load(&engine, "reviews_daily");
    let data = messages();
    let bytes: usize = data.iter().map(|(_, v)| v.len()).sum();
    eprintln!(
        "{} messages, {:.0} bytes each on average",
        data.len(),
        bytes as f64 / data.len() as f64
    );
    let mut group = c.benchmark_group("pipeline");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(data.len() as u64));
    group.bench_function("decode+window+plugin+emit", |b| {
        b.iter(|| {
            let now = Instant::now();
            let metrics = Arc::new(AppMetrics::default());
            let instance = app.instantiate().expect("instance");
            let mut processor = Processor::new(
                app.spec.clone(),
                instance,
                metrics,
                Duration::from_secs(3600),
                now,
            );
            for p in 0..4 {
                processor.watermarks_mut().assign(p, now);
            }
            let mut out = Output::default();
            for (i, chunk) in data.chunks(BATCH).enumerate() {
                let messages: Vec<Message<'_>> = chunk
                    .iter()
                    .enumerate()
                    .map(|(j, (key, value))| Message {
                        topic: "bench.reviews",
                        partition: (key.iter().map(|b| *b as u32).sum::<u32>() % 4) as i32,
                        offset: (i * BATCH + j) as i64,
                        key: Some(key),
                        payload: Some(value),
                        timestamp: None,
                    })
                    .collect();
                processor
                    .process(&messages, now, &mut out)
                    .expect("process");
                processor.tick(now, &mut out).expect("tick");
                out.emitted.clear();
            }
            processor.finish(&mut out).expect("finish");
            out
        })
    });
    // The projector alone: over all messages (most reads miss the cache, as a backlog's would)
    // and over the first thousand again and again (in cache, as just after decompression).
    let decode_all = |decoder: &mut Decoder, messages: &[(Vec<u8>, Vec<u8>)]| {
        for chunk in messages.chunks(BATCH) {
            for (_, value) in chunk {
                decoder
                    .decode(value, EventTime::from_millis(0))
                    .expect("decode");
            }
            decoder.take_batch();
        }
    };
    group.bench_function("decode only", |b| {
        let mut decoder = Decoder::new(&app.spec);
        b.iter(|| decode_all(&mut decoder, &data))
    });
    group.bench_function("decode only, in cache", |b| {
        let mut decoder = Decoder::new(&app.spec);
        let warm = &data[..1000];
        b.iter(|| (0..data.len() / warm.len()).for_each(|_| decode_all(&mut decoder, warm)))
    });
    group.finish();
}

fn boundary(c: &mut Criterion) {
    let engine = PluginEngine::new().expect("engine");
    let mut instance = common::load(&engine, "reviews_daily")
        .instantiate()
        .expect("instance");
    let (batch, slots) = common::review_batch();
    let mut group = c.benchmark_group("plugin boundary");
    group.sample_size(20);
    group.throughput(Throughput::Elements(common::ROWS as u64));
    group.bench_function("accumulate, 4096 rows × 3 int columns", |b| {
        b.iter(|| instance.accumulate(&slots, &batch).expect("accumulate"))
    });
    group.finish();
}

criterion_group!(benches, pipeline, boundary);
criterion_main!(benches);
