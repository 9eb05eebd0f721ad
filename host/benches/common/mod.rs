//! What the benchmarks share: the built tenant apps, and a columnar batch like the decoder makes.

use std::path::PathBuf;

use mysimbdp_host::plugin::{Batch, Column, CompiledApp, Limits, PluginEngine};

/// Rows per batch, as the platform sends them by default.
pub const ROWS: usize = 4096;

/// A tenant app of this repository by its `.wasm` file name, compiled by `engine`.
#[allow(dead_code)]
pub fn load(engine: &PluginEngine, name: &str) -> CompiledApp {
    engine
        .load(&path(name), Limits::default())
        .expect("build the apps first: just build-apps")
}

/// Where `just build-apps` writes a tenant app by its `.wasm` file name.
#[allow(dead_code)]
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"))
}

/// A batch of reviews-daily's three integer inputs, and the slots its rows go to (1024 windows).
pub fn review_batch() -> (Batch, Vec<u32>) {
    let ints = |f: fn(usize) -> i64| Column::Integers((0..ROWS).map(f).collect());
    let batch = Batch {
        rows: ROWS as u32,
        columns: vec![
            ints(|i| (i % 5 + 1) as i64),
            ints(|i| (i % 3) as i64),
            ints(|i| (i % 7) as i64),
        ],
    };
    let slots = (0..ROWS as u32).map(|i| i % 1024).collect();
    (batch, slots)
}
