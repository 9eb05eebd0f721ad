//! mysimbdp: a multi-tenant stream analytics platform whose tenants' analytics are sandboxed
//! WebAssembly components. Records flow one way: `source` → `time` → `window` → `plugin` →
//! `sink`; `batch` runs an app over a stored table to completion; `enrich` calls a tenant's declared service between decoding and the app; `app` runs
//! that flow for one tenant app, `admin` lets operators steer it.

pub mod access;
pub mod admin;
pub mod alerts;
pub mod app;
pub mod batch;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod enrich;
pub mod model;
pub mod names;
pub mod plugin;
pub mod sink;
pub mod source;
pub mod time;
pub mod window;
pub mod workflow;

/// Cases of each property test: a short pass in `cargo test`, `MYSIMBDP_FUZZ_CASES` of them in
/// `just fuzz`.
#[cfg(test)]
pub(crate) fn fuzz_cases(default: u32) -> u32 {
    std::env::var("MYSIMBDP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
