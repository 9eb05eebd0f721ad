//! reviews-daily in Rust, Python and JavaScript, side by side on one core: compile time, load
//! time from the on-disk cache, memory of an instance, the plugin boundary per record, and the
//! in-process pipeline (decode → windows → app → emit) per record. Run with `just bench`.

use std::time::{Duration, Instant};

use clap::Parser;
use mysimbdp_host::app::replay::{replay, Record, ReplaySettings};
use mysimbdp_host::cli::gen::{generate, Shape};
use mysimbdp_host::cli::tsv;
use mysimbdp_host::plugin::{Limits, PluginEngine};

mod common;

const APPS: [(&str, &str); 3] = [
    ("Rust", "reviews_daily"),
    ("Python", "reviews_daily_py"),
    ("JavaScript", "reviews_daily_js"),
];
const RECORDS: usize = 100_000;

#[derive(Parser)]
struct GenShape {
    #[command(flatten)]
    shape: Shape,
}

fn records() -> Vec<Record> {
    let rows = RECORDS.to_string();
    let shape = GenShape::parse_from(["gen", "--rows", &rows, "--late", "0", "--malformed", "0"]);
    let mut bytes = Vec::new();
    generate(&shape.shape, &mut bytes).expect("generate reviews");
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty() && !tsv::is_header(l))
        .enumerate()
        .map(|(i, line)| {
            let mut json = Vec::new();
            tsv::write_message(line, &mut json);
            Record {
                line: i + 2,
                key: Some(tsv::key_of(line).to_vec()),
                payload: json,
                timestamp: None,
            }
        })
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let data = records();
    let cache =
        std::env::temp_dir().join(format!("mysimbdp-bench-languages-{}", std::process::id()));
    let (batch, slots) = common::review_batch();
    println!("reviews-daily by language, {RECORDS} generated reviews, one core:");
    println!(
        "{:<11} {:>10} {:>12} {:>13} {:>14} {:>14} {:>10}",
        "language",
        "size MB",
        "compile s",
        "cached load",
        "instance MiB",
        "boundary/rec",
        "e2e/rec"
    );
    for (language, file) in APPS {
        let path = common::path(file);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let started = Instant::now();
        let engine = PluginEngine::new().expect("engine").with_disk_cache(&cache);
        let app = engine.load(&path, Limits::default()).expect("load");
        let compile = started.elapsed();
        let started = Instant::now();
        let again = PluginEngine::new().expect("engine").with_disk_cache(&cache);
        let app2 = again.load(&path, Limits::default()).expect("cached load");
        let cached = started.elapsed();
        drop(app2);

        let mut instance = app.instantiate().expect("instance");
        let per_instance = instance.memory_bytes() as f64 / (1 << 20) as f64;

        instance.accumulate(&slots, &batch).expect("warm up");
        let rounds = 50;
        let started = Instant::now();
        for _ in 0..rounds {
            instance.accumulate(&slots, &batch).expect("accumulate");
        }
        let boundary = started.elapsed() / (rounds * batch.rows);

        let settings = ReplaySettings::default();
        let started = Instant::now();
        let result = replay(&app, &data, &settings).expect("replay");
        let e2e = started.elapsed() / RECORDS as u32;
        assert!(result.quarantined.is_empty() && !result.rows.is_empty());
        let micros = |d: Duration| format!("{:.3} µs", d.as_secs_f64() * 1e6);
        println!(
            "{:<11} {:>10.1} {:>12.2} {:>13} {:>14.1} {:>14} {:>10}",
            language,
            size as f64 / 1e6,
            compile.as_secs_f64(),
            format!("{:.1} ms", cached.as_secs_f64() * 1e3),
            per_instance,
            micros(boundary),
            micros(e2e),
        );
    }
    let _ = std::fs::remove_dir_all(&cache);
}
